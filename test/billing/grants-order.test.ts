import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { unique } from "../support/harness.ts";
import { Billing, closeSql, entryAmountsOf, inMs, type Json, localIdOf, sql } from "./ops.ts";

const DAY_MS = 86_400_000;

/** remaining/held of each grant, by the name the test gave it. */
async function grantsByName(billing: Billing, accountId: string, names: Record<string, string>) {
  const state = await billing.accountState(accountId, true);
  const out: Record<string, { remaining: number; held: number }> = {};
  for (const [name, id] of Object.entries(names)) {
    const grant = state.grants.find((g: Json) => g.id === id);
    if (grant === undefined) throw new Error(`grant ${name} not listed`);
    out[name] = { remaining: grant.remaining, held: grant.held };
  }
  return out;
}

describe.concurrent("order of credits", () => {
  let billing: Billing;
  beforeAll(async () => {
    billing = await Billing.start({ reaperEnabled: false });
  });
  afterAll(async () => {
    await billing.close();
    await closeSql();
  });

  it("draws subscription grants first, soonest expiry first, then wallet grants oldest first", async () => {
    const accountId = await billing.account();
    const walletOld = (await billing.grant(accountId, 10)).grant.id;
    const subLate = (
      await billing.grant(accountId, 10, { source: "SUBSCRIPTION", expiresAt: inMs(3 * DAY_MS) })
    ).grant.id;
    const subSoon = (await billing.grant(accountId, 10, { source: "SUBSCRIPTION", expiresAt: inMs(DAY_MS) }))
      .grant.id;
    const walletNew = (await billing.grant(accountId, 10)).grant.id;
    const names = { walletOld, subLate, subSoon, walletNew };

    await billing.reserveOk(accountId, { unitCost: 5 });
    expect(await grantsByName(billing, accountId, names)).toEqual({
      subSoon: { remaining: 5, held: 5 },
      subLate: { remaining: 10, held: 0 },
      walletOld: { remaining: 10, held: 0 },
      walletNew: { remaining: 10, held: 0 },
    });
    await billing.reserveOk(accountId, { unitCost: 22 });
    expect(await grantsByName(billing, accountId, names)).toEqual({
      subSoon: { remaining: 0, held: 10 },
      subLate: { remaining: 0, held: 10 },
      walletOld: { remaining: 3, held: 7 },
      walletNew: { remaining: 10, held: 0 },
    });
    expect(await billing.balance(accountId)).toMatchObject({ available: 13, subscription: 0, wallet: 13 });
  });

  it("draws subscription grants without an expiry after those with one, oldest first", async () => {
    const accountId = await billing.account();
    const open1 = (await billing.grant(accountId, 10, { source: "SUBSCRIPTION" })).grant.id;
    const open2 = (await billing.grant(accountId, 10, { source: "SUBSCRIPTION" })).grant.id;
    const open3 = (await billing.grant(accountId, 10, { source: "SUBSCRIPTION" })).grant.id;
    const dated = (await billing.grant(accountId, 10, { source: "SUBSCRIPTION", expiresAt: inMs(DAY_MS) }))
      .grant.id;
    await billing.reserveOk(accountId, { unitCost: 25 });
    expect(await grantsByName(billing, accountId, { dated, open1, open2, open3 })).toEqual({
      dated: { remaining: 0, held: 10 },
      open1: { remaining: 0, held: 10 },
      open2: { remaining: 5, held: 5 },
      open3: { remaining: 10, held: 0 },
    });
  });

  it("charges in draw order and gives releases and refunds back to the grants they came from, last drawn first", async () => {
    const accountId = await billing.account();
    const sub = (await billing.grant(accountId, 15, { source: "SUBSCRIPTION", expiresAt: inMs(DAY_MS) }))
      .grant.id;
    const wallet = (await billing.grant(accountId, 30)).grant.id;
    const names = { sub, wallet };
    const { id } = await billing.reserveOk(accountId, { unitCost: 10, quantity: 4 });
    expect(await grantsByName(billing, accountId, names)).toEqual({
      sub: { remaining: 0, held: 15 },
      wallet: { remaining: 5, held: 25 },
    });

    // Charge 4 from the first draw (sub); the surplus 6 goes back to the last draw (wallet).
    await billing.settle(id, [{ index: 0, succeeded: true, cost: 4 }]);
    expect(await grantsByName(billing, accountId, names)).toEqual({
      sub: { remaining: 0, held: 11 },
      wallet: { remaining: 11, held: 19 },
    });
    // A failed item's 10 goes back to the wallet too.
    await billing.settle(id, [{ index: 1, succeeded: false, reason: "PROVIDER_ERROR" }]);
    expect(await grantsByName(billing, accountId, names)).toEqual({
      sub: { remaining: 0, held: 11 },
      wallet: { remaining: 21, held: 9 },
    });
    // Two successes of 10: 11 more from sub, then 9 from the wallet.
    await billing.settle(id, [
      { index: 2, succeeded: true },
      { index: 3, succeeded: true },
    ]);
    expect(await grantsByName(billing, accountId, names)).toEqual({
      sub: { remaining: 0, held: 0 },
      wallet: { remaining: 21, held: 0 },
    });
    const draws = await sql().query<Json>(
      `SELECT g.source, d.amount::int, d.charged::int, d.returned::int, d.held::int
         FROM generation_draw d JOIN credit_grant g ON g.id = d.grant_id
        WHERE d.generation_id = $1 ORDER BY d.draw_index`,
      [localIdOf(id)],
    );
    expect(draws).toEqual([
      { source: "SUBSCRIPTION", amount: 15, charged: 15, returned: 0, held: 0 },
      { source: "WALLET", amount: 25, charged: 9, returned: 16, held: 0 },
    ]);
  });

  it("refunds a whole generation to the grants it drew from, whatever was drawn since", async () => {
    const accountId = await billing.account();
    const sub = (await billing.grant(accountId, 10, { source: "SUBSCRIPTION", expiresAt: inMs(DAY_MS) }))
      .grant.id;
    const wallet = (await billing.grant(accountId, 20)).grant.id;
    const first = await billing.reserveOk(accountId, { unitCost: 15 });
    await billing.reserveOk(accountId, { unitCost: 10 });
    expect(await grantsByName(billing, accountId, { sub, wallet })).toEqual({
      sub: { remaining: 0, held: 10 },
      wallet: { remaining: 5, held: 15 },
    });
    await billing.refund(first.id);
    expect(await grantsByName(billing, accountId, { sub, wallet })).toEqual({
      sub: { remaining: 10, held: 0 },
      wallet: { remaining: 10, held: 10 },
    });
    expect(await billing.balance(accountId)).toMatchObject({ available: 20, subscription: 10, wallet: 10 });
  });

  it("gives a support refund back to the grants it was charged from, last drawn first", async () => {
    const accountId = await billing.account();
    const sub = (await billing.grant(accountId, 10, { source: "SUBSCRIPTION", expiresAt: inMs(DAY_MS) }))
      .grant.id;
    const wallet = (await billing.grant(accountId, 10)).grant.id;
    const { id } = await billing.reserveOk(accountId, { unitCost: 10, quantity: 2 });
    await billing.settle(id);
    await billing.supportRefund(id, 13);
    expect(await grantsByName(billing, accountId, { sub, wallet })).toEqual({
      sub: { remaining: 3, held: 0 },
      wallet: { remaining: 10, held: 0 },
    });
  });

  it("touches only the workspace account for a workspace generation", async () => {
    const alice = unique("alice");
    const personal = await billing.account(100, { ownerId: alice });
    const workspace = await billing.account(100, { kind: "WORKSPACE", ownerId: alice });
    const personalBefore = await billing.balance(personal);
    const failed = await billing.reserveOk(workspace, { unitCost: 30, requestedBy: alice });
    await billing.refund(failed.id, "SERVICE_UNAVAILABLE");
    const kept = await billing.reserveOk(workspace, { unitCost: 20, quantity: 2, requestedBy: alice });
    await billing.settle(kept.id, [
      { index: 0, succeeded: true },
      { index: 1, succeeded: false, reason: "CONTENT_REJECTED" },
    ]);
    expect(await billing.balance(workspace)).toMatchObject({ available: 80, held: 0 });
    expect(await billing.balance(personal)).toEqual(personalBefore);
    const rows = await sql().query<{ table: string; account_id: string }>(
      `SELECT DISTINCT 'entry' AS table, account_id::text FROM ledger_entry WHERE generation_id = ANY($1::uuid[])
       UNION SELECT DISTINCT 'posting', account_id::text FROM posting WHERE generation_id = ANY($1::uuid[])
       UNION SELECT DISTINCT 'grant', g.account_id::text FROM generation_draw d JOIN credit_grant g ON g.id = d.grant_id
              WHERE d.generation_id = ANY($1::uuid[])`,
      [[localIdOf(failed.id), localIdOf(kept.id)]],
    );
    expect(new Set(rows.map((row) => row.account_id))).toEqual(new Set([localIdOf(workspace)]));
    expect(await entryAmountsOf(failed.id)).toEqual({ USAGE: [-30], REFUND: [30] });
  });
});
