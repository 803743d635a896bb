/**
 * The production install of SPEC §6 on a copy of the repository's tracked
 * files: `npm ci && npm run build && npm prune --omit=dev` (and
 * `--omit=optional`, as the Dockerfile does), then
 * `NODE_ENV=production npm run db:migrate`, `npm run token` and `npm start`
 * against a fresh PostgreSQL database and the test Redis, with no dev
 * dependency installed. The slowest test of the suite (a full install): it
 * prints how long each step took.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync } from "node:fs";
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { databaseUrl, REDIS_URL, serverUrl, TEST_SECRET } from "../support/env.ts";

const run = promisify(execFile);
const ROOT = new URL("../..", import.meta.url).pathname;
/** A whole install on a busy 2-core machine. @default 900_000 // 15 minutes */
const INSTALL_TIMEOUT_MS = 900_000;
/** Deleting the copy (hundreds of MB of node_modules) on a busy disk. @default 300_000 // 5 minutes */
const CLEANUP_TIMEOUT_MS = 300_000;
/** How long the pruned server may take to log "listening". @default 90_000 // 90 seconds */
const START_TIMEOUT_MS = 90_000;
/**
 * Whether the copy gets its own `npm ci` and `npm run build` (CREDITBOOK_TEST_FULL_INSTALL=1).
 * By default it takes this checkout's node_modules, dist/ and dashboard/dist, which `npm ci`
 * installed from the same package-lock.json and built with `npm run build` (its postinstall;
 * CI's first step): the same files, without a second install and build competing with the rest
 * of the suite for CI's 15 minutes. Both prunes and the production start run as ever.
 */
const FULL_INSTALL = process.env.CREDITBOOK_TEST_FULL_INSTALL === "1";
/** Packages only the build and the tests use; `npm prune --omit=dev` removes them. */
const DEV_PACKAGES = ["tsx", "vitest", "vite", "@biomejs/biome", "@graphql-codegen/cli", "playwright-core"];
/**
 * Dev dependencies that @prisma/client names as optional peers: npm counts
 * them as optional production packages, so only `--omit=optional` removes them.
 */
const OPTIONAL_PEER_PACKAGES = ["typescript", "prisma"];

/**
 * What a fresh shell would pass: no NODE_ENV=test from vitest and no
 * npm_config_* from an `npm test` around this run.
 */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const name of ["PATH", "HOME", "TMPDIR", "LANG"]) {
    const value = process.env[name];
    if (value !== undefined) env[name] = value;
  }
  return { ...env, ...extra };
}

describe("the production install (npm ci, build, prune --omit=dev, NODE_ENV=production npm start)", () => {
  const dir = mkdtempSync(join(tmpdir(), "creditbook-production-"));
  const database = `creditbook_production_${process.pid}_${Date.now().toString(36)}`;
  let server: ChildProcess | undefined;

  afterAll(async () => {
    if (server?.exitCode === null) server.kill("SIGKILL");
    const admin = new pg.Client({ connectionString: serverUrl() });
    await admin.connect();
    await admin.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
    await admin.end();
    await rm(dir, { recursive: true, force: true });
  }, CLEANUP_TIMEOUT_MS);

  it(
    "installs, builds and prunes, then migrates, mints a token and serves with no dev dependency",
    async () => {
      const timings: string[] = [];
      const step = async <T>(name: string, work: () => Promise<T>): Promise<T> => {
        const startedMs = Date.now();
        const result = await work();
        timings.push(`${name} ${((Date.now() - startedMs) / 1000).toFixed(1)} s`);
        return result;
      };
      const npm = (args: string[], env: Record<string, string> = {}) =>
        run("npm", args, { cwd: dir, env: cleanEnv(env), maxBuffer: 64 * 1024 * 1024 });

      await step("copy", () => copyTrackedFiles(dir));
      if (FULL_INSTALL) {
        // `--ignore-scripts` skips only this package's postinstall (npm does not run dependencies'
        // install scripts here anyway): it would build everything that `npm run build` builds next.
        await step("npm ci", () =>
          npm(["ci", "--prefer-offline", "--ignore-scripts", "--no-audit", "--no-fund"]),
        );
        await step("npm run build", () => npm(["run", "build"]));
      } else {
        await step("copy node_modules and the build", async () => {
          await run("cp", ["-a", join(ROOT, "node_modules"), dir]);
          await run("cp", ["-a", join(ROOT, "dist"), dir]);
          await run("cp", ["-a", join(ROOT, "dashboard", "dist"), join(dir, "dashboard")]);
        });
      }
      await step("npm prune --omit=dev", () => npm(["prune", "--omit=dev", "--no-audit", "--no-fund"]));
      for (const name of DEV_PACKAGES) expect(existsSync(join(dir, "node_modules", name)), name).toBe(false);
      // The image prunes these too; starting without them shows nothing needs them.
      await step("npm prune --omit=dev --omit=optional", () =>
        npm(["prune", "--omit=dev", "--omit=optional", "--no-audit", "--no-fund"]),
      );
      for (const name of OPTIONAL_PEER_PACKAGES) {
        expect(existsSync(join(dir, "node_modules", name)), name).toBe(false);
      }
      expect(existsSync(join(dir, "dist/server/main.js"))).toBe(true);
      expect(existsSync(join(dir, "dashboard/dist/index.html"))).toBe(true);

      const admin = new pg.Client({ connectionString: serverUrl() });
      await admin.connect();
      await admin.query(`CREATE DATABASE ${database}`);
      await admin.end();
      const production = {
        NODE_ENV: "production",
        DATABASE_URL: databaseUrl(database),
        AUTH_JWT_SECRET: TEST_SECRET,
        REDIS_URL,
      };
      const migrated = await step("npm run db:migrate", () => npm(["run", "-s", "db:migrate"], production));
      expect(migrated.stdout).toMatch(/^applied: \d+_init/);
      const minted = await npm(
        ["run", "-s", "token", "--", "--sub", "production-test", "--role", "service"],
        {
          NODE_ENV: "production",
          AUTH_JWT_SECRET: TEST_SECRET,
        },
      );
      const token = minted.stdout.trim();
      expect(token.split(".")).toHaveLength(3);

      const started = await step("npm start until listening", () => startPruned(dir, production));
      server = started.child;
      const origin = new URL(started.url).origin;
      // Ready once PostgreSQL and Redis both answer; "listening" can come before Redis connects.
      expect(await readyWithin(`${origin}/readyz`, 15_000)).toBe(200);
      const response = await fetch(started.url, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
        body: JSON.stringify({
          query: `mutation { createAccount(input: { idempotencyKey: "production-1", kind: PERSONAL, name: "Prod", ownerId: "prod" }) {
            __typename ... on CreateAccountSuccess { account { balance { available } } } } }`,
        }),
      });
      expect(response.status).toBe(200);
      expect(await response.json()).toEqual({
        data: {
          createAccount: { __typename: "CreateAccountSuccess", account: { balance: { available: 0 } } },
        },
      });
      expect((await fetch(`${origin}/dashboard/`)).status).toBe(200);
      // SIGTERM to npm reaches the server (`exec` in the start script): it shuts down cleanly.
      server.kill("SIGTERM");
      expect(await started.exited).toBe(0);
      console.log(`production install: ${timings.join(", ")}`);
    },
    INSTALL_TIMEOUT_MS,
  );
});

/** Copies the files git tracks (as they are in the working tree) into `target`. */
async function copyTrackedFiles(target: string): Promise<void> {
  const { stdout } = await run("git", ["ls-files", "-z"], { cwd: ROOT, maxBuffer: 16 * 1024 * 1024 });
  for (const file of stdout.split("\0")) {
    // A tracked file deleted in the working tree is not part of the copy.
    if (file === "" || !existsSync(join(ROOT, file))) continue;
    mkdirSync(dirname(join(target, file)), { recursive: true });
    cpSync(join(ROOT, file), join(target, file));
  }
}

/** `npm start` in the pruned copy on a free port; resolves once it logs "listening". */
async function startPruned(
  dir: string,
  env: Record<string, string>,
): Promise<{ child: ChildProcess; url: string; exited: Promise<number | null> }> {
  const child = spawn("npm", ["start"], {
    cwd: dir,
    env: cleanEnv({ ...env, PORT: "0", HOST: "127.0.0.1", LOG_LEVEL: "info" }),
    stdio: ["ignore", "pipe", "pipe"],
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  let output = "";
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
    output += chunk;
  });
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no "listening" line:\n${output}`)), START_TIMEOUT_MS);
    child.once("exit", (code) => reject(new Error(`npm start exited with ${code}:\n${output}`)));
    child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
      output += chunk;
      const listening = /"url":"([^"]+)".*"msg":"listening"/.exec(output);
      if (listening?.[1] !== undefined) {
        clearTimeout(timer);
        resolve(listening[1]);
      }
    });
  });
  return { child, url, exited };
}

/** Polls a readiness URL until it answers 200 or `timeoutMs` passes; returns the last status. */
async function readyWithin(url: string, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { status } = await fetch(url);
    if (status === 200 || Date.now() > deadline) return status;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
