/**
 * Crafted ids and cursors never reach the database as they are: every ID
 * argument and every cursor argument of Query (node included) gets random
 * and crafted strings, and no answer is ever INTERNAL_SERVER_ERROR. A
 * malformed id reads as nothing (null or NOT_FOUND), a malformed cursor is
 * BAD_USER_INPUT naming the argument. The arguments come from the served
 * schema, so a query added later is fuzzed too.
 */
import { randomUUID } from "node:crypto";
import fc from "fast-check";
import {
  buildClientSchema,
  type GraphQLField,
  type GraphQLSchema,
  getIntrospectionQuery,
  getNamedType,
  getNullableType,
  type IntrospectionQuery,
  isListType,
} from "graphql";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Billing, type Json } from "../billing/ops.ts";
import { dataOf } from "../support/harness.ts";
import { selectionOf } from "../support/selection.ts";

/** Arguments that take a connection cursor. */
const CURSOR_ARGUMENTS = new Set(["after", "before"]);
const NODE_TYPES = ["Account", "Generation", "Grant", "LedgerEntry", "Board"];

let billing: Billing;
let schema: GraphQLSchema;
/** Real ids, so crafted values sit beside ones that exist. */
let realIds: string[];
let realCursors: string[];

beforeAll(async () => {
  billing = await Billing.start({ reaperEnabled: false });
  schema = buildClientSchema(
    dataOf<IntrospectionQuery>(await billing.server.gql(billing.admin, getIntrospectionQuery())),
  );
  const accountId = await billing.account(100);
  const generation = await billing.reserveOk(accountId);
  realIds = [accountId, generation.id, ...generation.ledgerEntries.map((entry: Json) => entry.id)];
  const page = dataOf<Json>(
    await billing.server.gql(
      billing.admin,
      `query($id: ID!) { generations(accountId: $id) { pageInfo { endCursor } } ledger(accountId: $id) { pageInfo { endCursor } } }`,
      { id: accountId },
    ),
  );
  realCursors = [page.generations.pageInfo.endCursor, page.ledger.pageInfo.endCursor];
});

afterAll(async () => {
  await billing?.close();
});

const base64 = (text: string) => Buffer.from(text, "utf8").toString("base64");
const base64url = (text: string) => Buffer.from(text, "utf8").toString("base64url");
const uuidLike = fc.oneof(
  fc.uuid(),
  fc.constant(randomUUID().toUpperCase()),
  fc.string({ maxLength: 40 }),
  fc.constantFrom("not-a-uuid", "", "00000000-0000-0000-0000-00000000000", "' OR 1=1 --", "\u0000"),
);

/** Strings for an ID argument: noise, and global ids of every node type around bad inner ids. */
const idArbitrary = () =>
  fc.oneof(
    fc.string({ maxLength: 60 }),
    // Real ids often: a crafted cursor is only read once the account id is good.
    { arbitrary: fc.constantFrom(...realIds), weight: 3 },
    fc
      .tuple(fc.constantFrom(...NODE_TYPES, "Node", "Query", "__proto__", ""), uuidLike)
      .map(([type, id]) => base64(`${type}:${id}`)),
    fc.tuple(fc.constantFrom(...NODE_TYPES), uuidLike).map(([type, id]) => base64url(`${type}:${id}`)),
  );

/** Strings for a cursor argument: noise, real cursors, and forged ones at and past every bound. */
const cursorArbitrary = () =>
  fc.oneof(
    fc.string({ maxLength: 60 }),
    fc.constantFrom(...realCursors),
    fc
      .tuple(
        fc.oneof(
          fc.bigInt({ min: -(10n ** 16n), max: 10n ** 16n }),
          fc.constantFrom(-8640000000000000n, 8640000000000000n, 9999999999999999n, -1n, 0n),
        ),
        fc.oneof({ arbitrary: fc.uuid(), weight: 3 }, uuidLike),
      )
      .map(([ms, id]) => base64url(`generation:v1:${ms}:${id}`)),
    fc
      .oneof(fc.bigInt({ min: 0n, max: 10n ** 11n }), fc.constantFrom(2147483647n, 2147483648n, 9999999999n))
      .map((sequence) => base64url(`ledger:v1:${sequence}`)),
  );

interface FuzzedField {
  readonly field: GraphQLField<unknown, unknown>;
  /** Argument name → how its values are made. */
  readonly fuzzed: Record<string, "id" | "cursor">;
}

/** Every Query field with an ID or cursor argument. */
function fuzzedFields(): FuzzedField[] {
  const fields = Object.values(schema.getQueryType()?.getFields() ?? {});
  return fields.flatMap((field) => {
    const fuzzed: Record<string, "id" | "cursor"> = {};
    for (const arg of field.args) {
      const named = getNamedType(arg.type).name;
      if (named === "ID") fuzzed[arg.name] = "id";
      else if (named === "String" && CURSOR_ARGUMENTS.has(arg.name)) fuzzed[arg.name] = "cursor";
    }
    return Object.keys(fuzzed).length > 0 ? [{ field, fuzzed }] : [];
  });
}

/** One query selecting the field (leaves, one level of objects) with its fuzzed arguments as variables. */
function documentOf({ field, fuzzed }: FuzzedField): string {
  const variables = field.args
    .filter((arg) => arg.name in fuzzed)
    .map((arg) => `$${arg.name}: ${arg.type.toString()}`);
  const args = field.args.filter((arg) => arg.name in fuzzed).map((arg) => `${arg.name}: $${arg.name}`);
  const named = getNamedType(field.type);
  const selection = "getFields" in named || "getTypes" in named ? ` { ${selectionOf(named, 1, [])} }` : "";
  return `query Fuzz(${variables.join(", ")}) { ${field.name}(${args.join(", ")})${selection} }`;
}

describe("crafted ids and cursors", () => {
  it("covers every ID and cursor argument of Query", () => {
    const names = fuzzedFields().map(({ field }) => field.name);
    for (const name of ["node", "account", "generation", "generations", "ledger", "balance", "spending"]) {
      expect(names).toContain(name);
    }
  });

  it("never answer INTERNAL_SERVER_ERROR", async () => {
    const fields = fuzzedFields();
    for (const target of fields) {
      const document = documentOf(target);
      const variables = fc.record(
        Object.fromEntries(
          target.field.args
            .filter((arg) => arg.name in target.fuzzed)
            .map((arg) => {
              const values = target.fuzzed[arg.name] === "id" ? idArbitrary() : cursorArbitrary();
              return [
                arg.name,
                isListType(getNullableType(arg.type)) ? fc.array(values, { maxLength: 3 }) : values,
              ];
            }),
        ),
      );
      await fc.assert(
        fc.asyncProperty(variables, async (values) => {
          const response = await billing.server.post(billing.admin, { query: document, variables: values });
          const body = (await response.json()) as Json;
          const codes = (body.errors ?? []).map((error: Json) => error.extensions?.code);
          expect(
            codes,
            `${target.field.name} ${JSON.stringify(values)}: ${JSON.stringify(body.errors)}`,
          ).not.toContain("INTERNAL_SERVER_ERROR");
          expect(response.status).toBeLessThan(500);
          for (const error of body.errors ?? []) {
            if (error.extensions?.code === "BAD_USER_INPUT" && error.extensions.argument !== undefined) {
              expect(target.field.args.map((arg) => arg.name)).toContain(
                String(error.extensions.argument).split(".")[0],
              );
            }
          }
        }),
        { numRuns: 100 },
      );
    }
  });

  it("answers the issue's two crafted inputs exactly", async () => {
    const node = await billing.server.gql(billing.admin, `query($id: ID!) { node(id: $id) { id } }`, {
      id: base64("Account:not-a-uuid"),
    });
    expect(node).toEqual({ data: { node: null } });
    const accountId = realIds[0];
    const forged = base64url(`generation:v1:-8640000000000000:${randomUUID()}`);
    const page = await billing.server.gql(
      billing.admin,
      `query($id: ID!, $after: String) { generations(accountId: $id, after: $after) { edges { cursor } } }`,
      { id: accountId, after: forged },
    );
    expect(page.errors?.map((error) => error.extensions)).toEqual([
      { code: "BAD_USER_INPUT", argument: "after" },
    ]);
  });
});
