/**
 * A small GraphQL-over-HTTP client for the dashboard and the demo platform.
 * It sends operations by persisted hash and falls back to the document text
 * when the server does not resolve hashes (one without the persisted
 * operations plugin) or does not know this one. It uses only `fetch`, so it
 * runs in browsers and in Node.
 */
import type { TypedDocumentNode } from "@graphql-typed-document-node/core";
import manifest from "../../src/generated/graphql/persisted-documents.json";

/** An operation from the persisted manifest: its hash, and its text for servers that need it. */
export interface Operation<TData, TVariables> {
  readonly name: string;
  /** The sha256 hex of `text`, as in the manifest. */
  readonly hash: string;
  readonly text: string;
  /** Carries the result types; never set at run time. */
  readonly __types?: (variables: TVariables) => TData;
}

export interface GraphQLErrorPayload {
  readonly message: string;
  readonly extensions?: Readonly<Record<string, unknown>>;
}

export interface GraphQLResult<TData> {
  readonly data?: TData | null;
  readonly errors?: readonly GraphQLErrorPayload[];
}

/** The server refused the token (HTTP 401): a bad or expired token. */
export class UnauthorizedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UnauthorizedError";
  }
}

/** A request that failed as a whole (network, HTTP status, or GraphQL errors without data). */
export class RequestError extends Error {
  constructor(
    message: string,
    readonly errors: readonly GraphQLErrorPayload[] = [],
  ) {
    super(message);
    this.name = "RequestError";
  }
}

const documents = manifest as Readonly<Record<string, string>>;

/** A generated document (operations/*.graphql), sent by its persisted hash. */
export function persisted<TData, TVariables>(
  document: TypedDocumentNode<TData, TVariables>,
): Operation<TData, TVariables> {
  const key = (document as { __meta__?: { hash?: string } }).__meta__?.hash;
  const text = key === undefined ? undefined : documents[key];
  const definition = document.definitions.find((d) => d.kind === "OperationDefinition");
  const name = definition?.kind === "OperationDefinition" ? (definition.name?.value ?? "") : "";
  if (key === undefined || text === undefined) {
    throw new Error(
      `operation ${name || "(anonymous)"} is not in the persisted manifest: run npm run codegen`,
    );
  }
  return { name, hash: key.replace(/^sha256:/, ""), text };
}

/** Whether `errors` say the server's schema lacks `field` (a validation error). */
export function isMissingField(errors: readonly GraphQLErrorPayload[] | undefined, field: string): boolean {
  return (errors ?? []).some((error) => error.message.includes(`Cannot query field "${field}"`));
}

/** The persisted-query envelope both server forms accept (`extensions.persistedQuery`). */
export function persistedExtensions(hash: string): Record<string, unknown> {
  return { persistedQuery: { version: 1, sha256Hash: hash } };
}

export interface GraphQLClientOptions {
  /** The /graphql URL. */
  readonly url: string;
  /** The bearer token to send, read before each request; null sends none. */
  readonly token: () => string | null;
  /** Longest a request may take. @default 15_000 // 15 seconds */
  readonly timeoutMs?: number;
}

export class GraphQLClient {
  /** False once the server showed it does not resolve persisted ids, so later requests skip the try. */
  private persistedAccepted = true;

  constructor(private readonly options: GraphQLClientOptions) {}

  /**
   * Sends `operation`: by hash first, then by text when the server does not
   * know the hash. Returns data and errors as GraphQL gave them.
   * @throws UnauthorizedError on HTTP 401, RequestError when no GraphQL answer came.
   */
  async request<TData, TVariables>(
    operation: Operation<TData, TVariables>,
    variables: TVariables,
  ): Promise<GraphQLResult<TData>> {
    if (this.persistedAccepted) {
      const byHash = await this.post<TData>({
        operationName: operation.name,
        variables,
        extensions: persistedExtensions(operation.hash),
      });
      if (!needsText(byHash)) return byHash;
      // A server without the persisted-operations plugin answers "Must provide query string".
      if (!byHash.errors?.some((e) => e.extensions?.code === "PERSISTED_QUERY_NOT_FOUND")) {
        this.persistedAccepted = false;
      }
    }
    return this.post<TData>({ operationName: operation.name, query: operation.text, variables });
  }

  /** Like `request`, but returns `data` and throws RequestError on any GraphQL error. */
  async data<TData, TVariables>(
    operation: Operation<TData, TVariables>,
    variables: TVariables,
  ): Promise<TData> {
    const result = await this.request(operation, variables);
    if ((result.errors?.length ?? 0) > 0 || result.data == null) {
      const errors = result.errors ?? [];
      throw new RequestError(errors[0]?.message ?? `${operation.name} returned no data`, errors);
    }
    return result.data;
  }

  private async post<TData>(body: Record<string, unknown>): Promise<GraphQLResult<TData>> {
    const token = this.options.token();
    let response: Response;
    try {
      response = await fetch(this.options.url, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          accept: "application/graphql-response+json, application/json",
          ...(token === null ? {} : { authorization: `Bearer ${token}` }),
        },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(this.options.timeoutMs ?? 15_000),
      });
    } catch (error) {
      throw new RequestError(`Could not reach ${this.options.url}: ${(error as Error).message}`);
    }
    if (response.status === 401) throw new UnauthorizedError("The token was refused (bad or expired)");
    const text = await response.text();
    let parsed: GraphQLResult<TData>;
    try {
      parsed = JSON.parse(text) as GraphQLResult<TData>;
    } catch {
      throw new RequestError(`HTTP ${response.status} from ${this.options.url}: ${text.slice(0, 200)}`);
    }
    if (parsed.data === undefined && parsed.errors === undefined) {
      throw new RequestError(`HTTP ${response.status} from ${this.options.url} without a GraphQL result`);
    }
    return parsed;
  }
}

/** Whether a by-hash answer means "send the document text instead". */
function needsText(result: GraphQLResult<unknown>): boolean {
  if (result.data != null) return false;
  return (result.errors ?? []).some(
    (error) =>
      error.extensions?.code === "PERSISTED_QUERY_NOT_FOUND" ||
      /must provide query string/i.test(error.message),
  );
}
