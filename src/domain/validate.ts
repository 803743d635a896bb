import { type Credits, creditsProblem, toCredits } from "./credits.ts";
import { InvalidInputError } from "./errors.ts";
import { UUID } from "./uuid.ts";

/**
 * Rules on input values (SPEC §5), checked before anything is read or
 * written. Each check names the field, what was expected and what came.
 */

/** Longest string field. */
export const STRING_LENGTH_MAX = 200;
/** Longest idempotency key. */
export const KEY_LENGTH_MAX = 200;
/** Largest metadata document, in bytes of its JSON. */
export const METADATA_BYTES_MAX = 8 * 1024;
/** The latest instant a date input may name. */
export const DATE_MAX = new Date("9999-12-31T23:59:59.999Z");
/** Deepest nesting of arrays and objects in metadata (as the JSON scalar allows). */
export const METADATA_DEPTH_MAX = 64;
export const QUANTITY_MAX = 100;
/** Longest a generation may run before the reaper times it out. @default 86_400 // 24 hours */
export const TIMEOUT_SECONDS_MAX = 86_400;
/** SPEC §2: 150 minutes. */
export const TIMEOUT_SECONDS_DEFAULT = 9_000;

const CONTROL = /\p{Cc}|\p{Cs}/u;
/** With the `u` flag a surrogate pair is one code point, so only an unpaired half matches. */
const UNPAIRED_SURROGATE = /\p{Cs}/u;

/** Throw-style checks collected by `validate`. */
export class Check {
  idempotencyKey(field: string, value: string): string {
    if (value.length < 1 || value.length > KEY_LENGTH_MAX) {
      throw new InvalidInputError(field, `must be 1 to ${KEY_LENGTH_MAX} characters, got ${value.length}`);
    }
    if (CONTROL.test(value) || value.trim() !== value || value.trim() === "") {
      throw new InvalidInputError(field, "must be printable characters without leading or trailing spaces");
    }
    return value;
  }

  text(field: string, value: string): string {
    if ([...value].length > STRING_LENGTH_MAX) {
      throw new InvalidInputError(
        field,
        `must be at most ${STRING_LENGTH_MAX} characters, got ${[...value].length}`,
      );
    }
    if (CONTROL.test(value.replace(/[\n\t]/g, "")))
      throw new InvalidInputError(field, "must not contain control characters");
    return value;
  }

  requiredText(field: string, value: string): string {
    this.text(field, value);
    if (value.trim() === "") throw new InvalidInputError(field, "must not be empty");
    return value;
  }

  optionalText(field: string, value: string | null | undefined): string | null {
    return value === null || value === undefined ? null : this.text(field, value);
  }

  positiveCredits(field: string, value: Credits | number): Credits {
    const problem = creditsProblem(value);
    if (problem !== null) throw new InvalidInputError(field, problem);
    const credits = toCredits(value);
    if (credits <= 0n)
      throw new InvalidInputError(field, `must be a positive number of credits, got ${credits}`);
    return credits;
  }

  nonNegativeCredits(field: string, value: Credits | number): Credits {
    const problem = creditsProblem(value);
    if (problem !== null) throw new InvalidInputError(field, problem);
    const credits = toCredits(value);
    if (credits < 0n) throw new InvalidInputError(field, `must be 0 or more credits, got ${credits}`);
    return credits;
  }

  nonZeroCredits(field: string, value: Credits | number): Credits {
    const problem = creditsProblem(value);
    if (problem !== null) throw new InvalidInputError(field, problem);
    const credits = toCredits(value);
    if (credits === 0n) throw new InvalidInputError(field, "must not be zero");
    return credits;
  }

  integer(field: string, value: number, min: number, max: number): number {
    if (!Number.isInteger(value) || value < min || value > max) {
      throw new InvalidInputError(field, `must be an integer from ${min} to ${max}, got ${value}`);
    }
    return value;
  }

  uuid(field: string, value: string, what: string): string {
    if (!UUID.test(value.toLowerCase())) throw new InvalidInputError(field, `is not a valid ${what} id`);
    return value.toLowerCase();
  }

  validDate(field: string, value: Date): Date {
    if (Number.isNaN(value.getTime())) throw new InvalidInputError(field, "must be a valid date");
    // An instant past year 9999 (e.g. 9999-12-31T23:59:59-23:59) has no four-digit ISO form:
    // it could not be stored or sent back as the DateTime it came in as.
    if (value.getTime() > DATE_MAX.getTime()) {
      throw new InvalidInputError(
        field,
        `must be at most ${DATE_MAX.toISOString()}, got ${value.toISOString()}`,
      );
    }
    return value;
  }

  metadata(field: string, value: unknown): unknown {
    if (value === null || value === undefined) return null;
    // Depth first, without recursion: JSON.stringify of a very deep value would overflow the stack.
    const levels: [unknown, number][] = [[value, 1]];
    while (levels.length > 0) {
      const [next, depth] = levels.pop() as [unknown, number];
      if (typeof next !== "object" || next === null) continue;
      if (depth > METADATA_DEPTH_MAX) {
        throw new InvalidInputError(
          field,
          `must nest at most ${METADATA_DEPTH_MAX} levels of arrays and objects`,
        );
      }
      for (const child of Object.values(next)) levels.push([child, depth + 1]);
    }
    const bytes = Buffer.byteLength(JSON.stringify(value), "utf8");
    if (bytes > METADATA_BYTES_MAX) {
      throw new InvalidInputError(field, `must be at most ${METADATA_BYTES_MAX} bytes of JSON, got ${bytes}`);
    }
    // PostgreSQL's jsonb cannot hold U+0000 or an unpaired surrogate in any string or key: the
    // batch's write would fail and the request end in an internal error instead of this one.
    // Whatever the API layer checks first, the ledger checks its own input (it is called directly too).
    const pending: unknown[] = [value];
    while (pending.length > 0) {
      const next = pending.pop();
      const texts =
        typeof next === "string"
          ? [next]
          : typeof next === "object" && next !== null
            ? Object.keys(next)
            : [];
      if (typeof next === "object" && next !== null) pending.push(...Object.values(next));
      for (const text of texts) {
        if (text.includes("\u0000"))
          throw new InvalidInputError(field, "must not contain U+0000 in a string or key");
        if (UNPAIRED_SURROGATE.test(text)) {
          throw new InvalidInputError(field, "must not contain an unpaired surrogate (invalid UTF-16)");
        }
      }
    }
    return value;
  }
}

/** Runs the checks in `build`; returns the built value or the first InvalidInputError. */
export function validate<T>(build: (check: Check) => T): T | InvalidInputError {
  try {
    return build(new Check());
  } catch (error) {
    if (error instanceof InvalidInputError) return error;
    throw error;
  }
}
