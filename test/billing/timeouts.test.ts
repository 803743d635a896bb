import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  Billing,
  closeSql,
  entriesOf,
  entryAmountsOf,
  type Json,
  localIdOf,
  sleep,
  sql,
  waitFor,
} from "./ops.ts";

/**
 * Locks an account's row in a transaction of its own until `untilMs` (epoch
 * ms), as a transaction of another instance would. Resolves `held` once the
 * lock is taken (so the test never races the lock on a busy machine) and
 * `released` when it has let go.
 */
async function holdAccountLock(
  accountGlobalId: string,
  untilMs: number,
): Promise<{ held: Promise<void>; released: Promise<void> }> {
  let markHeld: () => void = () => {};
  const held = new Promise<void>((resolve) => {
    markHeld = resolve;
  });
  const released = sql().transaction({ isolation: "READ COMMITTED", timeoutMs: 30_000 }, async (tx) => {
    await tx.query("SELECT id FROM account WHERE id = $1 FOR UPDATE", [localIdOf(accountGlobalId)]);
    markHeld();
    await sleep(Math.max(untilMs - Date.now(), 0));
  });
  return { held, released };
}

describe.concurrent("timeouts (reaper every 100 ms)", () => {
  let billing: Billing;
  beforeAll(async () => {
    billing = await Billing.start({ reaperIntervalMs: 100 });
  });
  afterAll(async () => {
    await billing.close();
    await closeSql();
  });

  it("ends unfinished items TIMED_OUT with reason TIMEOUT within 5 s of the deadline and refunds them", async () => {
    const accountId = await billing.account(100);
    const reserved = await billing.reserveOk(accountId, { unitCost: 10, quantity: 2, timeoutSeconds: 1 });
    const deadline = new Date(reserved.deadline).getTime();
    expect(deadline - new Date(reserved.createdAt).getTime()).toBe(1_000);
    const generation = await waitFor(
      async () => {
        const current = await billing.generation(reserved.id);
        return current.status === "IN_PROGRESS" ? undefined : current;
      },
      15_000,
      "the reaper to time the generation out",
    );
    // Measured on the server's clock (when the reaper's transaction ran), not by this poll.
    const finishedAt = new Date(generation.finishedAt).getTime();
    expect(finishedAt).toBeGreaterThanOrEqual(deadline);
    expect(finishedAt - deadline).toBeLessThan(5_000);
    expect(generation).toMatchObject({
      status: "TIMED_OUT",
      refunded: 20,
      charged: 0,
      failureReason: "TIMEOUT",
    });
    for (const item of generation.items)
      expect(item).toMatchObject({ status: "TIMED_OUT", reason: "TIMEOUT" });
    expect(generation.ledgerEntries.map((entry: Json) => [entry.type, entry.amount, entry.status])).toEqual([
      ["USAGE", -20, "FAILED"],
      ["REFUND", 20, "COMPLETED"],
    ]);
    expect(generation.ledgerEntries[1].reason).toBe("TIMEOUT");
    expect(generation.ledgerEntries[1].message).toBe("No result within 1 second");
    expect(await billing.balance(accountId)).toMatchObject({ available: 100, held: 0 });

    const late = await billing.settle(reserved.id);
    expect(late).toMatchObject({ __typename: "AlreadyFinalizedError", generation: { status: "TIMED_OUT" } });
    const latePerItem = await billing.settle(reserved.id, [{ index: 0, succeeded: true }]);
    expect(latePerItem.__typename).toBe("AlreadyFinalizedError");
    expect((await billing.generation(reserved.id)).charged).toBe(0);
    expect(await entryAmountsOf(reserved.id)).toEqual({ USAGE: [-20], REFUND: [20] });
    expect(await billing.balance(accountId)).toMatchObject({ available: 100, held: 0 });
  });

  it("times out only the items still unfinished at the deadline", async () => {
    // The first report must land before the deadline; on a machine too busy for that within
    // 3 s, the story is tried again on a new account with a longer timeout.
    let accountId = "";
    let reserved: Json = null;
    for (const timeoutSeconds of [3, 10, 30]) {
      accountId = await billing.account(100);
      reserved = await billing.reserveOk(accountId, { unitCost: 10, quantity: 3, timeoutSeconds });
      const reported = await billing.settle(reserved.id, [
        { index: 0, succeeded: true, cost: 7 },
        { index: 1, succeeded: false, reason: "PROVIDER_ERROR" },
      ]);
      if (reported.__typename === "SettleGenerationSuccess") break;
      // Only lateness excuses a refusal: the report came after the deadline.
      expect(reported.__typename).toBe("AlreadyFinalizedError");
      expect(Date.now()).toBeGreaterThan(new Date(reserved.deadline).getTime());
      reserved = null;
    }
    if (reserved === null) throw new Error("no report landed before a 30 s deadline");
    const generation = await waitFor(
      async () => {
        const current = await billing.generation(reserved.id);
        return current.status === "IN_PROGRESS" ? undefined : current;
      },
      15_000,
      "the timeout",
    );
    expect(generation).toMatchObject({
      status: "PARTIALLY_SUCCEEDED",
      charged: 7,
      released: 3,
      refunded: 20,
    });
    expect(generation.items.map((item: Json) => [item.status, item.reason])).toEqual([
      ["SUCCEEDED", null],
      ["FAILED", "PROVIDER_ERROR"],
      ["TIMED_OUT", "TIMEOUT"],
    ]);
    const refunds = generation.ledgerEntries
      .filter((entry: Json) => entry.type === "REFUND")
      .map((entry: Json) => [entry.reason, entry.amount]);
    expect(refunds).toEqual([
      ["PROVIDER_ERROR", 10],
      ["TIMEOUT", 10],
    ]);
    expect(await billing.balance(accountId)).toMatchObject({ available: 93, held: 0 });
  }, 120_000);
});

describe.concurrent("timeouts without a reaper", () => {
  let billing: Billing;
  beforeAll(async () => {
    billing = await Billing.start({ reaperEnabled: false });
  });
  afterAll(async () => {
    await billing.close();
    await closeSql();
  });

  it("a settle that arrives after the deadline finds the items timed out and charges nothing", async () => {
    const accountId = await billing.account(100);
    const reserved = await billing.reserveOk(accountId, { unitCost: 10, quantity: 2, timeoutSeconds: 1 });
    await sleep(new Date(reserved.deadline).getTime() - Date.now() + 50);
    const late = await billing.settle(reserved.id, [{ index: 0, succeeded: true }]);
    expect(late).toMatchObject({ __typename: "AlreadyFinalizedError", generation: { status: "TIMED_OUT" } });
    const generation = await billing.generation(reserved.id);
    expect(generation).toMatchObject({ status: "TIMED_OUT", charged: 0, refunded: 20 });
    expect(await entryAmountsOf(reserved.id)).toEqual({ USAGE: [-20], REFUND: [20] });
    expect(await billing.balance(accountId)).toMatchObject({ available: 100, held: 0 });
  });

  it("a refund after the deadline is AlreadyFinalizedError: the timeout came first", async () => {
    const accountId = await billing.account(100);
    const reserved = await billing.reserveOk(accountId, { unitCost: 10, timeoutSeconds: 1 });
    await sleep(new Date(reserved.deadline).getTime() - Date.now() + 50);
    const late = await billing.refund(reserved.id, "PROVIDER_ERROR");
    expect(late).toMatchObject({ __typename: "AlreadyFinalizedError", generation: { status: "TIMED_OUT" } });
    expect(await entryAmountsOf(reserved.id)).toEqual({ USAGE: [-10], REFUND: [10] });
  });

  it("a settle that waits for the account past the deadline finds the items timed out", async () => {
    const accountId = await billing.account(100);
    // A few seconds of margin so a busy machine still gets the lock in place before the deadline.
    const reserved = await billing.reserveOk(accountId, { unitCost: 10, timeoutSeconds: 3 });
    const deadline = new Date(reserved.deadline).getTime();
    // Another transaction (another instance, say) holds the account row across the deadline.
    const { held, released } = await holdAccountLock(accountId, deadline + 400);
    await held;
    const settled = await billing.settle(reserved.id);
    await released;
    expect(settled).toMatchObject({
      __typename: "AlreadyFinalizedError",
      generation: { status: "TIMED_OUT" },
    });
    const generation = await billing.generation(reserved.id);
    expect(generation).toMatchObject({ status: "TIMED_OUT", charged: 0, refunded: 10 });
    expect(new Date(generation.finishedAt).getTime()).toBeGreaterThanOrEqual(deadline);
  });

  it("a reserve that waits for the account past a grant's expiry does not draw from that grant", async () => {
    const accountId = await billing.account(10);
    const expiresAt = new Date(Date.now() + 3_000);
    await billing.grant(accountId, 10, { source: "SUBSCRIPTION", expiresAt: expiresAt.toISOString() });
    const { held, released } = await holdAccountLock(accountId, expiresAt.getTime() + 400);
    await held;
    const reserved = await billing.reserve(accountId, { unitCost: 10 });
    await released;
    expect(reserved.__typename).toBe("ReserveGenerationSuccess");
    // The subscription grant expired (EXPIRY −10) before the hold, which came from the wallet.
    expect(reserved.balance).toMatchObject({ available: 0, subscription: 0, wallet: 0, held: 10 });
    const entries = (await entriesOf(accountId)).map((entry) => [entry.type, entry.amount]);
    expect(entries).toEqual([
      ["GRANT", 10],
      ["GRANT", 10],
      ["EXPIRY", -10],
      ["USAGE", -10],
    ]);
  });

  it("uses 150 minutes when timeoutSeconds is omitted", async () => {
    const accountId = await billing.account(100);
    const reserved = await billing.reserveOk(accountId, { unitCost: 10 });
    expect(new Date(reserved.deadline).getTime() - new Date(reserved.createdAt).getTime()).toBe(9_000_000);
  });
});
