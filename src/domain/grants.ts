import { randomUUID } from "node:crypto";
import type { Book } from "./book.ts";
import { CREDITS_MAX, type Credits, minCredits } from "./credits.ts";
import { InsufficientCreditsError, InvalidInputError } from "./errors.ts";
import {
  ADJUSTMENT_TITLE,
  defaultGrantTitle,
  EXPIRY_TITLE,
  type GrantSource,
  type GrantState,
  isGrantExpired,
} from "./model.ts";

export interface GrantCreditsInput {
  readonly accountId: string;
  readonly source: GrantSource;
  readonly amount: Credits;
  readonly expiresAt: Date | null;
  readonly reference: string | null;
  readonly title: string | null;
}

/**
 * Why `amount` more credits cannot come into the account, or null when they can.
 * Every amount the API returns must be a safe integer, the account's `total`
 * (available + held) included; an account pushed past 2^53 − 1 could no longer
 * show its balance.
 */
export function totalLimitProblem(book: Book, amount: Credits): InvalidInputError | null {
  const total = book.account.available + book.account.held;
  if (total + amount <= CREDITS_MAX) return null;
  return new InvalidInputError(
    "amount",
    `would raise the account's total credits above 2^53 − 1 (it holds ${total}, at most ${CREDITS_MAX - total} more can be added), got ${amount}`,
  );
}

/** Adds a grant and its GRANT entry. */
export function grantCredits(book: Book, input: GrantCreditsInput): { grantId: string } | InvalidInputError {
  if (input.expiresAt !== null && input.expiresAt.getTime() <= book.now.getTime()) {
    return new InvalidInputError("expiresAt", `must be in the future, got ${input.expiresAt.toISOString()}`);
  }
  const problem = totalLimitProblem(book, input.amount);
  if (problem !== null) return problem;
  const grant: GrantState = {
    id: randomUUID(),
    accountId: book.account.id,
    source: input.source,
    amount: input.amount,
    remaining: 0n,
    held: 0n,
    expiresAt: input.expiresAt,
    expiredAt: null,
    expiryNoticedAt: null,
    reference: input.reference,
    title: input.title,
    createdAt: book.now,
  };
  book.addGrant(grant);
  const transfer = book.begin();
  transfer.issue(grant, input.amount, "ISSUED");
  transfer.entry({
    type: "GRANT",
    amount: input.amount,
    title: input.title ?? defaultGrantTitle(input.source),
    grantId: grant.id,
  });
  transfer.finish();
  return { grantId: grant.id };
}

/**
 * Grants that can be drawn from now, in draw order: SUBSCRIPTION first,
 * soonest expiry first; then WALLET, oldest first. Ties break on id so the
 * order is total and every instance draws the same way.
 */
export function drawOrder(book: Book): GrantState[] {
  const time = (date: Date | null) => (date === null ? Number.POSITIVE_INFINITY : date.getTime());
  return book
    .grants()
    .filter((grant) => grant.remaining > 0n && !isGrantExpired(grant, book.now))
    .sort((a, b) => {
      if (a.source !== b.source) return a.source === "SUBSCRIPTION" ? -1 : 1;
      // Compared, not subtracted: two grants without expiry would give ∞ − ∞ = NaN, which
      // sort() takes as "equal" and so skips the oldest-first tie-break below.
      if (a.source === "SUBSCRIPTION" && time(a.expiresAt) !== time(b.expiresAt)) {
        return time(a.expiresAt) < time(b.expiresAt) ? -1 : 1;
      }
      const byAge = a.createdAt.getTime() - b.createdAt.getTime();
      return byAge !== 0 ? byAge : a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
    });
}

/** What can be drawn now (equals `available` once due grants are expired). */
export function drawable(book: Book): Credits {
  return drawOrder(book).reduce((total, grant) => total + grant.remaining, 0n);
}

export interface AdjustBalanceInput {
  readonly accountId: string;
  readonly amount: Credits;
  readonly note: string;
}

/**
 * An admin correction. A credit becomes a new WALLET grant titled
 * "Adjustment" (so it is spent, refunded and expired like any other credit);
 * a debit is taken from available credits in draw order and may not drive
 * available below zero.
 */
export function adjustBalance(
  book: Book,
  input: AdjustBalanceInput,
): { entryId: string } | InsufficientCreditsError | InvalidInputError {
  if (input.amount < 0n) {
    const required = -input.amount;
    const available = drawable(book);
    if (available < required) return new InsufficientCreditsError(available, required);
    const transfer = book.begin();
    let left = required;
    for (const grant of drawOrder(book)) {
      if (left === 0n) break;
      const take = minCredits(left, grant.remaining);
      transfer.remove(grant, take, "ADJUSTED");
      left -= take;
    }
    transfer.entry({
      type: "ADJUSTMENT",
      amount: input.amount,
      title: ADJUSTMENT_TITLE,
      message: input.note,
    });
    const [entry] = transfer.finish();
    return { entryId: entryId(entry) };
  }
  const problem = totalLimitProblem(book, input.amount);
  if (problem !== null) return problem;
  const grant: GrantState = {
    id: randomUUID(),
    accountId: book.account.id,
    source: "WALLET",
    amount: input.amount,
    remaining: 0n,
    held: 0n,
    expiresAt: null,
    expiredAt: null,
    expiryNoticedAt: null,
    reference: null,
    title: ADJUSTMENT_TITLE,
    createdAt: book.now,
  };
  book.addGrant(grant);
  const transfer = book.begin();
  transfer.issue(grant, input.amount, "ADJUSTED");
  transfer.entry({
    type: "ADJUSTMENT",
    amount: input.amount,
    title: ADJUSTMENT_TITLE,
    message: input.note,
    grantId: grant.id,
  });
  const [entry] = transfer.finish();
  return { entryId: entryId(entry) };
}

function entryId(entry: { id: string } | undefined): string {
  if (entry === undefined) throw new Error("an adjustment writes one entry");
  return entry.id;
}

/**
 * Writes off what is left of every grant past its `expiresAt` (one EXPIRY
 * entry for all of them) and marks them expired. Held credits stay held: they
 * are written off when they come back.
 *
 * @returns the number of grants expired.
 */
export function expireDueGrants(book: Book): number {
  const due = book
    .grants()
    .filter(
      (grant) =>
        grant.expiredAt === null &&
        grant.expiresAt !== null &&
        grant.expiresAt.getTime() <= book.now.getTime(),
    );
  if (due.length === 0) return 0;
  const transfer = book.begin();
  let total = 0n;
  for (const grant of due) {
    if (grant.remaining > 0n) {
      total += grant.remaining;
      transfer.remove(grant, grant.remaining, "EXPIRED");
    }
    grant.expiredAt = book.now;
    book.dirtyGrants.add(grant.id);
  }
  transfer.entry({ type: "EXPIRY", amount: -total, title: EXPIRY_TITLE });
  transfer.finish();
  return due.length;
}
