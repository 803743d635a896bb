/**
 * Spend caps per member (SPEC §8.2): the most credits one member's
 * generations may take from an account in a UTC day or month. `spent` is held
 * plus charged by the member's generations started in the period, less what
 * came back (refunds and releases): reserved − refunded − released, summed
 * under the account's lock (src/db/spend-caps.ts), then raised by every reserve
 * of the same transaction.
 */
import type { Credits } from "./credits.ts";
import { DomainError } from "./errors.ts";

export type CapPeriod = "DAY" | "MONTH";
export const CAP_PERIODS: readonly CapPeriod[] = ["DAY", "MONTH"];

/** One cap as loaded under the account lock; `spent` moves with the transaction's reserves. */
export interface SpendCapState {
  readonly accountId: string;
  readonly memberId: string;
  readonly period: CapPeriod;
  readonly amount: Credits;
  spent: Credits;
}

/** A cap as clients see it (SPEC `SpendCap`). */
export interface SpendCapView {
  readonly memberId: string;
  readonly period: CapPeriod;
  readonly amount: Credits;
  readonly spent: Credits;
  readonly remaining: Credits;
  readonly resetsAt: Date;
}

/** Where the period holding `now` starts, in UTC. */
export function periodStart(period: CapPeriod, now: Date): Date {
  const day = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), period === "DAY" ? now.getUTCDate() : 1);
  return new Date(day);
}

/** Where the period holding `now` ends (the next one starts), in UTC. */
export function periodEnd(period: CapPeriod, now: Date): Date {
  const y = now.getUTCFullYear();
  const m = now.getUTCMonth();
  return new Date(period === "DAY" ? Date.UTC(y, m, now.getUTCDate() + 1) : Date.UTC(y, m + 1, 1));
}

/** What is left of a cap; 0 once spent reaches it (spent may pass a cap lowered after the spending). */
export function capRemaining(cap: Pick<SpendCapState, "amount" | "spent">): Credits {
  return cap.spent >= cap.amount ? 0n : cap.amount - cap.spent;
}

export function capView(cap: SpendCapState, now: Date): SpendCapView {
  return {
    memberId: cap.memberId,
    period: cap.period,
    amount: cap.amount,
    spent: cap.spent,
    remaining: capRemaining(cap),
    resetsAt: periodEnd(cap.period, now),
  };
}

/** The member's caps that `required` more credits would pass, tightest first; empty when none. */
export function capsPassed(caps: readonly SpendCapState[], required: Credits): SpendCapState[] {
  return caps
    .filter((cap) => cap.spent + required > cap.amount)
    .sort((a, b) => (capRemaining(a) < capRemaining(b) ? -1 : capRemaining(a) > capRemaining(b) ? 1 : 0));
}

/** The least left over a member's caps on an account; null when the member has none. */
export function leastRemaining(caps: readonly SpendCapState[]): Credits | null {
  let least: Credits | null = null;
  for (const cap of caps) {
    const left = capRemaining(cap);
    if (least === null || left < least) least = left;
  }
  return least;
}

export class SpendCapExceededError extends DomainError {
  readonly code = "SPEND_CAP_EXCEEDED";
  constructor(
    readonly cap: SpendCapView,
    required: Credits,
  ) {
    super(
      `Spend cap exceeded: ${cap.memberId} may spend ${cap.amount} credits a ${cap.period === "DAY" ? "day" : "month"} (UTC) on this account, has spent ${cap.spent} and asks for ${required}; ${cap.remaining} left until ${cap.resetsAt.toISOString()}`,
    );
    this.name = "SpendCapExceededError";
  }
}
