/**
 * B4 — the reaper: N generations in progress (inserted with SQL, consistent
 * with every invariant), two server instances running (reaper on, short
 * interval), then every deadline moved into the past in one commit; the
 * clock runs from that commit until the reaper has refunded them all.
 */
import { ACCOUNT_CREDITS, audit, type BenchContext, type PhaseRecorder, UNIT_COST } from "./context.ts";
import { seedAccounts, sqlFile } from "./db.ts";
import { sleep } from "./proc.ts";
import { atMost, info, zero } from "./report.ts";
import { type ServerInstance, startServer } from "./server.ts";
import { round } from "./stats.ts";

const PREFIX = "b4000000";
/** SPEC §7: all refunded within 20 s. */
const TARGET_SECONDS = 20;
/** Reaper pause between idle rounds on the bench servers. */
const REAPER_INTERVAL_MS = 100;

export async function runB4(ctx: BenchContext, record: PhaseRecorder): Promise<void> {
  const accounts = Math.min(ctx.sizes.b4Accounts, ctx.sizes.b4Generations);
  const perAccount = Math.ceil(ctx.sizes.b4Generations / accounts);
  const total = accounts * perAccount;
  const ids = await seedAccounts(ctx.db, PREFIX, accounts, ACCOUNT_CREDITS, "B4");
  const insertStarted = performance.now();
  await ctx.db.query(sqlFile("b4-overdue.sql"), [PREFIX, accounts, perAccount, UNIT_COST]);
  await ctx.db.query("ANALYZE generation");
  ctx.log(
    `  inserted ${total} in-progress generations on ${accounts} accounts in ${round((performance.now() - insertStarted) / 1000)} s`,
  );
  const preAudit = await audit(ctx);
  if (!preAudit.ok)
    throw new Error(`the inserted generations break the audit: ${preAudit.problems.slice(0, 3).join(" ")}`);

  const servers: ServerInstance[] = await Promise.all(
    ["a", "b"].map((suffix) =>
      startServer({
        name: `b4-${suffix}`,
        databaseUrl: ctx.databaseUrl,
        secret: ctx.secret,
        redisUrl: ctx.redisUrl,
        env: { REAPER_ENABLED: "true", REAPER_INTERVAL_MS: String(REAPER_INTERVAL_MS) },
      }),
    ),
  );
  try {
    // Deadlines land anywhere in the last minute, so the reaper's batches mix accounts as they would after an outage.
    await ctx.db.query(
      `UPDATE generation SET deadline = now() - random() * interval '60 seconds'
        WHERE account_id = ANY($1::uuid[]) AND status = 'IN_PROGRESS'`,
      [ids],
    );
    const t0 = performance.now();
    const t0Wall = new Date();
    ctx.log(`  deadlines passed; 2 instances reaping (REAPER_INTERVAL_MS=${REAPER_INTERVAL_MS})`);
    const timeoutMs = (ctx.quick ? 60 : 180) * 1000;
    let open = total;
    let lastLog = 0;
    while (open > 0) {
      const [row] = await ctx.db.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM generation WHERE status = 'IN_PROGRESS' AND account_id = ANY($1::uuid[])",
        [ids],
      );
      open = row?.n ?? 0;
      const elapsed = performance.now() - t0;
      if (open === 0) break;
      if (elapsed > timeoutMs) break;
      if (elapsed - lastLog > 2_000) {
        lastLog = elapsed;
        ctx.log(`  ${round(elapsed / 1000)} s: ${open} still in progress`);
      }
      await sleep(50);
    }
    const seconds = (performance.now() - t0) / 1000;
    const [counts] = await ctx.db.query<{
      timed_out: number;
      refunds: number;
      double_refunded: number;
      p50: number | null;
      p99: number | null;
      last: number | null;
    }>(
      `WITH r AS (
         SELECT e.generation_id, count(*) AS n FROM ledger_entry e
          WHERE e.account_id = ANY($1::uuid[]) AND e.type = 'REFUND' GROUP BY e.generation_id)
       SELECT (SELECT count(*)::int FROM generation WHERE account_id = ANY($1::uuid[]) AND status = 'TIMED_OUT') AS timed_out,
              (SELECT coalesce(sum(n), 0)::int FROM r) AS refunds,
              (SELECT count(*)::int FROM r WHERE n > 1) AS double_refunded,
              (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - $2::timestamptz))
                 FROM generation WHERE account_id = ANY($1::uuid[]) AND finished_at IS NOT NULL) AS p50,
              (SELECT percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - $2::timestamptz))
                 FROM generation WHERE account_id = ANY($1::uuid[]) AND finished_at IS NOT NULL) AS p99,
              (SELECT extract(epoch FROM max(finished_at) - $2::timestamptz)
                 FROM generation WHERE account_id = ANY($1::uuid[])) AS last`,
      [ids, t0Wall],
    );
    const report = await audit(ctx);
    ctx.log(
      `  ${open === 0 ? "all refunded" : `${open} NOT refunded`} after ${round(seconds)} s; double refunds ${counts?.double_refunded}; audit ${report.ok ? "clean" : "PROBLEMS"}`,
    );
    record.details.generations = total;
    record.details.accounts = accounts;
    record.details.seconds = open === 0 ? seconds : null;
    record.details.leftInProgress = open;
    record.details.counts = counts;
    record.details.audit = report;
    record.figure(
      atMost(
        {
          id: "B4.seconds",
          label: `B4 reaper: time to refund ${total.toLocaleString("en-US")} overdue generations (2 instances)`,
          value: open === 0 ? seconds : null,
          unit: "s",
          target: `≤ ${TARGET_SECONDS} s`,
          note:
            open === 0
              ? `${round(total / seconds)} generations/s`
              : `${open} still in progress after ${round(seconds)} s (gave up)`,
        },
        TARGET_SECONDS,
      ),
    );
    record.figure(
      zero({
        id: "B4.doubleRefunds",
        label: "B4 generations refunded more than once",
        value: counts?.double_refunded ?? null,
        unit: "",
      }),
    );
    record.figure(
      zero({
        id: "B4.auditProblems",
        label: "B4 ledger audit after the reaper: problems",
        value: report.problems.length,
        unit: "",
      }),
    );
    record.figure(
      open === 0
        ? info({
            id: "B4.refundedHalfSeconds",
            label: "B4 half of the generations refunded after",
            value: counts?.p50 ?? null,
            unit: "s",
            note: `99% after ${round(counts?.p99 ?? Number.NaN)} s (finished_at − the deadline commit)`,
          })
        : info({
            id: "B4.refundedPercent",
            label: `B4 share refunded when the bench gave up (${round(seconds)} s)`,
            value: round(((total - open) / total) * 100),
            unit: "%",
            note: `${round((total - open) / seconds)} generations/s`,
          }),
    );
    record.note(
      `${total} generations (${perAccount} on each of ${accounts} accounts) inserted with bench/sql/b4-overdue.sql as reserveGeneration leaves them (audit clean before the run), with deadlines a day ahead; two server instances started (reaper on, REAPER_INTERVAL_MS=${REAPER_INTERVAL_MS}, default batch size); then one UPDATE moved every deadline into the last minute and the clock started at its commit. The database was polled every 50 ms until none was in progress.`,
    );
    record.note(
      `${counts?.timed_out ?? 0} ended TIMED_OUT, ${counts?.refunds ?? 0} REFUND entries, ${counts?.double_refunded ?? 0} generations with more than one REFUND. Audit of all ${report.accountsChecked} accounts: ${report.ok ? "clean" : report.problems.slice(0, 3).join(" ")}.`,
    );
  } finally {
    await Promise.all(servers.map((instance) => instance.stop()));
  }
}
