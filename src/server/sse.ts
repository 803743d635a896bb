import { type ExecutionArgs, type ExecutionResult, type GraphQLError, getOperationAST } from "graphql";
import type { OperationResult, RequestParams, Response as SseResponse } from "graphql-sse";
import { createHandler } from "graphql-sse/lib/use/fetch";
import type { Plugin, YogaServerInstance } from "graphql-yoga";
import type { Context } from "../schema/context.ts";

/** Where graphql-sse's protocol is served, in both of its modes (yoga's own SSE on /graphql is distinct only). */
export const SSE_ENDPOINT = "/graphql/stream";

/** The document text a request names (persisted id or raw text, by the server's rules), or why not. */
export type ResolveDocument = (params: RequestParams, context: Context) => string | GraphQLError;

/**
 * GraphQL over SSE by graphql-sse's protocol on SSE_ENDPOINT: distinct
 * connections (one stream per operation) and a single connection (a stream
 * reserved with PUT, operations POSTed with its token). Operations run
 * through yoga's envelop, so authentication, limits, logging and the
 * shutdown drain apply as on every other transport, and documents follow
 * the persisted-operations rules of graphql-ws.
 *
 * Not `@graphql-yoga/plugin-graphql-sse` itself: it hands graphql-sse an
 * errors-only result (a validation error, a refused subscription), which
 * graphql-sse takes for execution arguments and answers "Unable to detect
 * operation AST"; and it runs any raw document, even when only persisted
 * operations are accepted.
 */
export function graphqlSsePlugin(resolveDocument: ResolveDocument): Plugin {
  const serverContexts = new WeakMap<Request, object>();
  let handler: ((request: Request) => Promise<Response>) | null = null;
  return {
    onYogaInit({ yoga }) {
      const server = yoga as unknown as YogaServerInstance<object, Context>;
      handler = createHandler(
        {
          onSubscribe: (req, params) =>
            runOperation(
              server.getEnveloped({ ...serverContexts.get(req.raw), request: req.raw, params }),
              params,
              resolveDocument,
            ),
        },
        server.fetchAPI,
      );
    },
    onRequest({ request, url, endResponse, serverContext }) {
      if (url.pathname !== SSE_ENDPOINT || handler === null) return;
      serverContexts.set(request, serverContext);
      return handler(request).then(endResponse);
    },
  };
}

type Enveloped = ReturnType<YogaServerInstance<object, Context>["getEnveloped"]>;

/** One graphql-sse operation through yoga's envelop: context (authentication), document, validation, execution. */
async function runOperation(
  enveloped: Enveloped,
  params: RequestParams,
  resolveDocument: ResolveDocument,
): Promise<OperationResult | SseResponse> {
  let contextValue: Context;
  try {
    contextValue = (await enveloped.contextFactory()) as Context;
  } catch (error) {
    if (!isGraphQLError(error)) throw error;
    return refusal(error);
  }
  const source = resolveDocument(params, contextValue);
  if (typeof source !== "string") return once({ errors: [source] });
  let document: ReturnType<Enveloped["parse"]>;
  try {
    document = enveloped.parse(source);
  } catch (error) {
    if (isGraphQLError(error)) return once({ errors: [error] });
    throw error;
  }
  const errors = enveloped.validate(enveloped.schema, document);
  if (errors.length > 0) return once({ errors });
  const args: ExecutionArgs = {
    schema: enveloped.schema,
    document,
    contextValue,
    variableValues: params.variables,
    operationName: params.operationName,
  };
  const isSubscription = getOperationAST(document, params.operationName)?.operation === "subscription";
  const result = (await (isSubscription ? enveloped.subscribe(args) : enveloped.execute(args))) as
    | ExecutionResult
    | AsyncIterable<ExecutionResult>;
  // graphql-sse recognises a single result only by its `data` key; one without (errors only) goes as a stream of one.
  return (isAsyncIterable(result) || "data" in result ? result : once(result)) as OperationResult;
}

/**
 * A refused request (a bad token) answered with the same status and headers
 * as over plain HTTP (401, WWW-Authenticate). A [body, init] pair is
 * graphql-sse's "respond with this".
 */
function refusal(error: GraphQLError): SseResponse {
  const http = (error.extensions?.http ?? {}) as { status?: number; headers?: Record<string, string> };
  return [
    JSON.stringify({ errors: [error.toJSON()] }),
    {
      status: http.status ?? 400,
      statusText: http.status === 401 ? "Unauthorized" : "Bad Request",
      headers: { "content-type": "application/json; charset=utf-8", ...http.headers },
    },
  ];
}

/** A result as a stream of one, which graphql-sse sends as `next` then `complete`. */
function once(result: ExecutionResult): OperationResult {
  return (async function* () {
    yield result;
  })();
}

/** Not `instanceof`: graphql may be loaded twice (see persisted.ts, resolveWsDocument). */
function isGraphQLError(error: unknown): error is GraphQLError {
  return error instanceof Error && error.name === "GraphQLError";
}

function isAsyncIterable(value: unknown): value is AsyncIterable<unknown> {
  return typeof value === "object" && value !== null && Symbol.asyncIterator in value;
}
