import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { unique } from "../support/harness.ts";
import { Billing, closeSql, entryAmountsOf, type Json, localIdOf, sql, tally } from "./ops.ts";

const DUPLICATES = 8;

async function generationCount(accountGlobalId: string): Promise<number> {
  const [row] = await sql().query<{ n: number }>(
    "SELECT count(*)::int AS n FROM generation WHERE account_id = $1",
    [localIdOf(accountGlobalId)],
  );
  return row?.n ?? -1;
}

describe.concurrent("idempotency", () => {
  let billing: Billing;
  beforeAll(async () => {
    billing = await Billing.start({ reaperEnabled: false });
  });
  afterAll(async () => {
    await billing.close();
    await closeSql();
  });

  describe("reserveGeneration", () => {
    it("replays the stored answer for the same key and input, even after the state moved on", async () => {
      const accountId = await billing.account(100);
      const key = unique("reserve");
      const first = await billing.reserve(accountId, { key, unitCost: 10, quantity: 2 });
      expect(first.replayed).toBe(false);
      const again = await billing.reserve(accountId, { key, unitCost: 10, quantity: 2 });
      expect(again).toMatchObject({ __typename: "ReserveGenerationSuccess", replayed: true });
      expect(again.generation.id).toBe(first.generation.id);
      expect(again.balance).toMatchObject({ available: 80, held: 20 });
      await billing.settle(first.generation.id);
      const later = await billing.reserve(accountId, { key, unitCost: 10, quantity: 2 });
      expect(later).toMatchObject({
        replayed: true,
        generation: { id: first.generation.id, status: "SUCCEEDED" },
      });
      expect(await generationCount(accountId)).toBe(1);
      expect(await billing.balance(accountId)).toMatchObject({ available: 80, held: 0 });
    });

    it("refuses the same key with other input and writes nothing", async () => {
      const accountId = await billing.account(100);
      const key = unique("reserve");
      await billing.reserve(accountId, { key, unitCost: 10 });
      for (const other of [
        { unitCost: 11 },
        { unitCost: 10, quantity: 2 },
        { unitCost: 10, feature: "Other" },
      ]) {
        const reused = await billing.reserve(accountId, { key, ...other });
        expect(reused).toMatchObject({
          __typename: "IdempotencyKeyReusedError",
          code: "IDEMPOTENCY_KEY_REUSED",
        });
      }
      expect(await generationCount(accountId)).toBe(1);
      expect(await billing.balance(accountId)).toMatchObject({ available: 90, held: 10, sequence: 2 });
    });

    it("scopes keys by the caller: another service may use the same key", async () => {
      const accountId = await billing.account(100);
      const key = unique("reserve");
      const mine = await billing.reserve(accountId, { key, unitCost: 10 });
      const theirs = await billing.reserve(
        accountId,
        { key, unitCost: 10 },
        await billing.server.token("other-platform", "service"),
      );
      expect(theirs.replayed).toBe(false);
      expect(theirs.generation.id).not.toBe(mine.generation.id);
    });

    it("runs concurrent duplicates once; every caller gets the answer", async () => {
      for (let round = 0; round < 5; round += 1) {
        const accountId = await billing.account(100);
        const key = unique("reserve");
        const results = await Promise.all(
          Array.from({ length: DUPLICATES }, () => billing.reserve(accountId, { key, unitCost: 10 })),
        );
        expect(tally(results.map((r: Json) => r.__typename))).toEqual({
          ReserveGenerationSuccess: DUPLICATES,
        });
        expect(new Set(results.map((r: Json) => r.generation.id)).size).toBe(1);
        expect(results.filter((r: Json) => !r.replayed)).toHaveLength(1);
        expect(await generationCount(accountId)).toBe(1);
        expect(await billing.balance(accountId)).toMatchObject({ available: 90, held: 10 });
      }
    });
  });

  describe("settleGeneration", () => {
    it("replays, refuses reuse with other input, and runs concurrent duplicates once", async () => {
      const accountId = await billing.account(100);
      const { id } = await billing.reserveOk(accountId, { unitCost: 10, quantity: 2 });
      const key = unique("settle");
      const items = [
        { index: 0, succeeded: true, cost: 6 },
        { index: 1, succeeded: false, reason: "PROVIDER_ERROR" },
      ];
      const results = await Promise.all(
        Array.from({ length: DUPLICATES }, () => billing.settle(id, items, key)),
      );
      expect(tally(results.map((r: Json) => r.__typename))).toEqual({ SettleGenerationSuccess: DUPLICATES });
      expect(results.filter((r: Json) => !r.replayed)).toHaveLength(1);
      const again = await billing.settle(id, items, key);
      expect(again).toMatchObject({ replayed: true, generation: { charged: 6, refunded: 10, released: 4 } });
      const reused = await billing.settle(id, [{ index: 0, succeeded: true, cost: 7 }], key);
      expect(reused.__typename).toBe("IdempotencyKeyReusedError");
      expect(await entryAmountsOf(id)).toEqual({ USAGE: [-20], REFUND: [10], RELEASE: [4] });
      expect(await billing.balance(accountId)).toMatchObject({ available: 94, held: 0 });
    });
  });

  describe("refundGeneration", () => {
    it("replays, refuses reuse with other input, and runs concurrent duplicates once", async () => {
      const accountId = await billing.account(100);
      const { id } = await billing.reserveOk(accountId, { unitCost: 10, quantity: 3 });
      const key = unique("refund");
      const results = await Promise.all(
        Array.from({ length: DUPLICATES }, () => billing.refund(id, "SYSTEM_ERROR", { key })),
      );
      expect(tally(results.map((r: Json) => r.__typename))).toEqual({ RefundGenerationSuccess: DUPLICATES });
      expect(results.filter((r: Json) => !r.replayed)).toHaveLength(1);
      // A replay is the stored answer, not AlreadyFinalizedError, though nothing is left to refund.
      const again = await billing.refund(id, "SYSTEM_ERROR", { key });
      expect(again).toMatchObject({ __typename: "RefundGenerationSuccess", replayed: true });
      const reused = await billing.refund(id, "PROVIDER_ERROR", { key });
      expect(reused.__typename).toBe("IdempotencyKeyReusedError");
      expect(await entryAmountsOf(id)).toEqual({ USAGE: [-30], REFUND: [30] });
    });
  });

  describe("cancelGeneration and supportRefund", () => {
    it("replay with the same key", async () => {
      const accountId = await billing.account(100);
      const cancelled = await billing.reserveOk(accountId, { unitCost: 10 });
      const cancelKey = unique("cancel");
      expect((await billing.cancel(cancelled.id, cancelKey)).replayed).toBe(false);
      expect(await billing.cancel(cancelled.id, cancelKey)).toMatchObject({ replayed: true });

      const charged = await billing.reserveOk(accountId, { unitCost: 10 });
      await billing.settle(charged.id);
      const supportKey = unique("support");
      const results = await Promise.all(
        Array.from({ length: 4 }, () => billing.supportRefund(charged.id, 6, { key: supportKey })),
      );
      expect(tally(results.map((r: Json) => r.__typename))).toEqual({ SupportRefundSuccess: 4 });
      expect(await entryAmountsOf(charged.id)).toEqual({ USAGE: [-10], REFUND: [6] });
      expect((await billing.supportRefund(charged.id, 5, { key: supportKey })).__typename).toBe(
        "IdempotencyKeyReusedError",
      );
    });
  });
});
