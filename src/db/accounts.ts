/** Statements on the account table that are not part of a ledger transaction. */
import type { Sql } from "./database.ts";

/** Whether the account exists (no lock; an account is never deleted, so the answer stays true). */
export async function accountExists(sql: Sql, accountId: string): Promise<boolean> {
  const rows = await sql.query(
    "SELECT 1 FROM account WHERE id = $1::uuid",
    [accountId],
    "creditbook_account_exists",
  );
  return rows.length > 0;
}
