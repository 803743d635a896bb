/**
 * test/support/services.ts for real: where nothing listens on the default
 * ports, the global setup starts a throwaway PostgreSQL and Redis, migrates
 * the run's database in it, and stops both at teardown; where the programs
 * are missing it fails in one line naming what to install.
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import Redis from "ioredis";
import pg from "pg";
import { describe, expect, it } from "vitest";
import { REDIS_URL, serverUrl } from "../support/env.ts";
import { listening, startTestServices } from "../support/services.ts";

const ROOT = new URL("../..", import.meta.url).pathname;

/** A port nothing listens on (bound, then released). */
async function deadPort(): Promise<number> {
  const server = createServer().listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Runs the global setup in its own process with `env`; it tears down when told on stdin. */
const SETUP_SCRIPT = `
import setup from "./test/support/global-setup.ts";
const teardown = await setup();
const { DATABASE_URL, REDIS_URL, CREDITBOOK_TEST_DB } = process.env;
process.stdout.write(JSON.stringify({ DATABASE_URL, REDIS_URL, CREDITBOOK_TEST_DB }) + "\\n");
// If the test fails midway it closes stdin: exit, and the exit hook stops the servers.
process.stdin.once("end", () => process.exit(1));
process.stdin.once("data", async () => {
  await teardown();
  process.stdout.write("torn down\\n");
  process.stdin.once("data", () => process.exit(0));
});
`;

describe("throwaway PostgreSQL and Redis for npm test", () => {
  it("starts both where nothing listens on the default ports, migrates the run's database, and stops them", async () => {
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      CREDITBOOK_TEST_DEFAULT_PG_PORT: String(await deadPort()),
      CREDITBOOK_TEST_DEFAULT_REDIS_PORT: String(await deadPort()),
    };
    const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", SETUP_SCRIPT], {
      cwd: ROOT,
      env,
      stdio: ["pipe", "pipe", "inherit"],
    });
    const exited = once(child, "exit");
    try {
      const [line] = (await once(child.stdout.setEncoding("utf8"), "data")) as [string];
      const urls = JSON.parse(line) as {
        DATABASE_URL: string;
        REDIS_URL: string;
        CREDITBOOK_TEST_DB: string;
      };
      expect(new URL(urls.DATABASE_URL).port).not.toBe(env.CREDITBOOK_TEST_DEFAULT_PG_PORT);
      expect(new URL(urls.DATABASE_URL).port).not.toBe("5432");
      expect(new URL(urls.REDIS_URL).port).not.toBe("6379");

      const admin = new pg.Client({ connectionString: urls.DATABASE_URL });
      await admin.connect();
      const dataDirectory = (await admin.query("SHOW data_directory")).rows[0].data_directory as string;
      await admin.end();
      expect(dataDirectory.startsWith(tmpdir())).toBe(true);
      const testDb = new pg.Client({
        connectionString: databaseOn(urls.DATABASE_URL, urls.CREDITBOOK_TEST_DB),
      });
      await testDb.connect();
      const migrations = await testDb.query("SELECT count(*)::int AS n FROM _prisma_migrations");
      await testDb.end();
      expect(migrations.rows[0].n).toBeGreaterThan(0);
      const redis = new Redis(urls.REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
      expect(await redis.ping()).toBe("PONG");
      redis.disconnect();

      // Stopped by the teardown itself, before the process exits.
      child.stdin.write("teardown\n");
      expect(String((await once(child.stdout, "data"))[0])).toBe("torn down\n");
      expect(await listening(urls.DATABASE_URL)).toBe(false);
      expect(await listening(urls.REDIS_URL)).toBe(false);
      expect(existsSync(dataDirectory)).toBe(false);
      child.stdin.write("exit\n");
      expect(await exited).toEqual([0, null]);
    } finally {
      child.stdin.end();
    }
  });

  it("leaves listening servers alone and starts nothing", async () => {
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH };
    const services = await startTestServices({ env, postgresUrl: serverUrl(), redisUrl: REDIS_URL });
    expect(services.postgresUrl).toBeUndefined();
    expect(services.redisUrl).toBeUndefined();
    expect(env.DATABASE_URL).toBeUndefined();
    expect(env.REDIS_URL).toBeUndefined();
    await services.stop();
  });

  it("fails in one line saying what to install when the programs are missing", async () => {
    const attempt = startTestServices({
      env: {},
      postgresUrl: `postgresql://postgres@127.0.0.1:${await deadPort()}/postgres`,
      redisUrl: `redis://127.0.0.1:${await deadPort()}`,
      programDirs: [],
    });
    const error = (await attempt.catch((caught: Error) => caught)) as Error;
    expect(error).toBeInstanceOf(Error);
    expect(error.message).not.toContain("\n");
    expect(error.stack).toBe(error.message);
    expect(error.message).toMatch(
      /initdb\/pg_ctl are not installed: install PostgreSQL .* or set DATABASE_URL/,
    );
    expect(error.message).toMatch(/redis-server is not installed: install Redis .* or set REDIS_URL/);
  });
});

function databaseOn(serverUrlText: string, name: string): string {
  const url = new URL(serverUrlText);
  url.pathname = `/${name}`;
  return url.toString();
}
