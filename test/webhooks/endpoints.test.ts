import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  CreateWebhookEndpointDocument,
  DeleteWebhookEndpointDocument,
  RedeliverWebhookDocument,
  WebhookEndpointsDocument,
} from "../../src/generated/graphql/graphql.ts";
import { localId } from "../../src/schema/ids.ts";
import { expectTypename, gqlData, gqlDoc } from "../support/documents.ts";
import { createAccount, grant } from "../support/fixtures.ts";
import { startServer, type TestServer } from "../support/harness.ts";
import { createEndpoint, deliveriesOf } from "./support.ts";

/**
 * The webhook API (SPEC §8.4) without a delivery worker: who may create,
 * list, delete and redeliver, which URLs are refused, and the outbox rows
 * the ledger's transactions write (none for an account nobody listens to).
 * The endpoints' URLs are TEST-NET addresses nothing is sent to.
 */
describe("webhook endpoints", () => {
  let server: TestServer;
  let service: string;
  let admin: string;
  const url = "https://198.51.100.7/hooks";

  beforeAll(async () => {
    server = await startServer();
    service = await server.token("platform", "service");
    admin = await server.token("support", "admin");
  });
  afterAll(async () => {
    await server?.close();
  });

  const create = (token: string, input: Record<string, unknown>) =>
    gqlData(server, token, CreateWebhookEndpointDocument, {
      input: { url, eventTypes: ["LEDGER_ENTRY_ADDED"], ...input } as never,
    });

  it("refuses loopback, private, link-local and http URLs without WEBHOOK_ALLOW_PRIVATE", async () => {
    const account = await createAccount(server, service);
    for (const refused of [
      "https://127.0.0.1/hooks",
      "https://localhost/hooks",
      "https://10.1.2.3/hooks",
      "https://172.16.0.1/hooks",
      "https://192.168.1.1/hooks",
      "https://169.254.169.254/latest/meta-data",
      "https://[::1]/hooks",
      "https://[fe80::1]/hooks",
      "https://[::ffff:127.0.0.1]/hooks",
      "http://198.51.100.7/hooks",
      "https://user:pass@198.51.100.7/hooks",
      "not a url",
    ]) {
      const data = await create(service, { url: refused, accountId: account.id });
      const error = expectTypename(data.createWebhookEndpoint, "InvalidInputError");
      expect([refused, error.field]).toEqual([refused, "url"]);
    }
    const data = await gqlData(server, service, WebhookEndpointsDocument, { accountId: account.id });
    expect(data.webhookEndpoints).toEqual([]);
  });

  it("creates an endpoint for an account, shows its secret once, lists and deletes it", async () => {
    const account = await createAccount(server, service);
    const created = await createEndpoint(server, service, {
      url,
      accountId: account.id,
      eventTypes: ["LEDGER_ENTRY_ADDED", "GENERATION_FINISHED"],
    });
    expect(created.endpoint).toMatchObject({
      url,
      accountId: account.id,
      description: "test receiver",
      eventTypes: ["LEDGER_ENTRY_ADDED", "GENERATION_FINISHED"],
      enabled: true,
    });
    const listed = await gqlData(server, service, WebhookEndpointsDocument, { accountId: account.id });
    expect(listed.webhookEndpoints).toEqual([created.endpoint]);
    // The secret is nowhere else in the schema.
    const text = JSON.stringify(listed);
    expect(text).not.toContain(created.secret);
    const deleted = await gqlData(server, service, DeleteWebhookEndpointDocument, {
      input: { id: created.endpoint.id },
    });
    expect(expectTypename(deleted.deleteWebhookEndpoint, "DeleteWebhookEndpointSuccess").deletedId).toBe(
      created.endpoint.id,
    );
    // Again: already gone is what was asked for.
    const again = await gqlData(server, service, DeleteWebhookEndpointDocument, {
      input: { id: created.endpoint.id },
    });
    expectTypename(again.deleteWebhookEndpoint, "DeleteWebhookEndpointSuccess");
    const after = await gqlData(server, service, WebhookEndpointsDocument, { accountId: account.id });
    expect(after.webhookEndpoints).toEqual([]);
  });

  it("an endpoint for every account needs an admin; users may do nothing with webhooks", async () => {
    const account = await createAccount(server, service);
    const forAll = await create(service, { accountId: null });
    expect(expectTypename(forAll.createWebhookEndpoint, "ForbiddenError").code).toBe("FORBIDDEN");
    const user = await server.token(account.ownerId, "user");
    const byUser = await create(user, { accountId: account.id });
    expectTypename(byUser.createWebhookEndpoint, "ForbiddenError");
    const listing = await gqlDoc(server, user, WebhookEndpointsDocument, { accountId: account.id });
    expect(listing.errors?.[0]?.extensions?.code).toBe("FORBIDDEN");
    const everyEndpoint = await gqlDoc(server, service, WebhookEndpointsDocument, {});
    expect(everyEndpoint.errors?.[0]?.extensions?.code).toBe("FORBIDDEN");
    const unknownAccount = await create(service, {
      accountId: Buffer.from("Account:00000000-0000-4000-8000-000000000000").toString("base64"),
    });
    expectTypename(unknownAccount.createWebhookEndpoint, "NotFoundError");
    // A user's node(id) of an endpoint is null, like a missing one.
    const { endpoint } = await createEndpoint(server, admin, {
      url,
      accountId: account.id,
      eventTypes: ["BALANCE_LOW"],
    });
    const seen = await server.gql(user, "query($id: ID!) { node(id: $id) { id } }", { id: endpoint.id });
    expect(seen).toEqual({ data: { node: null } });
    const redelivered = await gqlData(server, user, RedeliverWebhookDocument, {
      input: { deliveryId: endpoint.id },
    });
    expectTypename(redelivered.redeliverWebhook, "ForbiddenError");
    await gqlData(server, admin, DeleteWebhookEndpointDocument, { input: { id: endpoint.id } });
  });

  it("an API key limited to one account manages only that account's endpoints", async () => {
    const own = await createAccount(server, service);
    const other = await createAccount(server, service);
    const created = await server.gql(
      admin,
      `mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) {
        ... on CreateApiKeySuccess { secret } ... on Error { code message } } }`,
      { input: { name: "webhooks", accountId: own.id } },
    );
    const key = created.data?.createApiKey.secret as string;
    expect(key).toBeTruthy();
    const mine = await create(key, { accountId: own.id });
    const { endpoint } = expectTypename(mine.createWebhookEndpoint, "CreateWebhookEndpointSuccess");
    const theirs = await create(key, { accountId: other.id });
    expectTypename(theirs.createWebhookEndpoint, "NotFoundError");
    const { endpoint: foreign } = await createEndpoint(server, service, {
      url,
      accountId: other.id,
      eventTypes: ["BALANCE_LOW"],
    });
    const listed = await gqlData(server, key, WebhookEndpointsDocument, { accountId: other.id });
    expect(listed.webhookEndpoints).toEqual([]);
    const seen = await server.gql(key, "query($id: ID!) { node(id: $id) { id } }", { id: foreign.id });
    expect(seen).toEqual({ data: { node: null } });
    const deleted = await gqlData(server, key, DeleteWebhookEndpointDocument, { input: { id: foreign.id } });
    expectTypename(deleted.deleteWebhookEndpoint, "NotFoundError");
    for (const id of [endpoint.id, foreign.id]) {
      await gqlData(server, service, DeleteWebhookEndpointDocument, { input: { id } });
    }
  });

  it("writes one delivery per matching endpoint with the ledger change, and none when nobody listens", async () => {
    const heard = await createAccount(server, service);
    const unheard = await createAccount(server, service);
    const entries = await createEndpoint(server, service, {
      url,
      accountId: heard.id,
      eventTypes: ["LEDGER_ENTRY_ADDED"],
    });
    const finished = await createEndpoint(server, service, {
      url,
      accountId: heard.id,
      eventTypes: ["GENERATION_FINISHED"],
    });
    await grant(server, service, heard.id, 50);
    await grant(server, service, unheard.id, 50);
    const [delivery, ...others] = await deliveriesOf(server, service, entries.endpoint.id);
    expect(others).toEqual([]);
    // No worker runs here; another test file's may have tried it already (it can never succeed).
    expect(delivery).toMatchObject({
      eventType: "LEDGER_ENTRY_ADDED",
      status: "PENDING",
      responseStatus: null,
    });
    expect(delivery?.payload).toMatchObject({
      type: "ledger_entry.added",
      data: { accountId: heard.id, sequence: 1, type: "GRANT", amount: 50, balanceAfter: 50 },
    });
    expect(await deliveriesOf(server, service, finished.endpoint.id)).toEqual([]);
    const rows = await server.app.db.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM webhook_delivery WHERE account_id = $1",
      [localId(unheard.id, "Account")],
    );
    expect(rows[0]?.n).toBe(0);
    // Redelivering makes a second delivery of the same event; deleting the endpoint removes both.
    const data = await gqlData(server, service, RedeliverWebhookDocument, {
      input: { deliveryId: delivery?.id ?? "" },
    });
    expect(expectTypename(data.redeliverWebhook, "RedeliverWebhookSuccess").delivery.eventId).toBe(
      delivery?.eventId,
    );
    for (const { endpoint } of [entries, finished]) {
      await gqlData(server, service, DeleteWebhookEndpointDocument, { input: { id: endpoint.id } });
    }
    const left = await server.app.db.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM webhook_delivery WHERE account_id = $1",
      [localId(heard.id, "Account")],
    );
    expect(left[0]?.n).toBe(0);
  });
});
