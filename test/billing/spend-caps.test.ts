import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dataOf, unique } from "../support/harness.ts";
import { onPglite } from "../support/test-database.ts";
import { Billing, closeSql, type Json } from "./ops.ts";
import { QUOTE, setCap } from "./pricing.ts";

const CAPS = `query Caps($id: ID!) { account(id: $id) { spendCaps { memberId period amount spent remaining resetsAt } } }`;

describe.concurrent("spend caps per member", () => {
  let billing: Billing;
  const caps = async (accountId: string, token = billing.service): Promise<Json[]> =>
    dataOf<Json>(await billing.call(token, CAPS, { id: accountId })).account.spendCaps;

  beforeAll(async () => {
    billing = await Billing.start({ reaperEnabled: false });
  });
  afterAll(async () => {
    await billing.close();
    await closeSql();
  });

  it("a member's reserves stop at the cap; other members and refunds behave", async () => {
    const pool = await billing.account(1_000, { kind: "WORKSPACE" });
    const alice = unique("alice");
    const bob = unique("bob");
    const set = await setCap(billing, pool, alice, "DAY", 50);
    expect(set).toMatchObject({
      __typename: "SetSpendCapSuccess",
      cap: { amount: 50, spent: 0, remaining: 50 },
    });

    const first = await billing.reserveOk(pool, { unitCost: 20, quantity: 2, requestedBy: alice });
    const refused = await billing.reserve(pool, { unitCost: 11, requestedBy: alice });
    expect(refused).toMatchObject({
      __typename: "SpendCapExceededError",
      code: "SPEND_CAP_EXCEEDED",
      cap: { memberId: alice, period: "DAY", amount: 50, spent: 40, remaining: 10 },
    });
    expect(new Date(refused.cap.resetsAt).getTime()).toBe(
      Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth(), new Date().getUTCDate() + 1),
    );
    expect((await billing.accountState(pool)).balance).toMatchObject({ available: 960, held: 40 });
    await billing.reserveOk(pool, { unitCost: 10, requestedBy: alice });
    await billing.reserveOk(pool, { unitCost: 300, requestedBy: bob });
    await billing.reserveOk(pool, { unitCost: 300 });

    // A failed item gives its credits back to the cap; a delivered one keeps counting.
    await billing.settle(first.id, [
      { index: 0, succeeded: true },
      { index: 1, succeeded: false, reason: "GENERATION_FAILED" },
    ]);
    const [cap] = (await caps(pool)).filter((c) => c.memberId === alice);
    expect(cap).toMatchObject({ spent: 30, remaining: 20 });
    await billing.reserveOk(pool, { unitCost: 20, requestedBy: alice });
  });

  it("64 concurrent reserves by one member never pass the cap by a single credit", async () => {
    const pool = await billing.account(10_000, { kind: "WORKSPACE" });
    const member = unique("member");
    await setCap(billing, pool, member, "MONTH", 100);
    const attempts = onPglite() ? 32 : 64;
    const answers = await Promise.all(
      Array.from({ length: attempts }, () => billing.reserve(pool, { unitCost: 7, requestedBy: member })),
    );
    const won = answers.filter((a) => a.__typename === "ReserveGenerationSuccess");
    const capped = answers.filter((a) => a.__typename === "SpendCapExceededError");
    expect(won).toHaveLength(14);
    expect(capped).toHaveLength(attempts - 14);
    expect(await caps(pool)).toEqual([
      expect.objectContaining({ memberId: member, spent: 98, remaining: 2 }),
    ]);
    expect((await billing.accountState(pool)).balance).toMatchObject({ held: 98 });
  });

  it("the tightest cap refuses, and the quote shows what is left", async () => {
    const pool = await billing.account(500, { kind: "WORKSPACE" });
    const member = unique("member");
    await setCap(billing, pool, member, "DAY", 30);
    await setCap(billing, pool, member, "MONTH", 25);
    await billing.reserveOk(pool, { unitCost: 20, requestedBy: member });
    const quote = dataOf<Json>(
      await billing.call(billing.service, QUOTE, {
        accountId: pool,
        feature: "Image",
        unitCost: 10,
        requestedBy: member,
      }),
    ).quoteGeneration;
    expect(quote).toEqual({
      unitCost: 10,
      total: 10,
      available: 480,
      affordable: false,
      shortfall: 5,
      capRemaining: 5,
    });
    const refused = await billing.reserve(pool, { unitCost: 10, requestedBy: member });
    expect(refused.cap).toMatchObject({ period: "MONTH", remaining: 5 });
  });

  it("a cap is set by the platform or the account's OWNER, removed with null, and 0 stops every reserve", async () => {
    const owner = unique("owner");
    const pool = await billing.account(100, { kind: "WORKSPACE", ownerId: owner });
    const member = unique("member");
    const ownerToken = await billing.server.token(owner, "user");
    const strangerToken = await billing.server.token(unique("stranger"), "user");
    expect(await setCap(billing, pool, member, "DAY", 0, ownerToken)).toMatchObject({
      __typename: "SetSpendCapSuccess",
      cap: { amount: 0, remaining: 0 },
    });
    expect((await billing.reserve(pool, { unitCost: 1, requestedBy: member })).__typename).toBe(
      "SpendCapExceededError",
    );
    expect((await setCap(billing, pool, member, "DAY", 5, strangerToken)).__typename).toBe("NotFoundError");
    expect(await setCap(billing, pool, member, "DAY", -1)).toMatchObject({
      __typename: "InvalidInputError",
      field: "amount",
    });
    expect((await setCap(billing, pool, member, "DAY", null)).cap).toBeNull();
    expect(await caps(pool, ownerToken)).toEqual([]);
    await billing.reserveOk(pool, { unitCost: 1, requestedBy: member });
    const missing = "QWNjb3VudDowMDAwMDAwMC0wMDAwLTQwMDAtODAwMC0wMDAwMDAwMDAwMDA=";
    expect((await setCap(billing, missing, member, "DAY", 5)).__typename).toBe("NotFoundError");
  });
});
