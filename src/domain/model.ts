import type { Credits } from "./credits.ts";

export type AccountKind = "PERSONAL" | "WORKSPACE";
export type MemberRole = "OWNER" | "MEMBER";
export type GrantSource = "SUBSCRIPTION" | "WALLET";
export type GenerationStatus =
  | "IN_PROGRESS"
  | "SUCCEEDED"
  | "PARTIALLY_SUCCEEDED"
  | "FAILED"
  | "TIMED_OUT"
  | "CANCELLED";
export type ItemStatus = "IN_PROGRESS" | "SUCCEEDED" | "FAILED" | "TIMED_OUT" | "CANCELLED";
export type LedgerEntryType = "GRANT" | "USAGE" | "REFUND" | "RELEASE" | "EXPIRY" | "ADJUSTMENT";
export type EntryStatus = "PENDING" | "COMPLETED" | "FAILED";
export type PostingBook = "GRANT_AVAILABLE" | "GRANT_HELD" | "ISSUED" | "REVENUE" | "EXPIRED" | "ADJUSTED";

export const REFUND_REASONS = [
  "GENERATION_FAILED",
  "TIMEOUT",
  "SYSTEM_ERROR",
  "PROVIDER_ERROR",
  "SERVICE_UNAVAILABLE",
  "CONTENT_REJECTED",
  "MALFORMED_RESPONSE",
  "INVALID_INPUT",
  "CANCELLED",
  "BILLING_ERROR",
] as const;
export type RefundReason = (typeof REFUND_REASONS)[number];

/** An account's running totals; the row every money transaction locks. */
export interface AccountState {
  readonly id: string;
  readonly kind: AccountKind;
  available: Credits;
  held: Credits;
  subscription: Credits;
  wallet: Credits;
  /** Sequence of the latest ledger entry (0 before the first). */
  sequence: number;
  updatedAt: Date;
  /**
   * Credits the account's generations ever reserved, at most CREDITS_MAX.
   * Each generation's charged and refunded are at most its reserved, so
   * every sum reported over the account's generations is at most this.
   */
  reservedVolume: Credits;
  /** The balance alert's threshold (SPEC §8.5); null when the account has none. */
  alertThreshold: Credits | null;
  /**
   * Whether `available` is below the threshold: the alert fired when this
   * turned true, and is armed again once it is false (see alerts.ts).
   */
  alertTriggered: boolean;
}

export interface GrantState {
  readonly id: string;
  readonly accountId: string;
  readonly source: GrantSource;
  readonly amount: Credits;
  remaining: Credits;
  held: Credits;
  readonly expiresAt: Date | null;
  expiredAt: Date | null;
  /** When the reaper sent the grant's `grant.expiring` notice; null: not yet. */
  expiryNoticedAt: Date | null;
  readonly reference: string | null;
  readonly title: string | null;
  readonly createdAt: Date;
}

export interface ItemState {
  readonly index: number;
  status: ItemStatus;
  readonly reserved: Credits;
  charged: Credits;
  refunded: Credits;
  released: Credits;
  reason: RefundReason | null;
  message: string | null;
  finishedAt: Date | null;
}

/** Credits a generation drew from one grant, in draw order. */
export interface DrawState {
  readonly drawIndex: number;
  readonly grantId: string;
  readonly amount: Credits;
  held: Credits;
  charged: Credits;
  returned: Credits;
  supportRefunded: Credits;
}

export interface GenerationState {
  readonly id: string;
  readonly accountId: string;
  readonly requestedBy: string | null;
  readonly feature: string;
  readonly model: string | null;
  readonly quantity: number;
  readonly unitCost: Credits;
  readonly reserved: Credits;
  charged: Credits;
  refunded: Credits;
  released: Credits;
  supportRefunded: Credits;
  status: GenerationStatus;
  failureReason: RefundReason | null;
  failureMessage: string | null;
  readonly metadata: unknown;
  readonly deadline: Date;
  readonly createdAt: Date;
  finishedAt: Date | null;
  readonly items: ItemState[];
  readonly draws: DrawState[];
}

export interface LedgerEntryRecord {
  readonly id: string;
  readonly accountId: string;
  readonly sequence: number;
  readonly type: LedgerEntryType;
  readonly amount: Credits;
  readonly balanceBefore: Credits;
  readonly balanceAfter: Credits;
  readonly title: string;
  readonly reason: RefundReason | null;
  readonly message: string | null;
  readonly generationId: string | null;
  readonly grantId: string | null;
  readonly transferId: string;
  readonly createdAt: Date;
  /** Who caused it: a token's sub, `apikey:<id>`, or `system` (SPEC §8.3). */
  readonly actor: string;
}

export interface PostingRecord {
  readonly accountId: string;
  readonly transferId: string;
  readonly book: PostingBook;
  readonly grantId: string | null;
  readonly generationId: string | null;
  readonly amount: Credits;
  readonly createdAt: Date;
}

/** The item status a failure reason ends an item with. */
export function itemStatusForReason(reason: RefundReason): ItemStatus {
  if (reason === "TIMEOUT") return "TIMED_OUT";
  if (reason === "CANCELLED") return "CANCELLED";
  return "FAILED";
}

/**
 * A generation's status from its items: in progress while any item is; else
 * SUCCEEDED / PARTIALLY_SUCCEEDED by successes; else the one failure status all
 * items share, or FAILED when they differ.
 */
export function generationStatusOf(items: readonly ItemState[]): GenerationStatus {
  if (items.some((item) => item.status === "IN_PROGRESS")) return "IN_PROGRESS";
  const succeeded = items.filter((item) => item.status === "SUCCEEDED").length;
  if (succeeded === items.length) return "SUCCEEDED";
  if (succeeded > 0) return "PARTIALLY_SUCCEEDED";
  const first = items[0]?.status;
  return items.every((item) => item.status === first) && first !== undefined ? first : "FAILED";
}

/** The derived status of a ledger entry (SPEC §2). */
export function entryStatusOf(type: LedgerEntryType, generationStatus: GenerationStatus | null): EntryStatus {
  if (type !== "USAGE" || generationStatus === null) return "COMPLETED";
  if (generationStatus === "IN_PROGRESS") return "PENDING";
  if (generationStatus === "SUCCEEDED" || generationStatus === "PARTIALLY_SUCCEEDED") return "COMPLETED";
  return "FAILED";
}

/** The title of a GRANT entry when the grant has none of its own. */
export function defaultGrantTitle(source: GrantSource): string {
  return source === "WALLET" ? "Credit purchase" : "Subscription credits";
}

export const EXPIRY_TITLE = "Credits expired";
export const ADJUSTMENT_TITLE = "Adjustment";

/** Whether a grant can no longer be drawn from at `now`. */
export function isGrantExpired(grant: GrantState, now: Date): boolean {
  return grant.expiredAt !== null || (grant.expiresAt !== null && grant.expiresAt.getTime() <= now.getTime());
}
