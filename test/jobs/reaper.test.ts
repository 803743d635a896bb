import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Reaper } from "../../src/jobs/reaper.ts";
import { createLogger } from "../../src/log.ts";
import { Billing, localIdOf } from "../billing/ops.ts";
import { createOwnDatabase, type OwnDatabase } from "../support/own-database.ts";
import { onPglite } from "../support/test-database.ts";

/** A reaper over the test server's database and executor, reading time from `clock`. */
function reaperOf(billing: Billing, clock: () => Date): Reaper {
  const { db, ledger } = billing.server.app;
  return new Reaper(
    db,
    ledger.executor,
    { intervalMs: 1_000, batchSizeMax: 50, clock },
    createLogger("silent"),
  );
}

async function statusOf(billing: Billing, generationId: string): Promise<string | undefined> {
  const [row] = await billing.server.app.db.query<{ status: string }>(
    "SELECT status FROM generation WHERE id = $1",
    [generationId],
  );
  return row?.status;
}

describe("the reaper counts what it did", () => {
  let billing: Billing;
  let own: OwnDatabase | undefined;
  beforeAll(async () => {
    // A database of its own (PGlite's is the file's already): other files' servers reap the shared
    // test database, and their overdue generations would be counted here. No reaper of its own
    // either: the reapers of this test are the only ones timing anything out.
    own = onPglite() ? undefined : await createOwnDatabase("creditbook_reaper_counts");
    billing = await Billing.start({ reaperEnabled: false, ...(own && { databaseUrl: own.url }) });
  }, 60_000);
  afterAll(async () => {
    await billing.close();
    if (own !== undefined) {
      expect(await own.auditProblems()).toEqual([]);
      await own.drop();
    }
  });

  it("a generation its round picked up but the transaction found not yet overdue is not counted", async () => {
    const account = await billing.account(100);
    const generation = await billing.reserveOk(account, { unitCost: 5, quantity: 1, timeoutSeconds: 600 });
    const id = localIdOf(generation.id);
    // The round's clock is an hour ahead (another instance's skewed clock): it picks the generation up,
    // but the transaction judges the deadline by its own clock and leaves the generation running.
    const reaper = reaperOf(billing, () => new Date(Date.now() + 3_600_000));
    await reaper.round();
    expect(await statusOf(billing, id)).toBe("IN_PROGRESS");
    expect(reaper.stats.generationsTimedOut).toBe(0);
  });

  it("counts a generation it timed out", async () => {
    const account = await billing.account(100);
    const generation = await billing.reserveOk(account, { unitCost: 5, quantity: 2, timeoutSeconds: 1 });
    const id = localIdOf(generation.id);
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    const first = reaperOf(billing, () => new Date());
    await first.round();
    expect(await statusOf(billing, id)).toBe("TIMED_OUT");
    expect(first.stats.generationsTimedOut).toBe(1);
  });
});
