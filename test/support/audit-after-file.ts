import { afterAll, expect } from "vitest";
import { connectPostgres, type Database } from "../../src/db/database.ts";
import { auditLedger } from "../../src/domain/audit.ts";
import { testDatabaseUrl } from "./env.ts";
import { closeEmbeddedTestDatabase, onPglite, openedEmbeddedTestDatabase } from "./test-database.ts";

// After every test file, the whole test database must pass the ledger audit. On PGlite that
// is the file's own in-memory database (nothing else can connect to it), audited and then closed.
afterAll(async () => {
  if (onPglite()) {
    const opened = openedEmbeddedTestDatabase();
    if (opened === undefined) return;
    try {
      await expectClean(await opened);
    } finally {
      await closeEmbeddedTestDatabase();
    }
    return;
  }
  const db = connectPostgres({ url: testDatabaseUrl(), poolSizeMax: 1 });
  try {
    await expectClean(db);
  } finally {
    await db.close();
  }
});

async function expectClean(db: Database): Promise<void> {
  const report = await auditLedger(db, null);
  expect(report.problems).toEqual([]);
  expect(report.ok).toBe(true);
}
