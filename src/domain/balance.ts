import type { Sql } from "../db/database.ts";
import type { Credits } from "./credits.ts";
import type { AccountState, GrantState } from "./model.ts";
import { isGrantExpired } from "./model.ts";

/** An account's balance at one moment (SPEC §2 "Balance"). */
export interface BalanceSnapshot {
  readonly accountId: string;
  readonly available: Credits;
  readonly held: Credits;
  readonly total: Credits;
  readonly subscription: Credits;
  readonly wallet: Credits;
  readonly nextExpiry: { readonly amount: Credits; readonly at: Date } | null;
  readonly sequence: number;
  readonly updatedAt: Date;
}

/** The account row's fields a balance shows. */
type BalanceAccount = Omit<AccountState, "reservedVolume" | "alertThreshold" | "alertTriggered">;

type BalanceGrant = Pick<GrantState, "remaining" | "expiresAt" | "expiredAt">;

/** The balance of an account from its totals and its open grants. */
export function balanceOf(
  account: BalanceAccount,
  grants: Iterable<BalanceGrant>,
  now: Date,
): BalanceSnapshot {
  let nextExpiry: { amount: Credits; at: Date } | null = null;
  for (const grant of grants) {
    if (grant.remaining === 0n || grant.expiresAt === null || isGrantExpired(grant as GrantState, now))
      continue;
    if (nextExpiry === null || grant.expiresAt.getTime() < nextExpiry.at.getTime()) {
      nextExpiry = { amount: grant.remaining, at: grant.expiresAt };
    } else if (grant.expiresAt.getTime() === nextExpiry.at.getTime()) {
      nextExpiry.amount += grant.remaining;
    }
  }
  return {
    accountId: account.id,
    available: account.available,
    held: account.held,
    total: account.available + account.held,
    subscription: account.subscription,
    wallet: account.wallet,
    nextExpiry,
    sequence: account.sequence,
    updatedAt: account.updatedAt,
  };
}

interface BalanceRow {
  id: string;
  kind: AccountState["kind"];
  available: bigint;
  held: bigint;
  subscription: bigint;
  wallet: bigint;
  sequence: number;
  updated_at: Date;
  grants: { remaining: string; expiresAt: string | null; expiredAt: string | null }[];
}

/** Reads one account's balance without locking; null when the account does not exist. */
export async function loadBalance(
  sql: Sql,
  accountId: string,
  now = new Date(),
): Promise<BalanceSnapshot | null> {
  const rows = await sql.query<BalanceRow>(
    `SELECT a.id, a.kind, a.available, a.held, a.subscription, a.wallet, a.sequence, a.updated_at,
       (SELECT coalesce(json_agg(json_build_object('remaining', g.remaining::text, 'expiresAt', g.expires_at,
               'expiredAt', g.expired_at)), '[]'::json)
          FROM credit_grant g WHERE g.account_id = a.id AND g.remaining > 0 AND g.expires_at IS NOT NULL) AS grants
     FROM account a WHERE a.id = $1`,
    [accountId],
  );
  const row = rows[0];
  if (row === undefined) return null;
  const account: BalanceAccount = {
    id: row.id,
    kind: row.kind,
    available: row.available,
    held: row.held,
    subscription: row.subscription,
    wallet: row.wallet,
    sequence: row.sequence,
    updatedAt: row.updated_at,
  };
  const grants = row.grants.map((grant) => ({
    remaining: BigInt(grant.remaining),
    expiresAt: grant.expiresAt === null ? null : new Date(grant.expiresAt),
    expiredAt: grant.expiredAt === null ? null : new Date(grant.expiredAt),
  }));
  return balanceOf(account, grants, now);
}
