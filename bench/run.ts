/**
 * `npm run bench [-- --quick] [-- --profile] [-- --only B1,B2] [-- --keep-db]`
 *
 * The benchmark suite of SPEC §7: runs every phase on this machine in one
 * run against a fresh database, prints a line per phase, and writes
 * bench/results.json and bench/REPORT.md. See bench/README.md.
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import type { Database } from "../src/db/database.ts";
import { TokenService } from "../src/server/auth.ts";
import { type BenchContext, FULL, PhaseRecorder, QUICK } from "./lib/context.ts";
import {
  createDatabase,
  dropDatabase,
  openBenchDatabase,
  postgresFacts,
  redact,
  withDatabase,
} from "./lib/db.ts";
import { machineFacts, measureBusyPercent, pgbenchVersion, redisVersion } from "./lib/machine.ts";
import { runB0 } from "./lib/phase-b0.ts";
import { runB4 } from "./lib/phase-b4.ts";
import { runB5 } from "./lib/phase-b5.ts";
import { runB6 } from "./lib/phase-b6.ts";
import { runB1, runB2, runProfile } from "./lib/phase-http.ts";
import { runM1 } from "./lib/phase-m1.ts";
import { runRealtime } from "./lib/phase-realtime.ts";
import { runSqlProfile } from "./lib/phase-sql-profile.ts";
import { runW1 } from "./lib/phase-w1.ts";
import { installExitHandlers, killAllChildren, REPO_ROOT } from "./lib/proc.ts";
import type { ProfileSummary } from "./lib/profile.ts";
import {
  type Figure,
  figuresTable,
  isBusy,
  type PhaseRecord,
  type Previous,
  type RunResults,
  renderReport,
} from "./lib/report.ts";

const USAGE = `usage: npm run bench [-- options]
  --quick        small sizes and short windows (about a minute): for development
  --profile      also profile the server under B1 load (node --cpu-prof) and the SQL of one cycle
  --only LIST    run only these phases, e.g. --only B0,B1 (B2 needs B1 for its ratio, B1 and B6 need B0)
  --keep-db      keep the bench database after the run (its name is printed)
  --compare [F]  show an earlier run's figures beside this run's: F is a results.json
                 (default: bench/results.json as it was before this run)
environment:
  BENCH_DATABASE_URL  PostgreSQL maintenance database (default postgres://postgres@127.0.0.1:5432/postgres)
  BENCH_REDIS_URL     Redis (default redis://127.0.0.1:6379)
  PGBENCH             pgbench binary (default /usr/bin/pgbench, else pgbench on PATH)
  BENCH_SERVER_ENV    extra environment for every server, e.g. "DATABASE_POOL_SIZE=60" (named in the report)`;

interface Options {
  readonly quick: boolean;
  readonly profile: boolean;
  readonly only: ReadonlySet<string> | null;
  readonly keepDatabase: boolean;
  /** The results.json to compare with; null when not comparing. */
  readonly compare: string | null;
}

function parseArgs(argv: readonly string[]): Options {
  let quick = false;
  let profile = false;
  let only: Set<string> | null = null;
  let keepDatabase = false;
  let compare: string | null = null;
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i];
    if (arg === "--quick") quick = true;
    else if (arg === "--profile") profile = true;
    else if (arg === "--keep-db") keepDatabase = true;
    else if (arg === "--compare") {
      const next = argv[i + 1];
      if (next !== undefined && !next.startsWith("--")) {
        compare = next;
        i += 1;
      } else compare = `${REPO_ROOT}bench/results.json`;
    } else if (arg === "--only") {
      const list = argv[i + 1];
      i += 1;
      if (list === undefined) throw new Error("--only needs a list, e.g. --only B0,B1");
      only = new Set(list.split(",").map((item) => item.trim().toUpperCase()));
    } else if (arg === "--help" || arg === "-h") {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    } else throw new Error(`unknown option ${arg}\n${USAGE}`);
  }
  return { quick, profile, only, keepDatabase, compare };
}

function findPgbench(): string {
  const candidates = [process.env.PGBENCH, "/usr/bin/pgbench", "pgbench"].filter(
    (candidate): candidate is string => candidate !== undefined && candidate !== "",
  );
  for (const candidate of candidates) {
    try {
      execFileSync(candidate, ["--version"], { stdio: "ignore" });
      return candidate;
    } catch {
      // Try the next one.
    }
  }
  throw new Error(
    "pgbench not found: install postgresql-client (apt-get install postgresql-client) or set PGBENCH",
  );
}

interface PhaseSpec {
  readonly id: string;
  readonly title: string;
  readonly timeoutMs: number;
  readonly run: (ctx: BenchContext, record: PhaseRecorder) => Promise<void>;
}

function withTimeout<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${what} did not finish within ${Math.round(timeoutMs / 1000)} s`)),
      timeoutMs,
    );
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const log = (line: string) => process.stdout.write(`${line}\n`);

/** The earlier run to compare with, read before this run overwrites results.json. */
function readPrevious(file: string): Previous {
  const results = JSON.parse(readFileSync(file, "utf8")) as RunResults;
  return {
    figures: results.figures,
    startedAt: results.startedAt,
    commit: results.machine.gitCommit,
    mode: results.mode,
  };
}

async function main(): Promise<number> {
  const options = parseArgs(process.argv.slice(2));
  let previous: Previous | undefined;
  try {
    previous = options.compare === null ? undefined : readPrevious(options.compare);
  } catch (error) {
    process.stderr.write(
      `[bench] cannot read ${options.compare} to compare with: ${(error as Error).message}\n`,
    );
    return 2;
  }
  const sizes = options.quick ? QUICK : FULL;
  const adminUrl = process.env.BENCH_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
  const redisUrl = process.env.BENCH_REDIS_URL ?? "redis://127.0.0.1:6379";
  const startedAt = new Date().toISOString();

  // Preflight: say clearly what is missing before anything starts.
  let pgbench: string;
  let pg: Awaited<ReturnType<typeof postgresFacts>>;
  let redis: string;
  try {
    pgbench = findPgbench();
    pg = await postgresFacts(adminUrl);
    redis = await redisVersion(redisUrl);
    // Servers run compiled, as `npm start` runs them: build what is in src/ now.
    process.stderr.write("[bench] npm run build …\n");
    execFileSync("npm", ["run", "--silent", "build"], {
      cwd: REPO_ROOT,
      stdio: ["ignore", "ignore", "inherit"],
    });
  } catch (error) {
    process.stderr.write(`[bench] cannot run: ${(error as Error).message}\n`);
    return 2;
  }
  const machine = machineFacts(
    pg.version,
    pg.settings,
    redis,
    pgbenchVersion(pgbench),
    await measureBusyPercent(2_000),
  );
  const stamp = startedAt.replace(/[-:TZ.]/g, "").slice(0, 14);
  const databaseName = `creditbook_bench_${stamp}_${process.pid}`;
  const databaseUrl = withDatabase(adminUrl, databaseName);
  const workDir = mkdtempSync(`${tmpdir()}/creditbook-bench-`);
  const profileDir = `${tmpdir()}/creditbook-bench-profiles`;
  mkdirSync(profileDir, { recursive: true });
  log(
    `[bench] ${options.quick ? "quick" : "full"} run on ${machine.cpuModel} (${machine.cores} cores, ${machine.ramGiB} GiB), Node ${machine.node}, PostgreSQL ${pg.version}, Redis ${redis}`,
  );
  log(`[bench] database ${databaseName} on ${redact(adminUrl)}`);
  if (isBusy(machine)) {
    log(
      `[bench] WARNING: the machine is already busy (${machine.busyBeforeRunPercent}% CPU, load average ${machine.loadAverageAtStart.join(" ")}): figures will be low and noisy`,
    );
  }

  let db: Database | null = null;
  let dropped = false;
  const cleanup = async () => {
    killAllChildren();
    // Cleanup after the run: a failure to close must not hide the run's own outcome, and the database is dropped next.
    if (db !== null) await db.close().catch(() => {});
    db = null;
    if (!options.keepDatabase && !dropped) {
      dropped = true;
      await dropDatabase(adminUrl, databaseName).catch((error: unknown) => {
        process.stderr.write(`[bench] could not drop ${databaseName}: ${(error as Error).message}\n`);
      });
    }
    rmSync(workDir, { recursive: true, force: true });
  };
  installExitHandlers(cleanup);

  const phases: PhaseRecord[] = [];
  const figures: Figure[] = [];
  let profile: ProfileSummary | null = null;
  let failures = 0;
  try {
    await createDatabase(adminUrl, databaseName);
    const opened = await openBenchDatabase(databaseUrl);
    db = opened;
    const secret = randomBytes(32).toString("base64url");
    const dashboardTokens = new TokenService(secret);
    const ctx: BenchContext = {
      quick: options.quick,
      sizes,
      adminUrl,
      databaseUrl,
      databaseName,
      db: opened,
      redisUrl,
      pgbench,
      secret,
      // Short-lived on purpose: a token outliving a 32-bit timer delay is its own edge case.
      serviceToken: await new TokenService(secret).sign("bench-service", "service", "6h"),
      dashboardToken: (accountIndex) =>
        dashboardTokens.sign(`bench-dashboard-${accountIndex}`, "service", "6h"),
      maxConnections: pg.maxConnections,
      workDir,
      profileDir,
      profile: options.profile,
      runId: `bench-${stamp}-${process.pid}`,
      reference: {},
      log,
    };
    const slack = options.quick ? 120_000 : 300_000;
    const specs: PhaseSpec[] = [
      {
        id: "B0",
        title: "the limit: SQL reserve+settle with pgbench",
        timeoutMs: 2 * (sizes.b0Seconds * 1000 + 180_000) + slack,
        run: runB0,
      },
      {
        id: "B1",
        title: `HTTP cycles, ${sizes.httpClients} clients, ${sizes.b1Accounts} accounts`,
        timeoutMs: sizes.httpWarmupMs + sizes.httpDurationMs + slack,
        run: runB1,
      },
      {
        id: "B2",
        title: `HTTP cycles, ${sizes.httpClients} clients, one account`,
        timeoutMs: sizes.httpWarmupMs + sizes.httpDurationMs + slack,
        run: runB2,
      },
      {
        id: "B6",
        title: `bulk cycles, 100 items a call, ${sizes.b1Accounts} accounts`,
        timeoutMs: sizes.httpWarmupMs + sizes.httpDurationMs + slack,
        run: runB6,
      },
      ...(options.profile
        ? [
            {
              id: "P1",
              title: "CPU profile of the server under B1 load",
              timeoutMs: sizes.httpWarmupMs + sizes.profileMs + slack,
              run: async (c: BenchContext, r: PhaseRecorder) => {
                profile = await runProfile(c, r);
              },
            },
            {
              id: "P2",
              title: "SQL cost of one reserve + settle, statement by statement",
              timeoutMs: slack,
              run: runSqlProfile,
            },
          ]
        : []),
      {
        id: "B3",
        title: `${(sizes.b3Accounts * sizes.b3PerAccount).toLocaleString("en-US")} subscribers on 2 instances, ${sizes.b3RatePerSecond} changes/s`,
        timeoutMs: sizes.b3DurationMs + 2 * slack,
        run: (c, r) =>
          runRealtime(c, r, {
            id: "B3",
            prefix: "b3000000",
            accounts: sizes.b3Accounts,
            subscribersPerAccount: sizes.b3PerAccount,
            ratePerSecond: sizes.b3RatePerSecond,
            durationMs: sizes.b3DurationMs,
            p99TargetMs: 50,
          }),
      },
      {
        id: "B3b",
        title: `${sizes.b3bSubscribers} subscribers on one account, ${sizes.b3bRatePerSecond} changes/s`,
        timeoutMs: sizes.b3bDurationMs + 2 * slack,
        run: (c, r) =>
          runRealtime(c, r, {
            id: "B3b",
            prefix: "b3b00000",
            accounts: 1,
            subscribersPerAccount: sizes.b3bSubscribers,
            ratePerSecond: sizes.b3bRatePerSecond,
            durationMs: sizes.b3bDurationMs,
            p99TargetMs: 100,
          }),
      },
      {
        id: "M1",
        title: `${sizes.m1Subscribers.toLocaleString("en-US")} idle subscribers on one instance`,
        timeoutMs: 600_000 + slack,
        run: runM1,
      },
      {
        id: "W1",
        title: `webhooks: ${options.quick ? 200 : 1_000} events/s over two instances, one killed with SIGKILL midway`,
        timeoutMs: (options.quick ? 10_000 : 60_000) + 120_000 + slack,
        run: runW1,
      },
      {
        id: "B4",
        title: `reaper: ${sizes.b4Generations.toLocaleString("en-US")} generations past their deadline`,
        timeoutMs: (options.quick ? 60_000 : 180_000) + 2 * slack,
        run: runB4,
      },
      {
        id: "B5",
        title: `ledger page on an account with ${sizes.b5Entries.toLocaleString("en-US")} entries`,
        timeoutMs: (options.quick ? 120_000 : 1_200_000) + slack,
        run: runB5,
      },
    ];

    for (const spec of specs) {
      if (
        options.only !== null &&
        !options.only.has(spec.id.toUpperCase()) &&
        !(spec.id.startsWith("P") && options.profile)
      ) {
        continue;
      }
      log(`[bench] ${spec.id} — ${spec.title} …`);
      const record = new PhaseRecorder();
      const started = performance.now();
      let status: PhaseRecord["status"] = "ok";
      let error: string | undefined;
      try {
        await withTimeout(spec.run(ctx, record), spec.timeoutMs, spec.id);
      } catch (caught) {
        status = "failed";
        failures += 1;
        error = (caught as Error).message;
        // Whatever the phase started must not disturb the next one.
        killAllChildren();
      }
      const seconds = (performance.now() - started) / 1000;
      phases.push({
        id: spec.id,
        title: spec.title,
        status,
        seconds,
        error,
        details: record.details,
        notes: record.notes,
      });
      figures.push(...record.figures);
      if (status === "ok") {
        const verdicts = record.figures.filter((figure) => figure.pass !== null);
        const missed = verdicts.filter((figure) => figure.pass === false).map((figure) => figure.id);
        log(
          `[bench] ${spec.id} done in ${seconds.toFixed(1)} s${verdicts.length > 0 ? `: ${verdicts.length - missed.length}/${verdicts.length} targets met${missed.length > 0 ? ` (missed: ${missed.join(", ")})` : ""}` : ""}`,
        );
      } else {
        log(`[bench] ${spec.id} FAILED after ${seconds.toFixed(1)} s: ${error?.split("\n")[0]}`);
      }
    }
  } catch (error) {
    process.stderr.write(`[bench] run aborted: ${(error as Error).stack ?? String(error)}\n`);
    failures += 1;
  } finally {
    await cleanup();
  }

  const results: RunResults = {
    mode: options.quick ? "quick" : "full",
    machine,
    database: databaseName,
    startedAt,
    finishedAt: new Date().toISOString(),
    figures,
    phases,
    profile,
  };
  writeFileSync(`${REPO_ROOT}bench/results.json`, `${JSON.stringify(results, null, 2)}\n`);
  writeFileSync(`${REPO_ROOT}bench/REPORT.md`, renderReport(results, previous));
  log("");
  log(figuresTable(figures, previous));
  log("");
  log(
    `[bench] wrote bench/REPORT.md and bench/results.json${options.keepDatabase ? `; kept database ${databaseName}` : ""}`,
  );
  if (profile !== null) log(`[bench] CPU profile: ${(profile as ProfileSummary).file}`);
  return failures === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`[bench] ${(error as Error).message}\n`);
    killAllChildren();
    process.exit(2);
  },
);
