/**
 * API keys (SPEC §8.6): created by admins, shown once, stored as a keyed hash;
 * `Authorization: Bearer cb_…` acts as the service role, limited to one
 * account when the key has one; revoked → HTTP 401. And removeAccountMember.
 */
import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Billing, closeSql, type Json, localIdOf, sql, waitFor } from "../billing/ops.ts";
import { CREATE_ACCOUNT, GRANT } from "../support/fixtures.ts";
import { unique } from "../support/harness.ts";
import { connect } from "../support/ws.ts";

const CREATE_KEY = `mutation($input: CreateApiKeyInput!) {
  createApiKey(input: $input) {
    __typename
    ... on CreateApiKeySuccess { secret apiKey { id name prefix accountId createdAt lastUsedAt revokedAt } }
    ... on InvalidInputError { field }
    ... on Error { code message }
  }
}`;
const REVOKE_KEY = `mutation($input: RevokeApiKeyInput!) {
  revokeApiKey(input: $input) {
    __typename
    ... on RevokeApiKeySuccess { apiKey { id revokedAt } }
    ... on Error { code message }
  }
}`;
const API_KEYS = "query { apiKeys { id name prefix accountId lastUsedAt revokedAt } }";
const REMOVE_MEMBER = `mutation($input: RemoveAccountMemberInput!) {
  removeAccountMember(input: $input) {
    __typename
    ... on RemoveAccountMemberSuccess { account { members { userId role } } }
    ... on Error { code message }
  }
}`;
const ACCOUNT = "query($id: ID!) { account(id: $id) { id name } }";
const NODE = "query($id: ID!) { node(id: $id) { __typename id } }";

let billing: Billing;

beforeAll(async () => {
  billing = await Billing.start({ reaperEnabled: false });
});

afterAll(async () => {
  await billing?.close();
  await closeSql();
});

/** Creates a key as the admin; fails the test unless it was created. */
async function createKey(input: { name?: string; accountId?: string; rateLimitPerSecond?: number } = {}) {
  const response = await billing.call(billing.admin, CREATE_KEY, {
    input: { name: input.name ?? unique("key"), ...input },
  });
  const created = response.data?.createApiKey;
  if (created?.__typename !== "CreateApiKeySuccess") throw new Error(JSON.stringify(response));
  return created as { secret: string; apiKey: Json };
}

async function grantAs(token: string, accountId: string, amount = 10): Promise<Json> {
  const response = await billing.call(token, GRANT, {
    input: { idempotencyKey: unique("grant"), accountId, source: "WALLET", amount },
  });
  return response.data?.grantCredits ?? response;
}

describe.concurrent("API keys", () => {
  it("creates a key whose secret works once shown, and records when it was used", async () => {
    const { secret, apiKey } = await createKey({ name: "Backend" });
    expect(secret).toMatch(/^cb_[A-Za-z0-9_-]{43}$/);
    expect(apiKey).toMatchObject({ name: "Backend", prefix: secret.slice(0, 11), accountId: null });
    expect(apiKey.lastUsedAt).toBeNull();
    expect(apiKey.revokedAt).toBeNull();

    // The key acts with the service role: it creates accounts and grants credits.
    const created = await billing.call(secret, CREATE_ACCOUNT, {
      input: { idempotencyKey: unique("acct"), kind: "PERSONAL", name: "By key", ownerId: unique("user") },
    });
    expect(created.data.createAccount.__typename).toBe("CreateAccountSuccess");
    const accountId = created.data.createAccount.account.id;
    expect((await grantAs(secret, accountId)).__typename).toBe("GrantCreditsSuccess");
    const viewer = await billing.call(secret, "{ viewer { id role } }", {});
    expect(viewer.data.viewer).toEqual({ id: `apikey:${localIdOf(apiKey.id)}`, role: "service" });

    // Its entries name the key as their actor.
    const ledger = await billing.call(
      secret,
      `query($a: ID!) { ledger(accountId: $a) { edges { node { actor } } } }`,
      {
        a: accountId,
      },
    );
    expect(ledger.data.ledger.edges).toEqual([{ node: { actor: `apikey:${localIdOf(apiKey.id)}` } }]);

    const used = await waitFor(
      async () => {
        const listed = (await billing.call(billing.admin, API_KEYS, {})).data.apiKeys as Json[];
        const key = listed.find((k) => k.id === apiKey.id);
        return key?.lastUsedAt == null ? undefined : key;
      },
      10_000,
      "lastUsedAt to be written",
    );
    expect(Date.now() - new Date(used.lastUsedAt).getTime()).toBeLessThan(60_000);
  });

  it("limits a key with an account to that account: the others look as if they did not exist", async () => {
    const mine = await billing.account(100);
    const other = await billing.account(100);
    const otherGeneration = await billing.reserveOk(other, { unitCost: 10 });
    const { secret, apiKey } = await createKey({ accountId: mine });
    expect(apiKey.accountId).toBe(mine);

    expect((await grantAs(secret, mine)).__typename).toBe("GrantCreditsSuccess");
    expect((await billing.reserve(mine, {}, secret)).__typename).toBe("ReserveGenerationSuccess");
    expect((await billing.call(secret, ACCOUNT, { id: mine })).data.account.id).toBe(mine);

    expect(await grantAs(secret, other)).toMatchObject({ __typename: "NotFoundError", code: "NOT_FOUND" });
    expect((await billing.reserve(other, {}, secret)).__typename).toBe("NotFoundError");
    expect((await billing.cancel(otherGeneration.id, unique("cancel"), secret)).__typename).toBe(
      "NotFoundError",
    );
    expect((await billing.call(secret, ACCOUNT, { id: other })).data.account).toBeNull();
    expect((await billing.call(secret, NODE, { id: other })).data.node).toBeNull();
    expect((await billing.call(secret, NODE, { id: otherGeneration.id })).data.node).toBeNull();
    const ledger = await billing.call(
      secret,
      `query($a: ID!) { ledger(accountId: $a) { edges { cursor } } }`,
      {
        a: other,
      },
    );
    expect(ledger.errors?.[0]?.extensions?.code).toBe("NOT_FOUND");
    const created = await billing.call(secret, CREATE_ACCOUNT, {
      input: { idempotencyKey: unique("acct"), kind: "PERSONAL", name: "No", ownerId: unique("user") },
    });
    expect(created.data.createAccount.__typename).toBe("ForbiddenError");
    // The other account was left as it was.
    expect((await billing.generation(otherGeneration.id)).status).toBe("IN_PROGRESS");
  });

  it("refuses a revoked key with HTTP 401; revoking again changes nothing", async () => {
    const { secret, apiKey } = await createKey();
    expect((await billing.server.post(secret, { query: "{ viewer { id } }" })).status).toBe(200);
    const revoked = await billing.call(billing.admin, REVOKE_KEY, { input: { id: apiKey.id } });
    expect(revoked.data.revokeApiKey.__typename).toBe("RevokeApiKeySuccess");
    const revokedAt = revoked.data.revokeApiKey.apiKey.revokedAt;
    expect(revokedAt).not.toBeNull();

    const refused = await billing.server.post(secret, { query: "{ viewer { id } }" });
    expect(refused.status).toBe(401);
    expect((await refused.json()).errors[0].extensions.code).toBe("UNAUTHENTICATED");

    const again = await billing.call(billing.admin, REVOKE_KEY, { input: { id: apiKey.id } });
    expect(again.data.revokeApiKey.apiKey.revokedAt).toBe(revokedAt);
    const listed = (await billing.call(billing.admin, API_KEYS, {})).data.apiKeys as Json[];
    expect(listed.find((k) => k.id === apiKey.id)?.revokedAt).toBe(revokedAt);
  });

  it("closes a revoked key's WebSocket with 4403 (one instance: announced in process)", async () => {
    const accountId = await billing.account(0);
    const { secret, apiKey } = await createKey();
    const socket = connect(billing.server.url, { token: secret });
    try {
      const live = socket.subscribe("subscription($a: ID!) { balanceChanged(accountId: $a) { available } }", {
        a: accountId,
      });
      // Granted until one arrives: the subscription is listening from then on.
      while (live.values.length === 0) {
        await billing.grant(accountId, 1);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      await billing.call(billing.admin, REVOKE_KEY, { input: { id: apiKey.id } });
      expect(await socket.waitClosed(5_000)).toEqual({
        code: 4403,
        reason: "Forbidden: the API key was revoked",
      });
    } finally {
      await socket.dispose();
    }
  });

  it("answers NotFoundError for an unknown key id and InvalidInputError for a malformed one", async () => {
    const { apiKey } = await createKey();
    const unknownId = Buffer.from(`ApiKey:${crypto.randomUUID()}`).toString("base64");
    const unknown = await billing.call(billing.admin, REVOKE_KEY, { input: { id: unknownId } });
    expect(unknown.data.revokeApiKey.__typename).toBe("NotFoundError");
    const accountId = Buffer.from(`Account:${localIdOf(apiKey.id)}`).toString("base64");
    const wrongType = await billing.call(billing.admin, REVOKE_KEY, { input: { id: accountId } });
    expect(wrongType.data.revokeApiKey.__typename).toBe("InvalidInputError");
    const missingAccount = await billing.call(billing.admin, CREATE_KEY, {
      input: { name: "x", accountId: Buffer.from(`Account:${crypto.randomUUID()}`).toString("base64") },
    });
    expect(missingAccount.data.createApiKey.__typename).toBe("NotFoundError");
    for (const input of [
      { name: "" },
      { name: "x".repeat(201) },
      { name: "x", rateLimitPerSecond: 0 },
      { name: "x", accountId: "nope" },
    ]) {
      const bad = await billing.call(billing.admin, CREATE_KEY, { input });
      expect(bad.data.createApiKey.__typename, JSON.stringify(input)).toBe("InvalidInputError");
    }
  });

  it("never shows the secret again: the API has no field for it and only a keyed hash is stored", async () => {
    const { secret, apiKey } = await createKey();
    const type = await billing.call(billing.admin, `{ __type(name: "ApiKey") { fields { name } } }`, {});
    const fields = (type.data.__type.fields as Json[]).map((f) => f.name);
    expect(fields).toEqual(
      expect.arrayContaining(["id", "name", "prefix", "accountId", "createdAt", "lastUsedAt", "revokedAt"]),
    );
    expect(fields).not.toContain("secret");
    expect(fields).not.toContain("hash");
    const listed = JSON.stringify((await billing.call(billing.admin, API_KEYS, {})).data);
    expect(listed).not.toContain(secret);
    const [row] = await sql().query<{ hash: Uint8Array }>("SELECT hash FROM api_key WHERE id = $1", [
      localIdOf(apiKey.id),
    ]);
    const stored = Buffer.from(row?.hash ?? []);
    expect(stored).toHaveLength(32);
    // Not the plain SHA-256 of the secret (a table copy cannot be checked against guesses without the pepper).
    expect(stored.equals(createHash("sha256").update(secret).digest())).toBe(false);
    expect(stored.toString("latin1")).not.toContain(secret.slice(3, 11));
  });

  it("refuses an unknown or malformed key with HTTP 401", async () => {
    const { secret } = await createKey();
    const last = secret.at(-1) === "A" ? "B" : "A";
    for (const wrong of [`${secret.slice(0, -1)}${last}`, "cb_short", `cb_${"x".repeat(43)}`, `${secret}x`]) {
      const response = await billing.server.post(wrong, { query: "{ viewer { id } }" });
      expect(response.status, wrong).toBe(401);
    }
  });

  it("lets only admins create, list, revoke and load keys", async () => {
    const { secret, apiKey } = await createKey();
    const user = await billing.server.token(unique("user"), "user");
    for (const token of [billing.service, user, secret]) {
      const created = await billing.call(token, CREATE_KEY, { input: { name: "x" } });
      expect(created.data.createApiKey.__typename).toBe("ForbiddenError");
      const revoked = await billing.call(token, REVOKE_KEY, { input: { id: apiKey.id } });
      expect(revoked.data.revokeApiKey.__typename).toBe("ForbiddenError");
      const listed = await billing.call(token, API_KEYS, {});
      expect(listed.errors?.[0]?.extensions?.code).toBe("FORBIDDEN");
      expect((await billing.call(token, NODE, { id: apiKey.id })).data.node).toBeNull();
    }
    expect((await billing.call(billing.admin, NODE, { id: apiKey.id })).data.node).toEqual({
      __typename: "ApiKey",
      id: apiKey.id,
    });
    // The key still works: nothing above revoked it.
    expect((await billing.server.post(secret, { query: "{ viewer { id } }" })).status).toBe(200);
  });

  it("names the key in the API_KEY spending breakdown by its ApiKey id", async () => {
    const accountId = await billing.account(100);
    const { secret, apiKey } = await createKey({ accountId });
    for (const unitCost of [7, 3]) {
      const reserved = await billing.reserve(accountId, { unitCost }, secret);
      expect(reserved.__typename).toBe("ReserveGenerationSuccess");
      await billing.settle(reserved.generation.id);
    }
    await billing.reserveOk(accountId, { unitCost: 5 });
    const response = await billing.call(
      billing.service,
      `query($id: ID!) { spending(accountId: $id) { breakdown(by: API_KEY) { key charged generations } } }`,
      { id: accountId },
    );
    expect(response.data.spending.breakdown).toEqual([
      { key: apiKey.id, charged: 10, generations: 2 },
      { key: null, charged: 0, generations: 1 },
    ]);
    const listed = await billing.call(billing.admin, "{ apiKeys { id } }", {});
    expect(listed.data.apiKeys.map((key: Json) => key.id)).toContain(apiKey.id);
  });

  it("limits a key's mutations by its own rateLimitPerSecond (bursts of twice that)", async () => {
    const accountId = await billing.account(0);
    const { secret } = await createKey({ rateLimitPerSecond: 1 });
    // Sent together: one window admits 2. On a busy machine the calls can straddle two fixed
    // windows, which admits at most 2 in each; the service's own limit (0 here) would admit all 6.
    const responses = await Promise.all(
      Array.from({ length: 6 }, () =>
        billing.server.post(secret, {
          query: GRANT,
          variables: { input: { idempotencyKey: unique("grant"), accountId, source: "WALLET", amount: 1 } },
        }),
      ),
    );
    const admitted = responses.filter((response) => response.status === 200).length;
    const refused = responses.filter((response) => response.status === 429);
    expect(admitted).toBeGreaterThanOrEqual(2);
    expect(admitted).toBeLessThanOrEqual(4);
    expect(refused.length).toBe(6 - admitted);
    expect(Number(refused[0]?.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
  });
});

describe.concurrent("removeAccountMember", () => {
  it("removes a member, who then no longer sees the account", async () => {
    const owner = unique("owner");
    const accountId = await billing.account(0, { ownerId: owner, kind: "WORKSPACE" });
    const member = unique("member");
    const added = await billing.call(
      billing.service,
      `mutation($input: AddAccountMemberInput!) { addAccountMember(input: $input) { __typename } }`,
      { input: { accountId, userId: member, role: "MEMBER" } },
    );
    expect(added.data.addAccountMember.__typename).toBe("AddAccountMemberSuccess");
    const memberToken = await billing.server.token(member, "user");
    expect((await billing.call(memberToken, ACCOUNT, { id: accountId })).data.account.id).toBe(accountId);

    const removed = await billing.call(billing.service, REMOVE_MEMBER, {
      input: { accountId, userId: member },
    });
    expect(removed.data.removeAccountMember).toEqual({
      __typename: "RemoveAccountMemberSuccess",
      account: { members: [{ userId: owner, role: "OWNER" }] },
    });
    expect((await billing.call(memberToken, ACCOUNT, { id: accountId })).data.account).toBeNull();

    const again = await billing.call(billing.admin, REMOVE_MEMBER, { input: { accountId, userId: member } });
    // A retry (or removing a user who is no member) answers the same, and changes nothing.
    expect(again.data.removeAccountMember).toEqual(removed.data.removeAccountMember);
    const ownerToken = await billing.server.token(owner, "user");
    const byUser = await billing.call(ownerToken, REMOVE_MEMBER, { input: { accountId, userId: owner } });
    expect(byUser.data.removeAccountMember.__typename).toBe("ForbiddenError");
    const missing = Buffer.from(`Account:${crypto.randomUUID()}`).toString("base64");
    const noAccount = await billing.call(billing.service, REMOVE_MEMBER, {
      input: { accountId: missing, userId: owner },
    });
    expect(noAccount.data.removeAccountMember.__typename).toBe("NotFoundError");
  });
});
