import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  DeleteWebhookEndpointDocument,
  RedeliverWebhookDocument,
  ReserveGenerationDocument,
  SetBalanceAlertDocument,
} from "../../src/generated/graphql/graphql.ts";
import { localId } from "../../src/schema/ids.ts";
import { expectTypename, gqlData } from "../support/documents.ts";
import { createAccount, grant } from "../support/fixtures.ts";
import { startServer, type TestServer, unique } from "../support/harness.ts";
import { type Receiver, startReceiver } from "./receiver.ts";
import { createEndpoint as create, deliveriesOf, eventually, reserveAndRefund } from "./support.ts";

/**
 * Webhooks end to end (SPEC §8.4): the outbox rows written with the ledger
 * change, the delivery worker, real HTTP receivers. Every test here runs
 * the worker, so they run one after another in this file (a worker takes
 * any instance's due deliveries, as it should).
 */
describe("webhook delivery", () => {
  let server: TestServer;
  let service: string;
  const receivers: Receiver[] = [];
  /** Endpoints made here, deleted at the end (with their deliveries) so no later run retries them. */
  const endpoints: string[] = [];
  const receiver = async (script: number[] = []) => {
    const started = await startReceiver(script);
    receivers.push(started);
    return started;
  };

  const createEndpoint = async (...args: Parameters<typeof create>) => {
    const created = await create(...args);
    endpoints.push(created.endpoint.id);
    return created;
  };

  beforeAll(async () => {
    server = await startServer({
      webhookWorkerEnabled: true,
      webhookAllowPrivate: true,
      webhookRetryBaseMs: 50,
    });
    service = await server.token("platform", "service");
  });
  afterAll(async () => {
    for (const id of endpoints) {
      const data = await gqlData(server, service, DeleteWebhookEndpointDocument, { input: { id } });
      expectTypename(data.deleteWebhookEndpoint, "DeleteWebhookEndpointSuccess");
    }
    await server?.close();
    for (const started of receivers) await started.close();
  });

  it("a refund sends ledger_entry.added and generation.finished, signed per Standard Webhooks", async () => {
    const target = await receiver();
    const account = await createAccount(server, service);
    const { secret } = await createEndpoint(server, service, {
      url: target.url,
      accountId: account.id,
      eventTypes: ["LEDGER_ENTRY_ADDED", "GENERATION_FINISHED"],
    });
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]+=*$/);
    await grant(server, service, account.id, 100);
    const generationId = await reserveAndRefund(server, service, account.id, 30);
    // GRANT, USAGE, REFUND entries and the generation's end.
    const received = await target.waitFor(4);
    const verifier = new Webhook(secret);
    const bodies = received.map((request) => {
      const headers = {
        "webhook-id": String(request.headers["webhook-id"]),
        "webhook-timestamp": String(request.headers["webhook-timestamp"]),
        "webhook-signature": String(request.headers["webhook-signature"]),
      };
      expect(headers["webhook-signature"]).toMatch(/^v1,[A-Za-z0-9+/]+=*$/);
      expect(request.headers["content-type"]).toBe("application/json");
      return verifier.verify(request.body, headers) as {
        type: string;
        timestamp: string;
        data: Record<string, unknown>;
      };
    });
    // Another secret does not verify: the check above can fail.
    const other = new Webhook(`whsec_${Buffer.alloc(32, 7).toString("base64")}`);
    const first = received[0];
    expect(() =>
      other.verify(first?.body ?? "", {
        "webhook-id": String(first?.headers["webhook-id"]),
        "webhook-timestamp": String(first?.headers["webhook-timestamp"]),
        "webhook-signature": String(first?.headers["webhook-signature"]),
      }),
    ).toThrow();
    const refund = bodies.find((body) => body.type === "ledger_entry.added" && body.data.type === "REFUND");
    expect(refund?.data).toMatchObject({
      accountId: account.id,
      sequence: 3,
      amount: 30,
      balanceBefore: 70,
      balanceAfter: 100,
      reason: "PROVIDER_ERROR",
      generationId,
    });
    expect(Date.parse(refund?.timestamp ?? "")).not.toBeNaN();
    const finished = bodies.find((body) => body.type === "generation.finished");
    expect(finished?.data).toMatchObject({
      accountId: account.id,
      sequence: 3,
      generationId,
      status: "FAILED",
    });
    expect(
      bodies
        .filter((body) => body.type === "ledger_entry.added")
        .map((body) => body.data.sequence)
        .sort(),
    ).toEqual([1, 2, 3]);
    expect(new Set(received.map((request) => request.headers["webhook-id"])).size).toBe(4);
  });

  it("a balance alert's fall sends balance.low with the account's figures", async () => {
    const target = await receiver();
    const account = await createAccount(server, service);
    await createEndpoint(server, service, {
      url: target.url,
      accountId: account.id,
      eventTypes: ["BALANCE_LOW"],
    });
    await grant(server, service, account.id, 100);
    const alert = await gqlData(server, service, SetBalanceAlertDocument, {
      input: { accountId: account.id, threshold: 50 },
    });
    expectTypename(alert.setBalanceAlert, "SetBalanceAlertSuccess");
    const reserved = await gqlData(server, service, ReserveGenerationDocument, {
      input: { idempotencyKey: unique("reserve"), accountId: account.id, feature: "Image", unitCost: 60 },
    });
    expectTypename(reserved.reserveGeneration, "ReserveGenerationSuccess");
    const [request] = await target.waitFor(1);
    expect(JSON.parse(request?.body ?? "{}")).toMatchObject({
      type: "balance.low",
      data: { accountId: account.id, sequence: 2, threshold: 50, available: 40 },
    });
  });

  it("only the event types an endpoint names are sent to it", async () => {
    const target = await receiver();
    const account = await createAccount(server, service);
    const { endpoint } = await createEndpoint(server, service, {
      url: target.url,
      accountId: account.id,
      eventTypes: ["GENERATION_FINISHED"],
    });
    await grant(server, service, account.id, 100);
    await reserveAndRefund(server, service, account.id, 10);
    const [only] = await target.waitFor(1);
    expect(JSON.parse(only?.body ?? "{}").type).toBe("generation.finished");
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(target.received).toHaveLength(1);
    expect(await deliveriesOf(server, service, endpoint.id)).toHaveLength(1);
  });

  it("a receiver failing with 500, 503 and 404 gets the same webhook-id 4 times, then nothing more", async () => {
    const target = await receiver([500, 503, 404, 200]);
    const account = await createAccount(server, service);
    const { endpoint } = await createEndpoint(server, service, {
      url: target.url,
      accountId: account.id,
      eventTypes: ["LEDGER_ENTRY_ADDED"],
    });
    await grant(server, service, account.id, 5);
    const received = await target.waitFor(4);
    const ids = received.map((request) => request.headers["webhook-id"]);
    expect(new Set(ids).size).toBe(1);
    expect(ids[0]).toMatch(/^msg_[0-9a-f]{32}$/);
    // Every retry sends the same body.
    expect(new Set(received.map((request) => request.body)).size).toBe(1);
    // The backoff grows: the third pause (after 404) is longer than the first (after 500).
    const pauses = received.slice(1).map((request, i) => request.at - (received[i]?.at ?? 0));
    expect(pauses[2]).toBeGreaterThan(pauses[0] ?? 0);
    const [delivery] = await eventually(
      () => deliveriesOf(server, service, endpoint.id),
      (rows) => rows[0]?.status === "SUCCEEDED",
    );
    expect(delivery).toMatchObject({
      status: "SUCCEEDED",
      attempts: 4,
      responseStatus: 200,
      nextAttemptAt: null,
    });
    expect(delivery?.eventId).toBe(ids[0]);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(target.received).toHaveLength(4);
  });

  it("redeliverWebhook queues a fresh attempt of the same event", async () => {
    const target = await receiver();
    const account = await createAccount(server, service);
    const { endpoint } = await createEndpoint(server, service, {
      url: target.url,
      accountId: account.id,
      eventTypes: ["LEDGER_ENTRY_ADDED"],
    });
    await grant(server, service, account.id, 5);
    const [first] = await target.waitFor(1);
    const [delivered] = await eventually(
      () => deliveriesOf(server, service, endpoint.id),
      (rows) => rows[0]?.status === "SUCCEEDED",
    );
    const data = await gqlData(server, service, RedeliverWebhookDocument, {
      input: { deliveryId: delivered?.id ?? "" },
    });
    const fresh = expectTypename(data.redeliverWebhook, "RedeliverWebhookSuccess").delivery;
    expect(fresh.id).not.toBe(delivered?.id);
    expect(fresh).toMatchObject({ eventId: delivered?.eventId, attempts: 0, payload: delivered?.payload });
    const [, second] = await target.waitFor(2);
    expect(second?.headers["webhook-id"]).toBe(first?.headers["webhook-id"]);
    expect(second?.body).toBe(first?.body);
    const rows = await eventually(
      () => deliveriesOf(server, service, endpoint.id),
      (list) => list.length === 2 && list.every((row) => row.status === "SUCCEEDED"),
    );
    expect(rows.map((row) => row.attempts)).toEqual([1, 1]);
  });

  it("without WEBHOOK_ALLOW_PRIVATE an attempt to a private address is refused, and nothing is sent", async () => {
    const target = await receiver();
    const account = await createAccount(server, service);
    // Made while private addresses are allowed, delivered by a worker that refuses them.
    const { endpoint } = await createEndpoint(server, service, {
      url: target.url,
      accountId: account.id,
      eventTypes: ["LEDGER_ENTRY_ADDED"],
    });
    await server.app.webhooks.stop();
    const strict = await startServer({
      webhookWorkerEnabled: true,
      webhookAllowPrivate: false,
      webhookRetryBaseMs: 1_000,
    });
    try {
      await grant(strict, service, account.id, 5);
      const [delivery] = await eventually(
        () => deliveriesOf(strict, service, endpoint.id),
        (rows) => (rows[0]?.attempts ?? 0) >= 1,
      );
      expect(delivery).toMatchObject({ status: "PENDING", responseStatus: null });
      expect(target.received).toHaveLength(0);
    } finally {
      await strict.close();
      server.app.webhooks.start();
    }
    // The database ids stay internal: the API's ids are global ids of their type.
    expect(localId(endpoint.id, "WebhookEndpoint")).not.toBeNull();
  });
});
