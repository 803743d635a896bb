import { InvalidInputError } from "./errors.ts";
import type { ItemOutcomeRequest } from "./ledger.ts";
import type { ItemOutcome } from "./settle.ts";
import { type Check, QUANTITY_MAX } from "./validate.ts";

/** Largest batch of items in one settle request. */
export const SETTLE_ITEMS_MAX = QUANTITY_MAX;

/**
 * The checked outcomes of a settle's items: 1..SETTLE_ITEMS_MAX, each index
 * once, a reason exactly when an item failed, a cost only when it succeeded
 * (-1n: its reserved cost, filled in once the generation is loaded).
 */
export function settleItems(c: Check, requested: readonly ItemOutcomeRequest[]): ItemOutcome[] {
  const input = { items: requested };
  if (input.items.length === 0)
    throw new InvalidInputError("items", "must list at least one item, or be omitted");
  if (input.items.length > SETTLE_ITEMS_MAX) {
    throw new InvalidInputError(
      "items",
      `must list at most ${SETTLE_ITEMS_MAX} items, got ${input.items.length}`,
    );
  }
  const seen = new Set<number>();
  const items = input.items.map((item, i): ItemOutcome => {
    const at = `items[${i}]`;
    c.integer(`${at}.index`, item.index, 0, QUANTITY_MAX - 1);
    if (seen.has(item.index)) throw new InvalidInputError(`${at}.index`, `repeats item ${item.index}`);
    seen.add(item.index);
    if (item.succeeded) {
      if (item.reason != null) throw new InvalidInputError(`${at}.reason`, "is only for failed items");
      if (item.message != null) c.text(`${at}.message`, item.message);
      return {
        index: item.index,
        succeeded: true,
        cost: item.cost == null ? -1n : c.positiveCredits(`${at}.cost`, item.cost),
      };
    }
    if (item.cost != null)
      throw new InvalidInputError(
        `${at}.cost`,
        "is only for succeeded items (a failed item is refunded in full)",
      );
    if (item.reason == null) throw new InvalidInputError(`${at}.reason`, "is required when an item failed");
    return {
      index: item.index,
      succeeded: false,
      reason: item.reason,
      message: c.optionalText(`${at}.message`, item.message),
    };
  });
  return items;
}
