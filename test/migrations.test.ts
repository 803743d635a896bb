import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectPostgres, type Database, openEmbedded, type Sql } from "../src/db/database.ts";
import { applyMigrations, type Migration, readMigrations } from "../src/db/migrate.ts";
import { localId } from "../src/schema/ids.ts";
import { databaseUrl, SERVER_URL } from "./support/env.ts";
import { createAccount, grant } from "./support/fixtures.ts";
import { startServer, type TestServer, unique } from "./support/harness.ts";
import { onPglite, openTestDatabase } from "./support/test-database.ts";

/** The tables the first migration creates; every one must exist after applying. */
const TABLES = [
  "_prisma_migrations",
  "account",
  "account_member",
  "board",
  "board_item",
  "credit_grant",
  "generation",
  "generation_draw",
  "generation_item",
  "idempotency_record",
  "ledger_entry",
  "posting",
];

async function tablesOf(db: Database): Promise<string[]> {
  const rows = await db.query<{ table_name: string }>(
    `SELECT table_name FROM information_schema.tables
      WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY table_name`,
  );
  return rows.map((row) => row.table_name);
}

async function appliedNames(db: Database): Promise<string[]> {
  const rows = await db.query<{ migration_name: string }>(
    `SELECT migration_name FROM "_prisma_migrations" WHERE finished_at IS NOT NULL ORDER BY migration_name`,
  );
  return rows.map((row) => row.migration_name);
}

/** The same migrations with the last one's text changed, as if someone edited it after release. */
function withLastChanged(migrations: readonly Migration[]): Migration[] {
  return migrations.map((migration, i) => {
    if (i !== migrations.length - 1) return migration;
    const sql = `${migration.sql}\n-- edited after it was applied\n`;
    return { ...migration, sql, checksum: createHash("sha256").update(sql).digest("hex") };
  });
}

/** A migration whose second statement fails: its first must be rolled back with it. */
const BROKEN: Migration = {
  name: "99999999999999_broken",
  sql: `CREATE TABLE "half_done" (id INT); SELECT * FROM "no_such_table";`,
  checksum: "0".repeat(64),
};

// PostgreSQL- and PGlite-specific by construction; the postgres project runs both.
describe.skipIf(onPglite())("migrations on a fresh PostgreSQL database", () => {
  const name = `creditbook_migrations_${process.pid}_${Date.now().toString(36)}`;
  let db: Database;

  beforeAll(async () => {
    const admin = new pg.Client({ connectionString: SERVER_URL });
    await admin.connect();
    try {
      await admin.query(`CREATE DATABASE ${name}`);
    } finally {
      await admin.end();
    }
    db = connectPostgres({ url: databaseUrl(name), poolSizeMax: 2 });
  });

  afterAll(async () => {
    await db?.close();
    const admin = new pg.Client({ connectionString: SERVER_URL });
    await admin.connect();
    try {
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    } finally {
      await admin.end();
    }
  });

  it("applies every migration once, then nothing, and refuses a changed one", async () => {
    const migrations = readMigrations();
    expect(migrations.length).toBeGreaterThan(0);
    expect(await tablesOf(db)).toEqual([]);

    const first = await db.withSession((session) => applyMigrations(session));
    expect(first).toEqual(migrations.map((migration) => migration.name));
    expect(await tablesOf(db)).toEqual(expect.arrayContaining(TABLES));
    expect(await appliedNames(db)).toEqual(first);

    const second = await db.withSession((session) => applyMigrations(session));
    expect(second).toEqual([]);
    expect(await appliedNames(db)).toEqual(first);

    await expect(
      db.withSession((session) => applyMigrations(session, withLastChanged(migrations))),
    ).rejects.toThrow(/was changed after it was applied/);
    // The refusal released the advisory lock: a normal run still goes through.
    expect(await db.withSession((session) => applyMigrations(session))).toEqual([]);
  });

  it("rolls back a failing migration and does not record it", async () => {
    await expect(
      db.withSession((session) => applyMigrations(session, [...readMigrations(), BROKEN])),
    ).rejects.toThrow(/migration 99999999999999_broken failed/);
    expect(await tablesOf(db)).not.toContain("half_done");
    expect(await appliedNames(db)).not.toContain(BROKEN.name);
  });
});

describe.skipIf(onPglite())("migrations on an embedded PGlite directory", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "creditbook-pglite-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  // PGlite starts a WebAssembly PostgreSQL twice here: seconds alone, far more on a busy machine.
  it("applies, survives a reopen, and has nothing pending afterwards", async () => {
    const migrations = readMigrations();
    const first = await openEmbedded(dir);
    try {
      expect(await first.withSession((session) => applyMigrations(session))).toEqual(
        migrations.map((migration) => migration.name),
      );
      expect(await tablesOf(first)).toEqual(expect.arrayContaining(TABLES));
    } finally {
      await first.close();
    }

    const reopened = await openEmbedded(dir);
    try {
      expect(await tablesOf(reopened)).toEqual(expect.arrayContaining(TABLES));
      expect(await reopened.withSession((session) => applyMigrations(session))).toEqual([]);
      await expect(
        reopened.withSession((session) => applyMigrations(session, withLastChanged(migrations))),
      ).rejects.toThrow(/was changed after it was applied/);
      // A failing script must fail the run and leave nothing behind, on PGlite too.
      await expect(
        reopened.withSession((session) => applyMigrations(session, [...migrations, BROKEN])),
      ).rejects.toThrow(/migration 99999999999999_broken failed/);
      expect(await tablesOf(reopened)).not.toContain("half_done");
      expect(await appliedNames(reopened)).not.toContain(BROKEN.name);
    } finally {
      await reopened.close();
    }
  }, 120_000);
});

/** What a refused statement raised: pg's and PGlite's errors both carry these. */
interface RefusalError {
  readonly code?: string;
  readonly constraint?: string;
  readonly message: string;
}

/** Thrown at the end of the constraints transaction so that nothing it did stays. */
class RollBack extends Error {}

describe("database constraints", () => {
  let server: TestServer;
  let db: Database;
  let accountId: string;

  beforeAll(async () => {
    server = await startServer();
    const service = await server.token(unique("svc"), "service");
    const account = await createAccount(server, service);
    await grant(server, service, account.id, 100);
    const id = localId(account.id, "Account");
    if (id === null) throw new Error(`createAccount returned ${account.id}, not an Account id`);
    accountId = id;
    db = await openTestDatabase(1);
  });
  afterAll(async () => {
    await db?.close();
    await server?.close();
  });

  /**
   * Runs `statement` inside the open transaction behind a savepoint and
   * returns the error it raised (the savepoint undoes the failure so the next
   * statement can run); fails the test when it succeeds.
   */
  async function refused(tx: Sql, statement: string, params: unknown[] = []): Promise<RefusalError> {
    await tx.query("SAVEPOINT attempt");
    try {
      await tx.query(statement, params);
    } catch (error) {
      await tx.query("ROLLBACK TO SAVEPOINT attempt");
      return error as RefusalError;
    }
    await tx.query("ROLLBACK TO SAVEPOINT attempt");
    throw new Error(`expected the database to refuse: ${statement}`);
  }

  it("refuses rows that break the ledger's invariants, and changes to entries", async () => {
    // One transaction (on PGlite it holds the only connection, so the server's reaper waits).
    const attempt = db.transaction({ isolation: "READ COMMITTED", timeoutMs: 30_000 }, async (tx) => {
      const [account] = await tx.query<{ available: string; wallet: string }>(
        "SELECT available::text, wallet::text FROM account WHERE id = $1",
        [accountId],
      );
      expect(account).toEqual({ available: "100", wallet: "100" });

      const negative = await refused(tx, "UPDATE account SET available = -1, wallet = -1 WHERE id = $1", [
        accountId,
      ]);
      expect(negative.code).toBe("23514");
      expect(negative.constraint).toBe("account_amounts_nonnegative");

      const unbalanced = await refused(tx, "UPDATE account SET available = available + 1 WHERE id = $1", [
        accountId,
      ]);
      expect(unbalanced.code).toBe("23514");
      expect(unbalanced.constraint).toBe("account_available_by_source");

      const overdrawnGrant = await refused(
        tx,
        "UPDATE credit_grant SET remaining = amount + 1 WHERE account_id = $1",
        [accountId],
      );
      expect(overdrawnGrant.constraint).toBe("credit_grant_within_amount");

      const update = await refused(tx, "UPDATE ledger_entry SET amount = 1000 WHERE account_id = $1", [
        accountId,
      ]);
      expect(update.code).toBe("23001");
      expect(update.message).toMatch(/ledger_entry is append-only: UPDATE/);

      const remove = await refused(tx, "DELETE FROM ledger_entry WHERE account_id = $1", [accountId]);
      expect(remove.code).toBe("23001");
      expect(remove.message).toMatch(/ledger_entry is append-only: DELETE/);

      const posting = await refused(tx, "DELETE FROM posting WHERE account_id = $1", [accountId]);
      expect(posting.message).toMatch(/posting is append-only: DELETE/);

      const badEntry = await refused(
        tx,
        `INSERT INTO ledger_entry (id, account_id, sequence, type, amount, balance_before, balance_after, title, transfer_id, actor)
         VALUES (gen_random_uuid(), $1, 2, 'GRANT', 5, 100, 104, 'Wrong sum', gen_random_uuid(), 'system')`,
        [accountId],
      );
      expect(badEntry.constraint).toBe("ledger_entry_balance_moves_by_amount");

      const duplicateSequence = await refused(
        tx,
        `INSERT INTO ledger_entry (id, account_id, sequence, type, amount, balance_before, balance_after, title, transfer_id, actor)
         VALUES (gen_random_uuid(), $1, 1, 'GRANT', 5, 100, 105, 'Same sequence', gen_random_uuid(), 'system')`,
        [accountId],
      );
      expect(duplicateSequence.code).toBe("23505");
      throw new RollBack("undo everything above");
    });
    await expect(attempt).rejects.toBeInstanceOf(RollBack);
    // Nothing of the above stuck.
    const [after] = await db.query<{ available: string; entries: string }>(
      `SELECT a.available::text, (SELECT count(*) FROM ledger_entry e WHERE e.account_id = a.id)::text AS entries
         FROM account a WHERE a.id = $1`,
      [accountId],
    );
    expect(after).toEqual({ available: "100", entries: "1" });
  });
});
