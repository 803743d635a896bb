/**
 * Whether an object already in hand (the state a transaction committed)
 * holds everything a Prisma query planned by Pothos asks for: every key its
 * `include` / `select` names, relations included, all the way down. Pothos
 * takes a row returned for a query as loaded with that query, so a field
 * planned into it (a relation, a `select` field such as `Generation.board`)
 * would read a missing key; such a query must be run instead.
 */
export function holdsSelection(query: unknown, row: unknown): boolean {
  if (typeof query !== "object" || query === null) return true;
  if (typeof row !== "object" || row === null) return false;
  const { include, select } = query as { include?: unknown; select?: unknown };
  for (const selection of [include, select]) {
    if (typeof selection !== "object" || selection === null) continue;
    for (const [key, nested] of Object.entries(selection)) {
      if (nested === false || nested === undefined) continue;
      const value = (row as Record<string, unknown>)[key];
      if (value === undefined) return false;
      if (value === null) continue;
      const rows: unknown[] = Array.isArray(value) ? value : [value];
      if (!rows.every((inner) => holdsSelection(nested, inner))) return false;
    }
  }
  return true;
}
