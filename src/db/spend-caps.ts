/**
 * Spend caps' statements (SPEC §8.2). What a member spent is summed from the
 * member's generations each time it is needed (index
 * generation(account_id, requested_by, created_at)): no counter to keep in
 * step. The reserve reads it inside its locked account transaction, where no
 * other transaction can change the account's generations.
 */
import type { CapPeriod, SpendCapState } from "../domain/spend-caps.ts";
import type { Sql } from "./database.ts";

/**
 * The caps of accounts `$accounts` (uuid[]) for members `$members` (text[], or
 * NULL for all), each with `spent` in its current period: generations created
 * from `$day` (a UTC day's start) or `$month` (the month's). Shared by the
 * reserve's batch load and the reads below, so both count the same.
 */
export function capsWithSpentQuery(accounts: string, members: string, day: string, month: string): string {
  return `SELECT c.account_id AS "accountId", c.member_id AS "memberId", c.period, c.amount::text,
      (SELECT coalesce(sum(g.reserved - g.refunded - g.released), 0)::text FROM generation g
        WHERE g.account_id = c.account_id AND g.requested_by = c.member_id
          AND g.created_at >= CASE c.period WHEN 'DAY' THEN ${day}::timestamptz ELSE ${month}::timestamptz END) AS spent
    FROM spend_cap c
   WHERE c.account_id = ANY(${accounts}) AND (${members}::text[] IS NULL OR c.member_id = ANY(${members}))`;
}

export interface SpendCapRow {
  readonly accountId: string;
  readonly memberId: string;
  readonly period: CapPeriod;
  readonly amount: string;
  readonly spent: string;
}

export function parseSpendCap(row: SpendCapRow): SpendCapState {
  return {
    accountId: row.accountId,
    memberId: row.memberId,
    period: row.period,
    amount: BigInt(row.amount),
    spent: BigInt(row.spent),
  };
}

/** An account's caps (of one member, or all), with what each member spent in the current period. No lock. */
export async function readSpendCaps(
  sql: Sql,
  accountId: string,
  memberId: string | null,
  periods: { day: Date; month: Date },
): Promise<SpendCapState[]> {
  const rows = await sql.query<SpendCapRow>(
    `${capsWithSpentQuery("$1::uuid[]", "$2", "$3", "$4")} ORDER BY c.member_id, c.period`,
    [[accountId], memberId === null ? null : [memberId], periods.day, periods.month],
  );
  return rows.map(parseSpendCap);
}

/** Sets (amount) or removes (null) a member's cap of one period; false when the account does not exist. */
export async function writeSpendCap(
  sql: Sql,
  cap: { accountId: string; memberId: string; period: CapPeriod; amount: bigint | null },
): Promise<boolean> {
  if (cap.amount === null) {
    const [row] = await sql.query<{ found: boolean }>(
      `WITH removed AS (
         DELETE FROM spend_cap WHERE account_id = $1 AND member_id = $2 AND period = $3::"CapPeriod" RETURNING 1)
       SELECT EXISTS (SELECT 1 FROM account WHERE id = $1) AS found`,
      [cap.accountId, cap.memberId, cap.period],
    );
    return row?.found === true;
  }
  const written = await sql.query(
    `INSERT INTO spend_cap (account_id, member_id, period, amount)
     SELECT id, $2, $3::"CapPeriod", $4 FROM account WHERE id = $1
     ON CONFLICT (account_id, member_id, period) DO UPDATE SET amount = EXCLUDED.amount, updated_at = now()
     RETURNING 1`,
    [cap.accountId, cap.memberId, cap.period, cap.amount],
  );
  return written.length > 0;
}
