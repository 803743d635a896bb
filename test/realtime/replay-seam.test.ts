/**
 * ledgerEntryAdded(afterSequence: n): the replay from the ledger and the live
 * feed meet with no gap and no duplicate, while writes race the subscribe; a
 * client that reconnects with its last sequence misses nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REDIS_URL } from "../support/env.ts";
import { startServer, type TestServer } from "../support/harness.ts";
import { connect, type LiveClient, type LiveSubscription } from "../support/ws.ts";
import {
  type Api,
  accountWithOwner,
  type Json,
  LEDGER_ENTRY_ADDED,
  range,
  sequencesOf,
  sleep,
} from "./helpers.ts";

/** Subscribe/verify rounds; each races a stream of writes. */
const ROUNDS = 20;
/** Writers running at once on the account during the rounds. */
const WRITERS = 4;
/**
 * B's subscriber queue bound. Small on purpose: the replay then waits for
 * room while live entries keep arriving, which widens the seam a bug would
 * fall into. Large enough that a consumer keeping up is never closed.
 */
const QUEUE_MAX = 8;

/** Writes 1-credit grants through `api` from `WRITERS` loops until stopped. */
function startWriters(api: Api, accountId: string): { stop: () => Promise<number> } {
  let running = true;
  let written = 0;
  const loops = Array.from({ length: WRITERS }, async () => {
    while (running) {
      await api.grant(accountId, 1);
      written += 1;
    }
  });
  return {
    stop: async () => {
      running = false;
      await Promise.all(loops);
      return written;
    },
  };
}

/** Fails unless `sequences` is exactly from+1, from+2, … with nothing missing or repeated. */
function expectContiguous(sequences: readonly number[], from: number): void {
  expect(sequences).toEqual(range(from + 1, from + sequences.length));
}

describe("replay seam", () => {
  // Writes go through A, subscribers sit on B: live entries reach B through Redis, as in production.
  let a: TestServer;
  let b: TestServer;
  const clients: LiveClient[] = [];

  beforeAll(async () => {
    [a, b] = await Promise.all([
      startServer({ redisUrl: REDIS_URL }),
      startServer({ redisUrl: REDIS_URL, subscriberQueueMax: QUEUE_MAX }),
    ]);
  });

  afterAll(async () => {
    await Promise.all(clients.map((client) => client.dispose()));
    await Promise.all([a?.close(), b?.close()]);
  });

  it(`delivers each entry exactly once, in order, across the seam (${ROUNDS} rounds racing writes)`, async () => {
    const { service, ownerToken, accountId } = await accountWithOwner(a.url, 1_000);
    const client = connect(b.url, { token: ownerToken });
    clients.push(client);
    const writers = startWriters(service, accountId);
    let anchor: LiveSubscription<Json> | null = null;
    try {
      for (let round = 0; round < ROUNDS; round += 1) {
        // The first half opens a new feed on B every round (it closes when the round's subscriber
        // leaves); the second half joins a feed kept open by an anchor subscriber.
        if (round === ROUNDS / 2) anchor = client.subscribe<Json>(LEDGER_ENTRY_ADDED, { accountId });
        const now = await service.sequence(accountId);
        // Start a little behind the head, so the replay has work while writes keep landing.
        const after = Math.max(0, now - (round % 7) * 10);
        const subscription = client.subscribe<Json>(LEDGER_ENTRY_ADDED, { accountId, afterSequence: after });
        await sleep(20 + (round % 5) * 15);
        const target = await service.sequence(accountId);
        await subscription.waitFor(
          (values) => values.length >= target - after,
          `round ${round}: entries ${after + 1}..${target}`,
        );
        expectContiguous(sequencesOf(subscription.values), after);
        subscription.stop();
      }
    } finally {
      await writers.stop();
    }
    // The anchor saw every entry after it started exactly once as well, and the writers really raced.
    const final = await service.sequence(accountId);
    if (anchor === null) throw new Error("unreachable");
    const anchored = anchor;
    await anchored.waitFor(
      (values) => (values.at(-1)?.ledgerEntryAdded.sequence ?? 0) >= final,
      "anchor at head",
    );
    const anchorSequences = sequencesOf(anchored.values);
    expectContiguous(anchorSequences, (anchorSequences[0] ?? 1) - 1);
    expect(final).toBeGreaterThan(ROUNDS * 3);
  });

  it("a client that reconnects with its last sequence misses nothing", async () => {
    const { service, ownerToken, accountId } = await accountWithOwner(a.url, 1_000);
    const writers = startWriters(service, accountId);
    const seen: number[] = [];
    try {
      let last = 0;
      for (let connection = 0; connection < 5; connection += 1) {
        const client = connect(b.url, { token: ownerToken });
        const subscription = client.subscribe<Json>(LEDGER_ENTRY_ADDED, { accountId, afterSequence: last });
        await subscription.waitFor((values) => values.length >= 5, `connection ${connection}: 5 entries`);
        // Drop the socket mid-stream, as a network failure would.
        await client.dispose();
        seen.push(...sequencesOf(subscription.values));
        last = seen.at(-1) ?? last;
      }
    } finally {
      await writers.stop();
    }
    expectContiguous(seen, 0);
  });
});
