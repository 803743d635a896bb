import type { Context } from "./context.ts";

/**
 * Prisma filters that hide what the caller may not see: for a user, accounts
 * they are not a member of, and everything on such accounts; for an API key
 * limited to one account, every other account. Used by `node(id)` loading,
 * so a foreign id resolves to null exactly like a missing one.
 */
export function visibleAccount(context: Context): {
  AND?: { id: string }[];
  members?: { some: { userId: string } };
} {
  const scope = context.access.accountScope;
  // Under AND: the caller's `{ id, ...visibleAccount() }` keeps its own id.
  if (scope !== null) return { AND: [{ id: scope }] };
  if (context.access.isPlatform) return {};
  return { members: { some: { userId: context.principal?.sub ?? "" } } };
}

export function onVisibleAccount(context: Context): {
  accountId?: string;
  account?: { members: { some: { userId: string } } };
} {
  const scope = context.access.accountScope;
  if (scope !== null) return { accountId: scope };
  if (context.access.isPlatform) return {};
  return { account: { members: { some: { userId: context.principal?.sub ?? "" } } } };
}
