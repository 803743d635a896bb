import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Billing, closeSql, entriesOf, localIdOf, sql } from "./ops.ts";

describe.concurrent("reserveGeneration", () => {
  let billing: Billing;
  beforeAll(async () => {
    billing = await Billing.start({ reaperEnabled: false });
  });
  afterAll(async () => {
    await billing.close();
    await closeSql();
  });

  it("holds unitCost × quantity and writes one pending USAGE entry", async () => {
    const accountId = await billing.account(100);
    const result = await billing.reserve(accountId, { feature: "Image batch", unitCost: 7, quantity: 4 });
    expect(result.__typename).toBe("ReserveGenerationSuccess");
    expect(result.replayed).toBe(false);
    expect(result.balance).toMatchObject({ available: 72, held: 28, total: 100, wallet: 72, sequence: 2 });
    const generation = result.generation;
    expect(generation).toMatchObject({
      status: "IN_PROGRESS",
      quantity: 4,
      unitCost: 7,
      reserved: 28,
      charged: 0,
      refunded: 0,
      released: 0,
      finishedAt: null,
    });
    expect(generation.items.map((item: { index: number }) => item.index)).toEqual([0, 1, 2, 3]);
    for (const item of generation.items) {
      expect(item).toMatchObject({
        status: "IN_PROGRESS",
        reserved: 7,
        charged: 0,
        refunded: 0,
        reason: null,
      });
    }
    expect(generation.ledgerEntries).toHaveLength(1);
    expect(generation.ledgerEntries[0]).toMatchObject({
      type: "USAGE",
      amount: -28,
      status: "PENDING",
      title: "Image batch",
      balanceBefore: 100,
      balanceAfter: 72,
      sequence: 2,
    });
    const state = await billing.accountState(accountId);
    expect(state.grants).toEqual([expect.objectContaining({ remaining: 72, held: 28 })]);
  });

  it("fails with InsufficientCreditsError and writes nothing when unitCost × quantity is not available", async () => {
    const accountId = await billing.account(50);
    const result = await billing.reserve(accountId, { unitCost: 17, quantity: 3 });
    expect(result).toMatchObject({
      __typename: "InsufficientCreditsError",
      code: "INSUFFICIENT_CREDITS",
      available: 50,
      required: 51,
    });
    expect(await billing.balance(accountId)).toMatchObject({ available: 50, held: 0, sequence: 1 });
    const [row] = await sql().query<{ generations: number; postings: number }>(
      `SELECT (SELECT count(*)::int FROM generation WHERE account_id = $1) AS generations,
              (SELECT count(*)::int FROM posting WHERE account_id = $1) AS postings`,
      [localIdOf(accountId)],
    );
    // The GRANT's two postings are all there is.
    expect(row).toEqual({ generations: 0, postings: 2 });
    expect((await entriesOf(accountId)).map((entry) => entry.type)).toEqual(["GRANT"]);
  });

  it("takes exactly everything that is available", async () => {
    const accountId = await billing.account(30);
    const result = await billing.reserve(accountId, { unitCost: 10, quantity: 3 });
    expect(result.__typename).toBe("ReserveGenerationSuccess");
    expect(result.balance).toMatchObject({ available: 0, held: 30 });
    const next = await billing.reserve(accountId, { unitCost: 1 });
    expect(next).toMatchObject({ __typename: "InsufficientCreditsError", available: 0, required: 1 });
  });

  it("returns NotFoundError for an account that does not exist, writing nothing", async () => {
    const missing = Buffer.from("Account:00000000-0000-4000-8000-000000000000").toString("base64");
    const result = await billing.reserve(missing, { unitCost: 1 });
    expect(result).toMatchObject({ __typename: "NotFoundError", code: "NOT_FOUND" });
  });

  it("is not allowed for user tokens", async () => {
    const accountId = await billing.account(10);
    const user = await billing.server.token("someone", "user");
    const result = await billing.reserve(accountId, { unitCost: 1 }, user);
    expect(result).toMatchObject({ __typename: "ForbiddenError", code: "FORBIDDEN" });
    expect(await billing.balance(accountId)).toMatchObject({ available: 10, held: 0 });
  });
});
