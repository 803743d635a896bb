/**
 * Processes the fault tests start and stop themselves: a free port on
 * 127.0.0.1, and a dedicated PostgreSQL 15 cluster (initdb into a temporary
 * directory, its own port) that a test can stop, crash and start again
 * without touching the shared server every other test uses.
 */
import { execFile } from "node:child_process";
import { chownSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { freePort } from "../support/services.ts";

const run = promisify(execFile);

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Where Debian puts PostgreSQL 15's programs. */
const PG_BIN = process.env.PG_BIN ?? "/usr/lib/postgresql/15/bin";

export interface PostgresCluster {
  readonly port: number;
  readonly dir: string;
  /** postgresql://postgres@127.0.0.1:<port>/postgres */
  readonly url: string;
  /** `pg_ctl stop -m fast|immediate`: immediate is a crash (recovery from WAL at the next start). */
  stop(mode: "fast" | "immediate"): Promise<void>;
  start(): Promise<void>;
  /** Stops it (immediate) and deletes its directory. */
  destroy(): Promise<void>;
}

/**
 * Runs a PostgreSQL program as the `postgres` user when we are root (initdb
 * and the server refuse to run as root), else as ourselves.
 */
async function pg(program: string, args: readonly string[]): Promise<string> {
  const path = join(PG_BIN, program);
  const asRoot = process.getuid?.() === 0;
  const { stdout } = asRoot
    ? await run("runuser", ["-u", "postgres", "--", path, ...args], { timeout: 120_000 })
    : await run(path, [...args], { timeout: 120_000 });
  return stdout;
}

/**
 * Creates and starts a cluster on a free port (trust authentication, sockets
 * in the data directory, fsync off: it is thrown away, and the OS does not
 * crash in these tests, so committed data still survives a server crash).
 */
export async function startPostgresCluster(): Promise<PostgresCluster> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "creditbook-pg-"));
  if (process.getuid?.() === 0) {
    const { stdout } = await run("id", ["-u", "postgres"]);
    const { stdout: group } = await run("id", ["-g", "postgres"]);
    chownSync(dir, Number(stdout.trim()), Number(group.trim()));
  }
  const data = join(dir, "data");
  await pg("initdb", [
    "-D",
    data,
    "-A",
    "trust",
    "-U",
    "postgres",
    "-E",
    "UTF8",
    "--no-sync",
    "--no-instructions",
  ]);
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=60`;
  const start = async () => {
    await pg("pg_ctl", ["-D", data, "-o", options, "-l", join(dir, "server.log"), "-w", "-t", "60", "start"]);
  };
  const stop = async (mode: "fast" | "immediate") => {
    await pg("pg_ctl", ["-D", data, "-m", mode, "-w", "-t", "60", "stop"]);
  };
  await start();
  let destroyed = false;
  return {
    port,
    dir,
    url: `postgresql://postgres@127.0.0.1:${port}/postgres`,
    stop,
    start,
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      try {
        await stop("immediate");
      } catch {
        // Already stopped: nothing to do but remove the directory.
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
