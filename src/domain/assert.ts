/**
 * An invariant broken by a bug, not by input. Thrown, never returned: the
 * transaction rolls back, nothing is written, the error is logged and masked.
 */
export class InvariantViolation extends Error {
  constructor(message: string) {
    super(`invariant violated: ${message}`);
    this.name = "InvariantViolation";
  }
}

/** Asserts a programmer's invariant; say in `message` what must hold. */
export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new InvariantViolation(message);
}
