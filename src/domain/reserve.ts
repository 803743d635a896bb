import type { Book } from "./book.ts";
import { CREDITS_MAX, type Credits, minCredits } from "./credits.ts";
import { InsufficientCreditsError, InvalidInputError } from "./errors.ts";
import { drawable, drawOrder } from "./grants.ts";
import type { DrawState, GenerationState, ItemState } from "./model.ts";

export interface ReserveInput {
  /** Chosen by the caller of the domain so a stored idempotent answer can name it. */
  readonly generationId: string;
  readonly accountId: string;
  readonly requestedBy: string | null;
  readonly feature: string;
  readonly model: string | null;
  readonly unitCost: Credits;
  readonly quantity: number;
  readonly timeoutSeconds: number;
  readonly boardId: string | null;
  readonly metadata: unknown;
}

/**
 * Holds `unitCost × quantity` for a new generation, drawing subscription
 * credits before wallet credits (see `drawOrder`), and writes its USAGE entry.
 * Either everything is held or nothing is.
 */
export function reserveGeneration(
  book: Book,
  input: ReserveInput,
): { generationId: string } | InsufficientCreditsError | InvalidInputError {
  const required = input.unitCost * BigInt(input.quantity);
  const volumeLeft = CREDITS_MAX - book.account.reservedVolume;
  if (required > volumeLeft) {
    // Checked before the balance: it is the account's for good, not until the next grant.
    return new InvalidInputError(
      "unitCost",
      `× quantity (${required} credits) would take the credits this account ever reserved past 2^53 − 1, the most its spending figures can report; ${volumeLeft} can still be reserved`,
    );
  }
  const available = drawable(book);
  if (available < required) return new InsufficientCreditsError(available, required);

  const items: ItemState[] = Array.from({ length: input.quantity }, (_, index) => ({
    index,
    status: "IN_PROGRESS",
    reserved: input.unitCost,
    charged: 0n,
    refunded: 0n,
    released: 0n,
    reason: null,
    message: null,
    finishedAt: null,
  }));
  const draws: DrawState[] = [];
  const generation: GenerationState = {
    id: input.generationId,
    accountId: book.account.id,
    requestedBy: input.requestedBy,
    feature: input.feature,
    model: input.model,
    quantity: input.quantity,
    unitCost: input.unitCost,
    reserved: required,
    charged: 0n,
    refunded: 0n,
    released: 0n,
    supportRefunded: 0n,
    status: "IN_PROGRESS",
    failureReason: null,
    failureMessage: null,
    metadata: input.metadata,
    deadline: new Date(book.now.getTime() + input.timeoutSeconds * 1000),
    createdAt: book.now,
    finishedAt: null,
    items,
    draws,
  };
  book.addGeneration(generation);
  book.account.reservedVolume += required;

  const transfer = book.begin();
  let left = required;
  for (const grant of drawOrder(book)) {
    if (left === 0n) break;
    const take = minCredits(left, grant.remaining);
    transfer.hold(grant, take, generation.id);
    draws.push({
      drawIndex: draws.length,
      grantId: grant.id,
      amount: take,
      held: take,
      charged: 0n,
      returned: 0n,
      supportRefunded: 0n,
    });
    left -= take;
  }
  transfer.touch(generation);
  transfer.entry({ type: "USAGE", amount: -required, title: input.feature, generationId: generation.id });
  transfer.finish();
  if (input.boardId !== null) {
    book.boardItems.push({ boardId: input.boardId, generationId: generation.id, accountId: book.account.id });
  }
  return { generationId: generation.id };
}
