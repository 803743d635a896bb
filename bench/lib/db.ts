/**
 * The bench database: a dedicated PostgreSQL database per run (created,
 * migrated with the service's own migrations, dropped at the end), plus the
 * SQL that seeds it.
 */
import { readFileSync } from "node:fs";
import pg from "pg";
import { connectPostgres, type Database } from "../../src/db/database.ts";
import { applyMigrations } from "../../src/db/migrate.ts";

/** Where bench/sql/ is. */
const SQL_DIR = new URL("../sql/", import.meta.url).pathname;

/** Reads a file of bench/sql/. */
export function sqlFile(name: string): string {
  return readFileSync(`${SQL_DIR}${name}`, "utf8");
}

/** The path of a file of bench/sql/ (for pgbench -f). */
export function sqlPath(name: string): string {
  return `${SQL_DIR}${name}`;
}

/** `postgres://…/postgres` → the same server, database `name`. */
export function withDatabase(url: string, name: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${name}`;
  return parsed.toString();
}

/** Runs `work` on a short-lived admin connection (to the maintenance database). */
async function withAdmin<T>(adminUrl: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 5_000 });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** Facts about the PostgreSQL server, and a clear error when it cannot be reached. */
export async function postgresFacts(
  adminUrl: string,
): Promise<{ version: string; maxConnections: number; settings: Record<string, string> }> {
  try {
    return await withAdmin(adminUrl, async (client) => {
      const version = (await client.query<{ v: string }>("SELECT current_setting('server_version') AS v"))
        .rows[0]?.v;
      const rows = (
        await client.query<{ name: string; setting: string; unit: string | null }>(
          `SELECT name, setting, unit FROM pg_settings
            WHERE name IN ('max_connections', 'shared_buffers', 'synchronous_commit', 'fsync', 'wal_level',
                           'max_wal_size', 'work_mem', 'commit_delay')`,
        )
      ).rows;
      const settings: Record<string, string> = {};
      for (const row of rows)
        settings[row.name] = row.unit === null ? row.setting : `${row.setting} ${row.unit}`;
      return {
        version: version ?? "unknown",
        maxConnections: Number(settings.max_connections ?? 100),
        settings,
      };
    });
  } catch (error) {
    throw new Error(
      `PostgreSQL is not reachable at ${redact(adminUrl)} (${(error as Error).message}). Start it (e.g. 'pg_ctlcluster 15 main start') or set BENCH_DATABASE_URL.`,
    );
  }
}

/** Connections in use on the server right now (all databases). */
export async function connectionsInUse(adminUrl: string): Promise<number> {
  return withAdmin(adminUrl, async (client) => {
    const rows = (await client.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity")).rows;
    return rows[0]?.n ?? 0;
  });
}

export async function createDatabase(adminUrl: string, name: string): Promise<void> {
  await withAdmin(adminUrl, async (client) => {
    await client.query(`CREATE DATABASE "${name}"`);
  });
}

/** Drops the database, ending any session still connected to it. */
export async function dropDatabase(adminUrl: string, name: string): Promise<void> {
  await withAdmin(adminUrl, async (client) => {
    await client.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", [name]);
    await client.query(`DROP DATABASE IF EXISTS "${name}"`);
  });
}

/** Opens the bench database with the service's own client and applies the migrations. */
export async function openBenchDatabase(url: string): Promise<Database> {
  const db = connectPostgres({ url, poolSizeMax: 4, applicationName: "creditbook-bench" });
  await db.withSession((session) => applyMigrations(session));
  return db;
}

/** A URL with its password hidden (for messages). */
export function redact(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== "") parsed.password = "***";
    return parsed.toString();
  } catch {
    return "(unparseable URL)";
  }
}

/** The deterministic account id of seed-accounts.sql. */
export function seededAccountId(prefix: string, n: number): string {
  return `${prefix}-0000-4000-8000-${String(n).padStart(12, "0")}`;
}

/** Creates `count` accounts of `credits` each, ids from `seededAccountId(prefix, 1..count)`. */
export async function seedAccounts(
  db: Database,
  prefix: string,
  count: number,
  credits: bigint,
  name: string,
): Promise<string[]> {
  if (!/^[0-9a-f]{8}$/.test(prefix)) throw new Error(`account prefix must be 8 hex digits, got ${prefix}`);
  await db.query(sqlFile("seed-accounts.sql"), [prefix, count, credits.toString(), name]);
  return Array.from({ length: count }, (_, i) => seededAccountId(prefix, i + 1));
}

/** Relay global id of a node (base64 of "Type:uuid"), as src/schema/ids.ts makes them. */
export function globalId(typename: "Account" | "Generation", id: string): string {
  return Buffer.from(`${typename}:${id}`, "utf8").toString("base64");
}

/** The uuid inside a Relay global id. */
export function localId(global: string): string {
  const decoded = Buffer.from(global, "base64").toString("utf8");
  return decoded.slice(decoded.indexOf(":") + 1);
}
