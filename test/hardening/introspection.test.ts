/**
 * Introspection amplification and validation work. The audit's request of
 * 1.2 KB, 30 aliased `__schema` selections over one deep fragment, answered
 * 1.9 MB and cost 0.4–0.8 s of CPU; 740× `viewer { id }` passed every limit
 * and cost 150 ms of validation. Both must be refused fast, before the
 * validation rules run, while GraphiQL's own introspection query still works.
 */
import { getIntrospectionQuery } from "graphql";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FIELD_REPEATS_MAX, FIELDS_MAX, INTROSPECTION_DEPTH_MAX } from "../../src/server/document-shape.ts";
import { type GraphQLResponse, startServer, type TestServer, unique } from "../support/harness.ts";

/** The audit's document: `n` aliased `__schema` selections sharing one fragment that lists every field's type. */
function aliasedSchemas(n: number): string {
  const selections = Array.from({ length: n }, (_, i) => `s${i}: __schema { ...Deep }`).join(" ");
  return `query { ${selections} }
fragment Deep on __Schema { types { name kind description fields { name description args { name type { ...Ref } } type { ...Ref } } } }
fragment Ref on __Type { name kind ofType { name kind ofType { name kind ofType { name kind ofType { name kind } } } } }`;
}

/** GraphiQL's introspection query: graphql's, with the options GraphiQL turns on. */
const GRAPHIQL_INTROSPECTION = getIntrospectionQuery({
  descriptions: true,
  specifiedByUrl: true,
  directiveIsRepeatable: true,
  schemaDescription: true,
  inputValueDeprecation: true,
});

describe("introspection and validation limits", () => {
  let server: TestServer;
  let admin: string;

  beforeAll(async () => {
    server = await startServer();
    admin = await server.token(unique("introspection-admin"), "admin");
  });
  afterAll(() => server?.close());

  /** POSTs `query`; returns the status, the body, its size and the server's own time (Server-Timing). */
  async function send(token: string | null, query: string) {
    const response = await server.post(token, { query });
    const text = await response.text();
    const serverMs = Number(/app;dur=([\d.]+)/.exec(response.headers.get("server-timing") ?? "")?.[1]);
    return {
      status: response.status,
      body: JSON.parse(text) as GraphQLResponse,
      bytes: text.length,
      serverMs,
    };
  }

  /** The median server time of `query` over `runs` unique copies (a comment makes each unique, so none is cached). */
  async function medianServerMs(token: string | null, query: string, runs = 15): Promise<number> {
    const times: number[] = [];
    for (let i = 0; i < runs; i += 1)
      times.push((await send(token, `${query}\n# ${i} ${Math.random()}`)).serverMs);
    times.sort((a, b) => a - b);
    return times[Math.floor(runs / 2)] as number;
  }

  it("answers GraphiQL's introspection query", async () => {
    const answer = await send(admin, GRAPHIQL_INTROSPECTION);
    expect(answer.body.errors).toBeUndefined();
    const types = (answer.body.data?.__schema?.types ?? []) as { name: string }[];
    expect(types.map((type) => type.name)).toContain("Account");
    expect((await send(null, GRAPHIQL_INTROSPECTION)).body.errors).toBeUndefined();
  });

  it("refuses 30 aliased __schema selections with a small error, about as fast as a trivial query", async () => {
    const attack = aliasedSchemas(30);
    expect(attack.length).toBeLessThan(1_300);
    for (const token of [null, admin]) {
      const answer = await send(token, attack);
      expect(answer.body.data ?? null).toBeNull();
      expect(answer.body.errors?.[0]?.extensions?.code).toBe("GRAPHQL_VALIDATION_FAILED");
      expect(answer.body.errors?.map((error) => error.message)).toContain(
        'At most 1 "__schema" selection per document, found 30',
      );
      expect(answer.bytes).toBeLessThan(2_000);
    }
    // Measured against a trivial query on the same server at the same moment, so the machine's load cancels out.
    const trivialMs = await medianServerMs(null, "{ __typename }");
    expect(await medianServerMs(null, attack)).toBeLessThan(3 * trivialMs + 2);
  });

  it("refuses two __type selections, and introspection deeper than its limit", async () => {
    const two = await send(null, '{ a: __type(name: "Account") { name } b: __type(name: "Board") { name } }');
    expect(two.body.errors?.map((error) => error.message)).toEqual([
      'At most 1 "__type" selection per document, found 2',
    ]);
    // __schema, queryType, then `levels` nested ofType, then name: a depth of levels + 3. (Under
    // `__type` the query depth limit of 12 applies as well; graphql-armor leaves out only `__schema`.)
    const chain = (levels: number) =>
      `{ __schema { queryType { ${"ofType { ".repeat(levels)}name${" }".repeat(levels)} } } }`;
    expect((await send(null, chain(INTROSPECTION_DEPTH_MAX - 3))).body.errors).toBeUndefined();
    const refused = await send(null, chain(INTROSPECTION_DEPTH_MAX - 2));
    expect(refused.body.errors?.map((error) => error.message)).toEqual([
      `Introspection depth limit of ${INTROSPECTION_DEPTH_MAX} exceeded, found ${INTROSPECTION_DEPTH_MAX + 1}`,
    ]);
  });

  it(`refuses 740× viewer { id } and ${FIELD_REPEATS_MAX + 1} repeats of a field before validating, fast`, async () => {
    // The audit's document under today's token limit: as many `viewer { id }` as fit, ~3 KB of 998 tokens.
    const repeated = `{ ${"viewer { id } ".repeat(249)} }`;
    const answer = await send(null, repeated);
    expect(answer.body.errors?.map((error) => error.message)).toEqual([
      `Field "viewer" is selected more than ${FIELD_REPEATS_MAX} times in one selection set`,
      `Field limit of ${FIELDS_MAX} exceeded, found 498`,
    ]);
    expect(answer.body.errors?.[0]?.extensions?.code).toBe("GRAPHQL_VALIDATION_FAILED");
    const trivialMs = await medianServerMs(null, "{ __typename }");
    expect(await medianServerMs(null, repeated)).toBeLessThan(3 * trivialMs + 2);
    const justOver = await send(null, `{ viewer { ${"id ".repeat(FIELD_REPEATS_MAX + 1)}} }`);
    expect(justOver.body.errors?.[0]?.message).toMatch(/"id" is selected more than/);
    const atLimit = await send(admin, `{ viewer { ${"id ".repeat(FIELD_REPEATS_MAX)}} }`);
    expect(atLimit.body.errors).toBeUndefined();
  });

  it(`refuses documents of more than ${FIELDS_MAX} fields`, async () => {
    // Distinct fragments on the viewer of five fields each: no selection set repeats a field too often.
    const count = Math.ceil(FIELDS_MAX / FIELD_REPEATS_MAX) + 10;
    const spreads = Array.from({ length: count }, (_, i) => `...F${i}`).join(" ");
    const fragments = Array.from(
      { length: count },
      (_, i) => `fragment F${i} on Viewer { ${"id ".repeat(FIELD_REPEATS_MAX)}}`,
    ).join("\n");
    const answer = await send(null, `{ viewer { ${spreads} } }\n${fragments}`);
    expect(answer.body.errors?.map((error) => error.message)).toEqual([
      `Field limit of ${FIELDS_MAX} exceeded, found ${count * FIELD_REPEATS_MAX + 1}`,
    ]);
  });
});
