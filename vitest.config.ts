import { defineConfig } from "vitest/config";

/**
 * Test files that stay on PostgreSQL (+ Redis) only: realtime across
 * instances, PostgreSQL/Redis faults, and anything needing two processes on
 * one database or a second connection into the server's own database.
 */
const POSTGRES_ONLY = [
  "test/billing/reaper-instances.test.ts", // two server processes reaping one database
  "test/dashboard/dashboard.test.ts", // starts its own embedded server for the embedded case; the rest checks DATABASE_URL mode
  "test/embedded.test.ts", // starts embedded servers itself, and one with DATABASE_URL
  "test/faults/commit-outcome.test.ts", // terminates a PostgreSQL backend at COMMIT
  "test/faults/unavailable.test.ts", // terminates PostgreSQL backends waiting on a lock
  "test/hardening/tracing.test.ts", // server processes; the spans it checks are the same on both
  "test/http/shutdown.test.ts", // holds a row lock from a second PostgreSQL connection
  "test/install/production.test.ts", // one pruned production install per run is enough
  "test/install/services.test.ts", // starts throwaway PostgreSQL and Redis servers
  "test/realtime/subscription-flood.test.ts", // measures the PostgreSQL pool's queue
  "test/hardening/logs.test.ts", // breaks a server process's database from outside
  "test/realtime/cross-instance.test.ts",
  "test/realtime/balance-alerts-cross-instance.test.ts", // two server processes sharing Redis
  "test/realtime/redis-outage.test.ts",
  "test/realtime/revocation.test.ts", // two server processes sharing Redis
  "test/reliability/crash.test.ts",
  "test/reliability/postgres-restart.test.ts",
  "test/reliability/reaper-race.test.ts", // two server processes on one database
  "test/reliability/redis-outage-load.test.ts",
  "test/webhooks/crash.test.ts", // server processes killed between commit and delivery
];

/**
 * Test files that touch no database, or test the HTTP layer in front of it
 * (parse cache, document shape, sockets, /metrics access, dev-login's Host
 * check): the database under them changes nothing, so once is enough.
 */
const NO_DATABASE = [
  "test/config.test.ts",
  "test/webhooks/rules.test.ts", // SSRF rules and the retry schedule
  "test/dashboard/demo.test.ts", // the demo script's output; the ledger under it is tested on both
  "test/dashboard/dev-login-host.test.ts",
  "test/dashboard/graphql-client.test.ts",
  "test/dashboard/model.test.ts",
  "test/dashboard/server.test.ts",
  "test/docs/errors.test.ts",
  "test/docs/limits.test.ts",
  "test/docs/webhook-verify.test.ts",
  "test/docs/links.test.ts",
  "test/faults/id-fuzz.test.ts", // id and cursor parsing happens before any query
  "test/hardening/connections.test.ts",
  "test/install/dependencies.test.ts",
  "test/hardening/document-cache.test.ts",
  "test/hardening/introspection.test.ts",
  "test/hardening/metrics-access.test.ts",
  "test/http/config.test.ts",
  "test/realtime/slow-consumer.test.ts", // a subscriber's queue in this process
  "test/schema/descriptions.test.ts",
  "test/realtime/channel.test.ts",
  "test/realtime/shared-events.test.ts",
];

export default defineConfig({
  test: {
    globalSetup: ["test/support/global-setup.ts", "test/support/pglite-template.ts"],
    setupFiles: ["test/support/audit-after-file.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
    // Test files share a worker's loaded modules (the schema, Prisma, PGlite): importing them
    // once per file was most of the suite's time. Each file still opens its own servers and
    // (on PGlite) its own database, and closes them in afterAll.
    isolate: false,
    fileParallelism: true,
    maxWorkers: 4,
    reporters: ["default", "./test/support/projects-reporter.ts"],
    // One suite, two databases: every behaviour test runs on PostgreSQL and on embedded PGlite.
    projects: [
      { extends: true, test: { name: "postgres", include: ["test/**/*.test.ts"] } },
      {
        extends: true,
        test: {
          name: "pglite",
          include: ["test/**/*.test.ts"],
          exclude: [...POSTGRES_ONLY, ...NO_DATABASE],
          env: { CREDITBOOK_TEST_DATABASE: "pglite" },
          // One connection: every transaction of a file's servers queues behind the others,
          // so the files that first write a thousand entries need longer to set up.
          testTimeout: 120_000,
          hookTimeout: 180_000,
        },
      },
    ],
  },
});
