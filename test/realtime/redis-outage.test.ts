/**
 * Redis dies mid-stream under two server processes: mutations keep
 * succeeding, failed publishes are logged, subscribers keep up from the
 * ledger, and when Redis is back on the same port both instances subscribe
 * again and every subscriber has every entry exactly once.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ServerProcess, startServerProcess } from "../support/process.ts";
import { connect, type LiveClient, until } from "../support/ws.ts";
import {
  Api,
  accountUuid,
  accountWithOwner,
  BALANCE_CHANGED,
  type Json,
  LEDGER_ENTRY_ADDED,
  numberOfSubscribers,
  type RedisServer,
  range,
  reportServerErrors,
  sequencesOf,
  startRedis,
  warmUp,
} from "./helpers.ts";

/** Grants written in each phase (before, during and after the outage), alternating between A and B. */
const WRITES_PER_PHASE = 10;

describe("Redis outage", () => {
  let redis: RedisServer;
  let a: ServerProcess;
  let b: ServerProcess;
  const clients: LiveClient[] = [];

  beforeAll(async () => {
    redis = await startRedis();
    [a, b] = await Promise.all([
      startServerProcess({ REDIS_URL: redis.url }),
      startServerProcess({ REDIS_URL: redis.url }),
    ]);
  });

  afterAll(async () => {
    await Promise.all(clients.map((client) => client.dispose()));
    await Promise.all([a?.stop(), b?.stop()]);
    await redis?.kill();
    reportServerErrors({ a, b });
  });

  it("keeps mutations working and subscribers whole through a Redis restart", async () => {
    const { service, ownerToken, accountId } = await accountWithOwner(a.url, 1_000);
    const apis = [service, new Api(b.url, service.token)];
    const onA = connect(a.url, { token: ownerToken });
    const onB = connect(b.url, { token: ownerToken });
    clients.push(onA, onB);
    const entriesOnA = onA.subscribe<Json>(LEDGER_ENTRY_ADDED, { accountId, afterSequence: 0 });
    const entriesOnB = onB.subscribe<Json>(LEDGER_ENTRY_ADDED, { accountId, afterSequence: 0 });
    const balancesOnB = onB.subscribe<Json>(BALANCE_CHANGED, { accountId });
    await warmUp(service, accountId, [entriesOnA, entriesOnB, balancesOnB]);
    const channel = `creditbook:account:${accountUuid(accountId)}`;
    expect(await numberOfSubscribers(channel, redis.url)).toBe(2);

    let written = 0;
    const writePhase = async () => {
      for (let i = 0; i < WRITES_PER_PHASE; i += 1) {
        // Every mutation succeeds whether or not its event can be published.
        const result = await apis[written % 2]?.grant(accountId, 1);
        expect(result.balance.sequence).toBeGreaterThan(0);
        written += 1;
      }
      return service.sequence(accountId);
    };
    const caughtUp = async (sequence: number, what: string, timeoutMs?: number) => {
      for (const [name, subscription] of [
        ["A", entriesOnA],
        ["B", entriesOnB],
      ] as const) {
        await subscription.waitFor(
          (values) => values.length >= sequence,
          `${name}: entries 1..${sequence} ${what}`,
          timeoutMs,
        );
      }
    };

    const beforeOutage = await writePhase();
    await caughtUp(beforeOutage, "before the outage");

    await redis.kill();
    const duringOutage = await writePhase();
    // Both instances say they cannot publish; /readyz reports Redis down.
    const readiness = await fetch(a.url.replace("/graphql", "/readyz"));
    expect(readiness.status).toBe(503);
    expect(await readiness.json()).toMatchObject({ checks: { database: true, redis: false } });
    await until(
      () => [a, b].every((server) => server.logs.some((line) => line.includes("event publish failed"))),
      () => "both instances to log a failed publish",
    );
    // The log line carries the running count of failures (also exported as a metric).
    for (const server of [a, b]) {
      const line = server.logs.find((text) => text.includes("event publish failed")) ?? "";
      expect(Number(/(\d+) in all/.exec(line)?.[1])).toBeGreaterThanOrEqual(1);
    }
    // No event can arrive now: the periodic resync (every 2 s) brings the entries from the ledger.
    await caughtUp(duringOutage, "while Redis is down (resync)", 8_000);

    await redis.start();
    // Both instances reconnect and subscribe to the account's channel again (ioredis retries every ≤ 2 s).
    await waitForChannel(redis, channel, 2);
    await until(
      () =>
        [a, b].every((server) => server.logs.some((line) => line.includes("Redis is back; resubscribed"))),
      () => "both instances to log their resubscription",
    );
    const afterOutage = await writePhase();
    await caughtUp(afterOutage, "after Redis is back");

    const final = await service.sequence(accountId);
    expect(final).toBe(afterOutage);
    for (const subscription of [entriesOnA, entriesOnB]) {
      // Exactly once, in order, no gaps: 1..N.
      expect(sequencesOf(subscription.values)).toEqual(range(1, final));
    }
    await balancesOnB.waitFor(
      (values) => values.at(-1)?.balanceChanged.sequence === final,
      `B's balance at ${final}`,
    );
    expect(balancesOnB.values.at(-1)?.balanceChanged.available).toBe(1_000 + 3 * WRITES_PER_PHASE);
    expect(written).toBe(3 * WRITES_PER_PHASE);
  });
});

/** Waits until `count` connections subscribe to `channel` on this Redis. */
async function waitForChannel(redis: RedisServer, channel: string, count: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const reply = (await redis.cli("PUBSUB", "NUMSUB", channel)).split("\n");
    if (Number(reply[1]) === count) return;
    if (Date.now() > deadline)
      throw new Error(`${channel}: ${reply[1]} subscribers after restart, expected ${count}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
