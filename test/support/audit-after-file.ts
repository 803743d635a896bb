import { afterAll, expect } from "vitest";
import { connectPostgres } from "../../src/db/database.ts";
import { auditLedger } from "../../src/domain/audit.ts";
import { testDatabaseUrl } from "./env.ts";

// After every test file, the whole test database must pass the ledger audit.
afterAll(async () => {
  const db = connectPostgres({ url: testDatabaseUrl(), poolSizeMax: 1 });
  try {
    const report = await auditLedger(db, null);
    expect(report.problems).toEqual([]);
    expect(report.ok).toBe(true);
  } finally {
    await db.close();
  }
});
