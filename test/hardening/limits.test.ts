/**
 * Limits (SPEC §5, src/server/hardening.ts): bodies over 100 KB, bodies of
 * unknown size, documents deeper than 12, with more than 30 aliases or
 * directives, more than 3,000 tokens or a cost over 10,000, batched bodies,
 * and WebSocket messages over 100 KB are refused with a 4xx or a GraphQL
 * error — never a 5xx — and the server stays healthy: /healthz answers and a
 * normal query works right after each one.
 */
import { request as httpRequest } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  BalanceChangedDocument,
  BalanceDocument,
  LedgerEntryAddedDocument,
  type LedgerEntryAddedSubscription,
} from "../../src/generated/graphql/graphql.ts";
import {
  ALIASES_MAX,
  COST_MAX,
  DIRECTIVES_MAX,
  QUERY_DEPTH_MAX,
  REQUEST_BODY_BYTES_MAX,
  TOKENS_MAX,
} from "../../src/server/hardening.ts";
import { gqlData, requestOf, sourceOf } from "../support/documents.ts";
import { createAccount, grant } from "../support/fixtures.ts";
import { type GraphQLResponse, startServer, type TestServer, unique } from "../support/harness.ts";
import { connect, type LiveClient } from "../support/ws.ts";

/** Fields that nest forever: Account.boards → Board.generations → Generation.account → Account.boards … */
const CYCLE = ["boards", "generations", "account"] as const;

/** A query `depth` fields deep: viewer, accounts, then the cycle, then `id` (every field there has one). */
function deepQuery(depth: number): string {
  const fields = ["viewer", "accounts"];
  for (let i = 0; fields.length < depth - 1; i += 1) fields.push(CYCLE[i % CYCLE.length] as string);
  return `{ ${fields.join(" { ")} { id }${" }".repeat(fields.length - 1)} }`;
}

/** A query with `n` aliased root fields. */
function aliasedQuery(n: number): string {
  return `{ ${Array.from({ length: n }, (_, i) => `v${i}: viewer { id }`).join(" ")} }`;
}

/** A query whose one field carries `n` directives. */
function directivesQuery(n: number): string {
  return `query($yes: Boolean = true) { viewer { id ${"@include(if: $yes) ".repeat(n)} } }`;
}

/**
 * A valid query of at least `n` tokens: the viewer's `role` through distinct
 * fragments (8 tokens each), so no selection set repeats a field.
 */
function tokensQuery(n: number): string {
  const count = Math.ceil(n / 8);
  const spreads = Array.from({ length: count }, (_, i) => `...R${i}`).join(" ");
  const fragments = Array.from({ length: count }, (_, i) => `fragment R${i} on Viewer { role }`).join(" ");
  return `{ viewer { ${spreads} } } ${fragments}`;
}

/** A query within the depth, alias, token and field limits whose estimated cost is over 10,000. */
function costlyQuery(): string {
  const generation =
    "id feature model status quantity unitCost reserved charged refunded released requestedBy failureReason failureMessage deadline createdAt finishedAt items { index status reserved charged refunded reason message }";
  const branch = `viewer { accounts { boards { generations { account { boards { generations { account { boards { generations { ${generation} } } } } } } } } } }`;
  return `{ ${Array.from({ length: 6 }, (_, i) => `c${i}: ${branch}`).join(" ")} }`;
}

/** POSTs a raw body with Node's http client, so the test controls Content-Length and chunking. */
function rawPost(
  url: string,
  token: string,
  body: string,
  options: { chunked?: boolean } = {},
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {
      "content-type": "application/json",
      authorization: `Bearer ${token}`,
    };
    if (!options.chunked) headers["content-length"] = String(Buffer.byteLength(body));
    const request = httpRequest(url, { method: "POST", headers }, (response) => {
      let text = "";
      response.setEncoding("utf8");
      response.on("data", (chunk: string) => {
        text += chunk;
      });
      response.on("end", () => resolve({ status: response.statusCode ?? 0, text }));
    });
    // The server may answer (413) and close before the whole body is written.
    request.on("error", (error: NodeJS.ErrnoException) => {
      if (error.code === "EPIPE" || error.code === "ECONNRESET") return;
      reject(error);
    });
    if (options.chunked) {
      // Chunked transfer encoding: no Content-Length, size unknown until the end.
      for (let i = 0; i < body.length; i += 1_000) request.write(body.slice(i, i + 1_000));
      request.end();
    } else {
      request.end(body);
    }
  });
}

describe("request limits", () => {
  let server: TestServer;
  let admin: string;
  let user: string;
  let accountId: string;
  const clients: LiveClient[] = [];

  beforeAll(async () => {
    server = await startServer();
    admin = await server.token(unique("limits-admin"), "admin");
    const account = await createAccount(server, admin);
    accountId = account.id;
    user = await server.token(account.ownerId, "user");
    await grant(server, admin, accountId, 42);
  });
  afterAll(async () => {
    await Promise.all(clients.map((client) => client.dispose()));
    await server?.close();
  });

  /** The server answers /healthz and a normal query, as the account's owner. */
  async function expectHealthy(after: string) {
    const health = await fetch(new URL("/healthz", server.url));
    expect(health.status, `/healthz after ${after}`).toBe(200);
    const data = await gqlData(server, user, BalanceDocument, { accountId });
    expect(data.balance, `a normal query after ${after}`).toMatchObject({ accountId, available: 42 });
  }

  /**
   * Sends `query` (as the admin); expects it refused, before execution, with a
   * GraphQL error of `code` matching `message`. The HTTP status follows
   * GraphQL over HTTP: 200 for a client that accepts application/json (the
   * default), 400 for one that accepts application/graphql-response+json.
   */
  async function expectRefused(what: string, query: string, message: RegExp, code: string) {
    for (const [accept, status] of [
      ["application/json", 200],
      ["application/graphql-response+json", 400],
    ] as const) {
      const response = await fetch(server.url, {
        method: "POST",
        headers: { "content-type": "application/json", accept, authorization: `Bearer ${admin}` },
        body: JSON.stringify({ query }),
      });
      const text = await response.text();
      expect(response.status, `${what} (${accept}): ${text.slice(0, 300)}`).toBe(status);
      const body = JSON.parse(text) as GraphQLResponse;
      expect(body.data ?? null, what).toBeNull();
      expect(
        body.errors?.map((error) => error.extensions?.code),
        what,
      ).toContain(code);
      expect(body.errors?.map((error) => error.message).join("\n"), what).toMatch(message);
    }
    await expectHealthy(what);
  }

  /** Sends `query` (as the admin); expects data and no errors. */
  async function expectAccepted(what: string, query: string) {
    const response = await server.post(admin, { query });
    const body = (await response.json()) as GraphQLResponse;
    expect(body.errors, what).toBeUndefined();
    expect(response.status, what).toBe(200);
    expect(body.data, what).toBeDefined();
  }

  it(`accepts depth ${QUERY_DEPTH_MAX} and refuses depth ${QUERY_DEPTH_MAX + 1} and deeper`, async () => {
    await expectAccepted("depth 12", deepQuery(QUERY_DEPTH_MAX));
    // Depth 200 is about as deep as a document within the field limit goes.
    for (const depth of [QUERY_DEPTH_MAX + 1, 40, 200]) {
      await expectRefused(
        `depth ${depth}`,
        deepQuery(depth),
        new RegExp(`depth limit of ${QUERY_DEPTH_MAX} exceeded, found ${depth}`),
        "GRAPHQL_VALIDATION_FAILED",
      );
    }
  });

  it(`accepts ${ALIASES_MAX} aliases and refuses ${ALIASES_MAX + 1}`, async () => {
    await expectAccepted("30 aliases", aliasedQuery(ALIASES_MAX));
    await expectRefused(
      "31 aliases",
      aliasedQuery(ALIASES_MAX + 1),
      new RegExp(`Aliases limit of ${ALIASES_MAX} exceeded, found ${ALIASES_MAX + 1}`),
      "GRAPHQL_VALIDATION_FAILED",
    );
  });

  it(`refuses more than ${DIRECTIVES_MAX} directives`, async () => {
    await expectRefused(
      "31 directives",
      directivesQuery(DIRECTIVES_MAX + 1),
      new RegExp(`Directives limit of ${DIRECTIVES_MAX} exceeded`),
      "GRAPHQL_VALIDATION_FAILED",
    );
  });

  it(`refuses documents of more than ${TOKENS_MAX} tokens before validating them`, async () => {
    await expectAccepted("200 tokens", tokensQuery(200));
    for (const tokens of [TOKENS_MAX + 10, 5_000]) {
      await expectRefused(
        `${tokens} tokens`,
        tokensQuery(tokens),
        new RegExp(`Token limit of ${TOKENS_MAX} exceeded`),
        "GRAPHQL_PARSE_FAILED",
      );
    }
  });

  it(`refuses documents whose estimated cost is over ${COST_MAX}`, async () => {
    await expectRefused(
      "a costly document",
      costlyQuery(),
      new RegExp(`Query Cost limit of ${COST_MAX} exceeded`),
      "GRAPHQL_VALIDATION_FAILED",
    );
  });

  it("refuses batched (array) bodies", async () => {
    const body = [requestOf(BalanceDocument, { accountId }), requestOf(BalanceDocument, { accountId })];
    const response = await server.post(user, body);
    expect(response.status).toBe(400);
    expect(await response.json()).toEqual({
      errors: [{ message: "Batching is not supported.", extensions: { code: "BAD_REQUEST" } }],
    });
    await expectHealthy("a batch");
  });

  it(`refuses bodies over ${REQUEST_BODY_BYTES_MAX} bytes with 413 and accepts one just under`, async () => {
    const envelope = JSON.stringify({
      ...requestOf(BalanceDocument, { accountId }),
      extensions: { pad: "" },
    });
    const padded = (bytes: number) =>
      JSON.stringify({
        ...requestOf(BalanceDocument, { accountId }),
        extensions: { pad: "x".repeat(bytes - Buffer.byteLength(envelope)) },
      });
    const under = await rawPost(server.url, user, padded(REQUEST_BODY_BYTES_MAX));
    expect(under.status, under.text.slice(0, 200)).toBe(200);
    for (const bytes of [REQUEST_BODY_BYTES_MAX + 1, 5 * 1024 * 1024]) {
      const over = await rawPost(server.url, user, padded(bytes));
      expect(over.status, `${bytes} bytes`).toBe(413);
      expect(JSON.parse(over.text)).toEqual({
        errors: [
          {
            message: `Request body must be at most ${REQUEST_BODY_BYTES_MAX} bytes with a Content-Length`,
            extensions: { code: "PAYLOAD_TOO_LARGE" },
          },
        ],
      });
      await expectHealthy(`a body of ${bytes} bytes`);
    }
  });

  it("refuses a chunked POST without Content-Length, small or large", async () => {
    for (const body of [JSON.stringify(requestOf(BalanceDocument, { accountId })), "x".repeat(1024 * 1024)]) {
      const answer = await rawPost(server.url, user, body, { chunked: true });
      expect(answer.status).toBe(413);
      expect((JSON.parse(answer.text) as GraphQLResponse).errors?.[0]?.extensions?.code).toBe(
        "PAYLOAD_TOO_LARGE",
      );
      await expectHealthy(`a chunked body of ${body.length} bytes`);
    }
  });

  it("answers malformed requests with 4xx", async () => {
    const cases: { what: string; send: () => Promise<Response> }[] = [
      {
        what: "invalid JSON",
        send: () =>
          fetch(server.url, {
            method: "POST",
            headers: { "content-type": "application/json", authorization: `Bearer ${user}` },
            body: '{"query": ',
          }),
      },
      {
        what: "a JSON string body",
        send: () => server.post(user, "{ viewer { id } }"),
      },
      {
        what: "an unsupported content type",
        send: () =>
          fetch(server.url, {
            method: "POST",
            headers: { "content-type": "application/xml", authorization: `Bearer ${user}` },
            body: "<query/>",
          }),
      },
      {
        what: "a query string over the header size limit",
        send: () =>
          fetch(`${server.url}?query=${encodeURIComponent(`{ viewer { id } }${" ".repeat(40_000)}`)}`, {
            headers: { authorization: `Bearer ${user}` },
          }),
      },
    ];
    for (const { what, send } of cases) {
      const response = await send();
      const text = await response.text();
      expect(response.status, `${what}: ${text.slice(0, 200)}`).toBeGreaterThanOrEqual(400);
      expect(response.status, `${what}: ${text.slice(0, 200)}`).toBeLessThan(500);
      await expectHealthy(what);
    }
  });

  it(`closes a WebSocket whose message is over ${REQUEST_BODY_BYTES_MAX} bytes, and serves new sockets`, async () => {
    const live = connect(server.url, { token: user });
    clients.push(live);
    const huge = live.subscribe(sourceOf(BalanceChangedDocument), {
      accountId,
      pad: "x".repeat(REQUEST_BODY_BYTES_MAX + 1),
    });
    const closed = await live.waitClosed();
    // 1009: Message Too Big (RFC 6455).
    expect(closed.code).toBe(1009);
    await huge.waitEnded();
    await expectHealthy("an oversized WebSocket message");

    const next = connect(server.url, { token: user });
    clients.push(next);
    const entries = next.subscribe<LedgerEntryAddedSubscription>(sourceOf(LedgerEntryAddedDocument), {
      accountId,
      afterSequence: 0,
    });
    await entries.waitFor((values) => values.length === 1, "the replayed grant on a new socket");
  });

  it("answers over-limit and malformed documents over graphql-ws as errors, keeping the socket open", async () => {
    const live = connect(server.url, { token: user });
    clients.push(live);
    const cases = [
      { query: deepQuery(QUERY_DEPTH_MAX + 1), message: /depth limit of 12 exceeded/ },
      { query: aliasedQuery(ALIASES_MAX + 1), message: /Aliases limit of 30 exceeded/ },
      { query: tokensQuery(TOKENS_MAX + 10), message: new RegExp(`Token limit of ${TOKENS_MAX} exceeded`) },
      { query: "subscription { balanceChanged(", message: /Syntax Error/ },
      { query: "subscription { nope }", message: /Cannot query field .{1,2}nope/ },
    ];
    for (const { query, message } of cases) {
      const refused = live.subscribe(query, {});
      await refused.waitEnded();
      expect(refused.values).toEqual([]);
      expect(JSON.stringify(refused.errors)).toMatch(message);
    }
    expect(live.closes).toEqual([]);
    const entries = live.subscribe<LedgerEntryAddedSubscription>(sourceOf(LedgerEntryAddedDocument), {
      accountId,
      afterSequence: 0,
    });
    await entries.waitFor((values) => values.length === 1, "the replayed grant on the same socket");
    expect(live.closes).toEqual([]);
    await expectHealthy("refused documents over graphql-ws");
  });
});
