import { assert } from "./assert.ts";
import type { Book, Transfer } from "./book.ts";
import { type Credits, sumCredits } from "./credits.ts";
import {
  AlreadyFinalizedError,
  InvalidInputError,
  NotFoundError,
  RefundExceedsChargeError,
} from "./errors.ts";
import { totalLimitProblem } from "./grants.ts";
import {
  type GenerationState,
  generationStatusOf,
  type ItemState,
  itemStatusForReason,
  REFUND_REASONS,
  type RefundReason,
} from "./model.ts";

/** One item's reported result. */
export type ItemOutcome =
  | { readonly index: number; readonly succeeded: true; readonly cost: Credits }
  | {
      readonly index: number;
      readonly succeeded: false;
      readonly reason: RefundReason;
      readonly message: string | null;
    };

export interface SettleInput {
  readonly generationId: string;
  /** null: every item succeeded at its reserved cost. */
  readonly items: readonly ItemOutcome[] | null;
}

export type GenerationResult = { generationId: string };

function find(book: Book, generationId: string): GenerationState | NotFoundError {
  return book.generation(generationId) ?? new NotFoundError("Generation");
}

/** Whether an item already ended exactly as `outcome` says (a repeated report). */
function sameOutcome(item: ItemState, outcome: ItemOutcome): boolean {
  if (outcome.succeeded) return item.status === "SUCCEEDED" && item.charged === outcome.cost;
  return item.status !== "SUCCEEDED" && item.status !== "IN_PROGRESS" && item.reason === outcome.reason;
}

function describe(item: ItemState): string {
  if (item.status === "SUCCEEDED") return `succeeded (charged ${item.charged})`;
  return `ended ${item.status} (${item.reason ?? "no reason"})`;
}

/**
 * Records item outcomes. A success charges its cost and releases the rest of
 * the item's reserve; a failure refunds the item in full. An item's first
 * outcome wins: the same report again changes nothing, a different one is
 * AlreadyFinalizedError and nothing of the request is applied.
 */
export function settleGeneration(
  book: Book,
  input: SettleInput,
): GenerationResult | NotFoundError | AlreadyFinalizedError | InvalidInputError {
  const generation = find(book, input.generationId);
  if (generation instanceof NotFoundError) return generation;

  let outcomes: readonly ItemOutcome[];
  if (input.items === null) {
    const ended = generation.items.find(
      (item) => item.status !== "IN_PROGRESS" && item.status !== "SUCCEEDED",
    );
    if (ended !== undefined) {
      return new AlreadyFinalizedError(
        generation.id,
        `Generation already ended: item ${ended.index} ${describe(ended)}; report per-item outcomes instead`,
      );
    }
    outcomes = generation.items
      .filter((item) => item.status === "IN_PROGRESS")
      .map((item) => ({ index: item.index, succeeded: true, cost: generation.unitCost }));
  } else {
    for (const [position, outcome] of input.items.entries()) {
      if (outcome.index >= generation.quantity) {
        return new InvalidInputError(
          `items[${position}].index`,
          `must be from 0 to ${generation.quantity - 1} (the generation has ${generation.quantity} items), got ${outcome.index}`,
        );
      }
      if (outcome.succeeded && outcome.cost > generation.unitCost) {
        return new InvalidInputError(
          `items[${position}].cost`,
          `must be at most the unit cost reserved (${generation.unitCost}), got ${outcome.cost}`,
        );
      }
    }
    const pending: ItemOutcome[] = [];
    for (const outcome of input.items) {
      const item = generation.items[outcome.index];
      assert(item !== undefined && item.index === outcome.index, "items are stored by index");
      if (item.status === "IN_PROGRESS") pending.push(outcome);
      else if (!sameOutcome(item, outcome)) {
        return new AlreadyFinalizedError(
          generation.id,
          `Item ${item.index} already ${describe(item)}; an item's first outcome is final`,
        );
      }
    }
    outcomes = pending;
  }
  if (outcomes.length > 0) endItems(book, generation, outcomes);
  return { generationId: generation.id };
}

/**
 * Ends every unfinished item with `reason` (a whole-generation failure,
 * cancellation or timeout).
 */
export function refundGeneration(
  book: Book,
  input: { generationId: string; reason: RefundReason; message: string | null },
): GenerationResult | NotFoundError | AlreadyFinalizedError {
  const generation = find(book, input.generationId);
  if (generation instanceof NotFoundError) return generation;
  const open = generation.items.filter((item) => item.status === "IN_PROGRESS");
  if (open.length === 0) {
    return new AlreadyFinalizedError(
      generation.id,
      `Generation already ended ${generation.status}; nothing is left to refund`,
    );
  }
  endItems(
    book,
    generation,
    open.map((item) => ({
      index: item.index,
      succeeded: false,
      reason: input.reason,
      message: input.message,
    })),
  );
  return { generationId: generation.id };
}

/** The message written on items a timeout ends. */
export function timeoutMessage(generation: GenerationState): string {
  const timeoutMs = generation.deadline.getTime() - generation.createdAt.getTime();
  const minutes = Math.round(timeoutMs / 60_000);
  if (minutes >= 1) return `No result within ${minutes} minute${minutes === 1 ? "" : "s"}`;
  const seconds = Math.round(timeoutMs / 1000);
  return `No result within ${seconds} second${seconds === 1 ? "" : "s"}`;
}

/**
 * Ends the unfinished items of loaded generations whose deadline has passed,
 * as TIMED_OUT with reason TIMEOUT. Run at the start of every batch (so a late
 * settle finds the item already timed out) and by the reaper.
 *
 * @returns the ids of the generations timed out.
 */
export function timeOutOverdue(book: Book, onlyIds?: ReadonlySet<string>): string[] {
  const timedOut: string[] = [];
  for (const generation of book.generations()) {
    if (onlyIds !== undefined && !onlyIds.has(generation.id)) continue;
    if (generation.status !== "IN_PROGRESS" || generation.deadline.getTime() > book.now.getTime()) continue;
    refundGeneration(book, {
      generationId: generation.id,
      reason: "TIMEOUT",
      message: timeoutMessage(generation),
    });
    timedOut.push(generation.id);
  }
  return timedOut;
}

/**
 * Gives back up to what a generation was charged (admin support refund),
 * returning credits to the grants they were charged from, last drawn first.
 */
export function supportRefund(
  book: Book,
  input: { generationId: string; amount: Credits; reason: RefundReason; note: string | null },
): GenerationResult | NotFoundError | RefundExceedsChargeError | InvalidInputError {
  const generation = find(book, input.generationId);
  if (generation instanceof NotFoundError) return generation;
  const refundable = generation.charged - generation.supportRefunded;
  if (input.amount > refundable) return new RefundExceedsChargeError(refundable, input.amount);
  // Charged credits left the account; grants since may have filled it up to the limit.
  const problem = totalLimitProblem(book, input.amount);
  if (problem !== null) return problem;
  const transfer = book.begin();
  transfer.returnCharged(generation, input.amount);
  generation.supportRefunded += input.amount;
  generation.refunded += input.amount;
  transfer.touch(generation);
  transfer.entry({
    type: "REFUND",
    amount: input.amount,
    title: generation.feature,
    reason: input.reason,
    message: input.note,
    generationId: generation.id,
  });
  transfer.entryForExpiredReturns();
  transfer.finish();
  return { generationId: generation.id };
}

/**
 * Applies outcomes to unfinished items: charges successes in draw order,
 * returns failures and surpluses last drawn first, and writes one REFUND per
 * reason, one RELEASE for all surplus, and one EXPIRY for credits that came
 * back to expired grants.
 */
function endItems(book: Book, generation: GenerationState, outcomes: readonly ItemOutcome[]): void {
  const transfer: Transfer = book.begin();
  const refunds = new Map<RefundReason, { amount: Credits; message: string | null }>();
  let charged = 0n;
  let released = 0n;
  for (const outcome of outcomes) {
    const item = generation.items[outcome.index];
    assert(
      item !== undefined && item.status === "IN_PROGRESS",
      `item ${outcome.index} is unfinished before it ends`,
    );
    item.finishedAt = book.now;
    if (outcome.succeeded) {
      item.status = "SUCCEEDED";
      item.charged = outcome.cost;
      item.released = item.reserved - outcome.cost;
      charged += item.charged;
      released += item.released;
    } else {
      item.status = itemStatusForReason(outcome.reason);
      item.refunded = item.reserved;
      item.reason = outcome.reason;
      item.message = outcome.message;
      const refund = refunds.get(outcome.reason) ?? { amount: 0n, message: outcome.message };
      refund.amount += item.reserved;
      refunds.set(outcome.reason, refund);
    }
  }
  const refunded = sumCredits([...refunds.values()].map((refund) => refund.amount));
  // Charges take the earliest draws; what comes back returns to the latest draws.
  if (charged > 0n) transfer.chargeDraws(generation, charged);
  if (refunded + released > 0n) transfer.returnDraws(generation, refunded + released);

  generation.charged += charged;
  generation.released += released;
  generation.refunded += refunded;
  const failed = generation.items.find((item) => item.reason !== null);
  if (failed !== undefined) {
    generation.failureReason = failed.reason;
    generation.failureMessage = failed.message;
  }
  generation.status = generationStatusOf(generation.items);
  if (generation.status !== "IN_PROGRESS") generation.finishedAt = book.now;
  transfer.touch(
    generation,
    outcomes.map((outcome) => outcome.index),
  );

  for (const reason of REFUND_REASONS) {
    const refund = refunds.get(reason);
    if (refund === undefined) continue;
    transfer.entry({
      type: "REFUND",
      amount: refund.amount,
      title: generation.feature,
      reason,
      message: refund.message,
      generationId: generation.id,
    });
  }
  transfer.entry({
    type: "RELEASE",
    amount: released,
    title: generation.feature,
    generationId: generation.id,
  });
  transfer.entryForExpiredReturns();
  transfer.finish();

  assert(
    generation.charged +
      (generation.refunded - generation.supportRefunded) +
      generation.released +
      sumCredits(generation.draws.map((draw) => draw.held)) ===
      generation.reserved,
    `generation ${generation.id}: reserved = charged + refunded + released + held`,
  );
}
