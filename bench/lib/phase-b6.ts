/**
 * B6: reserve + settle cycles through the bulk mutations (SPEC §7, §8.7):
 * closed-loop clients, each sending reserveGenerations with 100 items on 100
 * distinct random accounts of 1,000, then settleGenerations for the 100
 * generations it got. A cycle is one item reserved and settled. The load
 * runs in the bench process: at 100 items a request it sends few requests,
 * and its CPU is measured and reported beside the server's.
 */
import { mkdirSync, readdirSync } from "node:fs";
import {
  ACCOUNT_CREDITS,
  audit,
  type BenchContext,
  type PhaseRecorder,
  trackDatabaseCpu,
  UNIT_COST,
} from "./context.ts";
import { globalId, seedAccounts } from "./db.ts";
import { GraphQLHttpClient } from "./http.ts";
import { summarizeProfile } from "./profile.ts";
import { atLeast, info, zero } from "./report.ts";
import { startServer } from "./server.ts";
import { round, summarize } from "./stats.ts";

/** SPEC §7: B6 at least 8× B0 spread. */
const B6_OF_B0 = 8;
const B6_PREFIX = "b6000000";
/** Items in one bulk request (SPEC §7). */
const ITEMS_PER_CALL = 100;
/** Closed-loop clients: enough to keep the executor's lanes full with two transactions a call. */
const CLIENTS = 8;

const RESERVE_MANY = `mutation BenchReserveMany($input: ReserveGenerationsInput!) {
  reserveGenerations(input: $input) {
    __typename
    ... on ReserveGenerationsSuccess { results { __typename ... on ReserveGenerationSuccess { generation { id } } ... on Error { code message } } }
    ... on Error { code message }
  }
}`;

const SETTLE_MANY = `mutation BenchSettleMany($input: SettleGenerationsInput!) {
  settleGenerations(input: $input) {
    __typename
    ... on SettleGenerationsSuccess { results { __typename ... on Error { code message } } }
    ... on Error { code message }
  }
}`;

type Item = { __typename: string; generation?: { id: string }; code?: string; message?: string };
type BulkAnswer = { __typename: string; results?: Item[]; message?: string };

interface Tally {
  cycles: number;
  cyclesAll: number;
  errors: number;
  samples: string[];
  callMs: number[];
}

/** `count` distinct indexes below `size`, at random. */
function distinct(count: number, size: number): number[] {
  const picked = new Set<number>();
  while (picked.size < count) picked.add(Math.floor(Math.random() * size));
  return [...picked];
}

function fail(tally: Tally, what: string): void {
  tally.errors += 1;
  if (tally.samples.length < 5) tally.samples.push(what.slice(0, 300));
}

/** Items of one bulk answer, or null (counted as an error) when the request as a whole failed. */
function itemsOf(
  tally: Tally,
  field: string,
  response: { data?: Record<string, BulkAnswer> | null; errors?: unknown },
) {
  const answer = response.data?.[field];
  if (answer?.results === undefined) {
    fail(tally, `${field}: ${JSON.stringify(answer ?? response.errors)}`);
    return null;
  }
  return answer.results;
}

/** One client's loop until `endsAt`; counts cycles whose settle answered inside [measureFrom, endsAt]. */
async function client(
  client: GraphQLHttpClient,
  accounts: readonly string[],
  runId: string,
  window: { measureFrom: number; endsAt: number },
  tally: Tally,
): Promise<void> {
  for (let call = 0; performance.now() < window.endsAt; call += 1) {
    const started = performance.now();
    const picked = distinct(ITEMS_PER_CALL, accounts.length);
    const reserved = itemsOf(
      tally,
      "reserveGenerations",
      await client.execute<Record<string, BulkAnswer>>(RESERVE_MANY, {
        input: {
          items: picked.map((a, i) => ({
            idempotencyKey: `${runId}-${call}-${i}-r`,
            accountId: accounts[a],
            feature: "Bench bulk",
            unitCost: UNIT_COST,
          })),
        },
      }),
    );
    if (reserved === null) continue;
    const generationIds: string[] = [];
    for (const item of reserved) {
      if (item.generation !== undefined) generationIds.push(item.generation.id);
      else fail(tally, `reserve item: ${item.__typename} ${item.message ?? ""}`);
    }
    if (generationIds.length === 0) continue;
    const settled = itemsOf(
      tally,
      "settleGenerations",
      await client.execute<Record<string, BulkAnswer>>(SETTLE_MANY, {
        input: {
          items: generationIds.map((generationId, i) => ({
            idempotencyKey: `${runId}-${call}-${i}-s`,
            generationId,
          })),
        },
      }),
    );
    if (settled === null) continue;
    const answered = performance.now();
    let ok = 0;
    for (const item of settled) {
      if (item.__typename === "SettleGenerationSuccess") ok += 1;
      else fail(tally, `settle item: ${item.__typename} ${item.message ?? ""}`);
    }
    tally.cyclesAll += ok;
    if (started >= window.measureFrom && answered <= window.endsAt) {
      tally.cycles += ok;
      tally.callMs.push(answered - started);
    }
  }
}

export async function runB6(ctx: BenchContext, record: PhaseRecorder): Promise<void> {
  const ids = await seedAccounts(ctx.db, B6_PREFIX, ctx.sizes.b1Accounts, ACCOUNT_CREDITS, "B6");
  await ctx.db.query("ANALYZE");
  const accounts = ids.map((id) => globalId("Account", id));
  // With --profile the B6 server itself is profiled: the bulk path's costs differ from B1's.
  const profileDir = `${ctx.profileDir}/b6-${Date.now()}`;
  if (ctx.profile) mkdirSync(profileDir, { recursive: true });
  const started = Date.now();
  const instance = await startServer({
    name: "b6",
    databaseUrl: ctx.databaseUrl,
    secret: ctx.secret,
    redisUrl: ctx.redisUrl,
    nodeArgs: ctx.profile ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`] : [],
  });
  const loadStarted = Date.now();
  const tally: Tally = { cycles: 0, cyclesAll: 0, errors: 0, samples: [], callMs: [] };
  const http = new GraphQLHttpClient(instance.url, ctx.serviceToken, CLIENTS);
  try {
    ctx.log(
      `  ${CLIENTS} clients, ${ITEMS_PER_CALL} items a call on ${accounts.length} accounts, ${ctx.sizes.httpWarmupMs / 1000} s warm-up + ${ctx.sizes.httpDurationMs / 1000} s`,
    );
    const serverBefore = instance.cpuSeconds();
    const postgresCpu = trackDatabaseCpu(ctx);
    const loadBefore = process.cpuUsage();
    const now = performance.now();
    const window = {
      measureFrom: now + ctx.sizes.httpWarmupMs,
      endsAt: now + ctx.sizes.httpWarmupMs + ctx.sizes.httpDurationMs,
    };
    await Promise.all(
      Array.from({ length: CLIENTS }, (_, c) =>
        client(http, accounts, `${ctx.runId}-b6-${c}`, window, tally),
      ),
    );
    const serverAfter = instance.cpuSeconds();
    const postgresSeconds = await postgresCpu.stop();
    const load = process.cpuUsage(loadBefore);
    const cyclesPerSecond = tally.cycles / (ctx.sizes.httpDurationMs / 1000);
    const perCycle = (seconds: number) =>
      tally.cyclesAll === 0 ? 0 : round((seconds * 1000) / tally.cyclesAll, 3);
    const cpuMsPerCycle = {
      server: serverBefore === null || serverAfter === null ? null : perCycle(serverAfter - serverBefore),
      postgres: perCycle(postgresSeconds),
      loadGenerator: perCycle((load.user + load.system) / 1e6),
    };
    const latency = summarize(tally.callMs);
    ctx.log(
      `  ${round(cyclesPerSecond)} cycles/s (${round(cyclesPerSecond * 2)} mutations/s), call pair p50 ${round(latency.p50)} ms`,
    );
    const report = await audit(ctx);
    record.details.cyclesPerSecond = cyclesPerSecond;
    record.details.callPairLatencyMs = latency;
    record.details.cpuMsPerCycle = cpuMsPerCycle;
    record.details.errors = { total: tally.errors, samples: tally.samples };
    record.details.audit = report;
    const b0 = ctx.reference.b0SpreadCyclesPerSecond;
    const label = `B6 bulk reserve+settle cycles/s (${ITEMS_PER_CALL} items a call, ${accounts.length.toLocaleString("en-US")} accounts)`;
    const note = `${round(cyclesPerSecond * 2)} mutations/s; ${CLIENTS} clients`;
    record.figure(
      b0 === undefined
        ? {
            id: "B6.cyclesPerSecond",
            label,
            value: cyclesPerSecond,
            unit: "cycles/s",
            target: "≥ 8× B0 spread",
            pass: null,
            note: `${note}; B0 did not run: no reference`,
          }
        : atLeast(
            {
              id: "B6.cyclesPerSecond",
              label,
              note,
              value: cyclesPerSecond,
              unit: "cycles/s",
              target: `≥ 8× B0 spread (≥ ${round(b0 * B6_OF_B0)})`,
            },
            b0 * B6_OF_B0,
            { value: b0, of: "B0 spread" },
          ),
    );
    record.figure(
      info({
        id: "B6.p50",
        label: "B6 reserve call + settle call latency p50",
        value: latency.p50,
        unit: "ms",
      }),
    );
    record.figure(
      zero({
        id: "B6.errors",
        label: "B6 errors reaching clients (items or calls)",
        value: tally.errors,
        unit: "",
      }),
    );
    record.figure(
      zero({
        id: "B6.auditProblems",
        label: "B6 ledger audit after the run: problems",
        value: report.problems.length,
        unit: "",
      }),
    );
    record.note(
      `${tally.cycles} cycles (item reserved and settled) counted in the ${ctx.sizes.httpDurationMs / 1000} s window after ${ctx.sizes.httpWarmupMs / 1000} s of warm-up; ${tally.errors === 0 ? "no errors" : `${tally.errors} error(s), e.g. ${tally.samples.slice(0, 2).join(" / ")}`}. Call pair latency p50 ${round(latency.p50)} ms, p99 ${round(latency.p99)} ms.`,
    );
    record.note(
      `CPU per cycle: server ${cpuMsPerCycle.server ?? "?"} ms, PostgreSQL backends of the bench database ${cpuMsPerCycle.postgres} ms, load generator (in the bench process) ${cpuMsPerCycle.loadGenerator} ms. Audit of all ${report.accountsChecked} accounts: ${report.ok ? "clean" : report.problems.slice(0, 3).join(" ")}.`,
    );
  } finally {
    http.close();
    await instance.stop();
  }
  if (ctx.profile)
    noteProfile(record, profileDir, {
      fromMs: loadStarted - started + ctx.sizes.httpWarmupMs,
      toMs: loadStarted - started + ctx.sizes.httpWarmupMs + ctx.sizes.httpDurationMs,
    });
}

/** The busiest thread's profile of the B6 server: where its CPU went, by package and by function. */
function noteProfile(record: PhaseRecorder, dir: string, window: { fromMs: number; toMs: number }): void {
  const summary = readdirSync(dir)
    .filter((file) => file.endsWith(".cpuprofile"))
    .map((file) => summarizeProfile(`${dir}/${file}`, window))
    .sort((a, b) => b.busyMs - a.busyMs)[0];
  if (summary === undefined) return;
  record.details.profile = summary;
  const lines = (list: readonly { name: string; selfPercent: number }[], n: number) =>
    list
      .slice(0, n)
      .map((line) => `${line.name} ${line.selfPercent}%`)
      .join(", ");
  record.note(
    `Server profile (${summary.file}): busiest packages (native work charged to its caller) ${lines(summary.byPackageAttributed, 8)}; top functions by self time ${lines(summary.topFunctions, 10)}.`,
  );
}
