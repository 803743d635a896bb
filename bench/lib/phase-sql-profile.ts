/**
 * P2 (with --profile): what each SQL statement of one reserve + settle costs
 * PostgreSQL. Runs cycles through the domain (src/domain/ledger.ts) in this
 * process against the bench database, and times every statement of their
 * transactions with EXPLAIN ANALYZE inside a savepoint that is rolled back
 * (so the timing run writes nothing) before the statement itself runs.
 */
import type { Database, Sql } from "../../src/db/database.ts";
import { Ledger } from "../../src/domain/ledger.ts";
import { ACCOUNT_CREDITS, type BenchContext, type PhaseRecorder, UNIT_COST } from "./context.ts";
import { seedAccounts } from "./db.ts";
import { round } from "./stats.ts";

const PREFIX = "b1e00000";
/** Cycles run before measuring (warm caches, JIT) and while measuring. */
const CYCLES = 50;

interface StatementCost {
  readonly statement: string;
  readonly calls: number;
  readonly planningMs: number;
  readonly executionMs: number;
}

export async function runSqlProfile(ctx: BenchContext, record: PhaseRecorder): Promise<void> {
  const accounts = await seedAccounts(ctx.db, PREFIX, CYCLES, ACCOUNT_CREDITS, "P2");
  await ctx.db.query("ANALYZE");
  const costs = new Map<string, { calls: number; planningMs: number; executionMs: number }>();
  let measuring = false;
  let roundTrips = 0;
  const timed = (tx: Sql): Sql => ({
    async query<Row>(text: string, params?: readonly unknown[]): Promise<Row[]> {
      if (measuring) {
        roundTrips += 1;
        await tx.query("SAVEPOINT bench_explain");
        const rows = await tx.query<{
          "QUERY PLAN": { "Planning Time": number; "Execution Time": number }[];
        }>(`EXPLAIN (ANALYZE, FORMAT JSON) ${text}`, params);
        await tx.query("ROLLBACK TO SAVEPOINT bench_explain");
        const plan = rows[0]?.["QUERY PLAN"][0];
        const key = text.replace(/\s+/g, " ").trim().slice(0, 70);
        const cost = costs.get(key) ?? { calls: 0, planningMs: 0, executionMs: 0 };
        cost.calls += 1;
        cost.planningMs += plan?.["Planning Time"] ?? 0;
        cost.executionMs += plan?.["Execution Time"] ?? 0;
        costs.set(key, cost);
      }
      return tx.query<Row>(text, params);
    },
  });
  const db: Database = {
    ...ctx.db,
    transaction: (options, work) =>
      ctx.db.transaction(options, (tx, preludeRows) => work(timed(tx), preludeRows)),
  };
  const ledger = new Ledger(db);
  for (const phase of ["warm-up", "measured"] as const) {
    measuring = phase === "measured";
    for (const [i, accountId] of accounts.entries()) {
      const reserved = await ledger.reserveGeneration("bench-p2", {
        idempotencyKey: `${ctx.runId}-p2-${phase}-${i}-r`,
        accountId,
        feature: "Bench",
        unitCost: UNIT_COST,
        quantity: 1,
      });
      if (!reserved.ok) throw new Error(`reserve failed: ${reserved.error.message}`);
      const settled = await ledger.settleGeneration("bench-p2", {
        idempotencyKey: `${ctx.runId}-p2-${phase}-${i}-s`,
        generationId: (reserved.value as { generationId: string }).generationId,
      });
      if (!settled.ok) throw new Error(`settle failed: ${settled.error.message}`);
    }
  }
  const table: StatementCost[] = [...costs.entries()].map(([statement, cost]) => ({
    statement,
    calls: cost.calls,
    planningMs: round(cost.planningMs / cost.calls, 3),
    executionMs: round(cost.executionMs / cost.calls, 3),
  }));
  record.details.statements = table;
  record.details.statementsPerCycle = roundTrips / CYCLES;
  const perCycle = table.reduce((sum, s) => sum + ((s.planningMs + s.executionMs) * s.calls) / CYCLES, 0);
  record.note(
    `${CYCLES} reserve + settle cycles through src/domain/ledger.ts in the bench process, each statement inside the domain's transactions also run under EXPLAIN ANALYZE (in a rolled-back savepoint): ${round(roundTrips / CYCLES, 1)} statements per cycle besides BEGIN/SET and COMMIT, ${round(perCycle, 2)} ms of planning + execution per cycle. Not counted: the response's reads (e.g. \`generation { id }\` through Prisma), protocol and round-trip costs.`,
  );
  for (const s of table) {
    record.note(
      `${s.calls / CYCLES}× per cycle: planning ${s.planningMs} ms + execution ${s.executionMs} ms — \`${s.statement}…\``,
    );
  }
  ctx.log(
    `  ${round(perCycle, 2)} ms of SQL planning + execution per cycle over ${table.length} statement kinds`,
  );
}
