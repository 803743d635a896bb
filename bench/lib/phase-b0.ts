/**
 * B0 — the limit: the SQL work of one reserve + settle cycle at its best (one
 * statement per operation, bench/sql/b0-cycle.sql) driven by pgbench with 64
 * clients, on 1,000 accounts (spread) and on one account (hot).
 */
import { readdirSync, readFileSync } from "node:fs";
import {
  ACCOUNT_CREDITS,
  audit,
  type BenchContext,
  type PhaseRecorder,
  trackDatabaseCpu,
  UNIT_COST,
} from "./context.ts";
import { connectionsInUse, seedAccounts, sqlPath } from "./db.ts";
import { captureOutput, sleep, spawnTracked, trackCpuByName, waitExit } from "./proc.ts";
import { info, zero } from "./report.ts";
import { round, summarize } from "./stats.ts";

/** Account prefix of B0 (seed-accounts.sql); the pgbench script computes the same ids. */
const PREFIX = "b0000000";

interface PgbenchResult {
  readonly cyclesPerSecond: number;
  readonly cycles: number;
  readonly failed: number;
  readonly latencyAverageMs: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** CPU ms per cycle of all PostgreSQL processes and of pgbench itself. */
  readonly cpuMsPerCycle: { postgres: number; pgbench: number };
}

/** Waits until the server has room for `needed` more connections (other users may hold some). */
async function waitForConnections(ctx: BenchContext, needed: number): Promise<void> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    const inUse = await connectionsInUse(ctx.adminUrl);
    if (ctx.maxConnections - inUse >= needed) return;
    if (Date.now() > deadline) {
      throw new Error(
        `PostgreSQL has ${ctx.maxConnections - inUse} free connections (max_connections ${ctx.maxConnections}, ${inUse} in use) but pgbench needs ${needed}; stop other clients or raise max_connections`,
      );
    }
    ctx.log(`  waiting for free PostgreSQL connections (${inUse} of ${ctx.maxConnections} in use)…`);
    await sleep(5_000);
  }
}

async function pgbench(
  ctx: BenchContext,
  name: string,
  base: number,
  accounts: number,
): Promise<PgbenchResult> {
  const clients = ctx.sizes.b0Clients;
  await waitForConnections(ctx, clients + 4);
  const logPrefix = `${ctx.workDir}/pgbench-${name}`;
  const args = [
    "--no-vacuum",
    "--protocol=prepared",
    `--client=${clients}`,
    "--jobs=2",
    `--time=${ctx.sizes.b0Seconds}`,
    `--define=base=${base}`,
    `--define=accounts=${accounts}`,
    `--define=cost=${UNIT_COST}`,
    `--file=${sqlPath("b0-cycle.sql")}`,
    "--log",
    `--log-prefix=${logPrefix}`,
    ctx.databaseUrl,
  ];
  const postgresCpu = trackDatabaseCpu(ctx);
  const pgbenchCpu = trackCpuByName("pgbench");
  const child = spawnTracked(ctx.pgbench, args, { stdio: ["ignore", "pipe", "pipe"] });
  const output = captureOutput(child, 400);
  const code = await waitExit(child, (ctx.sizes.b0Seconds + 60) * 1000, `pgbench ${name}`);
  const postgresSeconds = await postgresCpu.stop();
  const pgbenchSeconds = await pgbenchCpu.stop();
  const text = output.join("\n");
  if (code !== 0) throw new Error(`pgbench ${name} exited with ${code}:\n${output.slice(-15).join("\n")}`);
  const number = (pattern: RegExp): number => {
    const match = pattern.exec(text);
    if (match?.[1] === undefined) throw new Error(`pgbench ${name}: no ${pattern} in its output:\n${text}`);
    return Number(match[1]);
  };
  // Per-transaction log lines: client_id transaction_no latency_us script_no epoch_s epoch_us.
  const latenciesMs: number[] = [];
  const dir = ctx.workDir;
  const stem = `pgbench-${name}.`;
  for (const file of readdirSync(dir).filter((f) => f.startsWith(stem))) {
    for (const line of readFileSync(`${dir}/${file}`, "utf8").split("\n")) {
      const latencyUs = Number(line.split(" ")[2]);
      if (Number.isFinite(latencyUs) && line !== "") latenciesMs.push(latencyUs / 1000);
    }
  }
  const latency = summarize(latenciesMs);
  const cycles = number(/number of transactions actually processed: (\d+)/);
  return {
    cpuMsPerCycle: {
      postgres: cycles === 0 ? 0 : round((postgresSeconds * 1000) / cycles, 2),
      pgbench: cycles === 0 ? 0 : round((pgbenchSeconds * 1000) / cycles, 2),
    },
    cyclesPerSecond: number(/tps = ([\d.]+) \(without initial connection time\)/),
    cycles,
    failed: /number of failed transactions: (\d+)/.test(text)
      ? number(/number of failed transactions: (\d+)/)
      : 0,
    latencyAverageMs: number(/latency average = ([\d.]+) ms/),
    p50Ms: latency.p50,
    p99Ms: latency.p99,
  };
}

export async function runB0(ctx: BenchContext, record: PhaseRecorder): Promise<void> {
  const accounts = ctx.sizes.b0Accounts;
  await seedAccounts(ctx.db, PREFIX, accounts + 1, ACCOUNT_CREDITS, "B0");
  await ctx.db.query("ANALYZE");
  ctx.log(`  spread: ${ctx.sizes.b0Clients} clients on ${accounts} accounts for ${ctx.sizes.b0Seconds} s`);
  const spread = await pgbench(ctx, "spread", 0, accounts);
  ctx.log(`  spread: ${round(spread.cyclesPerSecond)} cycles/s`);
  ctx.log(`  hot: ${ctx.sizes.b0Clients} clients on 1 account for ${ctx.sizes.b0Seconds} s`);
  const hot = await pgbench(ctx, "hot", accounts, 1);
  ctx.log(`  hot: ${round(hot.cyclesPerSecond)} cycles/s`);
  ctx.reference.b0SpreadCyclesPerSecond = spread.cyclesPerSecond;
  ctx.reference.b0HotCyclesPerSecond = hot.cyclesPerSecond;

  const [counts] = await ctx.db.query<{ succeeded: number; open: number }>(
    `SELECT count(*) FILTER (WHERE status = 'SUCCEEDED')::int AS succeeded,
            count(*) FILTER (WHERE status = 'IN_PROGRESS')::int AS open
       FROM generation WHERE account_id::text LIKE $1`,
    [`${PREFIX}-%`],
  );
  const report = await audit(ctx);
  record.details.spread = spread;
  record.details.hot = hot;
  record.details.generations = counts;
  record.details.audit = report;

  record.figure(
    info({
      id: "B0.spread.cyclesPerSecond",
      label: `B0 spread: SQL reserve+settle cycles/s (pgbench, ${ctx.sizes.b0Clients} clients, ${accounts.toLocaleString("en-US")} accounts)`,
      value: spread.cyclesPerSecond,
      unit: "cycles/s",
      note: `${round(spread.cyclesPerSecond * 2)} transactions/s; p50 ${round(spread.p50Ms)} ms, p99 ${round(spread.p99Ms)} ms per cycle`,
    }),
  );
  record.figure(
    info({
      id: "B0.hot.cyclesPerSecond",
      label: `B0 hot: SQL reserve+settle cycles/s (pgbench, ${ctx.sizes.b0Clients} clients, 1 account)`,
      value: hot.cyclesPerSecond,
      unit: "cycles/s",
      note: `${round(hot.cyclesPerSecond * 2)} transactions/s; p50 ${round(hot.p50Ms)} ms, p99 ${round(hot.p99Ms)} ms per cycle`,
    }),
  );
  record.figure(
    zero({
      id: "B0.auditProblems",
      label: "B0 ledger audit after pgbench: problems",
      value: report.problems.length,
      unit: "",
    }),
  );
  record.note(
    "One pgbench transaction is one cycle: the reserve statement (`\\gset` carries the generation id) and the settle statement, each its own autocommitted transaction, so transactions/s = 2 × cycles/s. Both statements are single data-modifying CTEs (bench/sql/b0-cycle.sql) that write the same rows as the domain: account, grant, generation, item, draw, USAGE entry with the next sequence and balance before/after, postings and an idempotency record; settle updates generation, item, draw, grant and account and inserts the charge's postings.",
  );
  record.note(
    `${counts?.succeeded ?? 0} generations settled, ${counts?.open ?? 0} left in progress; audit of all ${report.accountsChecked} accounts: ${report.ok ? "clean" : `${report.problems.length} problem(s): ${report.problems.slice(0, 3).join(" ")}`}.`,
  );
  record.note(
    `CPU per cycle (spread): PostgreSQL backends of the bench database ${spread.cpuMsPerCycle.postgres} ms, pgbench ${spread.cpuMsPerCycle.pgbench} ms (sampled every 250 ms, so processes that exit still count). Hot: PostgreSQL ${hot.cpuMsPerCycle.postgres} ms.`,
  );
  record.note(
    `Hot account: every transaction takes the one account row lock until its commit (synchronous_commit on), so ${round(hot.cyclesPerSecond * 2)} transactions/s ≈ 1 / (lock hold + commit flush) — this is the ceiling a design with one row lock per operation cannot pass.`,
  );
}
