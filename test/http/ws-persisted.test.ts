/**
 * A persisted operation over graphql-ws named by its id alone, with no
 * `query` in the subscribe message (partners' clients send `documentId` or
 * `extensions.persistedQuery` and nothing else). graphql-ws's own server
 * closed such a socket with 4400 ("expects the 'query' property to be a
 * string"); it must run the document the id names.
 */
import { createClient } from "graphql-ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { BalanceDocument, LedgerEntryAddedDocument } from "../../src/generated/graphql/graphql.ts";
import { hashOf, operationNameOf } from "../support/documents.ts";
import { createAccount, grant } from "../support/fixtures.ts";
import { startServer, type TestServer, unique } from "../support/harness.ts";
import { until, wsUrl } from "../support/ws.ts";

describe("graphql-ws subscribe by persisted id alone", () => {
  let server: TestServer;
  let user: string;
  let admin: string;
  let accountId: string;

  beforeAll(async () => {
    server = await startServer({ persistedOperations: "required" });
    // The fixtures send raw documents, which only admins may do here.
    admin = await server.token(unique("support"), "admin");
    const account = await createAccount(server, admin);
    accountId = account.id;
    user = await server.token(account.ownerId, "user");
    await grant(server, admin, accountId, 40);
  });
  afterAll(async () => {
    await server?.close();
  });

  it("runs a subscription sent by the graphql-ws client with documentId and no query", async () => {
    const sent: string[] = [];
    // graphql-ws's client insists on a `query` string before it sends; its replacer drops the empty one,
    // so what goes on the wire is { documentId, operationName, variables } only.
    class Recording extends WebSocket {
      override send(data: string, ...rest: unknown[]) {
        sent.push(String(data));
        return (super.send as (...args: unknown[]) => void)(data, ...rest);
      }
    }
    const client = createClient({
      url: wsUrl(server.url),
      webSocketImpl: Recording,
      retryAttempts: 0,
      connectionParams: { authorization: `Bearer ${user}` },
      jsonMessageReplacer: (key, value) => (key === "query" && value === "" ? undefined : value),
    });
    const values: { ledgerEntryAdded: { sequence: number; amount: number } }[] = [];
    const errors: unknown[] = [];
    const stop = client.subscribe<(typeof values)[number]>(
      {
        query: "",
        documentId: hashOf(LedgerEntryAddedDocument),
        operationName: operationNameOf(LedgerEntryAddedDocument),
        variables: { accountId, afterSequence: 0 },
      } as { query: string },
      {
        next: (result) => {
          if (result.errors) errors.push(...result.errors);
          if (result.data) values.push(result.data);
        },
        error: (error) => errors.push(error),
        complete: () => {},
      },
    );
    try {
      await until(
        () => values.length >= 1 || errors.length > 0,
        () => "the replayed grant",
      );
      await grant(server, admin, accountId, 3);
      await until(
        () => values.length >= 2 || errors.length > 0,
        () => `the live grant (${values.length})`,
      );
      expect(errors).toEqual([]);
      expect(values.map((value) => value.ledgerEntryAdded.sequence).slice(0, 2)).toEqual([1, 2]);
      const subscribe = JSON.parse(sent.find((text) => text.includes('"subscribe"')) ?? "{}");
      expect(subscribe.payload).toEqual({
        documentId: hashOf(LedgerEntryAddedDocument),
        operationName: "LedgerEntryAdded",
        variables: { accountId, afterSequence: 0 },
      });
    } finally {
      stop();
      await client.dispose();
    }
  });

  it("answers a hand-written subscribe message with extensions.persistedQuery and no query", async () => {
    const socket = new WebSocket(wsUrl(server.url), "graphql-transport-ws");
    const messages: { type: string; id?: string; payload?: unknown }[] = [];
    let closed: number | null = null;
    socket.on("message", (data) => messages.push(JSON.parse(String(data))));
    socket.on("close", (code) => {
      closed = code;
    });
    await new Promise((resolve) => socket.once("open", resolve));
    socket.send(JSON.stringify({ type: "connection_init", payload: { authorization: `Bearer ${user}` } }));
    await until(
      () => messages.some((message) => message.type === "connection_ack"),
      () => "connection_ack",
    );
    const hash = hashOf(BalanceDocument).slice("sha256:".length);
    socket.send(
      JSON.stringify({
        id: "1",
        type: "subscribe",
        payload: {
          variables: { accountId },
          extensions: { persistedQuery: { version: 1, sha256Hash: hash } },
        },
      }),
    );
    await until(
      () => messages.some((message) => message.type === "complete") || closed !== null,
      () => `the answer (${JSON.stringify(messages)}, closed ${closed})`,
    );
    socket.close();
    expect(closed).toBeNull();
    const next = messages.find((message) => message.type === "next");
    expect(next?.payload).toMatchObject({ data: { balance: { accountId } } });
  });
});
