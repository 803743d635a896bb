import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Billing, closeSql, entriesOf, entryAmountsOf, type Json } from "./ops.ts";

describe.concurrent("supportRefund (admin)", () => {
  let billing: Billing;
  beforeAll(async () => {
    billing = await Billing.start({ reaperEnabled: false });
  });
  afterAll(async () => {
    await billing.close();
    await closeSql();
  });

  it("returns up to the charged amount minus earlier support refunds; charged stays what was delivered", async () => {
    const accountId = await billing.account(100);
    const { id } = await billing.reserveOk(accountId, { unitCost: 10, quantity: 3, feature: "Video" });
    await billing.settle(id, [
      { index: 0, succeeded: true },
      { index: 1, succeeded: true, cost: 8 },
      { index: 2, succeeded: false, reason: "PROVIDER_ERROR" },
    ]);
    // Charged 18, refunded 10 for the failed item, released 2.
    const first = await billing.supportRefund(id, 5, { note: "Artifacts in frame 3" });
    expect(first.__typename).toBe("SupportRefundSuccess");
    expect(first.generation).toMatchObject({ charged: 18, refunded: 15, released: 2 });
    expect(first.balance).toMatchObject({ available: 87, held: 0 });
    const entry = first.generation.ledgerEntries.at(-1);
    expect(entry).toMatchObject({
      type: "REFUND",
      amount: 5,
      reason: "BILLING_ERROR",
      message: "Artifacts in frame 3",
      title: "Video",
      status: "COMPLETED",
      balanceBefore: 82,
      balanceAfter: 87,
    });

    const tooMuch = await billing.supportRefund(id, 14);
    expect(tooMuch).toMatchObject({
      __typename: "RefundExceedsChargeError",
      code: "REFUND_EXCEEDS_CHARGE",
      refundable: 13,
    });
    expect(await billing.balance(accountId)).toMatchObject({ available: 87 });

    const rest = await billing.supportRefund(id, 13, { reason: "SYSTEM_ERROR" });
    expect(rest.generation).toMatchObject({ charged: 18, refunded: 28 });
    expect(rest.balance).toMatchObject({ available: 100 });
    const none = await billing.supportRefund(id, 1);
    expect(none).toMatchObject({ __typename: "RefundExceedsChargeError", refundable: 0 });
    expect(await entryAmountsOf(id)).toEqual({ USAGE: [-30], REFUND: [10, 5, 13], RELEASE: [2] });
  });

  it("is RefundExceedsChargeError with refundable 0 on a generation nothing was charged for", async () => {
    const accountId = await billing.account(100);
    const { id } = await billing.reserveOk(accountId, { unitCost: 10 });
    expect(await billing.supportRefund(id, 1)).toMatchObject({
      __typename: "RefundExceedsChargeError",
      refundable: 0,
    });
    await billing.refund(id);
    expect(await billing.supportRefund(id, 1)).toMatchObject({
      __typename: "RefundExceedsChargeError",
      refundable: 0,
    });
  });

  it("does not change a generation's status or its USAGE entry's status", async () => {
    const accountId = await billing.account(100);
    const { id } = await billing.reserveOk(accountId, { unitCost: 10 });
    await billing.settle(id);
    const result = await billing.supportRefund(id, 10);
    expect(result.generation.status).toBe("SUCCEEDED");
    expect(result.generation.ledgerEntries[0]).toMatchObject({ type: "USAGE", status: "COMPLETED" });
  });

  it("needs an admin token", async () => {
    const accountId = await billing.account(100);
    const { id } = await billing.reserveOk(accountId, { unitCost: 10 });
    await billing.settle(id);
    const response = await billing.server.gql(
      billing.service,
      `mutation($input: SupportRefundInput!) { supportRefund(input: $input) { __typename ... on Error { code } } }`,
      {
        input: { idempotencyKey: "support-as-service", generationId: id, amount: 5, reason: "BILLING_ERROR" },
      },
    );
    expect(response.data?.supportRefund).toEqual({ __typename: "ForbiddenError", code: "FORBIDDEN" });
    expect(await billing.balance(accountId)).toMatchObject({ available: 90 });
  });
});

describe.concurrent("adjustBalance (admin)", () => {
  let billing: Billing;
  beforeAll(async () => {
    billing = await Billing.start({ reaperEnabled: false });
  });
  afterAll(async () => {
    await billing.close();
    await closeSql();
  });

  it("adds credits with a positive ADJUSTMENT entry", async () => {
    const accountId = await billing.account(10);
    const result = await billing.adjust(accountId, 25, "Compensation for outage");
    expect(result.__typename).toBe("AdjustBalanceSuccess");
    expect(result.entry).toMatchObject({
      type: "ADJUSTMENT",
      amount: 25,
      title: "Adjustment",
      message: "Compensation for outage",
      status: "COMPLETED",
      balanceBefore: 10,
      balanceAfter: 35,
      sequence: 2,
    });
    expect(result.balance).toMatchObject({ available: 35, wallet: 35, sequence: 2 });
  });

  it("takes credits with a negative ADJUSTMENT entry, down to exactly 0", async () => {
    const accountId = await billing.account(40);
    const first = await billing.adjust(accountId, -15, "Duplicate grant");
    expect(first.entry).toMatchObject({ amount: -15, balanceBefore: 40, balanceAfter: 25 });
    const all = await billing.adjust(accountId, -25, "Close out");
    expect(all.balance).toMatchObject({ available: 0, wallet: 0 });
    expect((await entriesOf(accountId)).map((entry) => entry.amount)).toEqual([40, -15, -25]);
  });

  it("is InsufficientCreditsError when it would drive available below 0, writing nothing", async () => {
    const accountId = await billing.account(40);
    // Held credits are not available: they cannot be adjusted away.
    await billing.reserveOk(accountId, { unitCost: 30 });
    const result = await billing.adjust(accountId, -11, "Too much");
    expect(result).toMatchObject({
      __typename: "InsufficientCreditsError",
      code: "INSUFFICIENT_CREDITS",
      available: 10,
      required: 11,
    });
    expect(await billing.balance(accountId)).toMatchObject({ available: 10, held: 30, sequence: 2 });
  });

  it("needs an admin token", async () => {
    const accountId = await billing.account(40);
    const response = await billing.server.gql(
      billing.service,
      `mutation($input: AdjustBalanceInput!) { adjustBalance(input: $input) { __typename ... on Error { code } } }`,
      { input: { idempotencyKey: "adjust-as-service", accountId, amount: 5, note: "nope" } },
    );
    expect(response.data?.adjustBalance).toEqual({ __typename: "ForbiddenError", code: "FORBIDDEN" });
  });

  it("replays with the same key and refuses the key for a different adjustment", async () => {
    const accountId = await billing.account(40);
    const first = await billing.adjust(accountId, 5, "Once", "adjust-key-1");
    const again = await billing.adjust(accountId, 5, "Once", "adjust-key-1");
    expect(again).toMatchObject({ replayed: true, entry: { id: first.entry.id } });
    const reused = await billing.adjust(accountId, 6, "Once", "adjust-key-1");
    expect(reused).toMatchObject({ __typename: "IdempotencyKeyReusedError", code: "IDEMPOTENCY_KEY_REUSED" });
    const amounts = (await entriesOf(accountId)).map((entry: Json) => entry.amount);
    expect(amounts).toEqual([40, 5]);
  });
});
