import { type DomainError, InvalidInputError, NotFoundError } from "./errors.ts";
import type { Operation } from "./executor.ts";
import type { Failure, Ledger, Principal, ReserveRequest, Result, SettleRequest } from "./ledger.ts";

/**
 * Bulk reserve and settle (SPEC §8.7): many independent operations in one
 * request. Each item keeps every rule of its single mutation and its own
 * idempotency key and succeeds or fails on its own; all items enter the
 * executor together, so items on up to `batchAccountsMax` accounts share one
 * transaction (one lock round trip, one load, one write).
 */

/** Most items in one bulk request. */
export const BULK_ITEMS_MAX = 1_000;

/** One item's answer, in the order of the request. */
export type BulkResult = Result<{ generationId: string }>;

/** A request refused as a whole: nothing of it ran. */
export type BulkRefusal = { readonly ok: false; readonly error: InvalidInputError };

/** The per-item answers, or the refusal of the whole request. */
export type BulkOutcome = { readonly ok: true; readonly results: BulkResult[] } | BulkRefusal;

/** Refuses a request of no items or more than BULK_ITEMS_MAX, before anything runs. */
function checkCount(count: number): BulkRefusal | null {
  if (count === 0) return { ok: false, error: new InvalidInputError("items", "must list at least one item") };
  if (count > BULK_ITEMS_MAX) {
    return {
      ok: false,
      error: new InvalidInputError("items", `must list at most ${BULK_ITEMS_MAX} items, got ${count}`),
    };
  }
  return null;
}

/**
 * An item's error as the bulk request names it: an input field's path gains
 * the item's place (`unitCost` → `items[3].unitCost`).
 */
export function itemError(error: DomainError, index: number): DomainError {
  if (!(error instanceof InvalidInputError)) return error;
  const at = `items[${index}]`;
  if (error.field === null) return new InvalidInputError(at, error.message);
  return new InvalidInputError(`${at}.${error.field}`, error.message.slice(error.field.length + 1));
}

/** Runs the operations of the items that passed their checks together; the others keep their failure. */
async function runTogether(
  ledger: Ledger,
  prepared: readonly (Operation<{ generationId: string } | DomainError> | Failure)[],
): Promise<BulkResult[]> {
  const operations = prepared.filter(
    (item): item is Operation<{ generationId: string } | DomainError> => !("ok" in item),
  );
  const outcomes = await ledger.executor.runAll(operations);
  let next = 0;
  return prepared.map((item, index) => {
    if ("ok" in item) return { ok: false, error: itemError(item.error, index) };
    const outcome = outcomes[next];
    next += 1;
    if (outcome === undefined) throw new Error("every operation run together has an outcome");
    return outcome.ok ? outcome : { ok: false, error: itemError(outcome.error, index) };
  });
}

/** Reserves every item on its own, all in one go (see the module comment). */
export async function reserveGenerations(
  ledger: Ledger,
  principal: Principal,
  items: readonly (ReserveRequest | Failure)[],
): Promise<BulkOutcome> {
  const refusal = checkCount(items.length);
  if (refusal !== null) return refusal;
  const boards = await ledger.boardAccounts(
    items.flatMap((item) => ("ok" in item || item.boardId == null ? [] : [item.boardId])),
  );
  // Preparing is asynchronous only for an item without a unitCost (its price is looked up).
  const prepared = await Promise.all(
    items.map(async (item) => {
      if ("ok" in item) return { failure: item };
      const reserve = await ledger.prepareReserve(principal, item);
      if (!("operation" in reserve)) return { failure: reserve };
      if (item.boardId != null && boards.get(item.boardId) !== item.accountId) {
        return { failure: { ok: false as const, error: new NotFoundError("Board") } };
      }
      return { reserve };
    }),
  );
  const results = await runTogether(
    ledger,
    prepared.map((item) => item.reserve?.operation ?? (item.failure as Failure)),
  );
  prepared.forEach((item, index) => {
    const result = results[index];
    if (item.reserve !== undefined && result !== undefined) ledger.reserved(item.reserve, result);
  });
  return { ok: true, results };
}

/** Settles every item on its own, all in one go; owners are looked up in one query. */
export async function settleGenerations(
  ledger: Ledger,
  principal: Principal,
  items: readonly (SettleRequest | Failure)[],
): Promise<BulkOutcome> {
  const refusal = checkCount(items.length);
  if (refusal !== null) return refusal;
  const builders = items.map((item) => ("ok" in item ? item : ledger.prepareSettle(principal, item)));
  const owners = await ledger.generationOwners(
    items.flatMap((item, index) =>
      "ok" in item || typeof builders[index] !== "function" ? [] : [item.generationId],
    ),
  );
  const prepared = items.map((item, index) => {
    const build = builders[index];
    if ("ok" in item || build === undefined || typeof build !== "function") return build as Failure;
    const owner = owners.get(item.generationId);
    if (owner === undefined) return { ok: false as const, error: new NotFoundError("Generation") };
    return build(owner);
  });
  return { ok: true, results: await runTogether(ledger, prepared) };
}
