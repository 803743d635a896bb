/**
 * Revocation everywhere within 1 s (SPEC §8.6): two server processes on one
 * PostgreSQL and one Redis. An API key revoked on instance A is refused by
 * instance B within 1 s, and B closes the key's open WebSocket with 4403 and
 * ends its SSE stream with FORBIDDEN; a member removed on A loses B's open
 * subscription to that account the same way.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TokenService } from "../../src/server/auth.ts";
import { REDIS_URL, TEST_SECRET } from "../support/env.ts";
import { unique } from "../support/harness.ts";
import { type ServerProcess, startServerProcess } from "../support/process.ts";
import { connect, type LiveClient, until } from "../support/ws.ts";
import {
  accountWithOwner,
  type Json,
  numberOfSubscribers,
  reportServerErrors,
  subscribeSse,
} from "./helpers.ts";

/** The promise: access ends on every instance within this. */
const REVOCATION_MS_MAX = 1_000;
const ENTRIES = "subscription($accountId: ID!) { ledgerEntryAdded(accountId: $accountId) { sequence } }";
const tokens = new TokenService(TEST_SECRET);

async function gql(url: string, token: string, query: string, variables: Json = {}): Promise<Response> {
  return fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
  });
}

async function data(url: string, token: string, query: string, variables: Json = {}): Promise<Json> {
  const body = (await (await gql(url, token, query, variables)).json()) as Json;
  if (body.errors !== undefined) throw new Error(JSON.stringify(body.errors));
  return body.data;
}

/** Resolves with the ms from `startedAt` until `check` holds, polling every 10 ms for up to 5 s. */
async function msUntil(startedAt: number, check: () => boolean | Promise<boolean>): Promise<number> {
  for (;;) {
    if (await check()) return performance.now() - startedAt;
    if (performance.now() - startedAt > 5_000) throw new Error("not within 5 s");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe("revocation across instances", () => {
  let a: ServerProcess;
  let b: ServerProcess;
  let admin: string;
  const clients: LiveClient[] = [];

  beforeAll(async () => {
    [a, b] = await Promise.all([
      startServerProcess({ REDIS_URL, LOG_LEVEL: "info" }),
      startServerProcess({ REDIS_URL, LOG_LEVEL: "info" }),
    ]);
    admin = await tokens.sign("support", "admin");
    // Both instances listen for revocations (other test files' servers may listen too).
    const deadline = Date.now() + 10_000;
    while ((await numberOfSubscribers("creditbook:revocations")) < 2) {
      if (Date.now() > deadline) throw new Error("the instances did not subscribe to revocations");
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  });

  afterAll(async () => {
    await Promise.all(clients.map((client) => client.dispose()));
    await Promise.all([a?.stop(), b?.stop()]);
    reportServerErrors({ a, b });
  });

  it("refuses a key revoked on A on B within 1 s, and closes its WebSocket (4403) and SSE stream there", async () => {
    const { accountId } = await accountWithOwner(a.url, 100);
    const created = await data(
      a.url,
      admin,
      `mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) {
        ... on CreateApiKeySuccess { secret apiKey { id } } } }`,
      { input: { name: unique("revoked-key") } },
    );
    const { secret, apiKey } = created.createApiKey;
    // B knows the key (its lookup is cached) and holds a subscription over each transport.
    expect((await gql(b.url, secret, "{ viewer { id } }")).status).toBe(200);
    const socket = connect(b.url, { token: secret });
    clients.push(socket);
    const live = socket.subscribe<Json>(ENTRIES, { accountId });
    const stream = await subscribeSse(b.url, secret, ENTRIES, { accountId });
    expect(stream.status).toBe(200);
    // Both are listening once an entry written now reaches them.
    await data(
      a.url,
      secret,
      `mutation($input: GrantCreditsInput!) { grantCredits(input: $input) { __typename } }`,
      { input: { idempotencyKey: unique("grant"), accountId, source: "WALLET", amount: 1 } },
    );
    await live.waitFor((values) => values.length === 1, "the GRANT over WebSocket");
    await until(
      () => stream.values.length === 1,
      () => "the GRANT over SSE",
    );

    const startedAt = performance.now();
    const revoked = await data(
      a.url,
      admin,
      `mutation($input: RevokeApiKeyInput!) { revokeApiKey(input: $input) { __typename } }`,
      { input: { id: apiKey.id } },
    );
    expect(revoked.revokeApiKey.__typename).toBe("RevokeApiKeySuccess");
    const refusedMs = await msUntil(
      startedAt,
      async () => (await gql(b.url, secret, "{ viewer { id } }")).status === 401,
    );
    const closed = await socket.waitClosed(5_000);
    const closedMs = performance.now() - startedAt;
    await stream.ended;
    const endedMs = performance.now() - startedAt;

    expect(closed).toEqual({ code: 4403, reason: "Forbidden: the API key was revoked" });
    expect(stream.values.at(-1)?.errors?.[0]?.extensions?.code).toBe("FORBIDDEN");
    expect(
      Math.max(refusedMs, closedMs, endedMs),
      JSON.stringify({ refusedMs, closedMs, endedMs }),
    ).toBeLessThan(REVOCATION_MS_MAX);
    // A new connection with the key is refused at connect.
    const again = connect(b.url, { token: secret });
    clients.push(again);
    expect((await again.waitClosed()).code).toBe(4401);
  });

  it("closes B's subscription of a member removed on A (4403) within 1 s, and B refuses the account at once", async () => {
    const { service, accountId } = await accountWithOwner(a.url, 100);
    const memberId = unique("member");
    await service.gql(
      `mutation($input: AddAccountMemberInput!) { addAccountMember(input: $input) { __typename } }`,
      { input: { accountId, userId: memberId, role: "MEMBER" } },
    );
    const member = await tokens.sign(memberId, "user");
    const socket = connect(b.url, { token: member });
    clients.push(socket);
    const live = socket.subscribe<Json>(ENTRIES, { accountId });
    // Granted until one arrives: the subscription is listening from then on.
    const deadline = Date.now() + 10_000;
    while (live.values.length === 0) {
      if (Date.now() > deadline)
        throw new Error(`no GRANT reached the member: ${JSON.stringify(live.errors)}`);
      await service.grant(accountId, 1);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }

    const startedAt = performance.now();
    const removed = await service.gql(
      `mutation($input: RemoveAccountMemberInput!) { removeAccountMember(input: $input) { __typename } }`,
      { input: { accountId, userId: memberId } },
    );
    expect(removed.removeAccountMember.__typename).toBe("RemoveAccountMemberSuccess");
    const account = await data(b.url, member, "query($id: ID!) { account(id: $id) { id } }", {
      id: accountId,
    });
    expect(account.account).toBeNull();
    const closed = await socket.waitClosed(5_000);
    expect(performance.now() - startedAt).toBeLessThan(REVOCATION_MS_MAX);
    expect(closed).toEqual({ code: 4403, reason: "Forbidden: no longer a member of the account" });
  });
});
