import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { unique } from "../support/harness.ts";
import { REFUND_REASONS as REASONS } from "../support/refund-reasons.ts";
import { Billing, closeSql, entryAmountsOf, type Json } from "./ops.ts";

/** The item and generation status a failure reason ends with (SPEC §5 "Generation status"). */
const statusFor = (reason: string) =>
  reason === "TIMEOUT" ? "TIMED_OUT" : reason === "CANCELLED" ? "CANCELLED" : "FAILED";

describe.concurrent("refundGeneration", () => {
  let billing: Billing;
  beforeAll(async () => {
    billing = await Billing.start({ reaperEnabled: false });
  });
  afterAll(async () => {
    await billing.close();
    await closeSql();
  });

  it("ends every unfinished item with one REFUND entry of n × unitCost", async () => {
    const accountId = await billing.account(100);
    const { id } = await billing.reserveOk(accountId, { unitCost: 6, quantity: 4, feature: "Storyboard" });
    const result = await billing.refund(id, "PROVIDER_ERROR", { message: "Upstream returned 503" });
    expect(result.__typename).toBe("RefundGenerationSuccess");
    const generation = result.generation;
    expect(generation).toMatchObject({
      status: "FAILED",
      charged: 0,
      refunded: 24,
      failureReason: "PROVIDER_ERROR",
      failureMessage: "Upstream returned 503",
    });
    for (const item of generation.items) {
      expect(item).toMatchObject({ status: "FAILED", refunded: 6, reason: "PROVIDER_ERROR" });
    }
    expect(generation.ledgerEntries.map((entry: Json) => [entry.type, entry.amount, entry.status])).toEqual([
      ["USAGE", -24, "FAILED"],
      ["REFUND", 24, "COMPLETED"],
    ]);
    expect(generation.ledgerEntries[1]).toMatchObject({
      title: "Storyboard",
      reason: "PROVIDER_ERROR",
      message: "Upstream returned 503",
      balanceBefore: 76,
      balanceAfter: 100,
    });
    expect(result.balance).toMatchObject({ available: 100, held: 0 });
  });

  it("leaves finished items as they are and refunds only the unfinished ones", async () => {
    const accountId = await billing.account(100);
    const { id } = await billing.reserveOk(accountId, { unitCost: 10, quantity: 3 });
    await billing.settle(id, [{ index: 0, succeeded: true, cost: 9 }]);
    const result = await billing.refund(id, "SYSTEM_ERROR");
    expect(result.generation).toMatchObject({
      status: "PARTIALLY_SUCCEEDED",
      charged: 9,
      released: 1,
      refunded: 20,
    });
    expect(result.generation.items.map((item: Json) => item.status)).toEqual([
      "SUCCEEDED",
      "FAILED",
      "FAILED",
    ]);
    expect(await entryAmountsOf(id)).toEqual({ USAGE: [-30], RELEASE: [1], REFUND: [20] });
    expect(result.balance).toMatchObject({ available: 91, held: 0 });
  });

  it("is AlreadyFinalizedError when no item is unfinished, and writes nothing", async () => {
    const accountId = await billing.account(100);
    const { id } = await billing.reserveOk(accountId, { unitCost: 10, quantity: 2 });
    await billing.settle(id);
    const result = await billing.refund(id);
    expect(result).toMatchObject({
      __typename: "AlreadyFinalizedError",
      code: "ALREADY_FINALIZED",
      generation: { id, status: "SUCCEEDED" },
    });
    const refunded = await billing.reserveOk(accountId, { unitCost: 10 });
    await billing.refund(refunded.id);
    const twice = await billing.refund(refunded.id);
    expect(twice).toMatchObject({ __typename: "AlreadyFinalizedError", generation: { status: "FAILED" } });
    expect(await entryAmountsOf(refunded.id)).toEqual({ USAGE: [-10], REFUND: [10] });
    expect(await billing.balance(accountId)).toMatchObject({ available: 80, held: 0 });
  });

  for (const reason of REASONS) {
    it(`refund with ${reason} ends items ${statusFor(reason)} and writes a REFUND with that reason`, async () => {
      const accountId = await billing.account(50);
      const { id } = await billing.reserveOk(accountId, { unitCost: 5, quantity: 2 });
      const result = await billing.refund(id, reason);
      expect(result.generation).toMatchObject({
        status: statusFor(reason),
        refunded: 10,
        failureReason: reason,
      });
      for (const item of result.generation.items) {
        expect(item).toMatchObject({ status: statusFor(reason), reason });
      }
      const refund = result.generation.ledgerEntries.find((entry: Json) => entry.type === "REFUND");
      expect(refund).toMatchObject({ amount: 10, reason, status: "COMPLETED" });
      expect(result.generation.ledgerEntries[0]).toMatchObject({ type: "USAGE", status: "FAILED" });
    });
  }

  describe("generation status when every item failed", () => {
    it.each([
      ["TIMEOUT", "TIMED_OUT"],
      ["CANCELLED", "CANCELLED"],
      ["MALFORMED_RESPONSE", "FAILED"],
    ])("items all failed by settle with %s → %s", async (reason, status) => {
      const accountId = await billing.account(50);
      const { id } = await billing.reserveOk(accountId, { unitCost: 5, quantity: 2 });
      const result = await billing.settle(id, [
        { index: 0, succeeded: false, reason },
        { index: 1, succeeded: false, reason },
      ]);
      expect(result.generation.status).toBe(status);
      expect(result.generation.items.map((item: Json) => item.status)).toEqual([status, status]);
    });

    it("items that failed for different reasons → FAILED", async () => {
      const accountId = await billing.account(50);
      const { id } = await billing.reserveOk(accountId, { unitCost: 5, quantity: 2 });
      const result = await billing.settle(id, [
        { index: 0, succeeded: false, reason: "TIMEOUT" },
        { index: 1, succeeded: false, reason: "CANCELLED" },
      ]);
      expect(result.generation.status).toBe("FAILED");
      expect(result.generation.items.map((item: Json) => item.status)).toEqual(["TIMED_OUT", "CANCELLED"]);
    });
  });
});

describe.concurrent("cancelGeneration", () => {
  let billing: Billing;
  beforeAll(async () => {
    billing = await Billing.start({ reaperEnabled: false });
  });
  afterAll(async () => {
    await billing.close();
    await closeSql();
  });

  it("is a refund with reason CANCELLED: status CANCELLED, one REFUND", async () => {
    const accountId = await billing.account(100);
    const { id } = await billing.reserveOk(accountId, { unitCost: 10, quantity: 3 });
    const result = await billing.cancel(id);
    expect(result.__typename).toBe("CancelGenerationSuccess");
    expect(result.generation).toMatchObject({
      status: "CANCELLED",
      refunded: 30,
      failureReason: "CANCELLED",
    });
    expect(result.generation.items.map((item: Json) => [item.status, item.reason])).toEqual([
      ["CANCELLED", "CANCELLED"],
      ["CANCELLED", "CANCELLED"],
      ["CANCELLED", "CANCELLED"],
    ]);
    expect(await entryAmountsOf(id)).toEqual({ USAGE: [-30], REFUND: [30] });
    expect(result.balance).toMatchObject({ available: 100, held: 0 });
  });

  it("keeps finished items charged", async () => {
    const accountId = await billing.account(100);
    const { id } = await billing.reserveOk(accountId, { unitCost: 10, quantity: 2 });
    await billing.settle(id, [{ index: 0, succeeded: true }]);
    const result = await billing.cancel(id);
    expect(result.generation).toMatchObject({ status: "PARTIALLY_SUCCEEDED", charged: 10, refunded: 10 });
    expect(result.generation.items[1]).toMatchObject({ status: "CANCELLED", reason: "CANCELLED" });
    expect(result.balance).toMatchObject({ available: 90, held: 0 });
  });

  it("is AlreadyFinalizedError on a finished generation", async () => {
    const accountId = await billing.account(100);
    const { id } = await billing.reserveOk(accountId, { unitCost: 10 });
    await billing.settle(id);
    const result = await billing.cancel(id);
    expect(result).toMatchObject({
      __typename: "AlreadyFinalizedError",
      generation: { status: "SUCCEEDED" },
    });
    expect(await billing.balance(accountId)).toMatchObject({ available: 90, held: 0 });
  });

  it("may be done by an account OWNER for any of the account's generations; others do not see it", async () => {
    const owner = unique("owner");
    const accountId = await billing.account(100, { kind: "WORKSPACE", ownerId: owner });
    const { id } = await billing.reserveOk(accountId, { unitCost: 10, requestedBy: unique("member") });
    const stranger = await billing.cancel(
      id,
      unique("cancel"),
      await billing.server.token(unique("x"), "user"),
    );
    expect(stranger).toMatchObject({ __typename: "NotFoundError", code: "NOT_FOUND" });
    const done = await billing.cancel(id, unique("cancel"), await billing.server.token(owner, "user"));
    expect(done.generation).toMatchObject({ status: "CANCELLED", refunded: 10 });
  });

  it("may be done by the user who requested it, not by another member", async () => {
    const owner = unique("owner");
    const accountId = await billing.account(100, { kind: "WORKSPACE", ownerId: owner });
    const requester = unique("member");
    const other = unique("member");
    for (const userId of [requester, other]) {
      const added = await billing.server.gql(
        billing.service,
        `mutation($input: AddAccountMemberInput!) { addAccountMember(input: $input) { __typename } }`,
        { input: { accountId, userId, role: "MEMBER" } },
      );
      expect(added.data?.addAccountMember.__typename).toBe("AddAccountMemberSuccess");
    }
    const { id } = await billing.reserveOk(accountId, { unitCost: 10, requestedBy: requester });
    const denied = await billing.cancel(id, unique("cancel"), await billing.server.token(other, "user"));
    expect(denied).toMatchObject({ __typename: "ForbiddenError", code: "FORBIDDEN" });
    expect((await billing.generation(id)).status).toBe("IN_PROGRESS");
    const done = await billing.cancel(id, unique("cancel"), await billing.server.token(requester, "user"));
    expect(done.generation).toMatchObject({ status: "CANCELLED", refunded: 10 });
  });
});
