/**
 * The database a test file talks to, whichever project runs it: the run's
 * PostgreSQL test database, or (CREDITBOOK_TEST_DATABASE=pglite) one in-memory
 * PGlite per test file, opened and migrated on first use. PGlite is one
 * connection inside this process, so every server and every direct read in
 * the file shares that one instance; it is closed by the after-file audit
 * (audit-after-file.ts) once it has been audited.
 */
import { readFileSync } from "node:fs";
import { PGlite } from "@electric-sql/pglite";
import { connectPostgres, type Database, embeddedDatabase } from "../../src/db/database.ts";
import { applyMigrations } from "../../src/db/migrate.ts";
import { TEST_DATABASE, testDatabaseUrl } from "./env.ts";
import { TEMPLATE_ENV } from "./pglite-template.ts";

let embedded: Promise<Database> | undefined;
/** The same database once open, for callers that cannot wait (test/billing/ops.ts `sql()`). */
let embeddedOpen: Database | undefined;

/** Whether this run's behaviour tests use embedded PGlite. */
export function onPglite(): boolean {
  return TEST_DATABASE === "pglite";
}

/** The file's embedded database (pglite project only), opened and migrated once. */
export function embeddedTestDatabase(): Promise<Database> {
  if (!onPglite()) throw new Error("embeddedTestDatabase() is for the pglite project only");
  embedded ??= (async () => {
    const template = process.env[TEMPLATE_ENV];
    if (template === undefined) throw new Error(`${TEMPLATE_ENV} is set by test/support/pglite-template.ts`);
    const db = embeddedDatabase(await PGlite.create({ loadDataDir: new Blob([readFileSync(template)]) }));
    // Nothing pending after loading the migrated template; applying proves it (and costs little).
    await db.withSession((session) => applyMigrations(session));
    embeddedOpen = db;
    return db;
  })();
  return embedded;
}

/**
 * The file's embedded database, already opened by a server started in this
 * file (pglite project only); its `close` does nothing, as in openTestDatabase.
 */
export function startedEmbeddedTestDatabase(): Database {
  if (embeddedOpen === undefined)
    throw new Error("start a test server first: it opens the embedded database");
  return { ...embeddedOpen, close: async () => {} };
}

/** The file's embedded database if one was opened, for the after-file audit. */
export function openedEmbeddedTestDatabase(): Promise<Database> | undefined {
  return embedded;
}

/** Closes the file's embedded database (after its audit); a later use opens a fresh one. */
export async function closeEmbeddedTestDatabase(): Promise<void> {
  const opened = embedded;
  embedded = undefined;
  embeddedOpen = undefined;
  if (opened !== undefined) await (await opened).close();
}

/**
 * A handle on the test database for direct reads and writes: a small pool of
 * its own on PostgreSQL, or the file's shared PGlite (whose `close` then does
 * nothing: other servers in the file still use it).
 */
export async function openTestDatabase(poolSizeMax = 2, applicationName?: string): Promise<Database> {
  if (!onPglite()) return connectPostgres({ url: testDatabaseUrl(), poolSizeMax, applicationName });
  const db = await embeddedTestDatabase();
  return { ...db, close: async () => {} };
}
