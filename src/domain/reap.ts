import { noticeExpiringGrants } from "./alerts.ts";
import { SYSTEM_ACTOR } from "./book.ts";
import type { Operation } from "./executor.ts";
import { expireDueGrants } from "./grants.ts";
import { timeOutOverdue } from "./settle.ts";

/** What the reaper's operation did to one account, counted under the account's lock. */
export interface ReapResult {
  /** Generations past their deadline that this operation timed out. */
  readonly generationsTimedOut: number;
  /** Grants past `expiresAt` that this operation wrote off. */
  readonly grantsExpired: number;
  /** Grants expiring soon whose `grant.expiring` notice this operation sent. */
  readonly grantsNoticed: number;
}

/**
 * The reaper's operation on one account: writes off its grants past
 * `expiresAt`, then times out those of `generationIds` still past their
 * deadline, both judged by the transaction's clock under the account's lock,
 * and sends the `grant.expiring` notice of grants with credits left that
 * expire within `noticeHours` (once a grant, see alerts.ts).
 * The counts are what happened, not what was asked for: a generation another
 * transaction ended first, or one not overdue by the transaction's clock, is
 * not counted. Background work: a locked account is skipped, and the next
 * round picks it up.
 */
export function reapAccount(
  accountId: string,
  generationIds: readonly string[],
  noticeHours: number,
): Operation<ReapResult> {
  const named = new Set(generationIds);
  return {
    operation: "reap",
    accountId,
    generationIds,
    idempotency: null,
    actor: SYSTEM_ACTOR,
    background: true,
    apply: (book) => {
      // Expiry first, as every other batch does it: a timeout's refund must not land on an expired grant.
      const grantsExpired = expireDueGrants(book);
      const generationsTimedOut = timeOutOverdue(book, named).length;
      const grantsNoticed = noticeExpiringGrants(book, noticeHours);
      return { generationsTimedOut, grantsExpired, grantsNoticed };
    },
  };
}
