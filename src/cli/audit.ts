import { openDatabase } from "../db/open.ts";
import { auditLedger } from "../domain/audit.ts";

/** `npm run audit [-- <account uuid>]`: checks the ledger's invariants; exits 1 on any problem. */
const accountId = process.argv[2] ?? null;
const { db } = await openDatabase({
  databaseUrl: process.env.DATABASE_URL?.trim() || undefined,
  dataDir: process.env.DATA_DIR?.trim() || "./.data",
  poolSizeMax: 2,
});
const report = await auditLedger(db, accountId);
process.stdout.write(
  `checked ${report.accountsChecked} account(s): ${report.ok ? "no problems" : `${report.problems.length} problem(s)`}\n`,
);
for (const problem of report.problems) process.stdout.write(`- ${problem}\n`);
await db.close();
process.exit(report.ok ? 0 : 1);
