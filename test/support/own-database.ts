import { randomUUID } from "node:crypto";
import pg from "pg";
import { connectPostgres } from "../../src/db/database.ts";
import { applyMigrations } from "../../src/db/migrate.ts";
import { auditLedger } from "../../src/domain/audit.ts";
import { databaseUrl, serverUrl } from "./env.ts";

/** A migrated database of its own on the test server, for tests that lock tables or kill backends. */
export interface OwnDatabase {
  readonly name: string;
  readonly url: string;
  /** A plain pg client on the database (the test's "psql"), closed by `drop`. */
  client(): Promise<pg.Client>;
  /** The ledger audit's problems (none when the books are consistent). */
  auditProblems(): Promise<readonly string[]>;
  drop(): Promise<void>;
}

/**
 * Creates and migrates a database of its own: locking a table or
 * terminating backends there disturbs no other test file running at once.
 */
export async function createOwnDatabase(prefix: string): Promise<OwnDatabase> {
  const name = `${prefix}_${randomUUID().replaceAll("-", "").slice(0, 12)}`;
  const admin = new pg.Client({ connectionString: serverUrl() });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = databaseUrl(name);
  const db = connectPostgres({ url, poolSizeMax: 1 });
  await db.withSession((session) => applyMigrations(session));
  await db.close();
  const clients: pg.Client[] = [];
  return {
    name,
    url,
    async client() {
      const client = new pg.Client({ connectionString: url, application_name: "test-psql" });
      // The test terminates backends on purpose; an error event on this client must not crash the run.
      client.on("error", () => {});
      await client.connect();
      clients.push(client);
      return client;
    },
    async auditProblems() {
      const audited = connectPostgres({ url, poolSizeMax: 1 });
      try {
        return (await auditLedger(audited, null)).problems;
      } finally {
        await audited.close();
      }
    },
    async drop() {
      // A client already broken is ended anyway by the FORCE drop below, which is what must succeed.
      await Promise.all(clients.map((client) => client.end().catch(() => undefined)));
      const dropper = new pg.Client({ connectionString: serverUrl() });
      await dropper.connect();
      await dropper.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await dropper.end();
    },
  };
}

/**
 * Terminates every backend of the service (application_name "creditbook")
 * on `database` that waits for a lock, once at least one does; returns how
 * many it terminated. Fails after `timeoutMs` when none shows up.
 */
export async function terminateLockWaiters(
  client: pg.Client,
  database: string,
  timeoutMs = 10_000,
): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const { rows } = await client.query<{ terminated: boolean }>(
      `SELECT pg_terminate_backend(pid) AS terminated FROM pg_stat_activity
        WHERE datname = $1 AND application_name = 'creditbook' AND wait_event_type = 'Lock'`,
      [database],
    );
    if (rows.length > 0) return rows.length;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`no backend of ${database} waited for a lock within ${timeoutMs} ms`);
}
