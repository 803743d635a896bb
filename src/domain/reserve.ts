import type { Book } from "./book.ts";
import { CREDITS_MAX, type Credits, minCredits } from "./credits.ts";
import { InsufficientCreditsError, InvalidInputError } from "./errors.ts";
import { drawable, drawOrder } from "./grants.ts";
import type { DrawState, GenerationState, ItemState } from "./model.ts";
import { capsPassed, capView, SpendCapExceededError, type SpendCapState } from "./spend-caps.ts";

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

/** What decides whether a hold may be taken: the same for a reserve and for its quote. */
export interface HoldState {
  /** Credits the account's generations ever reserved (bounded by CREDITS_MAX). */
  readonly reservedVolume: Credits;
  /** Credits that can be drawn now. */
  readonly available: Credits;
  /** The spend caps of the member the hold is for (none without a requestedBy). */
  readonly caps: readonly SpendCapState[];
}

/** Why `required` credits cannot be held, or null when they can (SPEC §5 reserve, §8.2 caps). */
export function checkHold(
  state: HoldState,
  required: Credits,
  now: Date,
): InvalidInputError | SpendCapExceededError | InsufficientCreditsError | null {
  const volumeLeft = CREDITS_MAX - state.reservedVolume;
  if (required > volumeLeft) {
    // Checked before the balance: it is the account's for good, not until the next grant.
    return new InvalidInputError(
      "unitCost",
      `× quantity (${required} credits) would take the credits this account ever reserved past 2^53 − 1, the most its spending figures can report; ${volumeLeft} can still be reserved`,
    );
  }
  // The member's own limit before the pool's balance: it is what this member can change nothing about until it resets.
  const [cap] = capsPassed(state.caps, required);
  if (cap !== undefined) return new SpendCapExceededError(capView(cap, now), required);
  if (state.available < required) return new InsufficientCreditsError(state.available, required);
  return null;
}

/** The caps of `member` among those loaded with the book. */
export function memberCaps(caps: readonly SpendCapState[], member: string | null): SpendCapState[] {
  return member === null ? [] : caps.filter((cap) => cap.memberId === member);
}

/**
 * Holds `unitCost × quantity` for a new generation, drawing subscription
 * credits before wallet credits (see `drawOrder`), and writes its USAGE entry.
 * Either everything is held or nothing is.
 */
export function reserveGeneration(
  book: Book,
  input: ReserveInput,
): { generationId: string } | InsufficientCreditsError | InvalidInputError | SpendCapExceededError {
  const required = input.unitCost * BigInt(input.quantity);
  const caps = memberCaps(book.spendCaps, input.requestedBy);
  const refused = checkHold(
    { reservedVolume: book.account.reservedVolume, available: drawable(book), caps },
    required,
    book.now,
  );
  if (refused !== null) return refused;
  for (const cap of caps) cap.spent += required;

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
