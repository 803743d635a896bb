import type { Credits } from "./credits.ts";

/**
 * Operating errors: expected outcomes a caller handles, returned as values
 * (GraphQL union members), never thrown past the resolver. Bugs are
 * InvariantViolation (assert.ts) instead.
 */
export type ErrorCode =
  | "INSUFFICIENT_CREDITS"
  | "INVALID_INPUT"
  | "NOT_FOUND"
  | "FORBIDDEN"
  | "IDEMPOTENCY_KEY_REUSED"
  | "ALREADY_FINALIZED"
  | "REFUND_EXCEEDS_CHARGE"
  | "SPEND_CAP_EXCEEDED";

export abstract class DomainError extends Error {
  abstract readonly code: ErrorCode;
}

export class InsufficientCreditsError extends DomainError {
  readonly code = "INSUFFICIENT_CREDITS";
  constructor(
    readonly available: Credits,
    readonly required: Credits,
  ) {
    super(`Insufficient credits: ${required} required, ${available} available`);
    this.name = "InsufficientCreditsError";
  }
}

export class InvalidInputError extends DomainError {
  readonly code = "INVALID_INPUT";
  constructor(
    readonly field: string | null,
    message: string,
  ) {
    super(field === null ? message : `${field} ${message}`);
    this.name = "InvalidInputError";
  }
}

export class NotFoundError extends DomainError {
  readonly code = "NOT_FOUND";
  constructor(what: string) {
    super(`${what} not found`);
    this.name = "NotFoundError";
  }
}

export class ForbiddenError extends DomainError {
  readonly code = "FORBIDDEN";
  constructor(message: string) {
    super(message);
    this.name = "ForbiddenError";
  }
}

export class IdempotencyKeyReusedError extends DomainError {
  readonly code = "IDEMPOTENCY_KEY_REUSED";
  constructor(operation: string) {
    super(`This idempotency key was already used for a different ${operation} request; use a new key`);
    this.name = "IdempotencyKeyReusedError";
  }
}

export class AlreadyFinalizedError extends DomainError {
  readonly code = "ALREADY_FINALIZED";
  constructor(
    readonly generationId: string,
    message: string,
  ) {
    super(message);
    this.name = "AlreadyFinalizedError";
  }
}

export class RefundExceedsChargeError extends DomainError {
  readonly code = "REFUND_EXCEEDS_CHARGE";
  constructor(
    readonly refundable: Credits,
    requested: Credits,
  ) {
    super(`Refund of ${requested} exceeds what can still be refunded (${refundable})`);
    this.name = "RefundExceedsChargeError";
  }
}
