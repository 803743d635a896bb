/**
 * B1 and B2: reserve + settle cycles over HTTP GraphQL from a separate load
 * process (bench/load.ts), 64 closed-loop clients on keep-alive connections;
 * B1 spreads them over 1,000 accounts, B2 puts all of them on one account.
 * Also the optional CPU profile of the server under B1 load.
 */
import { readdirSync, statSync } from "node:fs";
import type { CyclesConfig, CyclesResult } from "../load.ts";
import {
  ACCOUNT_CREDITS,
  audit,
  type BenchContext,
  type PhaseRecorder,
  runLoad,
  trackDatabaseCpu,
  UNIT_COST,
} from "./context.ts";
import { globalId, localId, seedAccounts } from "./db.ts";
import { GraphQLHttpClient } from "./http.ts";
import { machineCpu } from "./machine.ts";
import { type ProfileSummary, summarizeProfile } from "./profile.ts";
import { atLeast, info, zero } from "./report.ts";
import { type ServerInstance, startServer } from "./server.ts";
import { round, summarize } from "./stats.ts";

/** SPEC §7: B1 at least 115% of B0 spread; B2 at least 90% of B1. */
const B1_OF_B0 = 1.15;
const B2_OF_B1 = 0.9;

const B1_PREFIX = "b1000000";
const PROFILE_PREFIX = "b1f00000";

function server(ctx: BenchContext, name: string, nodeArgs: readonly string[] = []): Promise<ServerInstance> {
  return startServer({
    name,
    databaseUrl: ctx.databaseUrl,
    secret: ctx.secret,
    redisUrl: ctx.redisUrl,
    nodeArgs,
  });
}

/** Transactions committed or rolled back in the bench database so far (PostgreSQL's statistics). */
async function transactionCount(ctx: BenchContext): Promise<number> {
  const [row] = await ctx.db.query<{ n: string }>(
    "SELECT (xact_commit + xact_rollback)::text AS n FROM pg_stat_database WHERE datname = current_database()",
  );
  return Number(row?.n ?? 0);
}

interface Measured {
  readonly result: CyclesResult;
  readonly cyclesPerSecond: number;
  /** Share of one core the server used during the run, %. */
  readonly serverCpuPercent: number | null;
  /** Share of the whole machine that was busy during the run, %. */
  readonly machineBusyPercent: number | null;
  /** CPU ms per completed cycle (warm-up included) by component. */
  readonly cpuMsPerCycle: { server: number | null; postgres: number; loadGenerator: number };
}

async function cycles(
  ctx: BenchContext,
  name: string,
  instance: ServerInstance,
  accounts: readonly string[],
  durationMs: number,
): Promise<Measured> {
  const config: CyclesConfig = {
    mode: "cycles",
    url: instance.url,
    token: ctx.serviceToken,
    accounts,
    clients: ctx.sizes.httpClients,
    warmupMs: ctx.sizes.httpWarmupMs,
    durationMs,
    unitCost: UNIT_COST,
    runId: `${ctx.runId}-${name}`,
    resultPath: `${ctx.workDir}/${name}.result.json`,
  };
  const cpuBefore = instance.cpuSeconds();
  const postgresCpu = trackDatabaseCpu(ctx);
  const machineBefore = machineCpu();
  const wallBefore = performance.now();
  const result = await runLoad<CyclesResult>(
    ctx,
    name,
    config,
    ctx.sizes.httpWarmupMs + durationMs + 120_000,
  );
  const wallSeconds = (performance.now() - wallBefore) / 1000;
  const cpuAfter = instance.cpuSeconds();
  const postgresSeconds = await postgresCpu.stop();
  const machineAfter = machineCpu();
  const perCycle = (seconds: number) =>
    result.cyclesAll === 0 ? 0 : round((seconds * 1000) / result.cyclesAll, 2);
  return {
    cpuMsPerCycle: {
      server: cpuBefore === null || cpuAfter === null ? null : perCycle(cpuAfter - cpuBefore),
      postgres: perCycle(postgresSeconds),
      loadGenerator: perCycle(result.cpuMs / 1000),
    },
    result,
    cyclesPerSecond: result.cycles / (result.measuredMs / 1000),
    serverCpuPercent:
      cpuBefore === null || cpuAfter === null ? null : round(((cpuAfter - cpuBefore) / wallSeconds) * 100),
    machineBusyPercent:
      machineBefore === null || machineAfter === null
        ? null
        : round(
            (1 - (machineAfter.idle - machineBefore.idle) / (machineAfter.total - machineBefore.total)) * 100,
          ),
  };
}

function describeCpu(measured: Measured): string {
  const { server: s, postgres, loadGenerator } = measured.cpuMsPerCycle;
  return `CPU per cycle: server ${s ?? "?"} ms, PostgreSQL backends of the bench database ${postgres} ms, load generator ${loadGenerator} ms.`;
}

function describeErrors(result: CyclesResult): string {
  const kinds = Object.entries(result.errors.byKind)
    .map(([kind, n]) => `${kind} × ${n}`)
    .join(", ");
  return result.errors.total === 0
    ? "no errors"
    : `${result.errors.total} error(s): ${kinds}; e.g. ${result.errors.samples.slice(0, 2).join(" / ")}`;
}

export async function runB1(ctx: BenchContext, record: PhaseRecorder): Promise<void> {
  const ids = await seedAccounts(ctx.db, B1_PREFIX, ctx.sizes.b1Accounts, ACCOUNT_CREDITS, "B1");
  await ctx.db.query("ANALYZE");
  const transactionsBefore = await transactionCount(ctx);
  const instance = await server(ctx, "b1");
  let cyclesAll = 0;
  try {
    ctx.log(
      `  ${ctx.sizes.httpClients} clients on ${ids.length} accounts, ${ctx.sizes.httpWarmupMs / 1000} s warm-up + ${ctx.sizes.httpDurationMs / 1000} s`,
    );
    const measured = await cycles(
      ctx,
      "b1",
      instance,
      ids.map((id) => globalId("Account", id)),
      ctx.sizes.httpDurationMs,
    );
    const { result } = measured;
    cyclesAll = result.cyclesAll;
    const latency = summarize(result.cycleMs);
    ctx.reference.b1CyclesPerSecond = measured.cyclesPerSecond;
    ctx.log(
      `  ${round(measured.cyclesPerSecond)} cycles/s, p50 ${round(latency.p50)} ms, p99 ${round(latency.p99)} ms`,
    );
    record.details.cyclesPerSecond = measured.cyclesPerSecond;
    record.details.cycleLatencyMs = latency;
    record.details.reserveLatencyMs = summarize(result.reserveMs);
    record.details.settleLatencyMs = summarize(result.settleMs);
    record.details.errors = result.errors;
    record.details.serverCpuPercent = measured.serverCpuPercent;
    record.details.machineBusyPercent = measured.machineBusyPercent;
    record.details.cpuMsPerCycle = measured.cpuMsPerCycle;
    record.details.serverRssMb = instance.rssMb();
    const b0 = ctx.reference.b0SpreadCyclesPerSecond;
    const label = `B1 HTTP reserve+settle cycles/s (${ctx.sizes.httpClients} clients, ${ids.length.toLocaleString("en-US")} accounts)`;
    record.figure(
      b0 === undefined
        ? {
            id: "B1.cyclesPerSecond",
            label,
            value: measured.cyclesPerSecond,
            unit: "cycles/s",
            target: "≥ 115% of B0 spread",
            pass: null,
            note: "B0 did not run: no reference",
          }
        : atLeast(
            {
              id: "B1.cyclesPerSecond",
              label,
              value: measured.cyclesPerSecond,
              unit: "cycles/s",
              target: `≥ 115% of B0 spread (≥ ${round(b0 * B1_OF_B0)})`,
            },
            b0 * B1_OF_B0,
            { value: b0, of: "B0 spread" },
          ),
    );
    record.figure(info({ id: "B1.p50", label: "B1 cycle latency p50", value: latency.p50, unit: "ms" }));
    record.figure(info({ id: "B1.p99", label: "B1 cycle latency p99", value: latency.p99, unit: "ms" }));
    record.figure(
      zero({ id: "B1.errors", label: "B1 errors reaching clients", value: result.errors.total, unit: "" }),
    );
    record.note(
      `Latency is per cycle: reserve sent → settle answered, measured in the load process (reserve p50 ${round(summarize(result.reserveMs).p50)} ms, settle p50 ${round(summarize(result.settleMs).p50)} ms). ${result.cycles} cycles counted in the ${result.measuredMs / 1000} s window after ${ctx.sizes.httpWarmupMs / 1000} s of warm-up; ${describeErrors(result)}.`,
    );
    record.note(
      `CPU during the run: server ${measured.serverCpuPercent ?? "?"}% of one core; the whole machine (${ctx.sizes.httpClients}-client load process, server, PostgreSQL, Redis) ${measured.machineBusyPercent ?? "?"}% busy. Server RSS after the run ${round(instance.rssMb() ?? 0)} MB. ${describeCpu(measured)}`,
    );
  } finally {
    await instance.stop();
  }
  await noteTransactionsPerCycle(ctx, record, transactionsBefore, cyclesAll);
}

/**
 * PostgreSQL transactions per cycle (server start to stop, warm-up included;
 * read after the server stopped, since a backend reports its statistics when
 * it ends or idles).
 */
async function noteTransactionsPerCycle(
  ctx: BenchContext,
  record: PhaseRecorder,
  before: number,
  cycles: number,
): Promise<void> {
  if (cycles === 0) return;
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  const perCycle = ((await transactionCount(ctx)) - before) / cycles;
  record.details.databaseTransactionsPerCycle = perCycle;
  record.note(
    `PostgreSQL counted ${round(perCycle, 2)} transactions per cycle (server start to stop over ${cycles} cycles, warm-up included; B0 needs 2: one per statement).`,
  );
}

const CREATE_ACCOUNT = `mutation BenchCreate($input: CreateAccountInput!) {
  createAccount(input: $input) { __typename ... on CreateAccountSuccess { account { id } } ... on Error { code message } }
}`;
const GRANT = `mutation BenchGrant($input: GrantCreditsInput!) {
  grantCredits(input: $input) { __typename ... on Error { code message } }
}`;

/** Creates an account with credits through the API (the path a real client takes). */
export async function createAccountViaApi(ctx: BenchContext, url: string, name: string): Promise<string> {
  const client = new GraphQLHttpClient(url, ctx.serviceToken, 2);
  try {
    const created = await client.execute<{ createAccount: { __typename: string; account?: { id: string } } }>(
      CREATE_ACCOUNT,
      {
        input: {
          idempotencyKey: `${ctx.runId}-${name}-create`,
          kind: "PERSONAL",
          name,
          ownerId: `bench-${name}`,
        },
      },
    );
    const accountId = created.data?.createAccount.account?.id;
    if (accountId === undefined) throw new Error(`createAccount failed: ${JSON.stringify(created)}`);
    const granted = await client.execute<{ grantCredits: { __typename: string } }>(GRANT, {
      input: {
        idempotencyKey: `${ctx.runId}-${name}-grant`,
        accountId,
        source: "WALLET",
        amount: Number(ACCOUNT_CREDITS),
      },
    });
    if (granted.data?.grantCredits.__typename !== "GrantCreditsSuccess") {
      throw new Error(`grantCredits failed: ${JSON.stringify(granted)}`);
    }
    return accountId;
  } finally {
    client.close();
  }
}

export async function runB2(ctx: BenchContext, record: PhaseRecorder): Promise<void> {
  const instance = await server(ctx, "b2");
  let transactionsBefore = 0;
  let cyclesAll = 0;
  try {
    const hot = await createAccountViaApi(ctx, instance.url, "B2 hot account");
    transactionsBefore = await transactionCount(ctx);
    ctx.log(
      `  ${ctx.sizes.httpClients} clients on 1 account, ${ctx.sizes.httpWarmupMs / 1000} s warm-up + ${ctx.sizes.httpDurationMs / 1000} s`,
    );
    const measured = await cycles(ctx, "b2", instance, [hot], ctx.sizes.httpDurationMs);
    const { result } = measured;
    cyclesAll = result.cyclesAll;
    const latency = summarize(result.cycleMs);
    ctx.log(
      `  ${round(measured.cyclesPerSecond)} cycles/s, p50 ${round(latency.p50)} ms, p99 ${round(latency.p99)} ms`,
    );
    const report = await audit(ctx);
    const [balance] = await ctx.db.query<{ available: bigint; held: bigint }>(
      "SELECT available, held FROM account WHERE id = $1",
      [localId(hot)],
    );
    record.details.cyclesPerSecond = measured.cyclesPerSecond;
    record.details.cycleLatencyMs = latency;
    record.details.errors = result.errors;
    record.details.serverCpuPercent = measured.serverCpuPercent;
    record.details.machineBusyPercent = measured.machineBusyPercent;
    record.details.cpuMsPerCycle = measured.cpuMsPerCycle;
    record.details.audit = report;
    record.details.hotBalance = { available: String(balance?.available), held: String(balance?.held) };
    const b1 = ctx.reference.b1CyclesPerSecond;
    const label = `B2 HTTP cycles/s, all ${ctx.sizes.httpClients} clients on ONE account`;
    record.figure(
      b1 === undefined
        ? {
            id: "B2.cyclesPerSecond",
            label,
            value: measured.cyclesPerSecond,
            unit: "cycles/s",
            target: "≥ 90% of B1",
            pass: null,
            note: "B1 did not run: no reference",
          }
        : atLeast(
            {
              id: "B2.cyclesPerSecond",
              label,
              value: measured.cyclesPerSecond,
              unit: "cycles/s",
              target: `≥ 90% of B1 (≥ ${round(b1 * B2_OF_B1)})`,
            },
            b1 * B2_OF_B1,
            { value: b1, of: "B1" },
          ),
    );
    record.figure(info({ id: "B2.p50", label: "B2 cycle latency p50", value: latency.p50, unit: "ms" }));
    record.figure(info({ id: "B2.p99", label: "B2 cycle latency p99", value: latency.p99, unit: "ms" }));
    record.figure(
      zero({
        id: "B2.errors",
        label: "B2 errors reaching clients (other than InsufficientCreditsError)",
        value: result.errors.total,
        unit: "",
      }),
    );
    record.figure(
      zero({
        id: "B2.auditProblems",
        label: "B2 ledger audit after the run: problems",
        value: report.problems.length,
        unit: "",
      }),
    );
    record.note(
      `The hot account was created through the API (createAccount + grantCredits). ${result.cycles} cycles counted; ${describeErrors(result)}; InsufficientCreditsError × ${result.errors.insufficientCredits} (allowed, none expected: the account holds ${ACCOUNT_CREDITS} credits). Final balance: available ${balance?.available}, held ${balance?.held}.`,
    );
    const b0Hot = ctx.reference.b0HotCyclesPerSecond;
    if (b0Hot !== undefined) {
      record.note(
        `Against raw SQL on one hot account (B0 hot, ${round(b0Hot)} cycles/s with one row lock per statement): ${round((measured.cyclesPerSecond / b0Hot) * 100)}% — above 100% means operations on the hot account share transactions (group commit).`,
      );
    }
    record.note(
      `Audit of all ${report.accountsChecked} accounts after B2: ${report.ok ? "clean" : report.problems.slice(0, 3).join(" ")}. CPU: server ${measured.serverCpuPercent ?? "?"}% of one core, machine ${measured.machineBusyPercent ?? "?"}% busy. ${describeCpu(measured)}`,
    );
  } finally {
    await instance.stop();
  }
  await noteTransactionsPerCycle(ctx, record, transactionsBefore, cyclesAll);
}

/** B1-style load against a server started with --cpu-prof; returns the profile's summary. */
export async function runProfile(ctx: BenchContext, record: PhaseRecorder): Promise<ProfileSummary> {
  const ids = await seedAccounts(ctx.db, PROFILE_PREFIX, ctx.sizes.b1Accounts, ACCOUNT_CREDITS, "Profile");
  const started = Date.now();
  const instance = await server(ctx, "profile", ["--cpu-prof", `--cpu-prof-dir=${ctx.profileDir}`]);
  let measured: Measured;
  let window: { fromMs: number; toMs: number };
  try {
    ctx.log(`  B1 load for ${ctx.sizes.profileMs / 1000} s against a server with --cpu-prof`);
    const loadStarted = Date.now();
    measured = await cycles(
      ctx,
      "profile",
      instance,
      ids.map((id) => globalId("Account", id)),
      ctx.sizes.profileMs,
    );
    // Offsets from the server's start: skip start-up, the load process's own start and the warm-up.
    window = {
      fromMs: loadStarted - started + ctx.sizes.httpWarmupMs + 1_000,
      toMs: Date.now() - started - 500,
    };
  } finally {
    await instance.stop();
  }
  // node writes one profile per thread (tsx's module loader runs in a worker): keep the busiest, the main thread.
  const summaries = readdirSync(ctx.profileDir)
    .filter((file) => file.endsWith(".cpuprofile"))
    .map((file) => `${ctx.profileDir}/${file}`)
    .filter((file) => statSync(file).mtimeMs >= started)
    .map((file) => summarizeProfile(file, window));
  const summary = summaries.sort((a, b) => b.busyMs - a.busyMs)[0];
  if (summary === undefined) throw new Error(`the server wrote no CPU profile into ${ctx.profileDir}`);
  record.details.cyclesPerSecond = measured.cyclesPerSecond;
  record.details.profile = summary;
  record.note(
    `Under profiling the server did ${round(measured.cyclesPerSecond)} cycles/s (profiling costs some throughput). Busiest packages (native work charged to its caller): ${summary.byPackageAttributed
      .slice(0, 6)
      .map((line) => `${line.name} ${line.selfPercent}%`)
      .join(", ")}.`,
  );
  return summary;
}
