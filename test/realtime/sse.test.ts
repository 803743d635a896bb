/**
 * The same subscriptions over SSE (yoga's built-in transport: POST /graphql
 * with `Accept: text/event-stream`) deliver the same events as graphql-ws,
 * under the same authorization rules.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REDIS_URL } from "../support/env.ts";
import { startServer, type TestServer } from "../support/harness.ts";
import { connect, type LiveClient, until } from "../support/ws.ts";
import {
  accountWithOwner,
  BALANCE_CHANGED,
  GENERATION_UPDATED,
  type Json,
  LEDGER_ENTRY_ADDED,
  type SseSubscription,
  subscribeSse,
  tokens,
  unique,
  warmUp,
} from "./helpers.ts";

describe("subscriptions over SSE", () => {
  // Writes through A, both transports on B: SSE events come through Redis like WebSocket ones.
  let a: TestServer;
  let b: TestServer;
  const clients: LiveClient[] = [];
  const streams: SseSubscription[] = [];

  beforeAll(async () => {
    [a, b] = await Promise.all([startServer({ redisUrl: REDIS_URL }), startServer({ redisUrl: REDIS_URL })]);
  });

  afterAll(async () => {
    for (const stream of streams) stream.close();
    await Promise.all(clients.map((client) => client.dispose()));
    await Promise.all([a?.close(), b?.close()]);
  });

  const sse = async (token: string | null, query: string, variables: Record<string, unknown>) => {
    const stream = await subscribeSse(b.url, token, query, variables);
    streams.push(stream);
    return stream;
  };
  const dataOf = (stream: SseSubscription) => stream.values.map((value) => value.data);

  it("delivers the same ledger entries, balances and generation updates as graphql-ws", async () => {
    const { service, ownerToken, accountId } = await accountWithOwner(a.url, 500);
    const entries = await sse(ownerToken, LEDGER_ENTRY_ADDED, { accountId, afterSequence: 0 });
    const balances = await sse(ownerToken, BALANCE_CHANGED, { accountId });
    const generations = await sse(ownerToken, GENERATION_UPDATED, { accountId });
    expect([entries.status, balances.status, generations.status]).toEqual([200, 200, 200]);
    const ws = connect(b.url, { token: ownerToken });
    clients.push(ws);
    const wsEntries = ws.subscribe<Json>(LEDGER_ENTRY_ADDED, { accountId, afterSequence: 0 });
    const wsBalances = ws.subscribe<Json>(BALANCE_CHANGED, { accountId });
    const wsGenerations = ws.subscribe<Json>(GENERATION_UPDATED, { accountId });
    await warmUp(service, accountId, [balances, generations, wsBalances, wsGenerations]);
    const warmedUp = { balances: balances.values.length, wsBalances: wsBalances.values.length };

    const generation = await service.reserve(accountId, {
      unitCost: 40,
      quantity: 3,
      feature: "Image batch",
    });
    const refunded = await service.refund(generation.id, "CONTENT_REJECTED", "policy");
    await service.grant(accountId, 7);
    const final = await service.sequence(accountId);

    await until(
      () => entries.values.length >= final && wsEntries.values.length >= final,
      () =>
        `entries 1..${final} on both transports (SSE ${entries.values.length}, ws ${wsEntries.values.length})`,
    );
    await until(
      () =>
        dataOf(balances).at(-1)?.balanceChanged.sequence === final &&
        wsBalances.values.at(-1)?.balanceChanged.sequence === final &&
        dataOf(generations).some((value) => value.generationUpdated.status === "FAILED") &&
        wsGenerations.values.some((value) => value.generationUpdated.status === "FAILED"),
      () => "the last balance and the FAILED generation on both transports",
    );
    for (const event of [...entries.events, ...balances.events, ...generations.events])
      expect(event.event).toBe("next");
    // A USAGE entry's status is derived when the event is resolved: a transport that resolved
    // the warm-up's entry live saw it PENDING, one that replayed it later sees it FAILED.
    // Everything else must be the same on both transports.
    const withoutUsageStatus = (values: readonly Json[]) =>
      values.map(({ ledgerEntryAdded: { status, ...entry } }) =>
        entry.type === "USAGE" ? entry : { ...entry, status },
      );
    expect(withoutUsageStatus(dataOf(entries))).toEqual(withoutUsageStatus(wsEntries.values));
    expect(dataOf(entries).map((value) => value.ledgerEntryAdded.sequence)).toEqual(
      Array.from({ length: final }, (_, index) => index + 1),
    );
    const refund = dataOf(entries).find(
      (value) => value.ledgerEntryAdded.type === "REFUND" && value.ledgerEntryAdded.amount === 120,
    );
    expect(refund?.ledgerEntryAdded).toMatchObject({
      reason: "CONTENT_REJECTED",
      message: "policy",
      title: "Image batch",
      balanceAfter: refunded.balance.available,
    });
    // Balances after the warm-up: the same states, in the same order, on both transports.
    expect(dataOf(balances).slice(warmedUp.balances)).toEqual(wsBalances.values.slice(warmedUp.wsBalances));
    expect(dataOf(balances).at(-1)?.balanceChanged).toMatchObject({
      available: 507,
      held: 0,
      sequence: final,
    });
    const failed = (values: Json[]) =>
      values
        .filter((value) => value.generationUpdated.id === generation.id)
        .map((value) => value.generationUpdated);
    expect(failed(dataOf(generations))).toEqual(failed(wsGenerations.values));
    expect(failed(dataOf(generations)).at(-1)).toMatchObject({ status: "FAILED", refunded: 120, charged: 0 });
  });

  it("applies the same authorization: 401 for a bad token, errors for no token and for non-members", async () => {
    const { accountId } = await accountWithOwner(a.url, 0);
    const badToken = await sse("not-a-jwt", BALANCE_CHANGED, { accountId });
    expect(badToken.status).toBe(401);
    badToken.close();

    const noToken = await sse(null, BALANCE_CHANGED, { accountId });
    await noToken.ended;
    expect(noToken.values.map((value) => value.errors?.[0]?.extensions?.code)).toEqual(["UNAUTHENTICATED"]);

    const stranger = await sse(await tokens.sign(unique("stranger"), "user"), LEDGER_ENTRY_ADDED, {
      accountId,
    });
    await stranger.ended;
    expect(stranger.values.map((value) => value.errors?.[0]?.extensions?.code)).toEqual(["NOT_FOUND"]);
  });

  it("ends a stream when its token expires", async () => {
    const { service, ownerId, accountId } = await accountWithOwner(a.url, 100);
    const startedMs = Date.now();
    const stream = await sse(await tokens.sign(ownerId, "user", "2s"), BALANCE_CHANGED, { accountId });
    expect(stream.status).toBe(200);
    await warmUp(service, accountId, [stream]);
    await stream.ended;
    expect(Date.now() - startedMs).toBeGreaterThanOrEqual(900);
    expect(stream.values.at(-1)?.errors?.[0]?.extensions?.code).toBe("UNAUTHENTICATED");
    expect(stream.events.at(-1)?.event).toBe("complete");
  });
});
