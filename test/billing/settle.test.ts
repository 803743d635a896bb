import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Billing, closeSql, entryAmountsOf, type Json } from "./ops.ts";

const types = (generation: Json): string[] => generation.ledgerEntries.map((entry: Json) => entry.type);

describe.concurrent("settleGeneration", () => {
  let billing: Billing;
  beforeAll(async () => {
    billing = await Billing.start({ reaperEnabled: false });
  });
  afterAll(async () => {
    await billing.close();
    await closeSql();
  });

  it("charges a success's cost and releases the surplus of every item in one RELEASE entry", async () => {
    const accountId = await billing.account(100);
    const { id } = await billing.reserveOk(accountId, { unitCost: 10, quantity: 3 });
    const result = await billing.settle(id, [
      { index: 0, succeeded: true, cost: 6 },
      { index: 1, succeeded: true, cost: 9 },
      { index: 2, succeeded: true },
    ]);
    expect(result.__typename).toBe("SettleGenerationSuccess");
    expect(result.replayed).toBe(false);
    const generation = result.generation;
    expect(generation).toMatchObject({ status: "SUCCEEDED", charged: 25, released: 5, refunded: 0 });
    expect(generation.finishedAt).not.toBeNull();
    expect(generation.items.map((item: Json) => [item.status, item.charged])).toEqual([
      ["SUCCEEDED", 6],
      ["SUCCEEDED", 9],
      ["SUCCEEDED", 10],
    ]);
    expect(types(generation)).toEqual(["USAGE", "RELEASE"]);
    expect(generation.ledgerEntries[0]).toMatchObject({ amount: -30, status: "COMPLETED" });
    expect(generation.ledgerEntries[1]).toMatchObject({
      amount: 5,
      status: "COMPLETED",
      balanceBefore: 70,
      balanceAfter: 75,
      reason: null,
    });
    expect(result.balance).toMatchObject({ available: 75, held: 0, total: 75 });
  });

  it("charges the reserved cost and writes no RELEASE when cost is omitted or equal to unitCost", async () => {
    const accountId = await billing.account(100);
    const { id } = await billing.reserveOk(accountId, { unitCost: 10, quantity: 2 });
    const result = await billing.settle(id, [
      { index: 0, succeeded: true },
      { index: 1, succeeded: true, cost: 10 },
    ]);
    expect(result.generation).toMatchObject({ status: "SUCCEEDED", charged: 20, released: 0 });
    expect(types(result.generation)).toEqual(["USAGE"]);
    expect(result.balance).toMatchObject({ available: 80, held: 0 });
  });

  it("refunds a failed item in full with its reason", async () => {
    const accountId = await billing.account(100);
    const { id } = await billing.reserveOk(accountId, { unitCost: 10, quantity: 1, feature: "Portrait" });
    const result = await billing.settle(id, [
      { index: 0, succeeded: false, reason: "CONTENT_REJECTED", message: "Blocked by the safety filter" },
    ]);
    const generation = result.generation;
    expect(generation).toMatchObject({
      status: "FAILED",
      charged: 0,
      refunded: 10,
      failureReason: "CONTENT_REJECTED",
      failureMessage: "Blocked by the safety filter",
    });
    expect(generation.items[0]).toMatchObject({
      status: "FAILED",
      refunded: 10,
      reason: "CONTENT_REJECTED",
      message: "Blocked by the safety filter",
    });
    expect(types(generation)).toEqual(["USAGE", "REFUND"]);
    expect(generation.ledgerEntries[0].status).toBe("FAILED");
    expect(generation.ledgerEntries[1]).toMatchObject({
      amount: 10,
      reason: "CONTENT_REJECTED",
      title: "Portrait",
      status: "COMPLETED",
    });
    expect(result.balance).toMatchObject({ available: 100, held: 0 });
  });

  it("bills a batch of 4 with 1 failure per item: charged 3, refunded 1, PARTIALLY_SUCCEEDED", async () => {
    const accountId = await billing.account(100);
    const { id } = await billing.reserveOk(accountId, { unitCost: 5, quantity: 4, feature: "Image x4" });
    const result = await billing.settle(id, [
      { index: 0, succeeded: true },
      { index: 1, succeeded: true },
      { index: 2, succeeded: false, reason: "PROVIDER_ERROR" },
      { index: 3, succeeded: true },
    ]);
    const generation = result.generation;
    expect(generation).toMatchObject({
      status: "PARTIALLY_SUCCEEDED",
      charged: 15,
      refunded: 5,
      released: 0,
    });
    expect(types(generation)).toEqual(["USAGE", "REFUND"]);
    expect(generation.ledgerEntries[0]).toMatchObject({ type: "USAGE", amount: -20, status: "COMPLETED" });
    expect(generation.ledgerEntries[1]).toMatchObject({
      type: "REFUND",
      amount: 5,
      reason: "PROVIDER_ERROR",
    });
    expect(result.balance).toMatchObject({ available: 85, held: 0 });
  });

  it("writes one REFUND per distinct reason and one RELEASE for all surplus in a mixed settle", async () => {
    const accountId = await billing.account(100);
    const { id } = await billing.reserveOk(accountId, { unitCost: 10, quantity: 5 });
    const result = await billing.settle(id, [
      { index: 0, succeeded: true, cost: 7 },
      { index: 1, succeeded: false, reason: "PROVIDER_ERROR" },
      { index: 2, succeeded: false, reason: "CONTENT_REJECTED" },
      { index: 3, succeeded: false, reason: "PROVIDER_ERROR" },
      { index: 4, succeeded: true, cost: 8 },
    ]);
    expect(result.generation).toMatchObject({ charged: 15, refunded: 30, released: 5 });
    expect(await entryAmountsOf(id)).toEqual({ USAGE: [-50], REFUND: [20, 10], RELEASE: [5] });
    const reasons = result.generation.ledgerEntries
      .filter((entry: Json) => entry.type === "REFUND")
      .map((entry: Json) => [entry.reason, entry.amount]);
    expect(reasons).toEqual([
      ["PROVIDER_ERROR", 20],
      ["CONTENT_REJECTED", 10],
    ]);
    expect(result.balance).toMatchObject({ available: 85, held: 0 });
  });

  it("settles items one report at a time; the generation stays IN_PROGRESS until the last", async () => {
    const accountId = await billing.account(100);
    const { id } = await billing.reserveOk(accountId, { unitCost: 10, quantity: 3 });
    const first = await billing.settle(id, [{ index: 1, succeeded: true, cost: 4 }]);
    expect(first.generation).toMatchObject({ status: "IN_PROGRESS", charged: 4, released: 6 });
    expect(first.generation.finishedAt).toBeNull();
    expect(first.generation.ledgerEntries[0].status).toBe("PENDING");
    expect(first.balance).toMatchObject({ available: 76, held: 20 });
    const second = await billing.settle(id, [{ index: 0, succeeded: false, reason: "SYSTEM_ERROR" }]);
    expect(second.generation).toMatchObject({ status: "IN_PROGRESS", refunded: 10 });
    const third = await billing.settle(id, [{ index: 2, succeeded: true }]);
    expect(third.generation).toMatchObject({ status: "PARTIALLY_SUCCEEDED", charged: 14, refunded: 10 });
    expect(third.generation.ledgerEntries[0].status).toBe("COMPLETED");
    expect(third.balance).toMatchObject({ available: 86, held: 0 });
  });

  describe("with items omitted", () => {
    it("succeeds every item at its reserved cost", async () => {
      const accountId = await billing.account(100);
      const { id } = await billing.reserveOk(accountId, { unitCost: 10, quantity: 3 });
      const result = await billing.settle(id);
      expect(result.generation).toMatchObject({ status: "SUCCEEDED", charged: 30, released: 0 });
      expect(result.balance).toMatchObject({ available: 70, held: 0 });
    });

    it("succeeds only the unfinished items when some already succeeded", async () => {
      const accountId = await billing.account(100);
      const { id } = await billing.reserveOk(accountId, { unitCost: 10, quantity: 3 });
      await billing.settle(id, [{ index: 0, succeeded: true, cost: 3 }]);
      const result = await billing.settle(id);
      expect(result.generation).toMatchObject({ status: "SUCCEEDED", charged: 23, released: 7 });
      expect(result.generation.items.map((item: Json) => item.charged)).toEqual([3, 10, 10]);
    });

    it("is a no-op success when every item already succeeded", async () => {
      const accountId = await billing.account(100);
      const { id } = await billing.reserveOk(accountId, { unitCost: 10, quantity: 2 });
      const first = await billing.settle(id);
      const again = await billing.settle(id);
      expect(again.__typename).toBe("SettleGenerationSuccess");
      expect(again.replayed).toBe(false);
      expect(again.generation).toMatchObject({ status: "SUCCEEDED", charged: 20 });
      expect(again.balance).toEqual(first.balance);
      expect(await entryAmountsOf(id)).toEqual({ USAGE: [-20] });
    });

    it("is AlreadyFinalizedError when any item ended otherwise, and changes nothing", async () => {
      const accountId = await billing.account(100);
      const { id } = await billing.reserveOk(accountId, { unitCost: 10, quantity: 3 });
      await billing.settle(id, [{ index: 1, succeeded: false, reason: "GENERATION_FAILED" }]);
      const result = await billing.settle(id);
      expect(result).toMatchObject({
        __typename: "AlreadyFinalizedError",
        code: "ALREADY_FINALIZED",
        generation: { id, status: "IN_PROGRESS" },
      });
      const generation = await billing.generation(id);
      expect(generation.items.map((item: Json) => item.status)).toEqual([
        "IN_PROGRESS",
        "FAILED",
        "IN_PROGRESS",
      ]);
      expect(generation).toMatchObject({ charged: 0, refunded: 10 });
    });
  });

  describe("an item's first outcome wins", () => {
    it("a repeated success is a no-op", async () => {
      const accountId = await billing.account(100);
      const { id } = await billing.reserveOk(accountId, { unitCost: 10, quantity: 1 });
      const first = await billing.settle(id, [{ index: 0, succeeded: true, cost: 8 }]);
      const again = await billing.settle(id, [{ index: 0, succeeded: true, cost: 8 }]);
      expect(again.__typename).toBe("SettleGenerationSuccess");
      expect(again.generation).toMatchObject({ status: "SUCCEEDED", charged: 8, released: 2 });
      expect(again.balance).toEqual(first.balance);
      expect(await entryAmountsOf(id)).toEqual({ USAGE: [-10], RELEASE: [2] });
    });

    it("a repeated failure with the same reason is a no-op", async () => {
      const accountId = await billing.account(100);
      const { id } = await billing.reserveOk(accountId, { unitCost: 10, quantity: 1 });
      await billing.settle(id, [{ index: 0, succeeded: false, reason: "PROVIDER_ERROR" }]);
      const again = await billing.settle(id, [
        { index: 0, succeeded: false, reason: "PROVIDER_ERROR", message: "reported twice" },
      ]);
      expect(again.__typename).toBe("SettleGenerationSuccess");
      expect(again.balance).toMatchObject({ available: 100, held: 0 });
      expect(await entryAmountsOf(id)).toEqual({ USAGE: [-10], REFUND: [10] });
    });

    it("a failure after a success is AlreadyFinalizedError and refunds nothing", async () => {
      const accountId = await billing.account(100);
      const { id } = await billing.reserveOk(accountId, { unitCost: 10, quantity: 1 });
      await billing.settle(id, [{ index: 0, succeeded: true }]);
      const late = await billing.settle(id, [{ index: 0, succeeded: false, reason: "GENERATION_FAILED" }]);
      expect(late).toMatchObject({
        __typename: "AlreadyFinalizedError",
        generation: { id, status: "SUCCEEDED" },
      });
      expect(await billing.balance(accountId)).toMatchObject({ available: 90, held: 0 });
      expect(await entryAmountsOf(id)).toEqual({ USAGE: [-10] });
    });

    it("a success after a failure is AlreadyFinalizedError and charges nothing", async () => {
      const accountId = await billing.account(100);
      const { id } = await billing.reserveOk(accountId, { unitCost: 10, quantity: 1 });
      await billing.settle(id, [{ index: 0, succeeded: false, reason: "SERVICE_UNAVAILABLE" }]);
      const late = await billing.settle(id, [{ index: 0, succeeded: true }]);
      expect(late).toMatchObject({ __typename: "AlreadyFinalizedError", generation: { status: "FAILED" } });
      expect((await billing.generation(id)).charged).toBe(0);
      expect(await billing.balance(accountId)).toMatchObject({ available: 100, held: 0 });
    });

    it("a different cost or a different failure reason is AlreadyFinalizedError", async () => {
      const accountId = await billing.account(100);
      const { id } = await billing.reserveOk(accountId, { unitCost: 10, quantity: 2 });
      await billing.settle(id, [
        { index: 0, succeeded: true, cost: 5 },
        { index: 1, succeeded: false, reason: "PROVIDER_ERROR" },
      ]);
      const cost = await billing.settle(id, [{ index: 0, succeeded: true, cost: 6 }]);
      expect(cost.__typename).toBe("AlreadyFinalizedError");
      const reason = await billing.settle(id, [{ index: 1, succeeded: false, reason: "SYSTEM_ERROR" }]);
      expect(reason.__typename).toBe("AlreadyFinalizedError");
      expect(await entryAmountsOf(id)).toEqual({ USAGE: [-20], REFUND: [10], RELEASE: [5] });
    });

    it("applies nothing of a request that conflicts on any item", async () => {
      const accountId = await billing.account(100);
      const { id } = await billing.reserveOk(accountId, { unitCost: 10, quantity: 2 });
      await billing.settle(id, [{ index: 0, succeeded: true }]);
      const mixed = await billing.settle(id, [
        { index: 1, succeeded: true },
        { index: 0, succeeded: false, reason: "GENERATION_FAILED" },
      ]);
      expect(mixed.__typename).toBe("AlreadyFinalizedError");
      const generation = await billing.generation(id);
      expect(generation.items[1].status).toBe("IN_PROGRESS");
      expect(generation).toMatchObject({ status: "IN_PROGRESS", charged: 10 });
      expect(await billing.balance(accountId)).toMatchObject({ available: 80, held: 10 });
    });
  });

  it("returns NotFoundError for a generation that does not exist", async () => {
    const missing = Buffer.from("Generation:00000000-0000-4000-8000-000000000000").toString("base64");
    const result = await billing.settle(missing);
    expect(result).toMatchObject({ __typename: "NotFoundError", code: "NOT_FOUND" });
  });
});
