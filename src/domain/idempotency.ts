import { createHash } from "node:crypto";

/** An idempotent request: who sent it, under which key, and a digest of what it asked. */
export interface IdempotencyRequest {
  readonly principal: string;
  readonly key: string;
  readonly requestHash: string;
}

/**
 * A digest of a request's input that does not depend on key order, so the
 * same request sent again by any client hashes the same. Amounts (bigint) are
 * hashed by value; dates by instant; undefined and null are the same (an
 * omitted optional field).
 */
export function requestHash(input: unknown): string {
  return createHash("sha256").update(canonical(input)).digest("hex");
}

function canonical(value: unknown): string {
  if (value === undefined || value === null) return "null";
  if (typeof value === "bigint") return `${value}n`;
  if (value instanceof Date) return JSON.stringify(value.toISOString());
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined && v !== null)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}
