/**
 * Persisted operations (PERSISTED_OPERATIONS=required): partners send the
 * hash of a document codegen generated, in either form clients use —
 * `documentId` ("sha256:<hex>" or the bare hex) or
 * `extensions.persistedQuery.sha256Hash` — over HTTP and graphql-ws. A raw
 * document is refused for user and service tokens with PERSISTED_QUERY_ONLY;
 * admins (support tooling, GraphiQL) may still send one. An unknown hash is a
 * clear 4xx, never a 5xx.
 */
import type { TypedDocumentNode } from "@graphql-typed-document-node/core";
import type { Client } from "graphql-ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  BalanceDocument,
  GrantCreditsDocument,
  LedgerEntryAddedDocument,
  ReserveGenerationDocument,
  ViewerDocument,
} from "../../src/generated/graphql/graphql.ts";
import { PERSISTED_ONLY_MESSAGE, PersistedOperations } from "../../src/server/persisted.ts";
import {
  expectTypename,
  gqlData,
  gqlDoc,
  hashOf,
  requestOf,
  type SendAs,
  sourceOf,
} from "../support/documents.ts";
import { createAccount, grant } from "../support/fixtures.ts";
import { type GraphQLResponse, startServer, type TestServer, unique } from "../support/harness.ts";
import { connect, type LiveClient, until } from "../support/ws.ts";

const PERSISTED_FORMS: readonly SendAs[] = ["documentId", "bareDocumentId", "persistedQuery"];

/** What one graphql-ws operation received: results, and the error that ended it. */
interface WsOutcome<T> {
  readonly results: GraphQLResponse<T>[];
  readonly errors: unknown[];
  readonly done: Promise<void>;
  stop(): void;
}

/** Starts a graphql-ws operation with a raw subscribe payload (the helper in ws.ts sends text only). */
function wsOperation<T>(client: Client, payload: Record<string, unknown>): WsOutcome<T> {
  const results: GraphQLResponse<T>[] = [];
  const errors: unknown[] = [];
  let end!: () => void;
  const done = new Promise<void>((resolve) => {
    end = resolve;
  });
  // graphql-ws requires `query` to be a string; a persisted operation sends an empty one.
  const stop = client.subscribe<T>({ query: "", ...payload } as { query: string }, {
    next: (result) => {
      results.push(result as GraphQLResponse<T>);
    },
    error: (error) => {
      errors.push(error);
      end();
    },
    complete: () => end(),
  });
  return { results, errors, done, stop };
}

/** The graphql-ws subscribe payload of a document sent `as` text or persisted. */
function wsPayload(document: TypedDocumentNode<unknown, never>, variables: unknown, as: SendAs) {
  return requestOf(document, variables, as);
}

/** The error codes of a refused operation (an `error` message carries GraphQL errors). */
function codesOf(errors: readonly unknown[]): unknown[] {
  return errors.flatMap((error) =>
    Array.isArray(error)
      ? error.map((e: { extensions?: { code?: unknown } }) => e.extensions?.code)
      : [(error as { extensions?: { code?: unknown } }).extensions?.code],
  );
}

describe("persisted operations only (PERSISTED_OPERATIONS=required)", () => {
  let server: TestServer;
  let service: string;
  let admin: string;
  let user: string;
  let accountId: string;
  const clients: LiveClient[] = [];
  const open = (token: string) => {
    const client = connect(server.url, { token });
    clients.push(client);
    return client;
  };

  beforeAll(async () => {
    server = await startServer({ persistedOperations: "required" });
    service = await server.token(unique("partner"), "service");
    admin = await server.token(unique("support"), "admin");
    const account = await createAccount(server, admin);
    accountId = account.id;
    user = await server.token(account.ownerId, "user");
    await grant(server, admin, accountId, 1_000);
  });
  afterAll(async () => {
    await Promise.all(clients.map((client) => client.dispose()));
    await server?.close();
  });

  it("loads the manifest codegen wrote: every generated document is there by its hash", () => {
    const manifest = PersistedOperations.load();
    for (const document of [BalanceDocument, ReserveGenerationDocument, LedgerEntryAddedDocument]) {
      const hash = hashOf(document);
      expect(manifest.get(hash.slice("sha256:".length)), hash).toEqual(expect.any(String));
    }
  });

  it("refuses raw documents over HTTP for user and service tokens, with PERSISTED_QUERY_ONLY and HTTP 400", async () => {
    for (const token of [user, service]) {
      for (const body of [
        requestOf(BalanceDocument, { accountId }, "text"),
        { query: "{ __typename }" },
        { query: sourceOf(ReserveGenerationDocument), variables: { input: {} } },
      ]) {
        const response = await server.post(token, body);
        expect(response.status).toBe(400);
        const answer = (await response.json()) as GraphQLResponse;
        expect(answer.data ?? null).toBeNull();
        expect(answer.errors).toEqual([
          { message: PERSISTED_ONLY_MESSAGE, extensions: { code: "PERSISTED_QUERY_ONLY" } },
        ]);
      }
    }
    // A GET with a query string is a raw document too.
    const get = await fetch(`${server.url}?query=${encodeURIComponent("{ __typename }")}`, {
      headers: { authorization: `Bearer ${user}` },
    });
    expect(get.status).toBe(400);
    expect(((await get.json()) as GraphQLResponse).errors?.[0]?.extensions?.code).toBe(
      "PERSISTED_QUERY_ONLY",
    );
  });

  it("lets admins send raw documents", async () => {
    const data = await gqlData(server, admin, BalanceDocument, { accountId }, "text");
    expect(data.balance).toMatchObject({ accountId, available: 1_000 });
    const typename = await server.gql(admin, "{ __typename }");
    expect(typename).toEqual({ data: { __typename: "Query" } });
  });

  it("runs persisted queries and mutations over HTTP with every id form", async () => {
    for (const as of PERSISTED_FORMS) {
      const balance = await gqlData(server, user, BalanceDocument, { accountId }, as);
      expect(balance.balance?.accountId, as).toBe(accountId);
      const viewer = await gqlData(server, service, ViewerDocument, {}, as);
      expect(viewer.viewer.role, as).toBe("service");
      const reserved = await gqlData(
        server,
        service,
        ReserveGenerationDocument,
        { input: { idempotencyKey: unique("reserve"), accountId, feature: "Partner", unitCost: 1 } },
        as,
      );
      expect(expectTypename(reserved.reserveGeneration, "ReserveGenerationSuccess").replayed, as).toBe(false);
    }
    const after = await gqlData(server, user, BalanceDocument, { accountId }, "documentId");
    expect(after.balance).toMatchObject({
      available: 1_000 - PERSISTED_FORMS.length,
      held: PERSISTED_FORMS.length,
    });
  });

  it("never runs a raw document sent alongside a known hash", async () => {
    // A client cannot smuggle a raw document past the check by adding a known hash.
    const response = await server.post(user, {
      ...requestOf(BalanceDocument, { accountId }, "documentId"),
      query: "query Balance($accountId: ID!) { viewer { id role } }",
    });
    // Over HTTP a raw document next to a hash is refused as a raw document.
    expect(response.status).toBe(400);
    expect(await response.json()).toEqual({
      errors: [{ message: PERSISTED_ONLY_MESSAGE, extensions: { code: "PERSISTED_QUERY_ONLY" } }],
    });
    // graphql-ws requires a `query` string in every subscribe message, so there the hash decides and
    // the text is ignored: the persisted document runs, never the raw one.
    const client = open(user);
    const smuggled = wsOperation(client.client, {
      ...wsPayload(BalanceDocument, { accountId }, "persistedQuery"),
      query: "query Balance($accountId: ID!) { viewer { id role } }",
    });
    await smuggled.done;
    expect(smuggled.errors).toEqual([]);
    expect(smuggled.results).toEqual([{ data: { balance: expect.objectContaining({ accountId }) } }]);
  });

  it("answers an unknown or malformed hash with PERSISTED_QUERY_NOT_FOUND and HTTP 400, never a 5xx", async () => {
    const bodies: unknown[] = [
      { documentId: `sha256:${"0".repeat(64)}` },
      { documentId: "0".repeat(64) },
      { documentId: "sha256:" },
      { documentId: "x".repeat(10_000) },
      { documentId: "../../etc/passwd" },
      { documentId: "\u0000" },
      { extensions: { persistedQuery: { version: 1, sha256Hash: "f".repeat(64) } } },
      { extensions: { persistedQuery: { version: 1, sha256Hash: 42 } } },
      { extensions: { persistedQuery: null } },
      { documentId: 42 },
      {},
    ];
    for (const body of bodies) {
      const response = await server.post(user, body);
      const text = await response.text();
      expect(response.status, `${JSON.stringify(body).slice(0, 80)} → ${text}`).toBe(400);
      const answer = JSON.parse(text) as GraphQLResponse;
      expect(
        ["PERSISTED_QUERY_NOT_FOUND", "PERSISTED_QUERY_ONLY"],
        `${JSON.stringify(body).slice(0, 80)} → ${text}`,
      ).toContain(answer.errors?.[0]?.extensions?.code);
    }
    const known = await gqlDoc(server, user, BalanceDocument, { accountId }, "documentId");
    expect(known.errors).toBeUndefined();
  });

  it("refuses raw documents over graphql-ws for user and service tokens, and keeps the socket open", async () => {
    for (const token of [user, service]) {
      const client = open(token);
      const raw = wsOperation(
        client.client,
        wsPayload(LedgerEntryAddedDocument, { accountId, afterSequence: 0 }, "text"),
      );
      await raw.done;
      expect(raw.results).toEqual([]);
      expect(codesOf(raw.errors)).toEqual(["PERSISTED_QUERY_ONLY"]);
      const unknown = wsOperation(client.client, {
        extensions: { persistedQuery: { sha256Hash: "0".repeat(64) } },
      });
      await unknown.done;
      expect(codesOf(unknown.errors)).toEqual(["PERSISTED_QUERY_NOT_FOUND"]);
      // The socket is still usable for a persisted operation.
      const persisted = wsOperation<{ viewer: { role: string } }>(
        client.client,
        wsPayload(ViewerDocument, {}, "persistedQuery"),
      );
      await persisted.done;
      expect(persisted.errors).toEqual([]);
      expect(persisted.results.map((result) => result.data?.viewer.role)).toEqual([
        token === user ? "user" : "service",
      ]);
      expect(client.closes).toEqual([]);
    }
  });

  it("subscribes by hash over graphql-ws, in both forms, and delivers replayed and live entries", async () => {
    const client = open(user);
    const byExtensions = wsOperation<{ ledgerEntryAdded: { sequence: number; type: string } }>(
      client.client,
      wsPayload(LedgerEntryAddedDocument, { accountId, afterSequence: 0 }, "persistedQuery"),
    );
    const byDocumentId = wsOperation<{ ledgerEntryAdded: { sequence: number; type: string } }>(
      client.client,
      wsPayload(LedgerEntryAddedDocument, { accountId, afterSequence: 0 }, "documentId"),
    );
    const sequences = (outcome: typeof byExtensions) =>
      outcome.results.map((result) => result.data?.ledgerEntryAdded.sequence);
    const { balance } = await gqlData(server, user, BalanceDocument, { accountId }, "documentId");
    const latest = balance?.sequence ?? 0;
    // Replayed from the database: every entry so far.
    await until(
      () => sequences(byExtensions).length >= latest && sequences(byDocumentId).length >= latest,
      () => `the replay of ${latest} entries; got ${sequences(byExtensions)} and ${sequences(byDocumentId)}`,
    );
    // Then live: a new grant arrives on both.
    await grant(server, admin, accountId, 5);
    await until(
      () => sequences(byExtensions).includes(latest + 1) && sequences(byDocumentId).includes(latest + 1),
      () => `entry ${latest + 1} live; got ${sequences(byExtensions)} and ${sequences(byDocumentId)}`,
    );
    for (const outcome of [byExtensions, byDocumentId]) {
      expect(outcome.errors).toEqual([]);
      expect(sequences(outcome)).toEqual(Array.from({ length: latest + 1 }, (_, i) => i + 1));
      outcome.stop();
    }
  });

  it("lets admins subscribe with a raw document over graphql-ws", async () => {
    const client = open(admin);
    const raw = wsOperation<{ ledgerEntryAdded: { sequence: number } }>(
      client.client,
      wsPayload(LedgerEntryAddedDocument, { accountId, afterSequence: 0 }, "text"),
    );
    await until(
      () => raw.results.length > 0 || raw.errors.length > 0,
      () => "the first replayed entry",
    );
    expect(raw.errors).toEqual([]);
    expect(raw.results[0]?.data?.ledgerEntryAdded.sequence).toBe(1);
    raw.stop();
  });

  it("accepts raw documents from everyone when persisted operations are optional (the default)", async () => {
    const optional = await startServer();
    try {
      const data = await gqlData(optional, user, BalanceDocument, { accountId }, "text");
      expect(data.balance?.accountId).toBe(accountId);
      const persisted = await gqlData(optional, user, BalanceDocument, { accountId }, "persistedQuery");
      expect(persisted.balance?.accountId).toBe(accountId);
      const granted = await gqlData(
        optional,
        service,
        GrantCreditsDocument,
        { input: { idempotencyKey: unique("grant"), accountId, source: "WALLET", amount: 1 } },
        "text",
      );
      expectTypename(granted.grantCredits, "GrantCreditsSuccess");
    } finally {
      await optional.close();
    }
  });
});
