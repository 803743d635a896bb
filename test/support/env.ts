/**
 * Where the tests find PostgreSQL and Redis: DATABASE_URL / REDIS_URL, or the
 * local defaults (PostgreSQL on 127.0.0.1:5432 as postgres, Redis on 6379).
 * Tests never use the database DATABASE_URL names: the global setup creates a
 * fresh database on that server for each run and drops it afterwards.
 */
// The default ports can be moved (CREDITBOOK_TEST_DEFAULT_PG_PORT / _REDIS_PORT)
// to try the throwaway-server path on a machine whose own servers are running.
export const DEFAULT_SERVER_URL = `postgresql://postgres@127.0.0.1:${process.env.CREDITBOOK_TEST_DEFAULT_PG_PORT ?? 5432}/postgres`;
export const DEFAULT_REDIS_URL = `redis://127.0.0.1:${process.env.CREDITBOOK_TEST_DEFAULT_REDIS_PORT ?? 6379}`;
export const SERVER_URL = process.env.DATABASE_URL ?? DEFAULT_SERVER_URL;
export const REDIS_URL = process.env.REDIS_URL ?? DEFAULT_REDIS_URL;
/** A fixed secret for test servers (32+ characters). */
export const TEST_SECRET = "creditbook-test-secret-0123456789abcdef";

/**
 * SERVER_URL as the environment says now: the global setup may have started
 * a throwaway PostgreSQL (test/support/services.ts) after this module loaded.
 */
export function serverUrl(): string {
  return process.env.DATABASE_URL ?? DEFAULT_SERVER_URL;
}
/** The URL of another database on the same server. */
export function databaseUrl(name: string): string {
  const url = new URL(serverUrl());
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
