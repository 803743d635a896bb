/**
 * The RefundReason enum of SPEC §5, in its order (entries of one operation
 * follow it). Written out here rather than imported from src/, so a change
 * to the service's list fails the tests instead of moving them along.
 */
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

/** One reason of the RefundReason enum. */
export type RefundReason = (typeof REFUND_REASONS)[number];
