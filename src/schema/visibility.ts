import type { Context } from "./context.ts";

/**
 * Prisma filters that hide what a user may not see: accounts they are not a
 * member of, and everything on such accounts. Used by `node(id)` loading, so
 * a foreign id resolves to null exactly like a missing one.
 */
export function visibleAccount(context: Context): { members?: { some: { userId: string } } } {
  if (context.access.isPlatform) return {};
  return { members: { some: { userId: context.principal?.sub ?? "" } } };
}

export function onVisibleAccount(context: Context): { account?: { members: { some: { userId: string } } } } {
  if (context.access.isPlatform) return {};
  return { account: { members: { some: { userId: context.principal?.sub ?? "" } } } };
}
