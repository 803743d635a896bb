import type { Book } from "./book.ts";
import type { Credits } from "./credits.ts";
import type { Operation } from "./executor.ts";
import { isGrantExpired } from "./model.ts";

/**
 * Balance alerts and grant-expiry notices (SPEC §8.5). Both are decided
 * inside the account transaction that causes them, under the account's row
 * lock: a crossing below the threshold is seen by exactly one transaction
 * (the next one reads `alertTriggered` already set), and a grant is noticed
 * once (the next round reads `expiryNoticedAt` already set). The notices go
 * on the book, to be stored with the transaction; the `balanceLow` event is
 * published after commit.
 */

/** `available` fell below the account's alert threshold (the `balanceLow` subscription's payload). */
export interface BalanceLowEvent {
  readonly accountId: string;
  readonly threshold: Credits;
  readonly available: Credits;
  /** The transaction's moment. */
  readonly at: Date;
}

/** An account's alert as the API shows it. */
export interface BalanceAlertState {
  readonly accountId: string;
  readonly threshold: Credits;
  readonly triggered: boolean;
}

/** How long before a grant expires its `grant.expiring` notice goes out. @default 72 // hours */
export const GRANT_EXPIRY_NOTICE_HOURS_DEFAULT = 72;
/** The longest notice period GRANT_EXPIRY_NOTICE_HOURS accepts. @default 8_760 // hours (a year) */
export const GRANT_EXPIRY_NOTICE_HOURS_MAX = 8_760;

/**
 * Re-evaluates the account's alert after `available` moved: fires once when
 * it is below the threshold and was not (a `balance.low` notice and event),
 * re-arms once it is back at or above it. Called by the book after every
 * transfer that wrote entries, so each crossing within one batch counts.
 */
export function evaluateBalanceAlert(book: Book): void {
  const { account } = book;
  if (account.alertThreshold === null) return;
  const below = account.available < account.alertThreshold;
  if (below === account.alertTriggered) return;
  account.alertTriggered = below;
  book.accountChanged = true;
  if (!below) return;
  const event: BalanceLowEvent = {
    accountId: account.id,
    threshold: account.alertThreshold,
    available: account.available,
    at: book.now,
  };
  book.balanceLow.push(event);
  book.notices.push({
    type: "balance.low",
    accountId: account.id,
    sequence: account.sequence,
    data: {
      threshold: event.threshold.toString(),
      available: event.available.toString(),
      at: event.at.toISOString(),
    },
  });
}

/**
 * Sets the account's alert threshold. `triggered` says whether `available` is
 * below it now; setting it sends nothing, even when it is: the alert fires at
 * the next fall from at or above the threshold to below it.
 */
export function setBalanceAlert(
  accountId: string,
  threshold: Credits,
  actor: string,
): Operation<BalanceAlertState> {
  return {
    operation: "setBalanceAlert",
    accountId,
    generationIds: [],
    actor,
    idempotency: null,
    apply: (book) => {
      book.account.alertThreshold = threshold;
      book.account.alertTriggered = book.account.available < threshold;
      book.accountChanged = true;
      return { accountId, threshold, triggered: book.account.alertTriggered };
    },
  };
}

/** Removes the account's alert; nothing more fires until one is set again. */
export function clearBalanceAlert(accountId: string, actor: string): Operation<{ accountId: string }> {
  return {
    operation: "clearBalanceAlert",
    accountId,
    generationIds: [],
    actor,
    idempotency: null,
    apply: (book) => {
      if (book.account.alertThreshold !== null) {
        book.account.alertThreshold = null;
        book.account.alertTriggered = false;
        book.accountChanged = true;
      }
      return { accountId };
    },
  };
}

/**
 * Marks the account's grants with credits left that expire within
 * `noticeHours` and were not noticed yet, and pushes one `grant.expiring`
 * notice for each. @returns how many grants it noticed.
 */
export function noticeExpiringGrants(book: Book, noticeHours: number): number {
  const horizonMs = book.now.getTime() + noticeHours * 3_600_000;
  let noticed = 0;
  for (const grant of book.grants()) {
    if (grant.expiryNoticedAt !== null || grant.expiresAt === null || grant.remaining === 0n) continue;
    if (isGrantExpired(grant, book.now) || grant.expiresAt.getTime() > horizonMs) continue;
    grant.expiryNoticedAt = book.now;
    book.dirtyGrants.add(grant.id);
    book.notices.push({
      type: "grant.expiring",
      accountId: book.account.id,
      sequence: null,
      data: {
        grantId: grant.id,
        source: grant.source,
        remaining: grant.remaining.toString(),
        expiresAt: grant.expiresAt.toISOString(),
        reference: grant.reference,
      },
    });
    noticed += 1;
  }
  return noticed;
}
