/**
 * Credits are whole numbers. In memory they are `bigint` from the database to
 * the API; on the wire they are JSON numbers, so every amount that leaves or
 * enters must be a safe integer (|x| ≤ 2^53 − 1).
 */
export type Credits = bigint;

/** The largest amount the API accepts or returns: 2^53 − 1. */
export const CREDITS_MAX: Credits = 9_007_199_254_740_991n;

/** Why a value is not an amount of credits, or null when it is one. */
export function creditsProblem(value: unknown): string | null {
  if (typeof value === "bigint") {
    return value > CREDITS_MAX || value < -CREDITS_MAX ? "is beyond ±(2^53 − 1)" : null;
  }
  if (typeof value !== "number") return `must be an integer number of credits, got ${describe(value)}`;
  if (!Number.isFinite(value)) return `must be a finite integer, got ${value}`;
  if (!Number.isInteger(value)) return `must be a whole number of credits, got ${value}`;
  if (!Number.isSafeInteger(value)) return `must be at most 2^53 − 1 in magnitude, got ${value}`;
  return null;
}

/** Converts a checked safe integer to Credits; `-0` becomes 0. */
export function toCredits(value: number | bigint): Credits {
  return typeof value === "bigint" ? value : BigInt(value === 0 ? 0 : value);
}

/** Sum of amounts. */
export function sumCredits(values: Iterable<Credits>): Credits {
  let total = 0n;
  for (const value of values) total += value;
  return total;
}

export function minCredits(a: Credits, b: Credits): Credits {
  return a < b ? a : b;
}

function describe(value: unknown): string {
  if (typeof value === "string") return `the string ${JSON.stringify(value.slice(0, 40))}`;
  if (value === null) return "null";
  return typeof value;
}
