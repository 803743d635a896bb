import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { unique } from "../support/harness.ts";
import { Billing, type Json, waitFor } from "./ops.ts";

/** Every entry of an account, oldest first, with its actor (the `ledger` page, raw SQL path). */
const LEDGER = `query Ledger($accountId: ID!) {
  ledger(accountId: $accountId, first: 100) { edges { node { sequence type actor } } }
}`;

/** The generation's entries (the Prisma relation path) with their actors. */
const GENERATION_ENTRIES = `query Entries($id: ID!) {
  generation(id: $id) { status ledgerEntries { sequence type actor } }
}`;

describe.concurrent("LedgerEntry.actor: who caused each entry", () => {
  let billing: Billing;
  beforeAll(async () => {
    // The server's own tokens: "platform" (service) and "support" (admin); the reaper every 100 ms.
    billing = await Billing.start({ reaperIntervalMs: 100 });
  });
  afterAll(async () => {
    await billing.close();
  });

  async function ledger(accountId: string, token = billing.service): Promise<Json[]> {
    const response = await billing.call(token, LEDGER, { accountId });
    expect(response.errors).toBeUndefined();
    return (response.data.ledger.edges as Json[]).map((edge) => edge.node).reverse();
  }

  it("records the service token's sub on grants and reserves, the admin's on adjustments", async () => {
    const accountId = await billing.account(100);
    const generation = await billing.reserveOk(accountId, { unitCost: 10 });
    expect((await billing.adjust(accountId, 5)).__typename).toBe("AdjustBalanceSuccess");
    expect(await ledger(accountId)).toEqual([
      { sequence: 1, type: "GRANT", actor: "platform" },
      { sequence: 2, type: "USAGE", actor: "platform" },
      { sequence: 3, type: "ADJUSTMENT", actor: "support" },
    ]);
    const read = await billing.call(billing.service, GENERATION_ENTRIES, { id: generation.id });
    expect(read.data.generation.ledgerEntries).toEqual([{ sequence: 2, type: "USAGE", actor: "platform" }]);
  });

  it("records the user's sub when a user cancels their own generation", async () => {
    const alice = unique("alice");
    const accountId = await billing.account(100, { ownerId: alice });
    const generation = await billing.reserveOk(accountId, { unitCost: 10, requestedBy: alice });
    const userToken = await billing.server.token(alice, "user");
    expect((await billing.cancel(generation.id, unique("cancel"), userToken)).__typename).toBe(
      "CancelGenerationSuccess",
    );
    const entries = await ledger(accountId, userToken);
    expect(entries.at(-1)).toEqual({ sequence: 3, type: "REFUND", actor: alice });
    expect(entries.slice(0, 2).map((entry) => entry.actor)).toEqual(["platform", "platform"]);
  });

  it("records system for the reaper's timeout refund, not whoever reserved", async () => {
    const accountId = await billing.account(100);
    const generation = await billing.reserveOk(accountId, { unitCost: 10, timeoutSeconds: 1 });
    const ended = await waitFor(
      async () => {
        const read = await billing.call(billing.service, GENERATION_ENTRIES, { id: generation.id });
        return read.data.generation.status === "TIMED_OUT" ? read.data.generation : undefined;
      },
      15_000,
      "the reaper to time the generation out",
    );
    expect(ended.ledgerEntries).toEqual([
      { sequence: 2, type: "USAGE", actor: "platform" },
      { sequence: 3, type: "REFUND", actor: "system" },
    ]);
  });

  it("records system for an expiry written off ahead of a request, the caller for the request itself", async () => {
    const accountId = await billing.account(0);
    // Far enough ahead to still be in the future when a busy machine gets to the grant.
    const expiresAtMs = Date.now() + 3_000;
    await billing.grant(accountId, 50, { expiresAt: new Date(expiresAtMs).toISOString() });
    await billing.grant(accountId, 20);
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, expiresAtMs - Date.now()) + 100));
    // The adjustment's batch (or the reaper, whichever comes first) writes the expiry off first.
    expect((await billing.adjust(accountId, -5)).__typename).toBe("AdjustBalanceSuccess");
    expect(await ledger(accountId)).toEqual([
      { sequence: 1, type: "GRANT", actor: "platform" },
      { sequence: 2, type: "GRANT", actor: "platform" },
      { sequence: 3, type: "EXPIRY", actor: "system" },
      { sequence: 4, type: "ADJUSTMENT", actor: "support" },
    ]);
  });
});
