import { existsSync, readFileSync } from "node:fs";
import { usePersistedOperations } from "@graphql-yoga/plugin-persisted-operations";
import type { GraphQLError } from "graphql";
import { createGraphQLError, type GraphQLParams, type Plugin } from "graphql-yoga";

/**
 * The manifest codegen writes: sha256 hash → document. Found from the
 * repository root, so the compiled server (dist/server/) reads the same file
 * as the sources (src/server/).
 */
export const PERSISTED_MANIFEST_PATH = new URL(
  "../../src/generated/graphql/persisted-documents.json",
  import.meta.url,
).pathname;

/** The persisted operations a server accepts by hash. */
export class PersistedOperations {
  private constructor(private readonly documents: ReadonlyMap<string, string>) {}

  static load(path = PERSISTED_MANIFEST_PATH): PersistedOperations {
    if (!existsSync(path)) return new PersistedOperations(new Map());
    const manifest = JSON.parse(readFileSync(path, "utf8")) as Record<string, string>;
    // Keys are "sha256:<hex>"; clients may send either form.
    return new PersistedOperations(
      new Map(Object.entries(manifest).map(([hash, document]) => [hash.replace(/^sha256:/, ""), document])),
    );
  }

  get size(): number {
    return this.documents.size;
  }

  get(hash: string): string | null {
    return this.documents.get(hash) ?? null;
  }
}

/**
 * The id of a persisted operation in a request, in either form clients send:
 * `documentId` (GraphQL over HTTP, codegen's client preset) or
 * `extensions.persistedQuery.sha256Hash` (Apollo's automatic persisted queries).
 */
export function persistedOperationId(params: {
  documentId?: unknown;
  extensions?: Record<string, unknown> | null;
}): string | null {
  if (typeof params.documentId === "string" && params.documentId.length > 0) {
    // codegen may prefix the hash with its algorithm ("sha256:<hash>").
    return params.documentId.replace(/^sha256:/, "");
  }
  const persisted = params.extensions?.persistedQuery as { sha256Hash?: unknown } | undefined;
  return typeof persisted?.sha256Hash === "string" ? persisted.sha256Hash : null;
}

/**
 * The `documentId` of a GET request's query string. Yoga's GET parser reads
 * only `query`, `operationName`, `variables` and `extensions`, so a
 * persisted operation sent as `GET /graphql?documentId=…` reached the plugin
 * without its id.
 */
function documentIdOfGet(request: Request): string | null {
  if (request.method !== "GET") return null;
  const documentId = new URL(request.url).searchParams.get("documentId");
  return persistedOperationId({ documentId });
}

export const PERSISTED_ONLY_MESSAGE =
  "Only persisted operations are accepted: send documentId (or extensions.persistedQuery.sha256Hash) of a known operation";

/**
 * Yoga plugin: resolves persisted ids over HTTP. In `required` mode a raw
 * document is refused unless `allowRaw` says the caller may send one (admins).
 */
export function persistedOperationsPlugin(
  store: PersistedOperations,
  mode: "optional" | "required",
  allowRaw: (request: Request) => Promise<boolean>,
): Plugin {
  return usePersistedOperations({
    getPersistedOperation: (hash) => store.get(hash.replace(/^sha256:/, "")),
    extractPersistedOperationId: (params: GraphQLParams & { documentId?: unknown }, request: Request) =>
      persistedOperationId(params) ?? documentIdOfGet(request),
    allowArbitraryOperations: mode === "optional" ? true : allowRaw,
    customErrors: {
      notFound: {
        message: "Persisted operation not found",
        extensions: { code: "PERSISTED_QUERY_NOT_FOUND", http: { status: 400 } },
      },
      persistedQueryOnly: {
        message: PERSISTED_ONLY_MESSAGE,
        extensions: { code: "PERSISTED_QUERY_ONLY", http: { status: 400 } },
      },
      keyNotFound: {
        message: "Persisted operation id missing",
        extensions: { code: "PERSISTED_QUERY_NOT_FOUND", http: { status: 400 } },
      },
    },
  });
}

/**
 * Resolves a graphql-ws subscribe payload to a document text, by the same rules.
 *
 * The errors are made with yoga's `createGraphQLError`, not `new GraphQLError`:
 * graphql-ws accepts errors from onSubscribe only if they are `instanceof` the
 * GraphQLError of the graphql copy *it* loaded, and graphql ships a CommonJS
 * and an ES module build. Where this module gets the other build (vitest and
 * bundlers resolve graphql's `module` field; Node and graphql-ws its `main`),
 * graphql-ws took our error for a broken hook and failed the socket's
 * operation with "Invalid return value from onSubscribe hook" instead of
 * sending the error. Yoga's helper uses the same copy as graphql-ws.
 */
export function resolveWsDocument(
  store: PersistedOperations,
  mode: "optional" | "required",
  isAdmin: boolean,
  payload: { query?: unknown; extensions?: Record<string, unknown> | null; documentId?: unknown },
): string | GraphQLError {
  const id = persistedOperationId(payload);
  if (id !== null) {
    return (
      store.get(id) ??
      createGraphQLError("Persisted operation not found", {
        extensions: { code: "PERSISTED_QUERY_NOT_FOUND" },
      })
    );
  }
  if (mode === "required" && !isAdmin) {
    return createGraphQLError(PERSISTED_ONLY_MESSAGE, { extensions: { code: "PERSISTED_QUERY_ONLY" } });
  }
  if (typeof payload.query !== "string" || payload.query.length === 0) {
    return createGraphQLError("query must be a GraphQL document", { extensions: { code: "BAD_REQUEST" } });
  }
  return payload.query;
}

/**
 * Lets graphql-ws clients subscribe to a persisted operation by its id alone
 * (`{ documentId }` or `{ extensions: { persistedQuery } }`, no `query`).
 * graphql-ws refuses a subscribe message whose `query` is not a string
 * before any hook runs (closing the socket with 4400), so such a message
 * gets an empty `query` before graphql-ws reads it; `resolveWsDocument` then
 * runs the document the id names. Must be called before graphql-ws's
 * `useServer` on the same server: its message listener is added first.
 */
export function acceptPersistedIdsOnly(wsServer: {
  on(event: "connection", listener: (socket: MessageSource) => void): unknown;
}): void {
  wsServer.on("connection", (socket) => {
    const on = socket.on.bind(socket);
    socket.on = ((event: string, listener: (...args: unknown[]) => void) =>
      event === "message"
        ? on(event, (data: unknown, ...rest: unknown[]) => listener(withEmptyQuery(data), ...rest))
        : on(event, listener)) as MessageSource["on"];
  });
}

/** The part of a `ws` socket `acceptPersistedIdsOnly` needs. */
interface MessageSource {
  on(event: string, listener: (...args: unknown[]) => void): unknown;
}

/** A subscribe message naming a persisted operation without `query`, given `query: ""`; others as they came. */
function withEmptyQuery(data: unknown): unknown {
  const text = String(data);
  if (!text.includes('"subscribe"') || text.includes('"query"')) return data;
  let message: { type?: unknown; payload?: Record<string, unknown> | null };
  try {
    message = JSON.parse(text);
  } catch {
    // Not JSON: graphql-ws answers it (close 4400), the same as before.
    return data;
  }
  const payload = message.payload;
  if (message.type !== "subscribe" || typeof payload !== "object" || payload === null) return data;
  if (persistedOperationId(payload as Parameters<typeof persistedOperationId>[0]) === null) return data;
  return JSON.stringify({ ...message, payload: { ...payload, query: "" } });
}
