import type { Sql } from "../db/database.ts";

/** The result of checking the ledger's invariants. */
export interface AuditReport {
  readonly ok: boolean;
  readonly accountsChecked: number;
  readonly problems: readonly string[];
}

/** Most problems one report lists; the count of the rest is appended. */
export const AUDIT_PROBLEMS_MAX = 200;

interface Check {
  readonly sql: string;
  readonly describe: (row: Record<string, unknown>) => string;
}

// Each check selects the rows that break one invariant. `$1` is an account id,
// or null for every account. Amounts are compared as BIGINT in SQL.
const SCOPE = "($1::uuid IS NULL OR a.id = $1::uuid)";

const CHECKS: readonly Check[] = [
  {
    sql: `SELECT a.id, a.available, coalesce(sum(e.amount), 0) AS entries
            FROM account a LEFT JOIN ledger_entry e ON e.account_id = a.id
           WHERE ${SCOPE} GROUP BY a.id HAVING a.available <> coalesce(sum(e.amount), 0)`,
    describe: (r) =>
      `Account ${r.id}: available balance is ${r.available} but its ledger entries sum to ${r.entries}; the balance and the ledger disagree.`,
  },
  {
    sql: `SELECT a.id, a.sequence, count(e.id) AS n, coalesce(min(e.sequence), 0) AS lo, coalesce(max(e.sequence), 0) AS hi
            FROM account a LEFT JOIN ledger_entry e ON e.account_id = a.id
           WHERE ${SCOPE} GROUP BY a.id
          HAVING count(e.id) <> coalesce(max(e.sequence), 0) OR a.sequence <> coalesce(max(e.sequence), 0)
              OR (count(e.id) > 0 AND min(e.sequence) <> 1)`,
    describe: (r) =>
      `Account ${r.id}: ledger sequence is not gapless (${r.n} entries numbered ${r.lo}..${r.hi}, account says ${r.sequence}).`,
  },
  {
    sql: `SELECT a.id, a.held, a.subscription, a.wallet,
                 coalesce(sum(g.held), 0) AS grant_held,
                 coalesce(sum(g.remaining) FILTER (WHERE g.source = 'SUBSCRIPTION'), 0) AS sub,
                 coalesce(sum(g.remaining) FILTER (WHERE g.source = 'WALLET'), 0) AS wal
            FROM account a LEFT JOIN credit_grant g ON g.account_id = a.id
           WHERE ${SCOPE} GROUP BY a.id
          HAVING a.held <> coalesce(sum(g.held), 0)
              OR a.subscription <> coalesce(sum(g.remaining) FILTER (WHERE g.source = 'SUBSCRIPTION'), 0)
              OR a.wallet <> coalesce(sum(g.remaining) FILTER (WHERE g.source = 'WALLET'), 0)`,
    describe: (r) =>
      `Account ${r.id}: totals disagree with its grants (held ${r.held} vs ${r.grant_held}, subscription ${r.subscription} vs ${r.sub}, wallet ${r.wallet} vs ${r.wal}).`,
  },
  {
    sql: `SELECT a.id, a.held, coalesce(sum(d.held), 0) AS open
            FROM account a LEFT JOIN generation_draw d ON d.account_id = a.id
           WHERE ${SCOPE} GROUP BY a.id HAVING a.held <> coalesce(sum(d.held), 0)`,
    describe: (r) =>
      `Account ${r.id}: ${r.held} credits are held but open generations hold ${r.open}; some hold was lost or doubled.`,
  },
  {
    sql: `SELECT g.id, g.account_id, g.reserved, g.charged, g.refunded, g.support_refunded, g.released,
                 coalesce((SELECT sum(d.held) FROM generation_draw d WHERE d.generation_id = g.id), 0) AS held
            FROM generation g JOIN account a ON a.id = g.account_id
           WHERE ${SCOPE}
             AND (g.reserved <> g.charged + (g.refunded - g.support_refunded) + g.released
                                 + coalesce((SELECT sum(d.held) FROM generation_draw d WHERE d.generation_id = g.id), 0)
                  OR g.support_refunded > g.charged)`,
    describe: (r) =>
      `Generation ${r.id} (account ${r.account_id}): reserved ${r.reserved} ≠ charged ${r.charged} + failure refunds ${BigInt(String(r.refunded)) - BigInt(String(r.support_refunded))} + released ${r.released} + still held ${r.held}, or support refunds ${r.support_refunded} exceed the charge.`,
  },
  {
    sql: `SELECT g.id, g.account_id, g.charged, g.refunded, g.released, g.status,
                 sum(i.charged) AS i_charged, sum(i.refunded) AS i_refunded, sum(i.released) AS i_released,
                 count(*) FILTER (WHERE i.status = 'IN_PROGRESS') AS open
            FROM generation g JOIN account a ON a.id = g.account_id JOIN generation_item i ON i.generation_id = g.id
           WHERE ${SCOPE} GROUP BY g.id
          HAVING g.charged <> sum(i.charged) OR g.refunded - g.support_refunded <> sum(i.refunded)
              OR g.released <> sum(i.released)
              OR (g.status = 'IN_PROGRESS') <> (count(*) FILTER (WHERE i.status = 'IN_PROGRESS') > 0)`,
    describe: (r) =>
      `Generation ${r.id} (account ${r.account_id}): its totals or status (${r.status}) disagree with its items (charged ${r.i_charged}, refunded ${r.i_refunded}, released ${r.i_released}, ${r.open} unfinished).`,
  },
  {
    sql: `SELECT g.id, g.account_id, g.reserved, g.refunded, g.released,
                 coalesce(sum(-e.amount) FILTER (WHERE e.type = 'USAGE'), 0) AS usage,
                 coalesce(sum(e.amount) FILTER (WHERE e.type = 'REFUND'), 0) AS refunds,
                 coalesce(sum(e.amount) FILTER (WHERE e.type = 'RELEASE'), 0) AS releases
            FROM generation g JOIN account a ON a.id = g.account_id LEFT JOIN ledger_entry e ON e.generation_id = g.id
           WHERE ${SCOPE} GROUP BY g.id
          HAVING g.reserved <> coalesce(sum(-e.amount) FILTER (WHERE e.type = 'USAGE'), 0)
              OR g.refunded <> coalesce(sum(e.amount) FILTER (WHERE e.type = 'REFUND'), 0)
              OR g.released <> coalesce(sum(e.amount) FILTER (WHERE e.type = 'RELEASE'), 0)`,
    describe: (r) =>
      `Generation ${r.id} (account ${r.account_id}): ledger entries (usage ${r.usage}, refunds ${r.refunds}, releases ${r.releases}) do not match it (reserved ${r.reserved}, refunded ${r.refunded}, released ${r.released}).`,
  },
  {
    sql: `SELECT g.id, g.account_id, g.remaining, g.held,
                 coalesce(sum(p.amount) FILTER (WHERE p.book = 'GRANT_AVAILABLE'), 0) AS p_available,
                 coalesce(sum(p.amount) FILTER (WHERE p.book = 'GRANT_HELD'), 0) AS p_held
            FROM credit_grant g JOIN account a ON a.id = g.account_id
            LEFT JOIN posting p ON p.account_id = g.account_id AND p.grant_id = g.id
           WHERE ${SCOPE} GROUP BY g.id
          HAVING g.remaining <> coalesce(sum(p.amount) FILTER (WHERE p.book = 'GRANT_AVAILABLE'), 0)
              OR g.held <> coalesce(sum(p.amount) FILTER (WHERE p.book = 'GRANT_HELD'), 0)`,
    describe: (r) =>
      `Grant ${r.id} (account ${r.account_id}): remaining ${r.remaining} / held ${r.held} do not match its postings (${r.p_available} / ${r.p_held}).`,
  },
  {
    sql: `SELECT p.transfer_id, p.account_id, sum(p.amount) AS total
            FROM posting p JOIN account a ON a.id = p.account_id
           WHERE ${SCOPE} GROUP BY p.account_id, p.transfer_id HAVING sum(p.amount) <> 0`,
    describe: (r) =>
      `Transfer ${r.transfer_id} (account ${r.account_id}): its postings sum to ${r.total}, not 0; credits were created or destroyed.`,
  },
];

/**
 * Checks the ledger's invariants for one account, or for all: available =
 * Σ entries; held = Σ open holds; sequences gapless; every generation's
 * reserved = charged + failure refunds + released + still held and support
 * refunds ≤ charged; grant balances = their postings; postings balance.
 */
export async function auditLedger(sql: Sql, accountId: string | null): Promise<AuditReport> {
  const [count] = await sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM account a WHERE ${SCOPE}`, [
    accountId,
  ]);
  const problems: string[] = [];
  let hidden = 0;
  for (const check of CHECKS) {
    const rows = await sql.query<Record<string, unknown>>(check.sql, [accountId]);
    for (const row of rows) {
      if (problems.length < AUDIT_PROBLEMS_MAX) problems.push(check.describe(row));
      else hidden += 1;
    }
  }
  if (hidden > 0) problems.push(`…and ${hidden} more problems.`);
  return { ok: problems.length === 0, accountsChecked: count?.n ?? 0, problems };
}
