/**
 * Outbound notices a transaction decides to send beside its ledger changes
 * (SPEC §8.4, §8.5): a balance crossing below its alert threshold, a grant
 * about to expire. An operation appends them to its `Book`; the transaction
 * that commits the book stores them in the webhook outbox, so a notice exists
 * exactly when the change that caused it does.
 */
export type NoticeType = "balance.low" | "grant.expiring";

export interface Notice {
  readonly type: NoticeType;
  readonly accountId: string;
  /** The account's entry sequence the notice belongs to, where there is one. */
  readonly sequence: number | null;
  /** The webhook body's `data`, besides `accountId` and `sequence` (JSON-safe: Credits as strings). */
  readonly data: Readonly<Record<string, unknown>>;
}
