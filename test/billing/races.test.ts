import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { unique } from "../support/harness.ts";
import { onPglite } from "../support/test-database.ts";
import {
  auditAccount,
  Billing,
  closeSql,
  entryAmountsOf,
  type Json,
  localIdOf,
  sleep,
  sql,
  tally,
  waitFor,
} from "./ops.ts";

/**
 * Rounds per race. On embedded PGlite (one connection) the two instances' transactions run
 * one at a time, so every race is decided in the same queue and more rounds add time, not
 * cover: a few rounds check the same rules there, the full count runs on PostgreSQL.
 */
const ROUNDS_SCALE = onPglite() ? 0.25 : 1;
const rounds = (count: number) => Math.max(1, Math.round(count * ROUNDS_SCALE));

/**
 * Races over real HTTP between two server instances on one database (two
 * apps in this process, each with its own executor, pool and reaper), so
 * operations on one account meet both in one instance's group commit and
 * across instances on the account row lock.
 */
describe("races", () => {
  let a: Billing;
  let b: Billing;
  beforeAll(async () => {
    // Slim answers: hundreds of requests read back only the generation's totals.
    [a, b] = await Promise.all([
      Billing.start({ reaperIntervalMs: 100 }, { slim: true }),
      Billing.start({ reaperIntervalMs: 100 }, { slim: true }),
    ]);
  });
  afterAll(async () => {
    await Promise.all([a.close(), b.close()]);
    await closeSql();
  });

  it("50 concurrent reserves with room for 10: exactly 10 succeed, available never negative (8 rounds)", async () => {
    for (let round = 0; round < rounds(8); round += 1) {
      const accountId = await a.account(100);
      const results = await Promise.all(
        Array.from({ length: 50 }, (_, i) => (i % 2 === 0 ? a : b).reserve(accountId, { unitCost: 10 })),
      );
      expect(tally(results.map((r: Json) => r.__typename))).toEqual({
        ReserveGenerationSuccess: 10,
        InsufficientCreditsError: 40,
      });
      for (const result of results) {
        if (result.__typename === "ReserveGenerationSuccess") {
          expect(result.balance.available).toBeGreaterThanOrEqual(0);
          expect(result.balance.available + result.balance.held).toBe(100);
        } else {
          expect(result).toMatchObject({ available: 0, required: 10 });
        }
      }
      expect(await a.balance(accountId)).toMatchObject({ available: 0, held: 100, total: 100 });
      expect(await auditAccount(accountId)).toEqual([]);
    }
  }, 120_000);

  it("mixed concurrent reserves never overspend: the sum held equals what succeeded", async () => {
    for (let round = 0; round < rounds(5); round += 1) {
      const accountId = await a.account(97);
      const costs = Array.from({ length: 40 }, (_, i) => 1 + ((i * 7 + round) % 13));
      const results = await Promise.all(
        costs.map((unitCost, i) => (i % 2 === 0 ? a : b).reserve(accountId, { unitCost })),
      );
      const held = results
        .filter((r: Json) => r.__typename === "ReserveGenerationSuccess")
        .reduce((sum: number, r: Json) => sum + r.generation.reserved, 0);
      expect(held).toBeLessThanOrEqual(97);
      const balance = await a.balance(accountId);
      expect(balance).toMatchObject({ held, available: 97 - held });
      // Whatever failed could not fit in what was left when it ran.
      for (const r of results.filter((r: Json) => r.__typename === "InsufficientCreditsError")) {
        expect(r.available).toBeLessThan(r.required);
        expect(r.available).toBeGreaterThanOrEqual(0);
      }
    }
  });

  it("settle vs refund vs reaper at the deadline: exactly one outcome each (200 races)", async () => {
    const outcomes: string[] = [];
    // One round of 200; on a machine so busy that every race ended the same way, up to two more
    // rounds with longer deadlines, so the races really race (checked at the end).
    let timeoutSeconds = 2;
    for (let round = 0; round < 1 || (Object.keys(tally(outcomes)).length < 2 && round < 3); round += 1) {
      if (round >= 1) timeoutSeconds *= 2;
      const accounts = await Promise.all(Array.from({ length: 20 }, () => a.account(1_000)));
      const generations = await Promise.all(
        Array.from({ length: rounds(200) }, (_, i) =>
          a.reserveOk(accounts[i % accounts.length] as string, {
            unitCost: 10,
            quantity: 1 + (i % 3),
            // Deadlines spread over three seconds, so the reports do not all arrive in one burst.
            timeoutSeconds: timeoutSeconds + (i % 4),
          }),
        ),
      );
      const results = await Promise.all(
        generations.map(async (generation: Json, i: number) => {
          const deadline = new Date(generation.deadline).getTime();
          // Fire both reports between 600 ms before and 100 ms after the deadline (a request takes
          // a while to reach the ledger), so each of the settle, the refund and the reaper (every
          // 100 ms, on both instances) wins some races.
          const jitter = () => deadline - 600 + Math.random() * 700 - Date.now();
          const [settled, refunded] = await Promise.all([
            sleep(jitter()).then(() => (i % 2 === 0 ? a : b).settle(generation.id)),
            sleep(jitter()).then(() => (i % 2 === 0 ? b : a).refund(generation.id, "PROVIDER_ERROR")),
          ]);
          return { id: localIdOf(generation.id), settled: settled.__typename, refunded: refunded.__typename };
        }),
      );
      // Whatever neither report ended, the reapers do within a few of their rounds.
      const ids = results.map((result) => result.id);
      await waitFor(
        async () => {
          const [row] = await sql().query<{ open: number }>(
            "SELECT count(*)::int AS open FROM generation WHERE id = ANY($1::uuid[]) AND status = 'IN_PROGRESS'",
            [ids],
          );
          return row?.open === 0 ? true : undefined;
        },
        15_000,
        "every race to end",
      );
      const rows = await sql().query<Json>(
        `SELECT g.id, g.status, g.reserved::int, g.charged::int, g.refunded::int,
                (SELECT count(*)::int FROM ledger_entry e WHERE e.generation_id = g.id AND e.type = 'REFUND') AS refunds,
                (SELECT coalesce(sum(e.amount), 0)::int FROM ledger_entry e WHERE e.generation_id = g.id) AS net,
                (SELECT count(*)::int FROM generation_item i WHERE i.generation_id = g.id AND i.status <> 'IN_PROGRESS') AS ended
           FROM generation g WHERE g.id = ANY($1::uuid[])`,
        [ids],
      );
      const byId = new Map(rows.map((row: Json) => [row.id, row]));
      for (const { id, settled, refunded } of results) {
        const row = byId.get(id);
        expect([settled, refunded]).not.toContain("InvalidInputError");
        expect(row.ended).toBe(row.reserved / 10);
        if (settled === "SettleGenerationSuccess") {
          expect(refunded).toBe("AlreadyFinalizedError");
          expect(row).toMatchObject({ status: "SUCCEEDED", charged: row.reserved, refunded: 0, refunds: 0 });
          expect(row.net).toBe(-row.reserved);
          outcomes.push("settle");
        } else {
          expect(settled).toBe("AlreadyFinalizedError");
          const status = refunded === "RefundGenerationSuccess" ? "FAILED" : "TIMED_OUT";
          if (status === "TIMED_OUT") expect(refunded).toBe("AlreadyFinalizedError");
          expect(row).toMatchObject({ status, charged: 0, refunded: row.reserved, refunds: 1 });
          expect(row.net).toBe(0);
          outcomes.push(status === "FAILED" ? "refund" : "timeout");
        }
      }
      for (const accountId of accounts) {
        expect(await auditAccount(accountId)).toEqual([]);
        expect((await a.balance(accountId)).held).toBe(0);
      }
    }
    expect(outcomes.length).toBeGreaterThanOrEqual(rounds(200));
    // Not a rule, a check that the test races at all: more than one contender won. (Which ones
    // depends on scheduling; on an idle machine all three do.)
    expect(Object.keys(tally(outcomes)).length).toBeGreaterThan(1);
  }, 240_000);

  it("the same settle sent 3× at once charges once (50 generations, with one key and with three keys)", async () => {
    const accountId = await a.account(10_000);
    const generations = await Promise.all(
      Array.from({ length: 50 }, () => a.reserveOk(accountId, { unitCost: 10, quantity: 2 })),
    );
    await Promise.all(
      generations.map(async (generation: Json, i: number) => {
        const items = [
          { index: 0, succeeded: true, cost: 7 },
          { index: 1, succeeded: true },
        ];
        const sameKey = i % 2 === 0;
        const key = unique("settle");
        const results = await Promise.all(
          [a, b, a].map((server) => server.settle(generation.id, items, sameKey ? key : unique("settle"))),
        );
        expect(tally(results.map((r: Json) => r.__typename))).toEqual({ SettleGenerationSuccess: 3 });
        if (sameKey) expect(results.filter((r: Json) => !r.replayed)).toHaveLength(1);
        expect(await entryAmountsOf(generation.id)).toEqual({ USAGE: [-20], RELEASE: [3] });
      }),
    );
    expect(await a.balance(accountId)).toMatchObject({ available: 10_000 - 50 * 17, held: 0 });
    expect(await auditAccount(accountId)).toEqual([]);
  });

  it("concurrent support refunds and negative adjustments never give or take more than allowed (10 rounds)", async () => {
    for (let round = 0; round < rounds(10); round += 1) {
      const accountId = await a.account(100);
      const { id } = await a.reserveOk(accountId, { unitCost: 10 });
      await a.settle(id);
      const [refunds, adjustments] = await Promise.all([
        Promise.all(Array.from({ length: 5 }, (_, i) => (i % 2 === 0 ? a : b).supportRefund(id, 4))),
        Promise.all(Array.from({ length: 6 }, (_, i) => (i % 2 === 0 ? b : a).adjust(accountId, -20))),
      ]);
      // Charged 10: two refunds of 4 fit, the rest find 2 refundable.
      expect(tally(refunds.map((r: Json) => r.__typename))).toEqual({
        SupportRefundSuccess: 2,
        RefundExceedsChargeError: 3,
      });
      for (const r of refunds.filter((r: Json) => r.__typename === "RefundExceedsChargeError")) {
        expect(r.refundable).toBe(2);
      }
      // 90 available, plus 8 refunded at some point: four debits of 20 fit in any order, never five.
      expect(tally(adjustments.map((r: Json) => r.__typename))).toEqual({
        AdjustBalanceSuccess: 4,
        InsufficientCreditsError: 2,
      });
      expect(await a.balance(accountId)).toMatchObject({ available: 18, held: 0 });
      expect(await auditAccount(accountId)).toEqual([]);
    }
  }, 120_000);

  it("a success and a failure reported at once for one item: exactly one wins (50 races)", async () => {
    const accountId = await a.account(10_000);
    const generations = await Promise.all(
      Array.from({ length: 50 }, () => a.reserveOk(accountId, { unitCost: 10 })),
    );
    const winners = await Promise.all(
      generations.map(async (generation: Json) => {
        const [success, failure] = await Promise.all([
          a.settle(generation.id, [{ index: 0, succeeded: true }]),
          b.settle(generation.id, [{ index: 0, succeeded: false, reason: "PROVIDER_ERROR" }]),
        ]);
        const types = [success.__typename, failure.__typename].sort();
        expect(types).toEqual(["AlreadyFinalizedError", "SettleGenerationSuccess"]);
        const final = await a.generation(generation.id);
        if (success.__typename === "SettleGenerationSuccess") {
          expect(final).toMatchObject({ status: "SUCCEEDED", charged: 10, refunded: 0 });
          return "success";
        }
        expect(final).toMatchObject({ status: "FAILED", charged: 0, refunded: 10 });
        return "failure";
      }),
    );
    const counts = tally(winners);
    const balance = await a.balance(accountId);
    expect(balance).toMatchObject({ held: 0, available: 10_000 - 10 * (counts.success ?? 0) });
    expect(await auditAccount(accountId)).toEqual([]);
  });
});
