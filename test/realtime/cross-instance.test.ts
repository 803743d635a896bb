/**
 * Two server processes on one PostgreSQL and one Redis: what is written
 * through instance A reaches subscribers on instance B, with every field
 * right, amounts exact, and one Redis channel subscription per instance.
 */
import { performance } from "node:perf_hooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REDIS_URL } from "../support/env.ts";
import { type ServerProcess, startServerProcess } from "../support/process.ts";
import { connect, type LiveClient } from "../support/ws.ts";
import {
  accountUuid,
  accountWithOwner,
  BALANCE_CHANGED,
  ENTRY_FIELDS,
  GENERATION_UPDATED,
  type Json,
  LEDGER_ENTRY_ADDED,
  latencyStats,
  numberOfSubscribers,
  reportServerErrors,
  sequencesOf,
  waitForSubscribers,
  warmUp,
} from "./helpers.ts";

/** Refunds timed end to end (A's mutation sent → B's subscriber received). */
const REFUND_ROUNDS = 20;
/** Credits of one item of the test generations. */
const UNIT_COST = 25;
const QUANTITY = 2;

describe("cross-instance delivery through Redis", () => {
  let a: ServerProcess;
  let b: ServerProcess;
  const clients: LiveClient[] = [];

  beforeAll(async () => {
    [a, b] = await Promise.all([
      startServerProcess({ REDIS_URL, LOG_LEVEL: "info" }),
      startServerProcess({ REDIS_URL, LOG_LEVEL: "info" }),
    ]);
  });

  afterAll(async () => {
    await Promise.all(clients.map((client) => client.dispose()));
    await Promise.all([a?.stop(), b?.stop()]);
    reportServerErrors({ a, b });
  });

  it("delivers a refund made on A to a subscriber on B, exactly and quickly", async () => {
    // Near the top of the safe-integer range, where a trip through a float or a lossy encoding would show.
    const credits = 9_007_199_254_740_000;
    const { service, ownerToken, accountId } = await accountWithOwner(a.url, credits);
    const onB = connect(b.url, { token: ownerToken });
    clients.push(onB);
    const entries = onB.subscribe<Json>(
      `subscription($accountId: ID!, $afterSequence: Int) {
        ledgerEntryAdded(accountId: $accountId, afterSequence: $afterSequence) {
          ${ENTRY_FIELDS} createdAt
          generation { id status ledgerEntries { sequence type status } }
        }
      }`,
      { accountId, afterSequence: 0 },
    );
    // Without nested fields, so its latency is the transport's alone (no per-event database reads).
    const plain = onB.subscribe<Json>(
      `subscription($accountId: ID!) { ledgerEntryAdded(accountId: $accountId) { sequence createdAt } }`,
      { accountId },
    );
    const balances = onB.subscribe<Json>(BALANCE_CHANGED, { accountId });
    const generations = onB.subscribe<Json>(GENERATION_UPDATED, { accountId });

    // The GRANT is replayed (afterSequence: 0); reserves go live once every subscription is listening.
    await entries.waitFor((values) => values.length === 1, "the replayed GRANT");
    expect(entries.values[0].ledgerEntryAdded).toMatchObject({
      sequence: 1,
      type: "GRANT",
      amount: credits,
      balanceAfter: credits,
    });
    await warmUp(service, accountId, [plain, balances, generations]);

    const latencies = {
      mutation: [] as number[],
      entry: [] as number[],
      entryCreated: [] as number[],
      plainEntry: [] as number[],
      plainEntryCreated: [] as number[],
      balance: [] as number[],
      generation: [] as number[],
    };
    let firstRefund: { entry: Json; balance: Json; generation: Json; available: number } | null = null;
    for (let round = 0; round < REFUND_ROUNDS; round += 1) {
      const generation = await service.reserve(accountId, {
        unitCost: UNIT_COST,
        quantity: QUANTITY,
        feature: "Quick Video",
      });
      const usageSequence = generation.balance.sequence as number;
      await entries.waitFor(
        (values) => sequencesOf(values).includes(usageSequence),
        `USAGE entry ${usageSequence} on B`,
      );
      const sentAtMs = performance.now();
      const refunded = await service.refund(generation.id, "PROVIDER_ERROR", "upstream 503");
      latencies.mutation.push(performance.now() - sentAtMs);
      const refundSequence = refunded.balance.sequence as number;
      expect(refundSequence).toBe(usageSequence + 1);
      await entries.waitFor(
        (values) => sequencesOf(values).includes(refundSequence),
        `REFUND entry ${refundSequence} on B`,
      );
      await balances.waitFor(
        (values) => values.some((value) => value.balanceChanged.sequence === refundSequence),
        `balance at ${refundSequence} on B`,
      );
      await generations.waitFor(
        (values) =>
          values.some(
            (value) =>
              value.generationUpdated.id === generation.id && value.generationUpdated.status === "FAILED",
          ),
        `generation ${generation.id} FAILED on B`,
      );
      const entry = entries.received.find((r) => r.data.ledgerEntryAdded.sequence === refundSequence);
      await plain.waitFor(
        (values) => sequencesOf(values).includes(refundSequence),
        `REFUND entry ${refundSequence} on B (plain)`,
      );
      const plainEntry = plain.received.find((r) => r.data.ledgerEntryAdded.sequence === refundSequence);
      if (plainEntry !== undefined) {
        latencies.plainEntry.push(plainEntry.atMs - sentAtMs);
        latencies.plainEntryCreated.push(
          performance.timeOrigin + plainEntry.atMs - Date.parse(plainEntry.data.ledgerEntryAdded.createdAt),
        );
      }
      const balance = balances.received.find((r) => r.data.balanceChanged.sequence === refundSequence);
      const updated = generations.received.find(
        (r) => r.data.generationUpdated.id === generation.id && r.data.generationUpdated.status === "FAILED",
      );
      if (entry === undefined || balance === undefined || updated === undefined)
        throw new Error("unreachable");
      latencies.entry.push(entry.atMs - sentAtMs);
      // The entry's createdAt is its transaction's timestamp (same machine clock): an upper bound on commit → B.
      latencies.entryCreated.push(
        performance.timeOrigin + entry.atMs - Date.parse(entry.data.ledgerEntryAdded.createdAt),
      );
      latencies.balance.push(balance.atMs - sentAtMs);
      latencies.generation.push(updated.atMs - sentAtMs);
      firstRefund ??= {
        entry: entry.data.ledgerEntryAdded,
        balance: balance.data.balanceChanged,
        generation: updated.data.generationUpdated,
        available: refunded.balance.available,
      };
    }

    const stats = {
      refundMutationRoundTrip: latencyStats(latencies.mutation),
      ledgerEntryAdded: latencyStats(latencies.entry),
      ledgerEntryAddedFromTransactionStart: latencyStats(latencies.entryCreated),
      plainLedgerEntryAdded: latencyStats(latencies.plainEntry),
      plainLedgerEntryAddedFromTransactionStart: latencyStats(latencies.plainEntryCreated),
      balanceChanged: latencyStats(latencies.balance),
      generationUpdated: latencyStats(latencies.generation),
    };
    // The measured numbers go to the test log: mutation sent on A → event received on B, in ms.
    console.log(`cross-instance latency (refund on A → subscriber on B), ms: ${JSON.stringify(stats)}`);
    // Dashboards are promised refunds "within a second"; a healthy local run is far below it.
    expect(stats.ledgerEntryAdded.max).toBeLessThan(1_000);
    expect(stats.balanceChanged.max).toBeLessThan(1_000);
    expect(stats.generationUpdated.max).toBeLessThan(1_000);

    if (firstRefund === null) throw new Error("unreachable");
    const reserved = UNIT_COST * QUANTITY;
    const refund = firstRefund.entry;
    expect(refund).toMatchObject({
      type: "REFUND",
      amount: reserved,
      reason: "PROVIDER_ERROR",
      message: "upstream 503",
      title: "Quick Video",
      status: "COMPLETED",
      balanceAfter: firstRefund.available,
    });
    expect(refund.balanceAfter - refund.balanceBefore).toBe(reserved);
    // The USAGE entry the refund answers now reads FAILED.
    const usage = refund.generation.ledgerEntries.find((e: Json) => e.type === "USAGE");
    expect(usage).toMatchObject({ sequence: refund.sequence - 1, status: "FAILED" });
    expect(refund.generation.status).toBe("FAILED");
    expect(firstRefund.balance).toMatchObject({
      accountId,
      available: refund.balanceAfter,
      held: 0,
      total: refund.balanceAfter,
      wallet: refund.balanceAfter,
      sequence: refund.sequence,
    });
    expect(firstRefund.generation).toMatchObject({
      status: "FAILED",
      reserved,
      charged: 0,
      refunded: reserved,
      failureReason: "PROVIDER_ERROR",
    });
    expect(firstRefund.generation.items).toEqual([
      { index: 0, status: "FAILED", reason: "PROVIDER_ERROR" },
      { index: 1, status: "FAILED", reason: "PROVIDER_ERROR" },
    ]);

    // Every entry exactly once, in order, with exact amounts; a replay from the ledger agrees.
    const finalSequence = await service.sequence(accountId);
    await entries.waitFor((values) => values.length >= finalSequence, `entries up to ${finalSequence}`);
    const live = entries.values.map((value) => value.ledgerEntryAdded);
    expect(live.map((entry) => entry.sequence)).toEqual(live.map((_, index) => index + 1));
    const replay = onB.subscribe<Json>(LEDGER_ENTRY_ADDED, { accountId, afterSequence: 0 });
    await replay.waitFor((values) => values.length === finalSequence, "the full replay");
    const replayed = replay.values.map((value) => value.ledgerEntryAdded);
    // Statuses differ on purpose (live USAGE entries were PENDING when sent); everything else is equal.
    const withoutStatus = ({
      status: _status,
      generation: _generation,
      createdAt: _createdAt,
      ...rest
    }: Json) => rest;
    expect(replayed.map(withoutStatus)).toEqual(live.map(withoutStatus));
    // Read after the refunds, every USAGE entry (warm-up ones included) is FAILED.
    const usageStatuses = replayed.filter((entry) => entry.type === "USAGE").map((entry) => entry.status);
    expect(usageStatuses.length).toBeGreaterThanOrEqual(REFUND_ROUNDS);
    expect(new Set(usageStatuses)).toEqual(new Set(["FAILED"]));
    replay.stop();
  });

  it("holds one Redis subscription per account per instance, shared by its local subscribers", async () => {
    const { service, ownerToken, accountId } = await accountWithOwner(a.url, 1_000);
    const channel = `creditbook:account:${accountUuid(accountId)}`;
    const onA = connect(a.url, { token: ownerToken });
    const onB1 = connect(b.url, { token: ownerToken });
    const onB2 = connect(b.url, { token: ownerToken });
    clients.push(onA, onB1, onB2);
    const subscriptions = [
      onA.subscribe<Json>(BALANCE_CHANGED, { accountId }),
      onA.subscribe<Json>(LEDGER_ENTRY_ADDED, { accountId }),
      onB1.subscribe<Json>(BALANCE_CHANGED, { accountId }),
      onB1.subscribe<Json>(GENERATION_UPDATED, { accountId }),
      onB2.subscribe<Json>(LEDGER_ENTRY_ADDED, { accountId }),
    ];
    await warmUp(service, accountId, subscriptions);
    expect(await numberOfSubscribers(channel)).toBe(2);

    // When the last local subscriber leaves, the instance drops its channel subscription.
    for (const subscription of subscriptions.slice(2)) subscription.stop();
    await waitForSubscribers(channel, 1);
    for (const subscription of subscriptions.slice(0, 2)) subscription.stop();
    await waitForSubscribers(channel, 0);
  });
});
