/**
 * Group commit over accounts: operations queued while the executor's lanes
 * are busy share the next transaction, many accounts in one, and every
 * operation still gets its own exact outcome. Runs the domain on the real
 * test database, counting the transactions it opens.
 */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../../src/db/database.ts";
import { auditLedger } from "../../src/domain/audit.ts";
import { loadBalance } from "../../src/domain/balance.ts";
import { IdempotencyKeyReusedError } from "../../src/domain/errors.ts";
import { Ledger } from "../../src/domain/ledger.ts";
import { onPglite, openTestDatabase } from "../support/test-database.ts";

const PRINCIPAL = "batching-test";

/** The database with every transaction's locked accounts recorded (ids in the order the prelude names them). */
function countingDatabase(db: Database): { db: Database; transactions: string[][] } {
  const transactions: string[][] = [];
  const counted: Database = Object.create(db);
  counted.transaction = (options, work) => {
    const ids = options.prelude?.match(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g) ?? [];
    transactions.push(ids);
    return db.transaction(options, work);
  };
  return { db: counted, transactions };
}

async function fundedAccounts(ledger: Ledger, count: number, credits: number): Promise<string[]> {
  const ids = await Promise.all(
    Array.from({ length: count }, async (_, i) => {
      const created = await ledger.createAccount(PRINCIPAL, {
        idempotencyKey: randomUUID(),
        kind: "PERSONAL",
        name: `batching ${i}`,
        ownerId: `batching-user-${i}`,
      });
      if (!created.ok) throw created.error;
      return created.value.accountId;
    }),
  );
  await Promise.all(
    ids.map(async (accountId) => {
      const granted = await ledger.grantCredits(PRINCIPAL, {
        idempotencyKey: randomUUID(),
        accountId,
        source: "WALLET",
        amount: credits,
      });
      if (!granted.ok) throw granted.error;
    }),
  );
  return ids;
}

describe("group commit over accounts", () => {
  let base: Database;

  beforeAll(async () => {
    base = await openTestDatabase(4, "batching-test");
  });

  afterAll(async () => {
    await base.close();
  });

  it("runs 300 reserves on 100 accounts in far fewer transactions, each exact", async () => {
    const { db, transactions } = countingDatabase(base);
    const ledger = new Ledger(db, { lanes: 2 });
    const accounts = await fundedAccounts(ledger, 100, 1_000);
    transactions.length = 0;

    const results = await Promise.all(
      accounts.flatMap((accountId) =>
        [10, 20, 30].map((unitCost) =>
          ledger.reserveGeneration(PRINCIPAL, {
            idempotencyKey: randomUUID(),
            accountId,
            feature: "image",
            unitCost,
          }),
        ),
      ),
    );

    expect(results.filter((r) => !r.ok)).toEqual([]);
    // Two lanes: the first two transactions start at once, the rest share the following ones.
    expect(transactions.length).toBeLessThanOrEqual(10);
    expect(Math.max(...transactions.map((ids) => ids.length))).toBeGreaterThan(1);
    for (const ids of transactions) {
      // Named, and so locked, in id order: two transactions locking overlapping sets cannot deadlock.
      expect(ids).toEqual([...ids].sort());
      expect(new Set(ids).size).toBe(ids.length);
    }
    for (const accountId of accounts) {
      const balance = await loadBalance(base, accountId);
      expect(balance?.available).toBe(1_000n - 60n);
      expect(balance?.held).toBe(60n);
      expect(balance?.sequence).toBe(4);
    }
    const audit = await auditLedger(base, null);
    expect(audit.problems).toEqual([]);
  });

  it("keeps each account's operations in arrival order within and across transactions", async () => {
    const { db } = countingDatabase(base);
    const ledger = new Ledger(db, { lanes: 1 });
    const [accountId] = await fundedAccounts(ledger, 1, 50);
    expect(accountId).toBeDefined();
    // 5 × 10 credits exactly drain the account; the sixth must be the one refused.
    const results = await Promise.all(
      Array.from({ length: 6 }, () =>
        ledger.reserveGeneration(PRINCIPAL, {
          idempotencyKey: randomUUID(),
          accountId: accountId as string,
          feature: "image",
          unitCost: 10,
        }),
      ),
    );
    expect(results.map((r) => r.ok)).toEqual([true, true, true, true, true, false]);
  });

  it("isolates an operation that throws: the other accounts of its transaction commit", async () => {
    const { db, transactions } = countingDatabase(base);
    const ledger = new Ledger(db, { lanes: 1 });
    const accounts = await fundedAccounts(ledger, 6, 100);
    const [blocker, ...rest] = accounts as [string, ...string[]];
    transactions.length = 0;
    // The first operation occupies the only lane; the others queue and share the next transaction.
    const first = ledger.executor.run({
      operation: "noop",
      accountId: blocker,
      generationIds: [],
      idempotency: null,
      actor: "system",
      apply: () => ({}),
    });
    const broken = ledger.executor.run({
      operation: "broken",
      accountId: rest[0] as string,
      generationIds: [],
      idempotency: null,
      actor: "system",
      apply: () => {
        throw new Error("a bug in one operation");
      },
    });
    const fine = rest.slice(1).map((accountId) =>
      ledger.reserveGeneration(PRINCIPAL, {
        idempotencyKey: randomUUID(),
        accountId,
        feature: "image",
        unitCost: 7,
      }),
    );
    await first;
    await expect(broken).rejects.toThrow("a bug in one operation");
    const outcomes = await Promise.all(fine);
    expect(outcomes.every((o) => o.ok)).toBe(true);
    // One shared attempt, then each account alone.
    expect(transactions[1]?.length).toBe(5);
    for (const accountId of rest.slice(1)) {
      expect((await loadBalance(base, accountId))?.held).toBe(7n);
    }
    expect((await auditLedger(base, null)).problems).toEqual([]);
  });

  it("answers a key used twice in one transaction once: the duplicate on another account is a reused key", async () => {
    const { db, transactions } = countingDatabase(base);
    const ledger = new Ledger(db, { lanes: 1 });
    const [blocker, a, b] = (await fundedAccounts(ledger, 3, 100)) as [string, string, string];
    transactions.length = 0;
    const first = ledger.adjustBalance(PRINCIPAL, {
      idempotencyKey: randomUUID(),
      accountId: blocker,
      amount: 1,
      note: "occupies the lane",
    });
    const key = randomUUID();
    const [onA, onB] = await Promise.all([
      ledger.reserveGeneration(PRINCIPAL, {
        idempotencyKey: key,
        accountId: a,
        feature: "image",
        unitCost: 5,
      }),
      ledger.reserveGeneration(PRINCIPAL, {
        idempotencyKey: key,
        accountId: b,
        feature: "image",
        unitCost: 5,
      }),
    ]);
    await first;
    expect(transactions[1]).toEqual([a, b].sort());
    expect(onA.ok).toBe(true);
    expect(onB.ok).toBe(false);
    if (!onB.ok) expect(onB.error).toBeInstanceOf(IdempotencyKeyReusedError);
    expect((await loadBalance(base, b))?.held).toBe(0n);
    expect((await auditLedger(base, null)).problems).toEqual([]);
  });

  it("takes users' operations before queued background work", async () => {
    const { db, transactions } = countingDatabase(base);
    const ledger = new Ledger(db, { lanes: 1 });
    const accounts = (await fundedAccounts(ledger, 12, 100)) as [string, ...string[]];
    transactions.length = 0;
    const background = (accountId: string) =>
      ledger.executor.run({
        operation: "reap",
        accountId,
        generationIds: [],
        idempotency: null,
        actor: "system",
        background: true,
        apply: () => ({}),
      });
    const started = background(accounts[0]);
    const queued = accounts.slice(1, 11).map(background);
    const user = accounts[11] as string;
    const reserved = ledger.reserveGeneration(PRINCIPAL, {
      idempotencyKey: randomUUID(),
      accountId: user,
      feature: "image",
      unitCost: 3,
    });
    await Promise.all([started, ...queued, reserved]);
    expect(transactions[0]).toEqual([accounts[0]]);
    expect(transactions[1]).toEqual([user]);
    expect(transactions[2]?.length).toBe(10);
  });

  // PostgreSQL only: on embedded PGlite (one connection) every statement of every operation,
  // the idempotency lookups outside the lane included, queues inside PGlite in arrival order, so
  // the executor's priority cannot bound the wait there (seen: 2.25 s behind a 2 s stream).
  it.skipIf(onPglite())(
    "does not let a steady stream of users' operations starve background work",
    async () => {
      const { db } = countingDatabase(base);
      const ledger = new Ledger(db, { lanes: 1 });
      const accounts = (await fundedAccounts(ledger, 4, 1_000_000)) as [string, ...string[]];
      const streamMs = 2_000;
      const started = performance.now();
      // Three clients keep the only lane busy: whenever it frees, users' operations are ready.
      const stream = accounts.slice(1).map(async (accountId) => {
        while (performance.now() - started < streamMs) {
          const adjusted = await ledger.adjustBalance(PRINCIPAL, {
            idempotencyKey: randomUUID(),
            accountId,
            amount: 1,
            note: "stream",
          });
          expect(adjusted.ok).toBe(true);
        }
      });
      await new Promise((resolve) => setTimeout(resolve, 50));
      const reaped = ledger.executor
        .run({
          operation: "reap",
          accountId: accounts[0],
          generationIds: [],
          idempotency: null,
          actor: "system",
          background: true,
          apply: () => ({}),
        })
        .then(() => performance.now() - started);
      const [reapedAtMs] = await Promise.all([reaped, ...stream]);
      expect(reapedAtMs).toBeLessThan(streamMs / 2);
    },
  );

  it("answers NotFound for an unknown account without failing the others", async () => {
    const { db } = countingDatabase(base);
    const ledger = new Ledger(db, { lanes: 1 });
    const [blocker, known] = (await fundedAccounts(ledger, 2, 100)) as [string, string];
    const first = ledger.adjustBalance(PRINCIPAL, {
      idempotencyKey: randomUUID(),
      accountId: blocker,
      amount: 1,
      note: "occupies the lane",
    });
    const [unknown, fine] = await Promise.all([
      ledger.reserveGeneration(PRINCIPAL, {
        idempotencyKey: randomUUID(),
        accountId: randomUUID(),
        feature: "image",
        unitCost: 5,
      }),
      ledger.reserveGeneration(PRINCIPAL, {
        idempotencyKey: randomUUID(),
        accountId: known,
        feature: "image",
        unitCost: 5,
      }),
    ]);
    await first;
    expect(unknown.ok).toBe(false);
    if (!unknown.ok) expect(unknown.error.code).toBe("NOT_FOUND");
    expect(fine.ok).toBe(true);
  });
});
