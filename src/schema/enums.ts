import type { RefundReason } from "../domain/model.ts";
import { REFUND_REASONS } from "../domain/model.ts";
import { builder } from "./builder.ts";

export const AccountKindEnum = builder.enumType("AccountKind", {
  description: "Who an account's credits belong to.",
  values: {
    PERSONAL: { description: "One person's credits." },
    WORKSPACE: {
      description: "A team's shared pool: its members spend from it, and its refunds return to it.",
    },
  } as const,
});
export const MemberRoleEnum = builder.enumType("MemberRole", {
  description: "A member's role in an account.",
  values: {
    OWNER: { description: "May also cancel any of the account's generations, not only their own." },
    MEMBER: { description: "Reads the account, subscribes to it, cancels the generations they requested." },
  } as const,
});
export const GrantSourceEnum = builder.enumType("GrantSource", {
  description: "Where a grant's credits come from; it decides the order credits are spent in.",
  values: {
    SUBSCRIPTION: {
      description:
        "A subscription period's quota, expiring at the period's end. Spent first, soonest expiry first.",
    },
    WALLET: {
      description:
        "Purchased or given credits, usually without expiry. Spent after subscription credits, oldest first.",
    },
  } as const,
});
export const GenerationStatusEnum = builder.enumType("GenerationStatus", {
  description: "Where a generation stands; final once every item has ended.",
  values: {
    IN_PROGRESS: { description: "At least one item has not ended yet; its credits are held." },
    SUCCEEDED: { description: "Every item was delivered and charged." },
    PARTIALLY_SUCCEEDED: { description: "Some items were delivered and charged; the others were refunded." },
    FAILED: { description: "No item was delivered; every item was refunded in full." },
    TIMED_OUT: {
      description: "No item was delivered before the deadline; the reaper refunded them (reason TIMEOUT).",
    },
    CANCELLED: {
      description: "Cancelled before any item was delivered; every item was refunded (reason CANCELLED).",
    },
  } as const,
});
export const ItemStatusEnum = builder.enumType("ItemStatus", {
  description: "Where one item of a generation stands. An item ends exactly once; its first outcome wins.",
  values: {
    IN_PROGRESS: { description: "Not ended yet: its reserve is held." },
    SUCCEEDED: { description: "Delivered: charged its cost, the rest of its reserve released." },
    FAILED: { description: "Failed: refunded in full, with a reason." },
    TIMED_OUT: {
      description: "Not finished by the deadline: refunded in full by the reaper (reason TIMEOUT).",
    },
    CANCELLED: { description: "Cancelled while in progress: refunded in full (reason CANCELLED)." },
  } as const,
});
export const LedgerEntryTypeEnum = builder.enumType("LedgerEntryType", {
  description: "What a ledger entry records. The sign of its amount follows from the type.",
  values: {
    GRANT: { description: "Credits added by a grant (+)." },
    USAGE: { description: "Credits held when a generation was reserved (−)." },
    REFUND: {
      description:
        "Credits returned for failed, timed-out or cancelled items, or by a support refund (+), with a reason.",
    },
    RELEASE: {
      description: "The surplus of a reserve given back when a delivered item cost less than reserved (+).",
    },
    EXPIRY: { description: "The unused remainder of an expired grant written off (−)." },
    ADJUSTMENT: { description: "A correction by an admin (+ or −), with a note." },
  } as const,
});
export const EntryStatusEnum = builder.enumType("EntryStatus", {
  description: "A ledger entry's status, derived from its generation: only USAGE entries change.",
  values: {
    PENDING: { description: "A USAGE entry whose generation still has items in progress." },
    COMPLETED: {
      description: "A USAGE entry whose generation was charged (in whole or in part); every other entry.",
    },
    FAILED: { description: "A USAGE entry whose generation was refunded in full." },
  } as const,
});

const REFUND_REASON_DESCRIPTIONS: Record<RefundReason, string> = {
  GENERATION_FAILED: "The generation or item failed for a reason no other value names.",
  TIMEOUT: "Not finished by the deadline (set by the reaper).",
  SYSTEM_ERROR: "An error of the platform's own systems.",
  PROVIDER_ERROR: "The model provider answered with an error.",
  SERVICE_UNAVAILABLE: "The model provider or a service it needs was unavailable.",
  CONTENT_REJECTED: "The request or its output was rejected by a content policy.",
  MALFORMED_RESPONSE: "The provider's output could not be used.",
  INVALID_INPUT: "The generation's input was found invalid after it started.",
  CANCELLED: "Cancelled by the requester, an account owner or the platform (set by cancelGeneration).",
  BILLING_ERROR: "A charge that should not have been made: the usual reason of a support refund.",
};

export const RefundReasonEnum = builder.enumType("RefundReason", {
  description: "Why credits were refunded. Every REFUND entry and every failed item carries one.",
  values: Object.fromEntries(
    REFUND_REASONS.map((reason) => [reason, { description: REFUND_REASON_DESCRIPTIONS[reason] }]),
  ) as Record<RefundReason, { description: string }>,
});

export const ErrorCodeEnum = builder.enumType("ErrorCode", {
  description:
    "The code of an operating error (a member of a mutation's result union). docs/ERRORS.md says when each happens and what to do.",
  values: {
    INSUFFICIENT_CREDITS: { description: "Not enough available credits; nothing was held or taken." },
    INVALID_INPUT: { description: "A value breaks a rule; `field` names it. Nothing was written." },
    NOT_FOUND: { description: "The object does not exist, or the caller may not see it." },
    FORBIDDEN: { description: "The token's role, or the caller's membership, does not allow this." },
    IDEMPOTENCY_KEY_REUSED: {
      description: "The key was already used for this mutation with other input. Nothing was written.",
    },
    ALREADY_FINALIZED: { description: "The generation's items already ended otherwise; nothing changed." },
    REFUND_EXCEEDS_CHARGE: {
      description: "A support refund above what is still refundable; nothing was refunded.",
    },
    SPEND_CAP_EXCEEDED: {
      description: "The reserve would take the member past a spend cap on the account; nothing was held.",
    },
  } as const,
});
