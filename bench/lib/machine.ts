/** What the benchmark ran on: reported next to every figure, since figures mean nothing without it. */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { cpus, loadavg, totalmem } from "node:os";
import { Redis } from "ioredis";
import { REPO_ROOT } from "./proc.ts";
import { serverEnvOverrides } from "./server.ts";

export interface MachineFacts {
  readonly date: string;
  readonly cpuModel: string;
  readonly cores: number;
  readonly ramGiB: number;
  readonly node: string;
  readonly postgres: string;
  readonly postgresSettings: Record<string, string>;
  readonly redis: string;
  readonly pgbench: string;
  readonly gitCommit: string;
  readonly loadAverageAtStart: number[];
  /** How busy the machine was (all cores, %) in the seconds before the run: other work skews every figure. */
  readonly busyBeforeRunPercent: number | null;
  /** BENCH_SERVER_ENV: environment every bench server got on top of the bench's own. */
  readonly serverEnvOverrides: Record<string, string>;
}

/** Redis server version, or a clear error when Redis cannot be reached. */
export async function redisVersion(url: string): Promise<string> {
  const redis = new Redis(url, {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null,
    connectTimeout: 3_000,
  });
  redis.on("error", () => {});
  try {
    await redis.connect();
    const info = await redis.info("server");
    return /redis_version:(\S+)/.exec(info)?.[1] ?? "unknown";
  } catch (error) {
    throw new Error(
      `Redis is not reachable at ${url} (${(error as Error).message}). Start it (e.g. 'redis-server --daemonize yes') or set BENCH_REDIS_URL.`,
    );
  } finally {
    redis.disconnect();
  }
}

function command(file: string, args: readonly string[]): string {
  try {
    return execFileSync(file, args, {
      cwd: REPO_ROOT,
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    }).trim();
  } catch {
    return "unavailable";
  }
}

export function pgbenchVersion(pgbench: string): string {
  return command(pgbench, ["--version"]);
}

function gitCommit(): string {
  const head = command("git", ["rev-parse", "--short", "HEAD"]);
  const dirty = command("git", ["status", "--porcelain", "--untracked-files=no"]);
  return dirty === "" || dirty === "unavailable" ? head : `${head} (+ uncommitted changes)`;
}

export function machineFacts(
  postgres: string,
  postgresSettings: Record<string, string>,
  redis: string,
  pgbench: string,
  busyBeforeRunPercent: number | null,
): MachineFacts {
  let cpuModel = cpus()[0]?.model ?? "unknown";
  try {
    const match = /^model name\s*:\s*(.+)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"));
    if (match?.[1] !== undefined) cpuModel = match[1].trim();
  } catch {
    // Not Linux: os.cpus() is good enough.
  }
  return {
    date: new Date().toISOString(),
    cpuModel,
    cores: cpus().length,
    ramGiB: Math.round((totalmem() / 1024 ** 3) * 10) / 10,
    node: process.version,
    postgres,
    postgresSettings,
    redis,
    pgbench,
    gitCommit: gitCommit(),
    loadAverageAtStart: loadavg().map((value) => Math.round(value * 100) / 100),
    busyBeforeRunPercent,
    serverEnvOverrides: serverEnvOverrides(),
  };
}

/** Total and idle CPU jiffies of the whole machine (/proc/stat), to compute utilisation over a window. */
export function machineCpu(): { total: number; idle: number } | null {
  try {
    const line = readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "";
    const values = line.trim().split(/\s+/).slice(1).map(Number);
    const total = values.reduce((sum, value) => sum + value, 0);
    const idle = (values[3] ?? 0) + (values[4] ?? 0);
    return { total, idle };
  } catch {
    return null;
  }
}

/** Share of the machine (all cores, %) that was busy over the next `windowMs`. */
export async function measureBusyPercent(windowMs: number): Promise<number | null> {
  const before = machineCpu();
  await new Promise((resolve) => setTimeout(resolve, windowMs));
  const after = machineCpu();
  if (before === null || after === null || after.total === before.total) return null;
  return Math.round((1 - (after.idle - before.idle) / (after.total - before.total)) * 1000) / 10;
}
