/**
 * Where the tests find PostgreSQL and Redis: DATABASE_URL / REDIS_URL, or the
 * local defaults (PostgreSQL on 127.0.0.1:5432 as postgres, Redis on 6379).
 * Tests never use the database DATABASE_URL names: the global setup creates a
 * fresh database on that server for each run and drops it afterwards.
 */
export const SERVER_URL = process.env.DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/postgres";
export const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
/** A fixed secret for test servers (32+ characters). */
export const TEST_SECRET = "creditbook-test-secret-0123456789abcdef";

/** The URL of another database on the same server. */
export function databaseUrl(name: string): string {
  const url = new URL(SERVER_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

/** The run's shared test database (created by global-setup). */
export function testDatabaseUrl(): string {
  const name = process.env.CREDITBOOK_TEST_DB;
  if (name === undefined) throw new Error("CREDITBOOK_TEST_DB is set by test/support/global-setup.ts");
  return databaseUrl(name);
}

/**
 * Which database the behaviour tests run on: "postgres" (the run's test
 * database above) or "pglite" (an in-memory embedded database per test file),
 * chosen by CREDITBOOK_TEST_DATABASE, which vitest.config.ts sets per project.
 */
export const TEST_DATABASE: "postgres" | "pglite" =
  process.env.CREDITBOOK_TEST_DATABASE === "pglite" ? "pglite" : "postgres";
