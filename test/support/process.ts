import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TEST_SECRET, testDatabaseUrl } from "./env.ts";
import { onPglite } from "./test-database.ts";

/** A server started as its own process (`tsx src/server/main.ts`). */
export interface ServerProcess {
  readonly child: ChildProcess;
  readonly url: string;
  readonly logs: string[];
  /** Sends `signal` and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * Starts the server as a separate process on a free port, against the test
 * database unless `env` says otherwise, and waits for its "listening" log line.
 * In the pglite project the process runs the embedded default (no
 * DATABASE_URL) on a data directory of its own, removed when it stops.
 */
export async function startServerProcess(
  env: Record<string, string | undefined> = {},
): Promise<ServerProcess> {
  const dataDir = onPglite() ? mkdtempSync(join(tmpdir(), "creditbook-process-")) : undefined;
  const child = spawn(process.execPath, ["--import", "tsx", "src/server/main.ts"], {
    cwd: new URL("../..", import.meta.url).pathname,
    env: {
      ...process.env,
      // An undefined value leaves the variable out of the child's environment.
      DATABASE_URL: dataDir === undefined ? testDatabaseUrl() : undefined,
      ...(dataDir === undefined ? {} : { DATA_DIR: dataDir }),
      AUTH_JWT_SECRET: TEST_SECRET,
      PORT: "0",
      HOST: "127.0.0.1",
      LOG_LEVEL: "info",
      DATABASE_POOL_SIZE: "5",
      RATE_LIMIT_PER_SECOND: "0",
      WEBHOOK_WORKER_ENABLED: "false",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const logs: string[] = [];
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${logs.join("\n")}`)), 90_000);
    const onLine = (chunk: Buffer) => {
      for (const line of chunk.toString().split("\n")) {
        if (line.trim() === "") continue;
        logs.push(line);
        try {
          const parsed = JSON.parse(line) as { msg?: string; url?: string };
          if (parsed.msg === "listening" && parsed.url !== undefined) {
            clearTimeout(timer);
            resolve(parsed.url);
          }
        } catch {
          // Not a log line (e.g. a warning): kept in `logs` for diagnostics.
        }
      }
    };
    child.stdout?.on("data", onLine);
    child.stderr?.on("data", onLine);
    child.once("exit", (code) => {
      clearTimeout(timer);
      if (dataDir !== undefined) rmSync(dataDir, { recursive: true, force: true });
      reject(new Error(`server exited with ${code} before listening:\n${logs.join("\n")}`));
    });
  });
  return {
    child,
    url,
    logs,
    async stop(signal = "SIGTERM") {
      if (child.exitCode !== null) return child.exitCode;
      child.kill(signal);
      const [code] = (await once(child, "exit")) as [number | null];
      return code;
    },
  };
}
