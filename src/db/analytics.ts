/**
 * The analytics statements (SPEC §8.3): spending broken down by a dimension,
 * the balance at an instant, and the operator's report across accounts. All
 * of them only read, and none locks anything.
 */
import type { Credits } from "../domain/credits.ts";
import { FAILED_GENERATION_STATUSES, type SpendingFigures } from "../domain/history.ts";
import type { RefundReason } from "../domain/model.ts";
import type { Database, Sql } from "./database.ts";

/** What a spending breakdown groups generations by. */
export type SpendingDimension = "FEATURE" | "MODEL" | "MEMBER" | "API_KEY" | "DAY";

/** The generations a summary or breakdown is over: one account's (or all, for operators) created in [from, to). */
export interface SpendingScope {
  /** The account, or null for every account (the operator's report). */
  readonly accountId: string | null;
  readonly from: Date | null;
  readonly to: Date | null;
}

/** The figures of one group of a breakdown; `key` null when the generations have no such value. */
export type SpendingGroup = SpendingFigures & { readonly key: string | null };

/** Prefix of the actor of an entry written with an API key (SPEC §8.3 LedgerEntry.actor). */
const API_KEY_ACTOR_PREFIX = "apikey:";

/**
 * The SQL of each dimension's key. API_KEY reads the actor of the
 * generation's USAGE entry (the reserve that created it) through the index
 * on ledger_entry (generation_id); DAY is the UTC calendar date.
 */
const KEY_COLUMNS: Readonly<Record<SpendingDimension, string>> = {
  FEATURE: "g.feature",
  MODEL: "g.model",
  MEMBER: "g.requested_by",
  API_KEY: `(SELECT substr(e.actor, ${API_KEY_ACTOR_PREFIX.length + 1}) FROM ledger_entry e
      WHERE e.generation_id = g.id AND e.type = 'USAGE' AND e.actor LIKE '${API_KEY_ACTOR_PREFIX}%'
      ORDER BY e.sequence LIMIT 1)`,
  DAY: `to_char(g.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')`,
};

/** The WHERE clause of a scope, with its parameters appended to `params`. */
function scopeCondition(scope: SpendingScope, params: unknown[]): string {
  const where = ["true"];
  if (scope.accountId !== null) {
    params.push(scope.accountId);
    where.push(`g.account_id = $${params.length}::uuid`);
  }
  if (scope.from !== null) {
    params.push(scope.from);
    where.push(`g.created_at >= $${params.length}::timestamptz`);
  }
  if (scope.to !== null) {
    params.push(scope.to);
    where.push(`g.created_at < $${params.length}::timestamptz`);
  }
  return where.join(" AND ");
}

interface GroupRow {
  key: string | null;
  charged: bigint;
  refunded: bigint;
  support_refunded: bigint;
  generations: number;
  failed: number;
}

/** Largest charge first, then by key, null last; DAY groups in date order instead. */
function compareGroups(by: SpendingDimension): (a: SpendingGroup, b: SpendingGroup) => number {
  const byKey = (a: SpendingGroup, b: SpendingGroup): number => {
    if (a.key === b.key) return 0;
    if (a.key === null) return 1;
    if (b.key === null) return -1;
    return a.key < b.key ? -1 : 1;
  };
  if (by === "DAY") return byKey;
  return (a, b) => (a.charged === b.charged ? byKey(a, b) : a.charged > b.charged ? -1 : 1);
}

/**
 * The generations of a scope grouped by a dimension, with the definitions of
 * `spending` (see spendingStatement in history.ts): the groups of any
 * dimension add up to the summary of the same scope. One statement over
 * generation (account_id, created_at DESC, id DESC).
 */
export async function spendingBreakdown(
  sql: Sql,
  scope: SpendingScope,
  by: SpendingDimension,
): Promise<SpendingGroup[]> {
  const params: unknown[] = [];
  const where = scopeCondition(scope, params);
  params.push(FAILED_GENERATION_STATUSES);
  const failed = `$${params.length}::text[]::"GenerationStatus"[]`;
  const rows = await sql.query<GroupRow>(
    `SELECT ${KEY_COLUMNS[by]} AS key,
       sum(g.charged)::bigint AS charged,
       sum(g.refunded)::bigint AS refunded,
       sum(g.support_refunded)::bigint AS support_refunded,
       count(*)::int AS generations,
       (count(*) FILTER (WHERE g.status = ANY(${failed})))::int AS failed
  FROM generation g
 WHERE ${where}
 GROUP BY 1`,
    params,
  );
  return rows
    .map((row) => ({
      key: row.key,
      charged: row.charged,
      refunded: row.refunded,
      net: row.charged - row.support_refunded,
      generations: row.generations,
      failedGenerations: row.failed,
    }))
    .sort(compareGroups(by));
}

/** An account's available balance as it was at an instant (SPEC §8.3 HistoricalBalance). */
export interface HistoricalBalance {
  readonly accountId: string;
  readonly at: Date;
  readonly balance: Credits;
  /** The sequence of the entry the balance is read from; 0 before the first entry. */
  readonly sequence: number;
}

/** The statement of `balanceAt`: $1 the account, $2 the instant. */
export const BALANCE_AT_SQL = `SELECT balance_after, sequence FROM ledger_entry
  WHERE account_id = $1::uuid AND created_at <= $2::timestamptz
  ORDER BY created_at DESC, sequence DESC LIMIT 1`;

/**
 * The balance after the account's last entry created at or before `at`: the
 * entry with the latest `created_at` (ties by sequence), one probe of
 * ledger_entry (account_id, created_at, sequence) read backwards. Before the
 * first entry the balance is 0 at sequence 0.
 */
export async function balanceAt(sql: Sql, accountId: string, at: Date): Promise<HistoricalBalance> {
  const rows = await sql.query<{ balance_after: bigint; sequence: number }>(
    BALANCE_AT_SQL,
    [accountId, at],
    "creditbook_balance_at",
  );
  const row = rows[0];
  return { accountId, at, balance: row?.balance_after ?? 0n, sequence: row?.sequence ?? 0 };
}

/** Refunds of one reason in the operator's report. */
export interface ReasonCount {
  readonly reason: RefundReason;
  /** Generations with at least one REFUND entry of this reason. */
  readonly generations: number;
  /** Σ of those REFUND entries. */
  readonly refunded: Credits;
}

/** The operator's view of every account's generations created in [from, to) (SPEC §8.3 OperatorReport). */
export interface OperatorReport {
  readonly generations: number;
  readonly failedGenerations: number;
  /** failedGenerations / generations; 0 when there are none. */
  readonly refundRate: number;
  /** The most refunded reason first. */
  readonly byReason: readonly ReasonCount[];
  readonly byFeature: readonly SpendingGroup[];
  readonly byModel: readonly SpendingGroup[];
  /** Generations still IN_PROGRESS whose deadline has passed by the database's clock. */
  readonly overdueInProgress: number;
}

/** Longest the operator's report may read for: it aggregates every account's generations of the range. */
const OPERATOR_REPORT_TIMEOUT_MS = 30_000;

/**
 * The operator's report over every account (admin only: the caller checks).
 * Its statements (reads only) run in one REPEATABLE READ transaction, so they
 * see one snapshot: the groups add up to the totals while generations end
 * around it.
 */
export async function operatorReport(
  db: Database,
  from: Date | null,
  to: Date | null,
): Promise<OperatorReport> {
  const scope: SpendingScope = { accountId: null, from, to };
  const options = { isolation: "REPEATABLE READ", timeoutMs: OPERATOR_REPORT_TIMEOUT_MS } as const;
  return db.transaction(options, async (tx) => {
    const byFeature = await spendingBreakdown(tx, scope, "FEATURE");
    const byModel = await spendingBreakdown(tx, scope, "MODEL");
    const byReason = await refundsByReason(tx, scope);
    const overdue = await overdueInProgress(tx, scope);
    const generations = byFeature.reduce((sum, group) => sum + group.generations, 0);
    const failedGenerations = byFeature.reduce((sum, group) => sum + group.failedGenerations, 0);
    return {
      generations,
      failedGenerations,
      refundRate: generations === 0 ? 0 : failedGenerations / generations,
      byReason,
      byFeature,
      byModel,
      overdueInProgress: overdue,
    };
  });
}

async function refundsByReason(sql: Sql, scope: SpendingScope): Promise<ReasonCount[]> {
  const params: unknown[] = [];
  const where = scopeCondition(scope, params);
  const rows = await sql.query<{ reason: RefundReason; generations: number; refunded: bigint }>(
    `SELECT e.reason, count(DISTINCT e.generation_id)::int AS generations, sum(e.amount)::bigint AS refunded
       FROM generation g JOIN ledger_entry e ON e.generation_id = g.id AND e.account_id = g.account_id
      WHERE ${where} AND e.type = 'REFUND' AND e.reason IS NOT NULL
      GROUP BY e.reason`,
    params,
  );
  return rows.sort((a, b) =>
    a.refunded === b.refunded ? (a.reason < b.reason ? -1 : 1) : a.refunded > b.refunded ? -1 : 1,
  );
}

async function overdueInProgress(sql: Sql, scope: SpendingScope): Promise<number> {
  const params: unknown[] = [];
  const where = scopeCondition(scope, params);
  const rows = await sql.query<{ overdue: number }>(
    `SELECT count(*)::int AS overdue FROM generation g
      WHERE ${where} AND g.status = 'IN_PROGRESS' AND g.deadline < now()`,
    params,
  );
  return rows[0]?.overdue ?? 0;
}
