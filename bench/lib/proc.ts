/**
 * Child processes of a benchmark run: every process started here is tracked
 * and killed when the run ends, fails or is interrupted, so a run never
 * leaves servers or load generators behind.
 */
import { type ChildProcess, type SpawnOptions, spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { createServer } from "node:net";

/** The repository root (bench/lib/ → ../../). */
export const REPO_ROOT = new URL("../../", import.meta.url).pathname;

const tracked = new Set<ChildProcess>();
let handlersInstalled = false;

/** Kills every tracked child that is still running (SIGKILL: this is the emergency path). */
export function killAllChildren(): void {
  for (const child of tracked) {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  }
  tracked.clear();
}

/** Makes sure children die with the run: on exit, on Ctrl-C and on SIGTERM. */
export function installExitHandlers(onSignal: () => Promise<void>): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on("exit", killAllChildren);
  let signalled = false;
  const handle = (signal: NodeJS.Signals) => {
    if (signalled) {
      killAllChildren();
      process.exit(130);
    }
    signalled = true;
    process.stderr.write(`\n[bench] ${signal}: stopping child processes and cleaning up…\n`);
    killAllChildren();
    onSignal().finally(() => process.exit(130));
  };
  process.on("SIGINT", handle);
  process.on("SIGTERM", handle);
}

/** Spawns a tracked child process. */
export function spawnTracked(command: string, args: readonly string[], options: SpawnOptions): ChildProcess {
  const child = spawn(command, args, options);
  tracked.add(child);
  child.once("exit", () => tracked.delete(child));
  return child;
}

/** Spawns `node --import tsx <script>` (a TypeScript entry point of this repository). */
export function spawnNodeTs(
  script: string,
  args: readonly string[],
  options: { env?: NodeJS.ProcessEnv; nodeArgs?: readonly string[]; ipc?: boolean } = {},
): ChildProcess {
  return spawnTracked(process.execPath, [...(options.nodeArgs ?? []), "--import", "tsx", script, ...args], {
    cwd: REPO_ROOT,
    env: options.env ?? process.env,
    stdio: options.ipc === true ? ["ignore", "pipe", "pipe", "ipc"] : ["ignore", "pipe", "pipe"],
  });
}

/** Resolves with the exit code, or rejects after `timeoutMs` (the child is then killed). */
export function waitExit(child: ChildProcess, timeoutMs: number, name: string): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${name} did not finish within ${Math.round(timeoutMs / 1000)} s; killed`));
    }, timeoutMs);
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

/** Keeps the last `linesMax` lines a child printed (for error messages). */
export function captureOutput(child: ChildProcess, linesMax = 200): string[] {
  const lines: string[] = [];
  const onData = (chunk: Buffer) => {
    for (const line of chunk.toString().split("\n")) {
      if (line.trim() === "") continue;
      lines.push(line);
      if (lines.length > linesMax) lines.shift();
    }
  };
  child.stdout?.on("data", onData);
  child.stderr?.on("data", onData);
  return lines;
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Resident set size of a process in MB (from /proc), or null when it is gone. */
export function rssMb(pid: number | undefined): number | null {
  if (pid === undefined) return null;
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    return match?.[1] === undefined ? null : Number(match[1]) / 1024;
  } catch {
    return null;
  }
}

/** CPU time (user + system) a process has used so far, in seconds, or null when it is gone. */
export function cpuSeconds(pid: number | undefined): number | null {
  if (pid === undefined) return null;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name (which may contain spaces) start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ticks = Number(fields[11]) + Number(fields[12]);
    return ticks / 100;
  } catch {
    return null;
  }
}

/** CPU seconds used so far by each process whose command name is `name` (and pid in `only`), by pid. */
function cpuByPid(name: string, only?: ReadonlySet<number>): Map<number, number> {
  const byPid = new Map<number, number>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    if (only !== undefined && !only.has(Number(entry))) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      if (comm !== name) continue;
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      byPid.set(Number(entry), (Number(fields[11]) + Number(fields[12])) / 100);
    } catch {
      // The process ended while we looked.
    }
  }
  return byPid;
}

/**
 * CPU used by every process named `name` (e.g. all PostgreSQL backends)
 * between `start()` and `stop()`, sampled every `intervalMs` so processes
 * that exit in between (pgbench's backends) still count, up to their last
 * sample.
 */
export function trackCpuByName(name: string, intervalMs = 250): { stop(): Promise<number> } {
  return trackCpu(name, async () => undefined, intervalMs);
}

/**
 * Like `trackCpuByName`, limited to the pids `pids()` names at each sample
 * (e.g. the PostgreSQL backends connected to one database); a pid first
 * seen mid-run counts from its start.
 */
export function trackCpu(
  name: string,
  pids: () => Promise<ReadonlySet<number> | undefined>,
  intervalMs = 250,
): { stop(): Promise<number> } {
  const initial = new Map<number, number>();
  const last = new Map<number, number>();
  let first = true;
  let running: Promise<void> = Promise.resolve();
  const sample = async () => {
    const only = await pids().catch(() => undefined);
    for (const [pid, seconds] of cpuByPid(name, only)) {
      if (first) initial.set(pid, seconds);
      last.set(pid, seconds);
    }
    first = false;
  };
  running = sample();
  const timer = setInterval(() => {
    running = running.then(sample);
  }, intervalMs);
  return {
    async stop() {
      clearInterval(timer);
      await running;
      await sample();
      let total = 0;
      for (const [pid, seconds] of last) total += seconds - (initial.get(pid) ?? 0);
      return total;
    },
  };
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
