import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testDatabaseUrl } from "./support/env.ts";
import { CREATE_ACCOUNT, GRANT } from "./support/fixtures.ts";
import { unique } from "./support/harness.ts";

const ROOT = new URL("..", import.meta.url).pathname;

/**
 * A clean environment for a child process: nothing of this run's
 * DATABASE_URL, REDIS_URL or AUTH_JWT_SECRET leaks in unless given.
 */
function childEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const name of ["PATH", "HOME", "TMPDIR", "LANG"]) {
    const value = process.env[name];
    if (value !== undefined) env[name] = value;
  }
  return { ...env, NODE_ENV: "test", ...extra };
}

interface RunningServer {
  readonly child: ChildProcess;
  readonly url: string;
  /** Resolves with the exit code (or the signal's name) once the process ended. */
  readonly exited: Promise<number | string>;
  stderr(): string;
  /** The stdout lines so far (JSON log lines). */
  log(): readonly string[];
}

const running = new Set<ChildProcess>();

/** Starts `src/server/main.ts` as its own process and waits for its "listening" log line. */
/**
 * Alone a start takes a few seconds (tsx, then PGlite's WebAssembly start);
 * on a machine busy with the rest of the suite it can take many times that.
 */
const PROCESS_START_MAX_MS = 90_000;

function startProcess(env: NodeJS.ProcessEnv, timeoutMs = PROCESS_START_MAX_MS): Promise<RunningServer> {
  const child = spawn(process.execPath, ["--import", "tsx", "src/server/main.ts"], {
    cwd: ROOT,
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  running.add(child);
  let stderr = "";
  const lines: string[] = [];
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
  });
  const exited = new Promise<number | string>((resolve) => {
    child.once("exit", (code, signal) => {
      running.delete(child);
      resolve(code ?? signal ?? "unknown");
    });
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(
        new Error(
          `no "listening" line within ${timeoutMs} ms; stdout: ${lines.join("\n")}; stderr: ${stderr}`,
        ),
      );
    }, timeoutMs);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`the server exited (${code}) before listening; stderr: ${stderr}`));
    });
    const stdout = child.stdout;
    if (stdout === null) throw new Error("stdout is piped");
    createInterface({ input: stdout }).on("line", (line) => {
      lines.push(line);
      let entry: { msg?: unknown; url?: unknown };
      try {
        entry = JSON.parse(line) as typeof entry;
      } catch {
        // Every stdout line is a JSON log line; anything else fails the check below.
        entry = {};
      }
      if (entry.msg === "listening" && typeof entry.url === "string") {
        clearTimeout(timer);
        resolve({ child, url: entry.url, exited, stderr: () => stderr, log: () => lines });
      }
    });
  });
}

/** Runs a process to the end; resolves with its exit code and output. */
function runToEnd(
  args: readonly string[],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ["--import", "tsx", ...args],
      { cwd: ROOT, env, timeout: PROCESS_START_MAX_MS },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === "number" ? error.code : -1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

async function gql(server: RunningServer, token: string, query: string, variables: Record<string, unknown>) {
  const response = await fetch(server.url, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
  });
  expect(response.status).toBe(200);
  // biome-ignore lint/suspicious/noExplicitAny: a test helper reading whatever shape the query asked for
  const body = (await response.json()) as { data?: Record<string, any>; errors?: unknown[] };
  if (body.errors !== undefined || body.data == null) {
    // The server's own log says why; the masked answer does not.
    await new Promise((resolve) => setTimeout(resolve, 100));
    throw new Error(
      `GraphQL errors: ${JSON.stringify(body.errors)}\nserver log:\n${server.log().slice(-5).join("\n")}`,
    );
  }
  return body.data;
}

describe("embedded mode: PGlite in DATA_DIR, no DATABASE_URL or REDIS_URL", () => {
  let dataDir: string;
  beforeAll(() => {
    dataDir = mkdtempSync(join(tmpdir(), "creditbook-embedded-"));
  });
  afterAll(() => {
    for (const child of running) child.kill("SIGKILL");
    rmSync(dataDir, { recursive: true, force: true });
  });

  it.concurrent(
    "keeps accounts, balances and its secret across a restart",
    async () => {
      const env = childEnv({ PORT: "0", HOST: "127.0.0.1", DATA_DIR: dataDir, LOG_LEVEL: "info" });

      // Before the first start there is no secret to sign with: the script says so.
      const early = await runToEnd(["src/cli/token.ts", "--sub", "svc", "--role", "service"], env);
      expect(early.code).not.toBe(0);
      expect(early.stderr).toMatch(/AUTH_JWT_SECRET/);
      expect(early.stdout).toBe("");

      const first = await startProcess(env);
      expect(first.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/graphql$/);
      const secretPath = join(dataDir, "auth-secret");
      expect(existsSync(secretPath)).toBe(true);
      expect(statSync(secretPath).mode & 0o777).toBe(0o600);

      const minted = await runToEnd(["src/cli/token.ts", "--sub", "svc", "--role", "service"], env);
      expect(minted.stderr).toBe("");
      expect(minted.code).toBe(0);
      const token = minted.stdout.trim();
      expect(token.split(".")).toHaveLength(3);

      const created = await gql(first, token, CREATE_ACCOUNT, {
        input: { idempotencyKey: unique("acct"), kind: "PERSONAL", name: "Embedded", ownerId: "alice" },
      });
      expect(created.createAccount.__typename).toBe("CreateAccountSuccess");
      const accountId = created.createAccount.account.id as string;
      const granted = await gql(first, token, GRANT, {
        input: { idempotencyKey: unique("grant"), accountId, source: "WALLET", amount: 1234 },
      });
      expect(granted.grantCredits).toMatchObject({ balance: { available: 1234, sequence: 1 } });

      first.child.kill("SIGTERM");
      expect(await first.exited).toBe(0);

      const second = await startProcess(env);
      try {
        // The same token still verifies: the secret was read back, not generated again.
        const balance = await gql(
          second,
          token,
          `query($id: ID!) { balance(accountId: $id) { available wallet sequence } }`,
          {
            id: accountId,
          },
        );
        expect(balance.balance).toEqual({ available: 1234, wallet: 1234, sequence: 1 });
        // Migrations were applied by the first start only.
        const applied = (server: RunningServer) =>
          server.log().filter((line) => line.includes('"migrations applied"'));
        expect(applied(first)).toHaveLength(1);
        expect(applied(second)).toEqual([]);
      } finally {
        second.child.kill("SIGTERM");
        expect(await second.exited).toBe(0);
      }
      expect(second.stderr()).toBe("");
    },
    3 * PROCESS_START_MAX_MS,
  );
});

describe("PostgreSQL mode needs AUTH_JWT_SECRET", () => {
  it.concurrent(
    "refuses to start, with one stderr line naming AUTH_JWT_SECRET",
    async () => {
      const dataDir = mkdtempSync(join(tmpdir(), "creditbook-nosecret-"));
      try {
        const result = await runToEnd(
          ["src/server/main.ts"],
          childEnv({ PORT: "0", HOST: "127.0.0.1", DATABASE_URL: testDatabaseUrl(), DATA_DIR: dataDir }),
        );
        expect(result.code).not.toBe(0);
        const lines = result.stderr.trimEnd().split("\n");
        expect(lines).toHaveLength(1);
        expect(lines[0]).toMatch(/AUTH_JWT_SECRET/);
        expect(lines[0]).toMatch(/DATABASE_URL/);
        expect(result.stdout).not.toMatch(/"msg":"listening"/);
        // No secret was generated as a fallback.
        expect(existsSync(join(dataDir, "auth-secret"))).toBe(false);
      } finally {
        rmSync(dataDir, { recursive: true, force: true });
      }
    },
    PROCESS_START_MAX_MS,
  );
});
