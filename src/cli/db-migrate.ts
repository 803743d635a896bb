import { openDatabase } from "../db/open.ts";

/** `npm run db:migrate`: applies pending migrations to DATABASE_URL (or the embedded database). */
const { db, applied } = await openDatabase({
  databaseUrl: process.env.DATABASE_URL?.trim() || undefined,
  dataDir: process.env.DATA_DIR?.trim() || "./.data",
  poolSizeMax: 2,
}).catch((error: Error) => {
  process.stderr.write(`migration failed: ${error.message}\n`);
  process.exit(1);
});
process.stdout.write(applied.length === 0 ? "database is up to date\n" : `applied: ${applied.join(", ")}\n`);
await db.close();
