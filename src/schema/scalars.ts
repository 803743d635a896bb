import { GraphQLError, Kind, type ValueNode } from "graphql";
import { CREDITS_MAX, creditsProblem, toCredits } from "../domain/credits.ts";
import { builder } from "./builder.ts";

/**
 * Credits: a safe integer on the wire (a JSON number, exact), `bigint` inside.
 * Floats, strings and integers beyond 2^53 − 1 fail coercion with a message
 * that says what was expected and what came.
 */
export const CreditsScalar = builder.scalarType("Credits", {
  description:
    "A whole number of credits: a JSON number with |x| ≤ 2^53 − 1. Floats and strings are rejected.",
  serialize: (value) => {
    const credits = typeof value === "bigint" ? value : BigInt(value as number);
    if (credits > CREDITS_MAX || credits < -CREDITS_MAX) {
      throw new GraphQLError(`Credits value ${credits} is beyond ±(2^53 − 1) and cannot be sent exactly`);
    }
    return Number(credits);
  },
  parseValue: (value) => {
    const problem = creditsProblem(value);
    if (problem !== null) throw new GraphQLError(`Credits ${problem}`);
    return toCredits(value as number);
  },
  parseLiteral: (ast: ValueNode) => {
    if (ast.kind === Kind.INT) {
      const credits = BigInt(ast.value);
      if (credits > CREDITS_MAX || credits < -CREDITS_MAX) {
        throw new GraphQLError(`Credits must be at most 2^53 − 1 in magnitude, got ${ast.value}`);
      }
      return credits;
    }
    if (ast.kind === Kind.FLOAT)
      throw new GraphQLError(`Credits must be a whole number of credits, got ${ast.value}`);
    if (ast.kind === Kind.STRING)
      throw new GraphQLError(`Credits must be a number, not the string "${ast.value.slice(0, 40)}"`);
    throw new GraphQLError(`Credits must be an integer literal, got ${ast.kind}`);
  },
});

const ISO_8601 =
  /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,9})?)?(?:Z|[+-](\d{2}):(\d{2}))$/;

/** Parses a DateTime input, or throws a GraphQLError saying what was expected and what came. */
export function parseDateTime(value: unknown): Date {
  const match = typeof value === "string" ? ISO_8601.exec(value) : null;
  if (match === null) {
    throw new GraphQLError(
      `DateTime must be an ISO-8601 string with a time zone, such as 2026-01-31T12:00:00Z, got ${JSON.stringify(value)?.slice(0, 40)}`,
    );
  }
  // JavaScript's Date rolls impossible fields over (February 30 becomes
  // March 2, 24:00 the next day), which would silently store another instant
  // than the client wrote; every field is checked against its range instead.
  const [year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0, offsetHours = 0, offsetMinutes = 0] =
    match.slice(1).map((field) => (field === undefined ? 0 : Number(field)));
  const lastDay = new Date(0);
  lastDay.setUTCFullYear(year, month, 0); // day 0 of the next month: the month's last day
  const inRange =
    month >= 1 &&
    month <= 12 &&
    day >= 1 &&
    day <= lastDay.getUTCDate() &&
    hour <= 23 &&
    minute <= 59 &&
    second <= 59 &&
    offsetHours <= 23 &&
    offsetMinutes <= 59;
  const date = new Date(value as string);
  if (!inRange || Number.isNaN(date.getTime())) {
    throw new GraphQLError(
      `DateTime ${JSON.stringify(value)} is not a valid instant: expected month 1-12, a day the month has, hour 0-23, minutes and seconds 0-59`,
    );
  }
  return date;
}

export const DateTimeScalar = builder.scalarType("DateTime", {
  description:
    "An instant as an ISO-8601 string with a time zone (output is always UTC, millisecond precision).",
  serialize: (value) => {
    const date = value instanceof Date ? value : new Date(value as string);
    if (Number.isNaN(date.getTime())) throw new GraphQLError("DateTime value is not a valid date");
    return date.toISOString();
  },
  parseValue: parseDateTime,
  parseLiteral: (ast) => {
    if (ast.kind !== Kind.STRING) throw new GraphQLError(`DateTime must be a string, got ${ast.kind}`);
    return parseDateTime(ast.value);
  },
});

function literalToJson(ast: ValueNode, variables: Record<string, unknown> | null | undefined): unknown {
  switch (ast.kind) {
    case Kind.STRING:
    case Kind.BOOLEAN:
      return ast.value;
    case Kind.INT:
    case Kind.FLOAT:
      return Number(ast.value);
    case Kind.NULL:
      return null;
    case Kind.LIST:
      return ast.values.map((value) => literalToJson(value, variables));
    case Kind.OBJECT:
      return Object.fromEntries(
        ast.fields.map((field) => [field.name.value, literalToJson(field.value, variables)]),
      );
    case Kind.VARIABLE:
      return variables?.[ast.name.value];
    default:
      throw new GraphQLError(`JSON cannot hold a ${ast.kind}`);
  }
}

/** Deepest nesting of arrays and objects a JSON input may have. */
export const JSON_DEPTH_MAX = 64;

/**
 * Refuses JSON nested deeper than JSON_DEPTH_MAX, as a coercion error. Both
 * JavaScript's JSON.stringify and PostgreSQL's jsonb parser recurse once per
 * level: a body of 100 KB can nest 50,000 levels, and a few thousand already
 * overflowed a stack on the way to the database and came back as an internal
 * error. The walk here is iterative, so the check itself cannot overflow.
 */
function shallowJson(value: unknown): unknown {
  const pending: { readonly value: unknown; readonly depth: number }[] = [{ value, depth: 0 }];
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    if (next.value === null || typeof next.value !== "object") continue;
    if (next.depth >= JSON_DEPTH_MAX) {
      throw new GraphQLError(`JSON must nest at most ${JSON_DEPTH_MAX} levels of arrays and objects`);
    }
    for (const item of Object.values(next.value)) pending.push({ value: item, depth: next.depth + 1 });
  }
  return value;
}

export const JSONScalar = builder.scalarType("JSON", {
  description: `Any JSON value, nested at most ${JSON_DEPTH_MAX} levels of arrays and objects.`,
  serialize: (value) => value,
  parseValue: shallowJson,
  parseLiteral: (ast, variables) => shallowJson(literalToJson(ast, variables)),
});
