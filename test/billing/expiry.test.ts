import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Billing, closeSql, entriesOf, entryAmountsOf, inMs, type Json, sleep, waitFor } from "./ops.ts";

/** Waits until `iso` has passed, plus a margin for clock rounding. */
async function until(iso: string, marginMs = 100): Promise<void> {
  const wait = new Date(iso).getTime() - Date.now() + marginMs;
  if (wait > 0) await sleep(wait);
}

/**
 * Runs `before` on a fresh account whose subscription grant expires soon after,
 * and returns once the grant has expired. `before` must finish before the
 * expiry; on a machine too busy for that it is tried again on a new account
 * with a longer window, so the test checks the rule rather than the load.
 */
async function beforeExpiry<T>(
  billing: Billing,
  setup: { subscription: number; wallet?: number },
  before: (accountId: string) => Promise<T>,
): Promise<{ accountId: string; expiresAt: string; value: T }> {
  for (const windowMs of [2_000, 5_000, 12_000]) {
    const accountId = await billing.account(setup.wallet ?? 0);
    const expiresAt = inMs(windowMs);
    try {
      // Inside the try: on a busy machine the grant itself can arrive after `expiresAt`.
      await billing.grant(accountId, setup.subscription, { source: "SUBSCRIPTION", expiresAt });
      const value = await before(accountId);
      if (Date.now() < new Date(expiresAt).getTime()) {
        await until(expiresAt);
        return { accountId, expiresAt, value };
      }
    } catch {
      // The grant expired before it landed or before `before` finished: try a longer window.
    }
  }
  throw new Error("could not run the steps before a 12 s expiry");
}

describe.concurrent("grant expiry", () => {
  let billing: Billing;
  beforeAll(async () => {
    billing = await Billing.start({ reaperIntervalMs: 100 });
  });
  afterAll(async () => {
    await billing.close();
    await closeSql();
  });

  it("the reaper writes the unheld remainder off with an EXPIRY entry within 5 s", async () => {
    const { accountId, expiresAt, value } = await beforeExpiry(
      billing,
      { subscription: 30, wallet: 5 },
      async (id) => {
        const reserved = await billing.reserve(id, { unitCost: 12 });
        if (reserved.__typename !== "ReserveGenerationSuccess") throw new Error(reserved.__typename);
        return reserved;
      },
    );
    expect(value.balance).toMatchObject({ available: 23, subscription: 18, held: 12 });
    const expiry = await waitFor(
      async () => (await entriesOf(accountId)).find((entry) => entry.type === "EXPIRY"),
      15_000,
      "an EXPIRY entry",
    );
    // Measured on the server's clock: when the reaper's transaction wrote the entry.
    expect(new Date(expiry.created_at).getTime() - new Date(expiresAt).getTime()).toBeLessThan(5_000);
    expect(expiry).toMatchObject({
      amount: -18,
      title: "Credits expired",
      balance_before: 23,
      balance_after: 5,
    });
    expect(await billing.balance(accountId)).toMatchObject({
      available: 5,
      subscription: 0,
      wallet: 5,
      held: 12,
    });
    const state = await billing.accountState(accountId);
    expect(state.grants.map((g: Json) => g.source)).toEqual(["WALLET"]);
    const all = await billing.accountState(accountId, true);
    expect(all.grants.find((g: Json) => g.source === "SUBSCRIPTION")).toMatchObject({
      remaining: 0,
      held: 12,
    });
  });

  it("writes a refund into a grant that expired in the meantime off with an EXPIRY entry", async () => {
    const { accountId, value: id } = await beforeExpiry(
      billing,
      { subscription: 20 },
      async (account) => (await billing.reserveOk(account, { unitCost: 20, feature: "Quick Video" })).id,
    );
    const result = await billing.refund(id, "PROVIDER_ERROR");
    expect(result.generation).toMatchObject({ status: "FAILED", refunded: 20 });
    expect(result.balance).toMatchObject({ available: 0, held: 0, subscription: 0 });
    const entries = await entriesOf(accountId);
    expect(entries.map((entry) => [entry.type, entry.amount])).toEqual([
      ["GRANT", 20],
      ["USAGE", -20],
      ["REFUND", 20],
      ["EXPIRY", -20],
    ]);
    expect(entries.at(-1)).toMatchObject({ title: "Credits expired", balance_before: 20, balance_after: 0 });
  });

  it("returns what came from a live grant and writes off only what came from the expired one", async () => {
    const { accountId, value: id } = await beforeExpiry(
      billing,
      { subscription: 10, wallet: 30 },
      async (account) => {
        const generation = await billing.reserveOk(account, { unitCost: 8, quantity: 3 });
        // Both grants are drawn only if the subscription grant was still live.
        if ((await billing.balance(account)).subscription !== 0) throw new Error("drew from the wallet only");
        return generation.id;
      },
    );
    // Drawn: 10 from the subscription grant, then 14 from the wallet. Item 0 succeeds at 5, charged
    // from the subscription grant (first drawn); the 19 that come back (16 refunded, 3 released)
    // return last drawn first: 14 to the wallet, 5 to the expired subscription grant, written off.
    const result = await billing.settle(id, [
      { index: 0, succeeded: true, cost: 5 },
      { index: 1, succeeded: false, reason: "PROVIDER_ERROR" },
      { index: 2, succeeded: false, reason: "PROVIDER_ERROR" },
    ]);
    expect(result.generation).toMatchObject({ charged: 5, released: 3, refunded: 16 });
    expect(await entryAmountsOf(id)).toEqual({ USAGE: [-24], REFUND: [16], RELEASE: [3] });
    const last = (await entriesOf(accountId)).at(-1);
    expect(last).toMatchObject({ type: "EXPIRY", amount: -5 });
    expect(result.balance).toMatchObject({ available: 30, wallet: 30, subscription: 0, held: 0 });
  });

  it("writes off a support refund into an expired grant", async () => {
    const { accountId, value: id } = await beforeExpiry(billing, { subscription: 10 }, async (account) => {
      const { id } = await billing.reserveOk(account, { unitCost: 10 });
      await billing.settle(id);
      return id;
    });
    const result = await billing.supportRefund(id, 4);
    expect(result.generation).toMatchObject({ charged: 10, refunded: 4 });
    expect(result.balance).toMatchObject({ available: 0 });
    const tail = (await entriesOf(accountId)).slice(-2).map((entry) => [entry.type, entry.amount]);
    expect(tail).toEqual([
      ["REFUND", 4],
      ["EXPIRY", -4],
    ]);
  });
});
