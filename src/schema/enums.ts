import { REFUND_REASONS } from "../domain/model.ts";
import { builder } from "./builder.ts";

export const AccountKindEnum = builder.enumType("AccountKind", {
  values: ["PERSONAL", "WORKSPACE"] as const,
});
export const MemberRoleEnum = builder.enumType("MemberRole", { values: ["OWNER", "MEMBER"] as const });
export const GrantSourceEnum = builder.enumType("GrantSource", {
  values: ["SUBSCRIPTION", "WALLET"] as const,
});
export const GenerationStatusEnum = builder.enumType("GenerationStatus", {
  values: ["IN_PROGRESS", "SUCCEEDED", "PARTIALLY_SUCCEEDED", "FAILED", "TIMED_OUT", "CANCELLED"] as const,
});
export const ItemStatusEnum = builder.enumType("ItemStatus", {
  values: ["IN_PROGRESS", "SUCCEEDED", "FAILED", "TIMED_OUT", "CANCELLED"] as const,
});
export const LedgerEntryTypeEnum = builder.enumType("LedgerEntryType", {
  values: ["GRANT", "USAGE", "REFUND", "RELEASE", "EXPIRY", "ADJUSTMENT"] as const,
});
export const EntryStatusEnum = builder.enumType("EntryStatus", {
  values: ["PENDING", "COMPLETED", "FAILED"] as const,
});
export const RefundReasonEnum = builder.enumType("RefundReason", { values: REFUND_REASONS });
export const ErrorCodeEnum = builder.enumType("ErrorCode", {
  values: [
    "INSUFFICIENT_CREDITS",
    "INVALID_INPUT",
    "NOT_FOUND",
    "FORBIDDEN",
    "IDEMPOTENCY_KEY_REUSED",
    "ALREADY_FINALIZED",
    "REFUND_EXCEEDS_CHARGE",
  ] as const,
});
