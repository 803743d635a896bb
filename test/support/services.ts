/**
 * PostgreSQL and Redis for a test run. DATABASE_URL / REDIS_URL win; else the
 * local defaults are used when something listens there; else, when the
 * programs are installed, a throwaway server is started on a free port
 * (`initdb` + `pg_ctl` in a temp dir, `redis-server --save ''`) and its URL
 * is put into this process's environment, which the test workers inherit.
 * The global setup stops them after the run.
 */
import { type ChildProcess, execFile, spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { promisify } from "node:util";
import { DEFAULT_REDIS_URL, DEFAULT_SERVER_URL } from "./env.ts";

const run = promisify(execFile);

/** How long a probe of a default port waits for a connection. @default 1_000 // 1 second */
const PROBE_TIMEOUT_MS = 1_000;
/** How long a throwaway server may take to accept connections. @default 60_000 // 1 minute */
const START_TIMEOUT_MS = 60_000;
/** Where Debian installs PostgreSQL's server programs (one folder per major version). */
const DEBIAN_POSTGRES_DIR = "/usr/lib/postgresql";

export interface ServicesOptions {
  /** The environment to read DATABASE_URL / REDIS_URL from and write them into. @default process.env */
  readonly env?: NodeJS.ProcessEnv;
  /** Where to look before starting a throwaway PostgreSQL. @default DEFAULT_SERVER_URL */
  readonly postgresUrl?: string;
  /** Where to look before starting a throwaway Redis. @default DEFAULT_REDIS_URL */
  readonly redisUrl?: string;
  /** Folders searched for the programs. @default PATH, then /usr/lib/postgresql/<newest first>/bin */
  readonly programDirs?: readonly string[];
}

/** What `startTestServices` started (nothing when everything was already there). */
export interface TestServices {
  /** The throwaway PostgreSQL's URL, when one was started. */
  readonly postgresUrl: string | undefined;
  /** The throwaway Redis's URL, when one was started. */
  readonly redisUrl: string | undefined;
  /** Stops what was started and deletes its files; the environment keeps the URLs. */
  stop(): Promise<void>;
}

interface Started {
  readonly url: string;
  stop(): Promise<void>;
  /** The synchronous last resort when the process exits without `stop()`. */
  kill(): void;
}

/**
 * Makes sure PostgreSQL and Redis are reachable for the run; throws one line
 * naming what to install when a default is down and its programs are missing.
 */
export async function startTestServices(options: ServicesOptions = {}): Promise<TestServices> {
  const env = options.env ?? process.env;
  const dirs = options.programDirs ?? defaultProgramDirs(env);
  const needPostgres =
    env.DATABASE_URL === undefined && !(await listening(options.postgresUrl ?? DEFAULT_SERVER_URL));
  const needRedis = env.REDIS_URL === undefined && !(await listening(options.redisUrl ?? DEFAULT_REDIS_URL));
  const postgresDir = needPostgres ? findProgramDir(dirs, ["initdb", "pg_ctl", "postgres"]) : undefined;
  const redisDir = needRedis ? findProgramDir(dirs, ["redis-server"]) : undefined;
  const missing: string[] = [];
  if (needPostgres && postgresDir === undefined) {
    missing.push(
      `nothing listens on ${hostPort(options.postgresUrl ?? DEFAULT_SERVER_URL)} and initdb/pg_ctl are not installed: install PostgreSQL (apt-get install postgresql) or set DATABASE_URL`,
    );
  }
  if (needRedis && redisDir === undefined) {
    missing.push(
      `nothing listens on ${hostPort(options.redisUrl ?? DEFAULT_REDIS_URL)} and redis-server is not installed: install Redis (apt-get install redis-server) or set REDIS_URL`,
    );
  }
  if (missing.length > 0) throw oneLineError(`npm test needs PostgreSQL and Redis: ${missing.join("; ")}`);

  const started: Started[] = [];
  const killAll = () => {
    for (const service of started) service.kill();
  };
  process.once("exit", killAll);
  try {
    if (postgresDir !== undefined) {
      const postgres = await startPostgres(postgresDir);
      started.push(postgres);
      env.DATABASE_URL = postgres.url;
    }
    if (redisDir !== undefined) {
      const redis = await startRedis(redisDir);
      started.push(redis);
      env.REDIS_URL = redis.url;
    }
  } catch (error) {
    await Promise.allSettled(started.map((service) => service.stop()));
    process.removeListener("exit", killAll);
    throw error;
  }
  return {
    postgresUrl: postgresDir === undefined ? undefined : env.DATABASE_URL,
    redisUrl: redisDir === undefined ? undefined : env.REDIS_URL,
    async stop() {
      await Promise.all(started.map((service) => service.stop()));
      process.removeListener("exit", killAll);
    },
  };
}

/** An Error whose report is its one-line message, without a stack under it. */
function oneLineError(message: string): Error {
  const error = new Error(message);
  error.stack = message;
  return error;
}

/** PATH, then Debian's versioned PostgreSQL folders, newest version first. */
function defaultProgramDirs(env: NodeJS.ProcessEnv): string[] {
  const path = (env.PATH ?? "").split(delimiter).filter((dir) => dir !== "");
  const versions = existsSync(DEBIAN_POSTGRES_DIR)
    ? readdirSync(DEBIAN_POSTGRES_DIR)
        .filter((name) => /^\d+$/.test(name))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  return [...path, ...versions.map((version) => join(DEBIAN_POSTGRES_DIR, version, "bin"))];
}

/** The first folder holding every one of `programs`. */
function findProgramDir(dirs: readonly string[], programs: readonly string[]): string | undefined {
  return dirs.find((dir) => programs.every((program) => existsSync(join(dir, program))));
}

function hostPort(url: string): string {
  const parsed = new URL(url);
  return `${parsed.hostname}:${parsed.port}`;
}

/** Whether something accepts TCP connections at the URL's host and port. */
export async function listening(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect({ host: hostname, port: Number(port), timeout: PROBE_TIMEOUT_MS });
    const done = (result: boolean) => {
      socket.destroy();
      resolve(result);
    };
    socket.once("connect", () => done(true));
    socket.once("timeout", () => done(false));
    socket.once("error", () => done(false));
  });
}

/** A TCP port on 127.0.0.1 nothing listens on right now. */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : 0;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * The user the PostgreSQL programs run as: ourselves, or `postgres` when we
 * are root (initdb and the server refuse to run as root).
 */
function postgresUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const line = readFileSync("/etc/passwd", "utf8")
    .split("\n")
    .find((entry) => entry.startsWith("postgres:"));
  const [, , uid, gid] = line?.split(":") ?? [];
  if (uid === undefined || gid === undefined) {
    throw oneLineError(
      "npm test runs as root, and PostgreSQL will not: create a postgres user (apt-get install postgresql does) or set DATABASE_URL",
    );
  }
  return { uid: Number(uid), gid: Number(gid) };
}

/**
 * initdb into a temp dir and `pg_ctl start` on a free port: trust
 * authentication for user postgres, sockets in the temp dir, fsync off (the
 * cluster is deleted after the run, so durability buys nothing).
 */
async function startPostgres(binDir: string): Promise<Started> {
  const user = postgresUser();
  const dir = mkdtempSync(join(tmpdir(), "creditbook-test-postgres-"));
  if (user !== undefined) chownSync(dir, user.uid, user.gid);
  const data = join(dir, "data");
  const options = { cwd: dir, timeout: START_TIMEOUT_MS, ...user };
  const pgCtl = join(binDir, "pg_ctl");
  try {
    await run(
      join(binDir, "initdb"),
      ["-D", data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-locale", "--no-sync"],
      options,
    );
    const port = await freePort();
    const serverOptions = `-p ${port} -k '${dir}' -c listen_addresses=127.0.0.1 -c fsync=off`;
    await run(pgCtl, ["-D", data, "-l", join(dir, "log"), "-o", serverOptions, "-w", "start"], options);
    return {
      url: `postgresql://postgres@127.0.0.1:${port}/postgres`,
      async stop() {
        await run(pgCtl, ["-D", data, "-m", "fast", "-w", "stop"], options);
        rmSync(dir, { recursive: true, force: true });
      },
      kill() {
        spawnSync(pgCtl, ["-D", data, "-m", "immediate", "-w", "stop"], options);
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    const log = existsSync(join(dir, "log")) ? readFileSync(join(dir, "log"), "utf8") : "";
    spawnSync(pgCtl, ["-D", data, "-m", "immediate", "stop"], options);
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`could not start a throwaway PostgreSQL: ${(error as Error).message}\n${log}`);
  }
}

/** `redis-server` on a free port with no persistence, as a child of this process. */
async function startRedis(binDir: string): Promise<Started> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "creditbook-test-redis-"));
  const child: ChildProcess = spawn(
    join(binDir, "redis-server"),
    ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let output = "";
  child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
    output += chunk;
  });
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
    output += chunk;
  });
  const exited = once(child, "exit");
  const url = `redis://127.0.0.1:${port}`;
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (!(await listening(url))) {
    if (child.exitCode !== null || child.signalCode !== null || Date.now() > deadline) {
      child.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`could not start a throwaway Redis on port ${port}:\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    url,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
    kill() {
      child.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
