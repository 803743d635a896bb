import { GraphQLError } from "graphql";
import { accountExists } from "../db/accounts.ts";
import type { BalanceSnapshot } from "../domain/balance.ts";
import { type DomainError, ForbiddenError, NotFoundError } from "../domain/errors.ts";
import type { Outcome } from "../domain/executor.ts";
import type { GenerationState } from "../domain/model.ts";
import type { Context } from "./context.ts";

/** Returns an outcome's value or throws its operating error for the errors plugin to turn into a union member. */
export function unwrap<T>(outcome: Outcome<T> | { ok: false; error: DomainError }): {
  value: T;
  replayed: boolean;
  balance: BalanceSnapshot;
  generation?: GenerationState | undefined;
} {
  if (!outcome.ok) throw outcome.error;
  return outcome;
}

/** Mutations for the platform backend (service or admin tokens). */
export function requirePlatform(context: Context, operation: string): void {
  if (!context.access.isPlatform) {
    throw new ForbiddenError(`${operation} needs a service or admin token`);
  }
}

/**
 * For mutations that create accounts: an API key limited to one account
 * acts on that account only, so it may not make others.
 */
export function requireUnscoped(context: Context, operation: string): void {
  if (context.access.accountScope !== null) {
    throw new ForbiddenError(`${operation} needs a credential that is not limited to one account`);
  }
}

/**
 * For mutations on a generation: an API key limited to one account sees the
 * generations of other accounts as missing (NotFound), as a user would.
 */
export async function requireGenerationInScope(context: Context, generationId: string): Promise<void> {
  const scope = context.access.accountScope;
  if (scope === null) return;
  const owner = await context.ledger.generationOwner(generationId);
  if (owner?.accountId !== scope) throw new NotFoundError("Generation");
}

export function requireAdmin(context: Context, operation: string): void {
  if (!context.access.isAdmin) throw new ForbiddenError(`${operation} needs an admin token`);
}

/**
 * For mutations on an account the caller must be able to see: a user who is
 * not a member gets NotFound (the account does not exist for them).
 */
export async function requireVisible(context: Context, accountId: string, what = "Account"): Promise<void> {
  if (!(await context.access.canRead(accountId))) throw new NotFoundError(what);
}

/**
 * For non-null query fields on an account: a GraphQL error NOT_FOUND when the
 * account does not exist or is not the caller's.
 */
export async function assertReadable(context: Context, accountId: string | null): Promise<string> {
  if (
    accountId !== null &&
    (await context.access.canRead(accountId)) &&
    (await accountExists(context.db, accountId))
  ) {
    return accountId;
  }
  throw accountNotFound();
}

function accountNotFound(): GraphQLError {
  return new GraphQLError("Account not found", { extensions: { code: "NOT_FOUND" } });
}

/**
 * Reads a page of an account's history with the same rule as
 * `assertReadable`, one round trip cheaper: rows of an account prove it
 * exists (foreign keys), so the account is looked up only when the page
 * comes back empty.
 */
export async function readAccountPage<T extends { readonly rows: readonly unknown[] }>(
  context: Context,
  accountId: string | null,
  read: (accountId: string) => Promise<T>,
): Promise<T> {
  if (accountId === null || !(await context.access.canRead(accountId))) throw accountNotFound();
  const page = await read(accountId);
  if (page.rows.length > 0 || (await accountExists(context.db, accountId))) return page;
  throw accountNotFound();
}
