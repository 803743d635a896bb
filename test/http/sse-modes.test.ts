/**
 * graphql-sse's client in both of its modes: distinct connections (one
 * stream per operation; on /graphql/stream and on yoga's own SSE at
 * /graphql) and a single connection (one stream reserved with PUT, operations
 * POSTed with its token; /graphql/stream only). Each receives the live
 * balanceChanged and ledgerEntryAdded events of a real grant.
 */
import { type Client, createClient } from "graphql-sse";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LedgerEntryAddedDocument } from "../../src/generated/graphql/graphql.ts";
import { accountWithOwner, BALANCE_CHANGED, type Json, LEDGER_ENTRY_ADDED } from "../realtime/helpers.ts";
import { hashOf } from "../support/documents.ts";
import { startServer, type TestServer } from "../support/harness.ts";
import { until } from "../support/ws.ts";

interface Stream {
  readonly values: Json[];
  readonly errors: unknown[];
  stop(): void;
}

function subscribe(
  client: Client<boolean>,
  query: string,
  variables: Record<string, unknown>,
  extensions?: Record<string, unknown>,
): Stream {
  const values: Json[] = [];
  const errors: unknown[] = [];
  const stop = client.subscribe(
    { query, variables, extensions },
    {
      next: (result) => {
        if (result.errors !== undefined) errors.push(...result.errors);
        if (result.data != null) values.push(result.data);
      },
      error: (error) => errors.push(error),
      complete: () => {},
    },
  );
  return { values, errors, stop };
}

const MODES = [
  { name: "single connection on /graphql/stream", path: "/graphql/stream", singleConnection: true },
  { name: "distinct connections on /graphql/stream", path: "/graphql/stream", singleConnection: false },
  { name: "distinct connections on /graphql (yoga's SSE)", path: "/graphql", singleConnection: false },
] as const;

describe("graphql-sse clients", () => {
  let server: TestServer;
  const clients: Client<boolean>[] = [];

  beforeAll(async () => {
    server = await startServer();
  });
  afterAll(async () => {
    for (const client of clients) client.dispose();
    await server?.close();
  });

  for (const mode of MODES) {
    it(`receives balanceChanged and ledgerEntryAdded after a grant: ${mode.name}`, async () => {
      const { service, ownerToken, accountId } = await accountWithOwner(server.url, 100);
      const client = createClient({
        url: new URL(mode.path, server.url).toString(),
        singleConnection: mode.singleConnection,
        headers: { authorization: `Bearer ${ownerToken}` },
        retryAttempts: 0,
      });
      clients.push(client);
      const entries = subscribe(client, LEDGER_ENTRY_ADDED, { accountId, afterSequence: 0 });
      const balances = subscribe(client, BALANCE_CHANGED, { accountId });
      // The replay proves the entry stream is up; the balance stream answers the first change after it is.
      await until(
        () => entries.values.length >= 1 || entries.errors.length > 0,
        () => "the replayed grant",
      );
      expect(entries.errors).toEqual([]);
      // Grants until the balance stream has seen one (it may subscribe after the first grant commits).
      let granted = 0;
      await until(
        () => {
          if (balances.errors.length > 0) return true;
          if (balances.values.length === 0 && entries.values.length === 1 + granted) {
            granted += 1;
            void service.grant(accountId, 7);
          }
          return balances.values.length > 0 && entries.values.length === 1 + granted;
        },
        () =>
          `a live balance and entry (${balances.values.length} balances, ${entries.values.length} entries)`,
      );
      expect(balances.errors).toEqual([]);
      expect(entries.values.map((value) => value.ledgerEntryAdded.sequence)).toEqual(
        Array.from({ length: 1 + granted }, (_, index) => index + 1),
      );
      expect(entries.values.at(-1).ledgerEntryAdded).toMatchObject({ type: "GRANT", amount: 7 });
      expect(balances.values.at(-1).balanceChanged).toMatchObject({
        accountId,
        available: 100 + 7 * granted,
        sequence: 1 + granted,
      });
      entries.stop();
      balances.stop();
    });
  }

  it("refuses a single-connection operation without a valid token like any request", async () => {
    const { accountId } = await accountWithOwner(server.url, 0);
    const client = createClient({
      url: new URL("/graphql/stream", server.url).toString(),
      singleConnection: true,
      retryAttempts: 0,
    });
    clients.push(client);
    const balances = subscribe(client, BALANCE_CHANGED, { accountId });
    await until(
      () => balances.errors.length > 0,
      () => "an error for the operation without a token",
    );
    expect(JSON.stringify(balances.errors)).toContain("UNAUTHENTICATED");
    expect(balances.values).toEqual([]);
  });
});

describe("graphql-sse with persisted operations only", () => {
  let server: TestServer;
  // The fixtures send raw documents: they go through a server that accepts them, on the same database.
  let setup: TestServer;
  const clients: Client<boolean>[] = [];

  beforeAll(async () => {
    [server, setup] = await Promise.all([startServer({ persistedOperations: "required" }), startServer()]);
  });
  afterAll(async () => {
    for (const client of clients) client.dispose();
    await Promise.all([server?.close(), setup?.close()]);
  });

  it("refuses a raw document and runs a persisted one, in single-connection mode", async () => {
    const { ownerToken, accountId } = await accountWithOwner(setup.url, 30);
    const client = createClient({
      url: new URL("/graphql/stream", server.url).toString(),
      singleConnection: true,
      headers: { authorization: `Bearer ${ownerToken}` },
      retryAttempts: 0,
    });
    clients.push(client);
    const raw = subscribe(client, LEDGER_ENTRY_ADDED, { accountId, afterSequence: 0 });
    // graphql-sse requires a `query` string: a persisted operation sends an empty one and its hash.
    const persisted = subscribe(
      client,
      "",
      { accountId, afterSequence: 0 },
      {
        persistedQuery: { version: 1, sha256Hash: hashOf(LedgerEntryAddedDocument).slice("sha256:".length) },
      },
    );
    await until(
      () => raw.errors.length > 0 && persisted.values.length >= 1,
      () => `a refusal and a replayed entry (${JSON.stringify(raw.errors)}, ${persisted.values.length})`,
    );
    expect(JSON.stringify(raw.errors)).toContain("PERSISTED_QUERY_ONLY");
    expect(raw.values).toEqual([]);
    expect(persisted.errors).toEqual([]);
    expect(persisted.values[0].ledgerEntryAdded).toMatchObject({ sequence: 1, type: "GRANT", amount: 30 });
    persisted.stop();
  });
});
