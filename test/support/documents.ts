/**
 * Typed GraphQL calls for tests, with the documents codegen generates from
 * operations/*.graphql (src/generated/graphql): the variables and the answer
 * are typed by the document, and a test can send the same operation as text
 * or as a persisted operation (by hash), the way partners do.
 */
import type { ResultOf, TypedDocumentNode, VariablesOf } from "@graphql-typed-document-node/core";
import { type DocumentNode, print } from "graphql";
import { dataOf, type GraphQLResponse, type TestServer } from "./harness.ts";

/** How a document goes on the wire. */
export type SendAs =
  /** The printed document in `query` (what a client without persisted operations sends). */
  | "text"
  /** `documentId: "sha256:<hex>"` (GraphQL over HTTP, codegen's client preset). */
  | "documentId"
  /** `documentId: "<hex>"`, the bare hash. */
  | "bareDocumentId"
  /** `extensions.persistedQuery.sha256Hash` (Apollo's persisted queries). */
  | "persistedQuery";

const printed = new WeakMap<DocumentNode, string>();

/** The document as text (printed once per document). */
export function sourceOf(document: DocumentNode): string {
  let source = printed.get(document);
  if (source === undefined) {
    source = print(document);
    printed.set(document, source);
  }
  return source;
}

/** The `sha256:<hex>` hash codegen embedded in a generated document. */
export function hashOf(document: DocumentNode): string {
  const hash = (document as { __meta__?: { hash?: unknown } }).__meta__?.hash;
  if (typeof hash !== "string" || !hash.startsWith("sha256:")) {
    throw new Error("the document has no embedded sha256 hash: is it one of src/generated/graphql?");
  }
  return hash;
}

/** The name of a document's (single) operation. */
export function operationNameOf(document: DocumentNode): string | undefined {
  for (const definition of document.definitions) {
    if (definition.kind === "OperationDefinition") return definition.name?.value;
  }
  return undefined;
}

/**
 * A GraphQL request body (HTTP POST or graphql-ws subscribe payload) for a
 * document sent `as` text or persisted. `variables` is `unknown` on purpose:
 * tests also send values the document's types forbid.
 */
export function requestOf(
  document: DocumentNode,
  variables: unknown,
  as: SendAs = "text",
): {
  query?: string;
  documentId?: string;
  operationName?: string;
  variables?: unknown;
  extensions?: Record<string, unknown>;
} {
  const operationName = operationNameOf(document);
  switch (as) {
    case "text":
      return { query: sourceOf(document), operationName, variables };
    case "documentId":
      return { documentId: hashOf(document), operationName, variables };
    case "bareDocumentId":
      return { documentId: hashOf(document).slice("sha256:".length), operationName, variables };
    case "persistedQuery":
      return {
        operationName,
        variables,
        extensions: { persistedQuery: { version: 1, sha256Hash: hashOf(document).slice("sha256:".length) } },
      };
  }
}

/** Sends a generated document with its typed variables; returns the typed response. */
export async function gqlDoc<D extends TypedDocumentNode<unknown, never>>(
  server: TestServer,
  token: string | null,
  document: D,
  variables: VariablesOf<D>,
  as: SendAs = "text",
): Promise<GraphQLResponse<ResultOf<D>>> {
  const response = await server.post(token, requestOf(document, variables, as));
  return (await response.json()) as GraphQLResponse<ResultOf<D>>;
}

/** Like `gqlDoc`, failing on GraphQL errors; returns the typed `data`. */
export async function gqlData<D extends TypedDocumentNode<unknown, never>>(
  server: TestServer,
  token: string | null,
  document: D,
  variables: VariablesOf<D>,
  as: SendAs = "text",
): Promise<ResultOf<D>> {
  return dataOf(await gqlDoc(server, token, document, variables, as));
}

/**
 * Narrows a mutation's result union to the member named `typename`, failing
 * with the whole value when it is another member (or missing).
 */
export function expectTypename<T extends { __typename?: string }, N extends NonNullable<T["__typename"]>>(
  value: T | null | undefined,
  typename: N,
): Extract<T, { __typename?: N }> {
  if (value == null || value.__typename !== typename) {
    throw new Error(`expected ${typename}, got ${JSON.stringify(value)}`);
  }
  return value as Extract<T, { __typename?: N }>;
}
