/**
 * Creditbook server instances for the benchmark: the compiled server
 * (`node dist/server/main.js`, as `npm start` runs it) in their own
 * processes, on a free loopback port,
 * ready when /readyz answers 200 (the "listening" log line is at info
 * level, and the bench runs servers with LOG_LEVEL=warn to keep logging off
 * the hot path).
 */
import type { ChildProcess } from "node:child_process";
import {
  captureOutput,
  cpuSeconds,
  freePort,
  REPO_ROOT,
  rssMb,
  sleep,
  spawnTracked,
  waitExit,
} from "./proc.ts";

/** The compiled server's entry point (`npm run build`). */
export const SERVER_ENTRY = "dist/server/main.js";

export interface ServerOptions {
  readonly name: string;
  readonly databaseUrl: string;
  readonly secret: string;
  readonly redisUrl?: string;
  /** Extra environment (REAPER_INTERVAL_MS, REAPER_ENABLED, DATABASE_POOL_SIZE, …). */
  readonly env?: Readonly<Record<string, string>>;
  /** Extra node flags, e.g. --cpu-prof. */
  readonly nodeArgs?: readonly string[];
  /** How long to wait for /readyz. @default 60_000 // 60 seconds */
  readonly startTimeoutMs?: number;
}

export interface ServerInstance {
  readonly name: string;
  readonly url: string;
  readonly wsUrl: string;
  readonly pid: number | undefined;
  readonly child: ChildProcess;
  readonly output: string[];
  rssMb(): number | null;
  cpuSeconds(): number | null;
  /** SIGTERM (graceful: flushes a CPU profile), SIGKILL after 20 s. */
  stop(): Promise<void>;
}

/**
 * Extra server environment for experiments, from BENCH_SERVER_ENV
 * ("KEY=value KEY2=value"): applied to every server the bench starts, after
 * its own settings, and named in the report.
 */
export function serverEnvOverrides(): Record<string, string> {
  const overrides: Record<string, string> = {};
  for (const pair of (process.env.BENCH_SERVER_ENV ?? "").split(/\s+/)) {
    const at = pair.indexOf("=");
    if (at > 0) overrides[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return overrides;
}

/** Starts one server and waits until it is ready. */
export async function startServer(options: ServerOptions): Promise<ServerInstance> {
  const port = await freePort();
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    NODE_ENV: "production",
    DATABASE_URL: options.databaseUrl,
    AUTH_JWT_SECRET: options.secret,
    PORT: String(port),
    HOST: "127.0.0.1",
    LOG_LEVEL: "warn",
    GRAPHIQL: "false",
    // The bench measures capacity: one service principal sends everything, so the per-principal
    // mutation rate limit (1,000/s by default) would measure the limiter instead.
    RATE_LIMIT_PER_SECOND: "0",
    ...(options.redisUrl === undefined ? {} : { REDIS_URL: options.redisUrl }),
    ...options.env,
    ...serverEnvOverrides(),
  };
  if (options.redisUrl === undefined) delete env.REDIS_URL;
  // The compiled server, as `npm start` runs it (bench/run.ts builds it first).
  const child = spawnTracked(
    process.execPath,
    [...(options.nodeArgs ?? []), "--enable-source-maps", SERVER_ENTRY],
    {
      cwd: REPO_ROOT,
      env,
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  const output = captureOutput(child);
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + (options.startTimeoutMs ?? 60_000);
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      // Let the pipes drain so the error shows what the server printed.
      await new Promise((resolve) => setTimeout(resolve, 200));
      throw new Error(
        `server ${options.name} exited (${child.exitCode ?? child.signalCode}) before it was ready:\n${output.slice(-30).join("\n")}`,
      );
    }
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(
        `server ${options.name} was not ready within the timeout:\n${output.slice(-30).join("\n")}`,
      );
    }
    try {
      const response = await fetch(`${base}/readyz`, { signal: AbortSignal.timeout(2_000) });
      if (response.status === 200) break;
    } catch {
      // Not listening yet.
    }
    await sleep(50);
  }
  return {
    name: options.name,
    url: `${base}/graphql`,
    wsUrl: `ws://127.0.0.1:${port}/graphql`,
    pid: child.pid,
    child,
    output,
    rssMb: () => rssMb(child.pid),
    cpuSeconds: () => cpuSeconds(child.pid),
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      try {
        await waitExit(child, 20_000, `server ${options.name}`);
      } catch {
        // waitExit killed it.
      }
    },
  };
}

/** Samples the RSS of servers every `intervalMs`; `stop()` returns the maximum seen per server. */
export function sampleRss(servers: readonly ServerInstance[], intervalMs = 500): { stop(): number[] } {
  const max = servers.map((server) => server.rssMb() ?? 0);
  const timer = setInterval(() => {
    servers.forEach((server, i) => {
      max[i] = Math.max(max[i] ?? 0, server.rssMb() ?? 0);
    });
  }, intervalMs);
  return {
    stop() {
      clearInterval(timer);
      servers.forEach((server, i) => {
        max[i] = Math.max(max[i] ?? 0, server.rssMb() ?? 0);
      });
      return max;
    },
  };
}
