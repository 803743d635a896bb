import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { unique } from "../support/harness.ts";
import { type ServerProcess, startServerProcess } from "../support/process.ts";
import {
  auditAccount,
  Billing,
  closeSql,
  inMs,
  type Json,
  localIdOf,
  POOL_SIZE_MAX,
  RESERVE_SLIM,
  sql,
  tally,
  waitFor,
} from "./ops.ts";

/** A server process of this test: reaper every 100 ms, pool sized like the in-process servers. */
function spawnInstance(env: Record<string, string>): Promise<ServerProcess> {
  return startServerProcess({ REAPER_INTERVAL_MS: "100", DATABASE_POOL_SIZE: String(POOL_SIZE_MAX), ...env });
}

async function stopInstance(instance: ServerProcess | undefined): Promise<void> {
  await instance?.stop();
}

async function post(
  url: string,
  token: string,
  query: string,
  variables: Record<string, unknown>,
): Promise<Json> {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await response.json()) as Json;
  if (body.errors !== undefined) throw new Error(JSON.stringify(body.errors));
  return body.data;
}

describe("two server instances as separate processes", () => {
  let creator: Billing;
  let first: ServerProcess | undefined;
  let second: ServerProcess | undefined;
  beforeAll(async () => {
    // The creator only writes through the API; the two processes do all the reaping.
    creator = await Billing.start({ reaperEnabled: false }, { slim: true });
    [first, second] = await Promise.all([spawnInstance({}), spawnInstance({ REAPER_BATCH_SIZE: "40" })]);
  }, 60_000);
  afterAll(async () => {
    await Promise.all([stopInstance(first), stopInstance(second)]);
    await creator.close();
    await closeSql();
  }, 30_000);

  it("both reapers on the same expired generations: each is refunded exactly once", async () => {
    const accounts = await Promise.all(Array.from({ length: 20 }, () => creator.account(1_000)));
    const generations: Json[] = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        creator.reserveOk(accounts[i % accounts.length] as string, {
          unitCost: 5,
          quantity: 1 + (i % 3),
          timeoutSeconds: 1,
        }),
      ),
    );
    const ids = generations.map((generation) => localIdOf(generation.id));
    await waitFor(
      async () => {
        const [row] = await sql().query<{ open: number }>(
          "SELECT count(*)::int AS open FROM generation WHERE id = ANY($1::uuid[]) AND status = 'IN_PROGRESS'",
          [ids],
        );
        return row?.open === 0 ? true : undefined;
      },
      30_000,
      "both reapers to time out 200 generations",
      100,
    );
    const rows = await sql().query<{
      id: string;
      status: string;
      reserved: bigint;
      refunds: number;
      refunded: bigint;
      lateMs: number;
    }>(
      `SELECT g.id, g.status, g.reserved, g.refunded,
              (extract(epoch FROM g.finished_at - g.deadline) * 1000)::int AS "lateMs",
              (SELECT count(*)::int FROM ledger_entry e WHERE e.generation_id = g.id AND e.type = 'REFUND') AS refunds
         FROM generation g WHERE g.id = ANY($1::uuid[])`,
      [ids],
    );
    expect(rows).toHaveLength(200);
    for (const row of rows) {
      expect(row).toMatchObject({ status: "TIMED_OUT", refunds: 1 });
      expect(row.refunded).toBe(row.reserved);
      // Timed out within 5 s of the deadline, on the server's clock.
      expect(row.lateMs).toBeGreaterThanOrEqual(0);
      expect(row.lateMs).toBeLessThan(5_000);
    }
    const [items] = await sql().query<{ timedOut: number; total: number }>(
      `SELECT count(*) FILTER (WHERE status = 'TIMED_OUT' AND reason = 'TIMEOUT')::int AS "timedOut",
              count(*)::int AS total FROM generation_item WHERE generation_id = ANY($1::uuid[])`,
      [ids],
    );
    expect(items?.timedOut).toBe(items?.total);
    for (const accountId of accounts) {
      expect(await creator.balance(accountId)).toMatchObject({ available: 1_000, held: 0 });
      expect(await auditAccount(accountId)).toEqual([]);
    }
  }, 120_000);

  it("both reapers on the same expired grants: each is written off by exactly one EXPIRY entry", async () => {
    const accounts = await Promise.all(Array.from({ length: 20 }, () => creator.account(3)));
    // Far enough ahead that all 20 grants are made before it, even on a busy machine.
    const expiresAt = inMs(5_000);
    await Promise.all(accounts.map((id) => creator.grant(id, 40, { source: "SUBSCRIPTION", expiresAt })));
    const local = accounts.map(localIdOf);
    const expiries = await waitFor(
      async () => {
        const rows = await sql().query<{ account_id: string; n: number; total: number; lateMs: number }>(
          `SELECT account_id, count(*)::int AS n, sum(amount)::int AS total,
                  max(extract(epoch FROM created_at - $2::timestamptz) * 1000)::int AS "lateMs"
             FROM ledger_entry WHERE account_id = ANY($1::uuid[]) AND type = 'EXPIRY' GROUP BY account_id`,
          [local, expiresAt],
        );
        return rows.length === accounts.length ? rows : undefined;
      },
      20_000,
      "an EXPIRY entry on every account",
      100,
    );
    // A round or two more, in which a second write-off would show.
    await new Promise((resolve) => setTimeout(resolve, 500));
    for (const row of expiries) {
      expect(row).toMatchObject({ n: 1, total: -40 });
      expect(row.lateMs).toBeLessThan(5_000);
    }
    const [again] = await sql().query<{ n: number }>(
      "SELECT count(*)::int AS n FROM ledger_entry WHERE account_id = ANY($1::uuid[]) AND type = 'EXPIRY'",
      [local],
    );
    expect(again?.n).toBe(accounts.length);
    for (const accountId of accounts)
      expect(await creator.balance(accountId)).toMatchObject({ available: 3 });
  }, 60_000);

  it("concurrent duplicates sent to both instances run once; 50 reserves with room for 10 split across them", async () => {
    if (first === undefined || second === undefined) throw new Error("instances did not start");
    const urls = [first.url, second.url];
    const accountId = await creator.account(100);
    const key = unique("reserve");
    const input = { idempotencyKey: key, accountId, feature: "Image", unitCost: 10 };
    const duplicates = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        post(urls[i % 2] as string, creator.service, RESERVE_SLIM, { input }),
      ),
    );
    const answers = duplicates.map((data: Json) => data.reserveGeneration);
    expect(tally(answers.map((r: Json) => r.__typename))).toEqual({ ReserveGenerationSuccess: 6 });
    expect(new Set(answers.map((r: Json) => r.generation.id)).size).toBe(1);
    expect(answers.filter((r: Json) => !r.replayed)).toHaveLength(1);

    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        post(urls[i % 2] as string, creator.service, RESERVE_SLIM, {
          input: { idempotencyKey: unique("reserve"), accountId, feature: "Image", unitCost: 10 },
        }),
      ),
    );
    expect(tally(results.map((data: Json) => data.reserveGeneration.__typename))).toEqual({
      ReserveGenerationSuccess: 9,
      InsufficientCreditsError: 41,
    });
    expect(await creator.balance(accountId)).toMatchObject({ available: 0, held: 100 });
  });
});
