/**
 * Property-based fuzzing of every mutation's input (SPEC §5): random and
 * hostile variables — wrong types, huge numbers, negative zero, floats,
 * unicode (lone surrogates, control characters, right-to-left marks), long
 * and empty strings, ids of other accounts' objects, ids of other types,
 * malformed ids, nulls, extra fields — sent by every kind of caller. Each
 * answer must be a typed error or success member of the mutation's result
 * union, or a GraphQL validation/coercion error: never a 5xx, never an
 * INTERNAL_SERVER_ERROR, never a leaked stack or SQL, never a success the
 * caller's role does not allow. Afterwards the ledger audit must be clean.
 *
 * fast-check prints the seed and the shrunk counterexample on failure; rerun
 * one with `FUZZ_SEED=<seed> npx vitest run test/hardening/fuzz.test.ts`.
 */
import type { TypedDocumentNode } from "@graphql-typed-document-node/core";
import { decodeGlobalID, encodeGlobalID } from "@pothos/plugin-relay";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  AccountDocument,
  AddAccountMemberDocument,
  AddToBoardDocument,
  AdjustBalanceDocument,
  CancelGenerationDocument,
  ClearBalanceAlertDocument,
  CreateAccountDocument,
  CreateBoardDocument,
  GrantCreditsDocument,
  LedgerAuditDocument,
  LedgerPageDocument,
  RefundGenerationDocument,
  RemoveFromBoardDocument,
  ReserveGenerationDocument,
  SetBalanceAlertDocument,
  SettleGenerationDocument,
  SupportRefundDocument,
} from "../../src/generated/graphql/graphql.ts";
import { expectTypename, gqlData, operationNameOf, sourceOf } from "../support/documents.ts";
import { createAccount, grant } from "../support/fixtures.ts";
import { startServer, type TestServer, unique } from "../support/harness.ts";
import { REFUND_REASONS } from "../support/refund-reasons.ts";

/**
 * Runs per input field of a mutation (reserveGeneration, with 10 fields, gets
 * 50 runs; cancelGeneration, with 2, gets 10); each run sends one batch of
 * requests at once. The 14 mutations have 51 input fields: 51 × 5 runs × 12
 * requests = 3,060 requests.
 */
// On embedded PGlite (one connection, every request queues) fewer runs per field; the full
// count runs on PostgreSQL, and every field of every mutation is fuzzed on both.
const RUNS_PER_FIELD = process.env.CREDITBOOK_TEST_DATABASE === "pglite" ? 2 : 5;
/** Requests per run, sent concurrently. */
const BATCH_SIZE = 12;

/**
 * The fuzz test's time limit, 3 minutes: it takes about 15 s alone, and the
 * whole suite running in parallel on a busy machine makes it several times slower.
 */
const FUZZ_TIMEOUT_MS = 180_000;

const runsOf = (spec: MutationSpec) => RUNS_PER_FIELD * Object.keys(spec.input).length;

// ---------------------------------------------------------------------------
// Wire values JSON.stringify cannot produce.
// ---------------------------------------------------------------------------

/**
 * JSON written verbatim: numbers JSON.stringify cannot produce (`-0`, `1e400`,
 * which parses to Infinity, 30-digit integers) and values too deep for any
 * recursive serializer (this file's, fast-check's report) to walk.
 */
class RawJson {
  constructor(
    readonly text: string,
    readonly label = text,
  ) {}
  [fc.toStringMethod](): string {
    return `raw(${this.label})`;
  }
}

/** JSON text of `value`, writing RawJson verbatim and leaving out undefined properties. */
function toJson(value: unknown): string {
  if (value instanceof RawJson) return value.text;
  if (Array.isArray(value))
    return `[${value.map((item) => (item === undefined ? "null" : toJson(item))).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const fields = Object.entries(value).filter(([, field]) => field !== undefined);
    return `{${fields.map(([key, field]) => `${JSON.stringify(key)}:${toJson(field)}`).join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}

// ---------------------------------------------------------------------------
// Hostile values.
// ---------------------------------------------------------------------------

const NEGATIVE_ZERO = new RawJson("-0");

const hostileNumber = fc.oneof(
  fc.constantFrom<unknown>(
    0,
    NEGATIVE_ZERO,
    new RawJson("-0.0"),
    new RawJson("1e400"),
    new RawJson("-1e400"),
    new RawJson("123456789012345678901234567890"),
    new RawJson("1.0"),
    new RawJson("1e2"),
    -1,
    0.5,
    1.5,
    -2.5,
    2 ** 31 - 1,
    2 ** 31,
    -(2 ** 31) - 1,
    Number.MAX_SAFE_INTEGER,
    Number.MAX_SAFE_INTEGER + 1,
    -Number.MAX_SAFE_INTEGER,
    Number.MIN_SAFE_INTEGER - 1,
    Number.MAX_VALUE,
    Number.MIN_VALUE,
    2 ** 63,
    1e21,
  ),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
);

/** Characters that break naive text handling: C0/C1 controls, lone surrogates, bidi and invisible marks. */
const nastyCharacter = fc.oneof(
  fc.integer({ min: 0x00, max: 0x1f }),
  fc.integer({ min: 0x7f, max: 0x9f }),
  fc.integer({ min: 0xd800, max: 0xdfff }),
  fc.constantFrom(
    0x200b,
    0x200e,
    0x200f,
    0x202a,
    0x202e,
    0x2066,
    0x2069,
    0x2028,
    0x2029,
    0xfeff,
    0xfffd,
    0xffff,
  ),
  fc.integer({ min: 0x20, max: 0x7e }),
);

const hostileString = fc.oneof(
  fc.constantFrom(
    "",
    " ",
    "   ",
    "\u0000",
    "a\u0000b",
    "\ud800",
    "\udfff",
    "x\ud83d",
    "\udc00x",
    "\u202eevil\u202c",
    "\u200f\u05e9\u05dc\u05d5\u05dd",
    "\u0627\u0644\u0639\u0631\u0628\u064a\u0629",
    "\ufeff",
    "\t\n",
    "\r\n",
    "\u0007bell",
    "\u001b[31mred",
    "💥",
    "👩‍👩‍👧‍👦".repeat(40),
    "x".repeat(200),
    "x".repeat(201),
    "é".repeat(200),
    "e\u0301".repeat(150),
    "𝔘".repeat(201),
    "x".repeat(5_000),
    "Robert'); DROP TABLE account;--",
    "' OR 1=1 --",
    "$1",
    "%s%s%n",
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a log4shell-style probe, sent verbatim
    "${jndi:ldap://example.invalid/a}",
    "<script>alert(1)</script>",
    "null",
    "undefined",
    "-0",
    "NaN",
    "Infinity",
    "1e400",
    "__proto__",
    "constructor",
  ),
  fc.string({ unit: "binary", maxLength: 40 }),
  fc.string({ unit: "grapheme", maxLength: 220 }),
  fc.string({ unit: nastyCharacter.map((code) => String.fromCharCode(code)), maxLength: 30 }),
);

/** Any JSON value at all (wrong types for every field). */
const anyValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom<unknown>(null, true, false, [], {}, [null], { "": null }) },
  { weight: 3, arbitrary: hostileNumber },
  { weight: 3, arbitrary: hostileString },
  { weight: 1, arbitrary: fc.array(fc.oneof(hostileString, hostileNumber), { maxLength: 3 }) },
  {
    weight: 1,
    arbitrary: fc.dictionary(hostileString, fc.oneof(hostileString, hostileNumber), { maxKeys: 3 }),
  },
);

/** Arrays nested `depth` levels deep (JSON.stringify and PostgreSQL recurse per level). */
function nested(depth: number): RawJson {
  return new RawJson(`${"[".repeat(depth)}${"]".repeat(depth)}`, `${depth} nested arrays`);
}

/** JSON for `metadata`: ordinary, hostile, oversized, and nested deeper than PostgreSQL likes. */
const hostileJson: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  {
    weight: 1,
    arbitrary: fc.dictionary(hostileString, fc.oneof(hostileString, hostileNumber, fc.constant(null)), {
      maxKeys: 4,
    }),
  },
  {
    weight: 2,
    arbitrary: fc.constantFrom<unknown>(
      { blob: "x".repeat(8_200) },
      { blob: "x".repeat(8_000) },
      { "\u0000": 1 },
      { text: "\u0000" },
      { text: "\ud800" },
      ["\udfff"],
      nested(64),
      nested(65),
      nested(3_000),
      nested(30_000),
      new RawJson(`${'{"a":'.repeat(1_000)}1${"}".repeat(1_000)}`, "1000 nested objects"),
      new RawJson("1e400"),
      NEGATIVE_ZERO,
    ),
  },
);

// ---------------------------------------------------------------------------
// The mutations and their inputs.
// ---------------------------------------------------------------------------

type Role = "service" | "admin" | "member" | "outsider" | "none";
type NodeType = "Account" | "Generation" | "Board" | "Grant" | "LedgerEntry";

/** What the fixtures made: account A (the member's) and account B (someone else's). */
interface World {
  readonly tokens: Record<Exclude<Role, "none">, string>;
  /** Global ids by type: [0] on account A, [1] on account B (foreign), [2..] more of A. */
  readonly ids: Record<NodeType, readonly string[]>;
}

/** Ids that are not ids: malformed base64, other encodings, unknown uuids, wrong shapes. */
function malformedIds(world: World): string[] {
  const accountA = world.ids.Account[0] ?? "";
  const { id: uuidA } = decodeGlobalID(accountA);
  return [
    "",
    " ",
    "not-base64!!",
    "====",
    "QWNjb3VudDo=", // "Account:"
    encodeGlobalID("Account", "123"),
    encodeGlobalID("Account", "00000000-0000-0000-0000-000000000000"),
    encodeGlobalID("Generation", "ffffffff-ffff-4fff-bfff-ffffffffffff"),
    encodeGlobalID("Board", `${uuidA}x`),
    encodeGlobalID("Nope", uuidA),
    encodeGlobalID("account", uuidA),
    encodeGlobalID("Account", uuidA.toUpperCase()),
    Buffer.from(`Account:${uuidA}`).toString("base64url"),
    Buffer.from(`Account:${uuidA}\u0000`).toString("base64"),
    Buffer.from("\ud800:\udfff").toString("base64"),
    uuidA,
    `${accountA}${accountA}`,
    "x".repeat(3_000),
  ];
}

type FieldKind =
  | { readonly kind: "key" }
  | { readonly kind: "text"; readonly good: fc.Arbitrary<string> }
  | { readonly kind: "credits"; readonly min: number; readonly max: number }
  | { readonly kind: "int"; readonly min: number; readonly max: number }
  | { readonly kind: "bool" }
  | { readonly kind: "dateTime" }
  | { readonly kind: "json" }
  | { readonly kind: "enum"; readonly values: readonly string[] }
  | { readonly kind: "id"; readonly type: NodeType }
  | { readonly kind: "items" };

/** An input field: its kind, and whether GraphQL lets it be left out or null. */
type FieldSpec = FieldKind & { readonly optional?: true };

const optional = (field: FieldKind): FieldSpec => ({ ...field, optional: true });

const key: FieldKind = { kind: "key" };
const name: FieldKind = {
  kind: "text",
  good: fc.constantFrom("Quick Video", "Image", "Moodboard", "Résumé ✨", "a"),
};
const note: FieldKind = { kind: "text", good: fc.constantFrom("goodwill", "billing error", "n") };
const reason: FieldKind = { kind: "enum", values: REFUND_REASONS };

type AccessRule = "platform" | "admin" | "readers" | "owners";

interface MutationSpec {
  readonly field: string;
  readonly document: TypedDocumentNode<unknown, never>;
  readonly input: Readonly<Record<string, FieldSpec>>;
  /** Union members besides the success type and the three every union has (SPEC §4). */
  readonly errors: readonly string[];
  /**
   * Who may succeed: the platform (service, admin), admins, anyone who can
   * read the account, or the platform and the account's OWNER.
   */
  readonly access: AccessRule;
}

const MUTATIONS: readonly MutationSpec[] = [
  {
    field: "createAccount",
    document: CreateAccountDocument,
    input: {
      idempotencyKey: key,
      kind: { kind: "enum", values: ["PERSONAL", "WORKSPACE"] },
      name,
      ownerId: { kind: "text", good: fc.constantFrom("fuzz-owner-1", "fuzz-owner-2") },
    },
    errors: ["IdempotencyKeyReusedError"],
    access: "platform",
  },
  {
    field: "addAccountMember",
    document: AddAccountMemberDocument,
    input: {
      accountId: { kind: "id", type: "Account" },
      // Never the member's or the outsider's own id: the fuzz must not change who may see what.
      userId: { kind: "text", good: fc.constantFrom("fuzz-member-1", "fuzz-member-2") },
      role: { kind: "enum", values: ["OWNER", "MEMBER"] },
    },
    errors: [],
    access: "platform",
  },
  {
    field: "grantCredits",
    document: GrantCreditsDocument,
    input: {
      idempotencyKey: key,
      accountId: { kind: "id", type: "Account" },
      source: { kind: "enum", values: ["SUBSCRIPTION", "WALLET"] },
      amount: { kind: "credits", min: 1, max: 1_000 },
      expiresAt: optional({ kind: "dateTime" }),
      reference: optional(note),
      title: optional(name),
    },
    errors: ["IdempotencyKeyReusedError"],
    access: "platform",
  },
  {
    field: "reserveGeneration",
    document: ReserveGenerationDocument,
    input: {
      idempotencyKey: key,
      accountId: { kind: "id", type: "Account" },
      requestedBy: optional({ kind: "text", good: fc.constantFrom("fuzz-requester") }),
      feature: name,
      model: optional(name),
      unitCost: { kind: "credits", min: 1, max: 20 },
      quantity: optional({ kind: "int", min: 1, max: 4 }),
      timeoutSeconds: optional({ kind: "int", min: 1, max: 86_400 }),
      boardId: optional({ kind: "id", type: "Board" }),
      metadata: optional({ kind: "json" }),
    },
    errors: ["InsufficientCreditsError", "IdempotencyKeyReusedError"],
    access: "platform",
  },
  {
    field: "settleGeneration",
    document: SettleGenerationDocument,
    input: {
      idempotencyKey: key,
      generationId: { kind: "id", type: "Generation" },
      items: optional({ kind: "items" }),
    },
    errors: ["AlreadyFinalizedError", "IdempotencyKeyReusedError"],
    access: "platform",
  },
  {
    field: "refundGeneration",
    document: RefundGenerationDocument,
    input: {
      idempotencyKey: key,
      generationId: { kind: "id", type: "Generation" },
      reason,
      message: optional(note),
    },
    errors: ["AlreadyFinalizedError", "IdempotencyKeyReusedError"],
    access: "platform",
  },
  {
    field: "cancelGeneration",
    document: CancelGenerationDocument,
    input: { idempotencyKey: key, generationId: { kind: "id", type: "Generation" } },
    errors: ["AlreadyFinalizedError", "IdempotencyKeyReusedError"],
    access: "readers",
  },
  {
    field: "supportRefund",
    document: SupportRefundDocument,
    input: {
      idempotencyKey: key,
      generationId: { kind: "id", type: "Generation" },
      amount: { kind: "credits", min: 1, max: 5 },
      reason,
      note: optional(note),
    },
    errors: ["RefundExceedsChargeError", "IdempotencyKeyReusedError"],
    access: "admin",
  },
  {
    field: "adjustBalance",
    document: AdjustBalanceDocument,
    input: {
      idempotencyKey: key,
      accountId: { kind: "id", type: "Account" },
      amount: { kind: "credits", min: -5, max: 50 },
      note,
    },
    errors: ["InsufficientCreditsError", "IdempotencyKeyReusedError"],
    access: "admin",
  },
  {
    field: "createBoard",
    document: CreateBoardDocument,
    input: { accountId: { kind: "id", type: "Account" }, name },
    errors: [],
    access: "readers",
  },
  {
    field: "addToBoard",
    document: AddToBoardDocument,
    input: { boardId: { kind: "id", type: "Board" }, generationId: { kind: "id", type: "Generation" } },
    errors: [],
    access: "readers",
  },
  {
    field: "removeFromBoard",
    document: RemoveFromBoardDocument,
    input: { boardId: { kind: "id", type: "Board" }, generationId: { kind: "id", type: "Generation" } },
    errors: [],
    access: "readers",
  },
  {
    field: "setBalanceAlert",
    document: SetBalanceAlertDocument,
    input: {
      accountId: { kind: "id", type: "Account" },
      threshold: { kind: "credits", min: 0, max: 200_000 },
    },
    errors: [],
    access: "owners",
  },
  {
    field: "clearBalanceAlert",
    document: ClearBalanceAlertDocument,
    input: { accountId: { kind: "id", type: "Account" } },
    errors: [],
    access: "owners",
  },
];

const ERROR_CODES: Readonly<Record<string, string>> = {
  InsufficientCreditsError: "INSUFFICIENT_CREDITS",
  InvalidInputError: "INVALID_INPUT",
  NotFoundError: "NOT_FOUND",
  ForbiddenError: "FORBIDDEN",
  IdempotencyKeyReusedError: "IDEMPOTENCY_KEY_REUSED",
  AlreadyFinalizedError: "ALREADY_FINALIZED",
  RefundExceedsChargeError: "REFUND_EXCEEDS_CHARGE",
};

/** GraphQL error codes a refused request may carry (coercion and validation errors carry none). */
const REQUEST_ERROR_CODES = new Set([
  undefined,
  "BAD_USER_INPUT",
  "BAD_REQUEST",
  "GRAPHQL_VALIDATION_FAILED",
  "GRAPHQL_PARSE_FAILED",
  "UNAUTHENTICATED",
  "PAYLOAD_TOO_LARGE",
]);

/** What must never reach a client: stack frames, SQL, driver and constraint errors. */
const LEAK =
  /\bat .+\.(?:ts|js|mjs|cjs):\d+|\bSELECT\b.+\bFROM\b|\bINSERT INTO\b|\bUPDATE\b.+\bSET\b|\bDELETE FROM\b|violates|constraint|duplicate key|relation "|syntax error at|invalid input syntax|Unicode escape|pg_|prisma|DatabaseError|Maximum call stack/i;

// ---------------------------------------------------------------------------
// Arbitraries of inputs.
// ---------------------------------------------------------------------------

/** Values for one input field. */
interface FieldValues {
  /** Values a well-behaved client sends (ids of account A's objects). */
  readonly good: fc.Arbitrary<unknown>;
  /** Hostile values of the right GraphQL type: they pass coercion and meet the resolvers' rules. */
  readonly hostile: fc.Arbitrary<unknown>;
  /** Values of the wrong type (or that may be): GraphQL coercion refuses them. */
  readonly wrong: fc.Arbitrary<unknown>;
}

function fieldValues(field: FieldKind, world: World): FieldValues {
  switch (field.kind) {
    case "key":
      // Fresh keys can succeed; repeated ones replay, or are refused as reused with other input.
      return {
        good: fc.oneof(
          { weight: 4, arbitrary: fc.uuid() },
          { weight: 1, arbitrary: fc.constantFrom("k", "fuzz-key-1") },
        ),
        hostile: hostileString,
        wrong: anyValue,
      };
    case "text":
      return { good: field.good, hostile: hostileString, wrong: anyValue };
    case "credits":
      return {
        good: fc.integer({ min: field.min, max: field.max }),
        hostile: fc.oneof(
          fc.constantFrom<unknown>(
            0,
            NEGATIVE_ZERO,
            new RawJson("1.0"),
            new RawJson("1e2"),
            -1,
            Number.MAX_SAFE_INTEGER,
            -Number.MAX_SAFE_INTEGER,
            2 ** 31,
          ),
          fc.maxSafeInteger(),
        ),
        wrong: hostileNumber,
      };
    case "int":
      return {
        good: fc.integer({ min: field.min, max: field.max }),
        hostile: fc.oneof(
          fc.constantFrom<unknown>(0, NEGATIVE_ZERO, -1, 100, 101, 86_401, 2 ** 31 - 1, -(2 ** 31)),
          fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
        ),
        wrong: hostileNumber,
      };
    case "bool":
      return {
        good: fc.boolean(),
        hostile: fc.boolean(),
        wrong: fc.constantFrom<unknown>("true", 1, 0, "false", []),
      };
    case "dateTime":
      return {
        good: fc.constantFrom("2099-01-01T00:00:00Z", "2099-12-31T23:59:59.999+05:30"),
        hostile: fc.constantFrom("2000-01-01T00:00:00Z", "2026-01-01T00:00:00-23:59", "9999-12-31T23:59:59Z"),
        wrong: fc.oneof(
          fc.constantFrom(
            "2026-02-30T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "9999-12-31T23:59:59-23:59",
            "0000-01-01T00:00:00Z",
            "2099-01-01",
            "2099-01-01T00:00:00",
            "2099-01-01T24:00:00Z",
            "2099-01-01T00:00:00.1234567891Z",
            "+275760-09-13T00:00:00Z",
          ),
          anyValue,
        ),
      };
    case "json":
      // Any JSON value coerces to the JSON scalar.
      return { good: fc.jsonValue({ maxDepth: 2 }), hostile: hostileJson, wrong: hostileJson };
    case "enum":
      return {
        good: fc.constantFrom(...field.values),
        hostile: fc.constantFrom(...field.values),
        wrong: fc.oneof(
          fc.constantFrom(...field.values.map((v) => v.toLowerCase()), "", "NOPE", `${field.values[0]} `),
          anyValue,
        ),
      };
    case "id": {
      const ofType = world.ids[field.type];
      const others = (Object.keys(world.ids) as NodeType[])
        .filter((type) => type !== field.type)
        .flatMap((type) => world.ids[type]);
      return {
        good: fc.constantFrom(...ofType.filter((_, i) => i !== 1)), // account A's
        hostile: fc.oneof(
          { weight: 3, arbitrary: fc.constantFrom(ofType[1] ?? "") }, // account B's (foreign)
          { weight: 3, arbitrary: fc.constantFrom(...others) }, // another type's
          { weight: 3, arbitrary: fc.constantFrom(...malformedIds(world)) },
          { weight: 1, arbitrary: hostileString },
          { weight: 1, arbitrary: fc.integer() }, // ID coerces integers too
        ),
        wrong: fc.oneof(hostileNumber, fc.constantFrom<unknown>(true, [], {})),
      };
    }
    case "items": {
      const item = (mode: Mode) =>
        inputRecord(
          {
            index: { kind: "int", min: 0, max: 3 },
            succeeded: { kind: "bool" },
            cost: optional({ kind: "credits", min: 1, max: 20 }),
            reason: optional(reason),
            message: optional(note),
          },
          world,
          mode,
        );
      return {
        good: fc.array(item("good"), { minLength: 1, maxLength: 4 }),
        hostile: fc.oneof(
          { weight: 6, arbitrary: fc.array(item("hostile"), { maxLength: 4 }) },
          { weight: 1, arbitrary: fc.array(item("good"), { minLength: 101, maxLength: 101 }) },
        ),
        wrong: fc.oneof(fc.array(item("wrong"), { minLength: 1, maxLength: 3 }), anyValue),
      };
    }
  }
}

/**
 * How an input is built. `good`: what a well-behaved client sends. `hostile`:
 * a good input with up to three fields replaced by hostile values of the right
 * type — it passes coercion, so the resolver and the domain rules see exactly
 * the hostile parts. `wrong`: some fields of the wrong type, missing or null.
 */
type Mode = "good" | "hostile" | "wrong";

function inputRecord(
  input: Readonly<Record<string, FieldSpec>>,
  world: World,
  mode: Mode,
): fc.Arbitrary<Record<string, unknown>> {
  const names = Object.keys(input);
  const values = Object.fromEntries(
    names.map((fieldName) => [fieldName, fieldValues(input[fieldName] as FieldSpec, world)]),
  );
  const absent = fc.constantFrom(undefined, null);
  const good = fc.record(
    Object.fromEntries(
      names.map((fieldName) => {
        const field = values[fieldName] as FieldValues;
        return [
          fieldName,
          input[fieldName]?.optional
            ? fc.oneof({ weight: 2, arbitrary: field.good }, { weight: 1, arbitrary: absent })
            : field.good,
        ];
      }),
    ),
  );
  if (mode === "good") return good;
  const replacement = (fieldName: string) => {
    const field = values[fieldName] as FieldValues;
    return mode === "hostile"
      ? field.hostile
      : fc.oneof({ weight: 3, arbitrary: field.wrong }, { weight: 1, arbitrary: absent });
  };
  const replacements = fc.record(
    Object.fromEntries(names.map((fieldName) => [fieldName, replacement(fieldName)])),
  );
  return fc
    .tuple(good, replacements, fc.subarray(names, { minLength: 1, maxLength: Math.min(3, names.length) }))
    .map(([base, replaced, chosen]) => ({
      ...base,
      ...Object.fromEntries(chosen.map((fieldName) => [fieldName, replaced[fieldName]])),
    }));
}

/** Inputs for a mutation: good, hostile (mostly), wrong, with an extra field, or not an object at all. */
function inputOf(spec: MutationSpec, world: World): fc.Arbitrary<unknown> {
  return fc.oneof(
    { weight: 3, arbitrary: inputRecord(spec.input, world, "good") },
    { weight: 12, arbitrary: inputRecord(spec.input, world, "hostile") },
    { weight: 4, arbitrary: inputRecord(spec.input, world, "wrong") },
    // An extra field the input type does not define.
    {
      weight: 1,
      arbitrary: fc
        .tuple(
          inputRecord(spec.input, world, "good"),
          fc.constantFrom("extra", "__typename", "id", "accountID", ""),
          anyValue,
        )
        .map(([value, extra, extraValue]) => ({ ...value, [extra]: extraValue })),
    },
    // Not an input object at all.
    { weight: 1, arbitrary: anyValue },
  );
}

interface Request {
  readonly role: Role;
  readonly variables: unknown;
}

function requestsOf(spec: MutationSpec, world: World): fc.Arbitrary<Request[]> {
  // Mostly the platform's tokens, whose requests reach the rules behind the role checks.
  const role = fc.constantFrom<Role>(
    "service",
    "service",
    "service",
    "admin",
    "admin",
    "member",
    "outsider",
    "none",
  );
  const variables = fc.oneof(
    { weight: 20, arbitrary: inputOf(spec, world).map((input) => ({ input })) },
    { weight: 1, arbitrary: inputOf(spec, world).map((input) => ({ input, extra: 1 })) },
    { weight: 1, arbitrary: anyValue },
  );
  return fc.array(fc.record({ role, variables }), { minLength: BATCH_SIZE, maxLength: BATCH_SIZE });
}

// ---------------------------------------------------------------------------
// Sending and judging.
// ---------------------------------------------------------------------------

interface Tally {
  requests: number;
  outcomes: Map<string, number>;
}

async function send(server: TestServer, world: World, spec: MutationSpec, request: Request) {
  const token = request.role === "none" ? null : world.tokens[request.role];
  const body = toJson({
    query: sourceOf(spec.document),
    operationName: operationNameOf(spec.document),
    variables: request.variables,
  });
  const response = await fetch(server.url, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      ...(token === null ? {} : { authorization: `Bearer ${token}` }),
    },
    body,
  });
  return { status: response.status, text: await response.text() };
}

/** The local uuid inside a global id of `type`, or null. */
function localIdOf(value: unknown, type: NodeType): string | null {
  if (typeof value !== "string") return null;
  try {
    const decoded = decodeGlobalID(value);
    return decoded.typename === type ? decoded.id.toLowerCase() : null;
  } catch {
    return null;
  }
}

/** Checks one answer; returns its outcome label for the tally. */
function judge(
  spec: MutationSpec,
  world: World,
  request: Request,
  answer: { status: number; text: string },
): string {
  const sent = toJson(request.variables);
  const context = `${spec.field} as ${request.role} with ${sent.slice(0, 600)}${sent.length > 600 ? "…" : ""}: HTTP ${answer.status} ${answer.text.slice(0, 800)}`;
  expect([200, 400, 413], context).toContain(answer.status);
  expect(answer.text, context).not.toMatch(LEAK);
  const body = JSON.parse(answer.text) as {
    data?: Record<
      string,
      { __typename?: string; code?: string; message?: string; field?: string | null }
    > | null;
    errors?: { message: string; extensions?: Record<string, unknown> }[];
  };
  for (const error of body.errors ?? []) {
    expect(REQUEST_ERROR_CODES.has(error.extensions?.code as string | undefined), context).toBe(true);
    expect(error.extensions?.stacktrace ?? error.extensions?.stack, context).toBeUndefined();
  }
  const result = body.data?.[spec.field];
  if (result == null) {
    expect(body.errors?.length ?? 0, context).toBeGreaterThan(0);
    const code = body.errors?.[0]?.extensions?.code;
    return `error:${typeof code === "string" ? code : answer.status === 413 ? "413" : "coercion"}`;
  }
  expect(body.errors ?? [], context).toEqual([]);
  const success = `${spec.field[0]?.toUpperCase()}${spec.field.slice(1)}Success`;
  const typename = result.__typename ?? "";
  expect(
    [success, "InvalidInputError", "NotFoundError", "ForbiddenError", ...spec.errors],
    context,
  ).toContain(typename);
  if (typename === success) {
    expect(mayAlterState(spec, world, request), `${context}: a success this caller may not have`).toBe(true);
    return typename;
  }
  expect(result.code, context).toBe(ERROR_CODES[typename]);
  expect(typeof result.message === "string" && result.message.length > 0, context).toBe(true);
  if (typename === "InvalidInputError" && "field" in result) {
    // SPEC §5: a value of the right type that breaks a rule is an InvalidInputError naming the field
    // (checked where the document selects `field`).
    const root = (result.field ?? "").split(/[.[]/)[0] ?? "";
    expect(Object.keys(spec.input), `${context}: InvalidInputError.field names an input field`).toContain(
      root,
    );
  }
  return typename;
}

/** Whether the request's caller may succeed at this mutation with this input. */
function mayAlterState(spec: MutationSpec, world: World, request: Request): boolean {
  switch (request.role) {
    case "none":
    case "outsider":
      return false;
    case "admin":
      return true;
    case "service":
      return spec.access !== "admin";
    case "member": {
      if (spec.access !== "readers" && spec.access !== "owners") return false;
      // Only on account A: every object the member (A's OWNER) may touch is A's.
      const input = (request.variables as { input: Record<string, unknown> }).input;
      const accountA = localIdOf(world.ids.Account[0], "Account");
      if (spec.access === "owners") return localIdOf(input.accountId, "Account") === accountA;
      const onA = (type: NodeType, fieldName: string) =>
        world.ids[type]
          .filter((_, i) => i !== 1)
          .some((id) => localIdOf(id, type) === localIdOf(input[fieldName], type));
      if (spec.field === "createBoard") return localIdOf(input.accountId, "Account") === accountA;
      if (spec.field === "cancelGeneration") return onA("Generation", "generationId");
      return onA("Board", "boardId") && onA("Generation", "generationId");
    }
  }
}

// ---------------------------------------------------------------------------
// The test.
// ---------------------------------------------------------------------------

describe("fuzzing every mutation's input (SPEC §5)", () => {
  let server: TestServer;
  let world: World;

  beforeAll(async () => {
    server = await startServer({ databasePoolSizeMax: 10 });
    const tokens = {
      service: await server.token(unique("fuzz-service"), "service"),
      admin: await server.token(unique("fuzz-admin"), "admin"),
      member: "",
      outsider: "",
    };
    const accountA = await createAccount(server, tokens.service, { kind: "WORKSPACE", name: "Fuzz A" });
    const accountB = await createAccount(server, tokens.service, { name: "Fuzz B" });
    tokens.member = await server.token(accountA.ownerId, "user");
    // A user who is a member of nothing: every mutation must fail for them.
    tokens.outsider = await server.token(unique("outsider"), "user");
    const grantA = await grant(server, tokens.service, accountA.id, 100_000);
    const grantA2 = await grant(server, tokens.service, accountA.id, 1_000, {
      source: "SUBSCRIPTION",
      expiresAt: "2099-01-01T00:00:00Z",
    });
    const grantB = await grant(server, tokens.service, accountB.id, 100_000);

    const reserveOn = async (accountId: string, quantity: number) => {
      const data = await gqlData(server, tokens.service, ReserveGenerationDocument, {
        input: {
          idempotencyKey: unique("fixture"),
          accountId,
          feature: "Fixture",
          unitCost: 10,
          quantity,
          requestedBy: accountA.ownerId,
        },
      });
      return expectTypename(data.reserveGeneration, "ReserveGenerationSuccess").generation.id;
    };
    const generations = {
      inProgress: await reserveOn(accountA.id, 4),
      foreign: await reserveOn(accountB.id, 2),
      settled: await reserveOn(accountA.id, 2),
      another: await reserveOn(accountA.id, 3),
    };
    const settled = await gqlData(server, tokens.service, SettleGenerationDocument, {
      input: { idempotencyKey: unique("fixture"), generationId: generations.settled },
    });
    expectTypename(settled.settleGeneration, "SettleGenerationSuccess");
    const boardOn = async (accountId: string) => {
      const data = await gqlData(server, tokens.service, CreateBoardDocument, {
        input: { accountId, name: "Fixture board" },
      });
      return expectTypename(data.createBoard, "CreateBoardSuccess").board.id;
    };
    const boards = [await boardOn(accountA.id), await boardOn(accountB.id), await boardOn(accountA.id)];
    const ledgerIds = async (accountId: string) => {
      const data = await gqlData(server, tokens.admin, LedgerPageDocument, { accountId, first: 3 });
      return data.ledger.edges.map((edge) => edge.node.id);
    };
    const [entryA, ...moreEntriesA] = await ledgerIds(accountA.id);
    const [entryB] = await ledgerIds(accountB.id);
    const account = await gqlData(server, tokens.admin, AccountDocument, { id: accountA.id });
    expect(account.account?.grants.map((g) => g.id).sort()).toEqual(
      [grantA.grant.id, grantA2.grant.id].sort(),
    );

    world = {
      tokens,
      ids: {
        Account: [accountA.id, accountB.id],
        Generation: [generations.inProgress, generations.foreign, generations.settled, generations.another],
        Board: boards,
        Grant: [grantA.grant.id, grantB.grant.id, grantA2.grant.id],
        LedgerEntry: [entryA ?? "", entryB ?? "", ...moreEntriesA],
      },
    };
    for (const accountId of world.ids.Account) {
      const audit = await gqlData(server, tokens.admin, LedgerAuditDocument, { accountId });
      expect(audit.ledgerAudit).toEqual({ ok: true, accountsChecked: 1, problems: [] });
    }
  });
  afterAll(() => server?.close());

  it(
    "answers thousands of hostile inputs with typed errors or GraphQL errors, never a 5xx, and the ledger stays clean",
    async () => {
      const seed = process.env.FUZZ_SEED === undefined ? undefined : Number(process.env.FUZZ_SEED);
      const tallies = new Map<string, Tally>(
        MUTATIONS.map((spec) => [spec.field, { requests: 0, outcomes: new Map() }]),
      );
      const started = performance.now();

      // One property per mutation, all running at once; each run sends a batch concurrently.
      await Promise.all(
        MUTATIONS.map((spec, index) =>
          fc.assert(
            fc.asyncProperty(requestsOf(spec, world), async (requests) => {
              const tally = tallies.get(spec.field) as Tally;
              const answers = await Promise.all(
                requests.map((request) => send(server, world, spec, request)),
              );
              requests.forEach((request, i) => {
                tally.requests += 1;
                const outcome = judge(spec, world, request, answers[i] as { status: number; text: string });
                tally.outcomes.set(outcome, (tally.outcomes.get(outcome) ?? 0) + 1);
              });
            }),
            { numRuns: runsOf(spec), ...(seed === undefined ? {} : { seed: seed + index }) },
          ),
        ),
      );

      const elapsedMs = performance.now() - started;
      const total = [...tallies.values()].reduce((sum, tally) => sum + tally.requests, 0);
      console.log(
        `fuzz: ${total} requests in ${(elapsedMs / 1000).toFixed(1)} s\n${[...tallies]
          .map(
            ([field, tally]) =>
              `  ${field}: ${[...tally.outcomes]
                .sort((a, b) => b[1] - a[1])
                .map(([outcome, n]) => `${outcome} ${n}`)
                .join(", ")}`,
          )
          .join("\n")}`,
      );
      expect(total).toBeGreaterThanOrEqual(
        MUTATIONS.reduce((sum, spec) => sum + runsOf(spec), 0) * BATCH_SIZE,
      );
      for (const [field, tally] of tallies) {
        const outcomes = [...tally.outcomes.keys()];
        // The fuzz reached both the resolvers (union members) and GraphQL's coercion, for every mutation.
        expect(
          outcomes.some((outcome) => !outcome.startsWith("error:")),
          `${field} reached its resolver`,
        ).toBe(true);
        expect(
          outcomes.some((outcome) => outcome.startsWith("error:")),
          `${field} hit coercion`,
        ).toBe(true);
        expect(tally.outcomes.get("InvalidInputError") ?? 0, `${field} broke a rule`).toBeGreaterThan(0);
      }

      // The server is still healthy, and every account the fuzz could touch passes the audit.
      expect((await fetch(new URL("/healthz", server.url))).status).toBe(200);
      for (const accountId of world.ids.Account) {
        const audit = await gqlData(server, world.tokens.admin, LedgerAuditDocument, { accountId });
        expect(audit.ledgerAudit).toEqual({ ok: true, accountsChecked: 1, problems: [] });
      }
      const everything = await gqlData(server, world.tokens.admin, LedgerAuditDocument, { accountId: null });
      expect(everything.ledgerAudit.problems).toEqual([]);
      expect(everything.ledgerAudit.ok).toBe(true);
      // About 15 s alone; the whole suite in parallel on a busy machine can make it several times slower.
    },
    FUZZ_TIMEOUT_MS,
  );
});
