import { EnvelopArmorPlugin } from "@escape.tech/graphql-armor";
import {
  type FieldNode,
  type FragmentDefinitionNode,
  GraphQLError,
  Kind,
  type ObjectValueNode,
  type OperationDefinitionNode,
  type SelectionNode,
  type ValidationContext,
  type ValueNode,
} from "graphql";
import { createGraphQLError, type Plugin } from "graphql-yoga";
import type { Logger } from "../log.ts";
import type { Context } from "../schema/context.ts";
import { type Metrics, operationLabel } from "./metrics.ts";
import type { MutationRateLimit, RateDecision } from "./rate-limit.ts";

/** Deepest query accepted (SPEC §5). */
export const QUERY_DEPTH_MAX = 12;
/** Most aliases in one document. */
export const ALIASES_MAX = 30;
/**
 * Most tokens in one document: the largest operation in operations/ has 111,
 * the largest in the tests 98, GraphiQL's introspection query 183. A parsed
 * token costs about 500 bytes of heap (see document-cache.ts), so this also
 * bounds what one document can hold.
 */
export const TOKENS_MAX = 1_000;
/** Highest estimated cost of one document (graphql-armor's cost model). */
export const COST_MAX = 10_000;
/** Most directives in one document. */
export const DIRECTIVES_MAX = 30;
/** Largest request body accepted, in bytes (SPEC §5: 100 KB). */
export const REQUEST_BODY_BYTES_MAX = 100 * 1024;

/**
 * Static limits on every document, from graphql-armor; each rejection is a
 * GraphQL validation error. By default armor throws its error out of the
 * validation rule, which skips yoga's handling of validation errors: the
 * client got HTTP 200, no `extensions.code`, and a message starting with
 * "Syntax Error:" for a document that parsed fine. Reported through the
 * validation context instead, a rejection is an ordinary validation error:
 * HTTP 400, code GRAPHQL_VALIDATION_FAILED, a message naming the limit.
 * `fieldSuggestions` keeps graphql-js's "Did you mean …" in validation errors.
 */
export function limitsPlugin(options: { fieldSuggestions?: boolean } = {}): Plugin {
  const asValidationError = {
    propagateOnRejection: false,
    onReject: [
      (context: ValidationContext | null, error: GraphQLError) => {
        // createGraphQLError: graphql-ws accepts validation errors only from its own copy of graphql.
        const rejection = createGraphQLError(error.message.replace(/^Syntax Error: /, ""), {
          nodes: error.nodes,
        });
        if (context === null) throw rejection;
        context.reportError(rejection);
      },
    ],
  };
  return EnvelopArmorPlugin({
    maxDepth: { n: QUERY_DEPTH_MAX, ignoreIntrospection: true, ...asValidationError },
    maxAliases: { n: ALIASES_MAX, ...asValidationError },
    // The token limit applies while parsing: its rejection is a parse error (GRAPHQL_PARSE_FAILED).
    maxTokens: { n: TOKENS_MAX },
    costLimit: { maxCost: COST_MAX, ...asValidationError },
    maxDirectives: { n: DIRECTIVES_MAX, ...asValidationError },
    // "Did you mean …" helps developers and maps the schema for anyone else: off unless asked for.
    blockFieldSuggestion: { enabled: options.fieldSuggestions !== true },
  }) as Plugin;
}

/** The operation a request runs: the named one, or the first. */
export function operationOf(
  document: { definitions: readonly { kind: string }[] },
  name: string | null | undefined,
) {
  return document.definitions.find(
    (definition): definition is OperationDefinitionNode =>
      definition.kind === Kind.OPERATION_DEFINITION &&
      (name == null || (definition as OperationDefinitionNode).name?.value === name),
  );
}

/**
 * Mutation fields that run one mutation per item of `input.items` (SPEC §8.7):
 * for the rate limit, a bulk call of N items is N mutations, as N single calls
 * would be, so bulk is no way around the limit.
 */
const BULK_MUTATIONS: ReadonlySet<string> = new Set(["reserveGenerations", "settleGenerations"]);

/** How many items a bulk field's `input.items` holds, from the document or its variables; at least 1. */
function bulkItemCount(field: FieldNode, variables: Readonly<Record<string, unknown>>): number {
  const resolved = (node: ValueNode | undefined): unknown =>
    node?.kind === Kind.VARIABLE ? variables[node.name.value] : node;
  const input = resolved(field.arguments?.find((arg) => arg.name.value === "input")?.value);
  let items: unknown;
  if ((input as ValueNode | undefined)?.kind === Kind.OBJECT) {
    const node = (input as ObjectValueNode).fields.find((f) => f.name.value === "items")?.value;
    items = node?.kind === Kind.LIST ? node.values : resolved(node);
  } else if (typeof input === "object" && input !== null) {
    items = (input as { items?: unknown }).items;
  }
  return Array.isArray(items) ? Math.max(1, items.length) : 1;
}

/**
 * How many mutations an operation runs: its root fields, those under root
 * fragments and inline fragments included, each alias counted, a bulk field
 * counted once per item. A fragment spread twice at the root runs once, as
 * in execution.
 */
export function mutationFieldCount(
  document: { definitions: readonly { kind: string }[] },
  operation: OperationDefinitionNode,
  variables: Readonly<Record<string, unknown>> = {},
): number {
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const definition of document.definitions) {
    if (definition.kind === Kind.FRAGMENT_DEFINITION) {
      const fragment = definition as FragmentDefinitionNode;
      fragments.set(fragment.name.value, fragment);
    }
  }
  const keys = new Map<string, number>();
  const spread = new Set<string>();
  const collect = (selections: readonly SelectionNode[]) => {
    for (const selection of selections) {
      if (selection.kind === Kind.FIELD) {
        const key = selection.alias?.value ?? selection.name.value;
        const weight = BULK_MUTATIONS.has(selection.name.value) ? bulkItemCount(selection, variables) : 1;
        keys.set(key, Math.max(keys.get(key) ?? 0, weight));
      } else if (selection.kind === Kind.INLINE_FRAGMENT) collect(selection.selectionSet.selections);
      else if (!spread.has(selection.name.value)) {
        spread.add(selection.name.value);
        collect(fragments.get(selection.name.value)?.selectionSet.selections ?? []);
      }
    }
  };
  collect(operation.selectionSet.selections);
  // Fields of one response key merge into one execution; `__typename` writes nothing.
  keys.delete("__typename");
  let count = 0;
  for (const weight of keys.values()) count += weight;
  return Math.max(1, count);
}

/**
 * Per-operation logging and metrics, and the mutation rate limit: one log
 * line per operation with request id, principal, operation name, duration and
 * outcome (never tokens or variables). A rate-limited mutation gets its line
 * and its count too (outcome RATE_LIMITED), so refusals show in both.
 */
export function observabilityPlugin(
  log: Logger,
  metrics: Metrics,
  limiter: MutationRateLimit | null,
): Plugin<Context> {
  return {
    onExecute({ args, setResultAndStopExecution }) {
      const context = args.contextValue as Context;
      const operation = operationOf(args.document, args.operationName);
      // Root fields by name (the metric label) and by response key (an alias, if the client gave one).
      const roots =
        operation?.selectionSet.selections.flatMap((selection) =>
          selection.kind === Kind.FIELD
            ? [{ name: selection.name.value, key: selection.alias?.value ?? selection.name.value }]
            : [],
        ) ?? [];
      const fields = roots.map((root) => root.name);
      const started = performance.now();
      const logOperation = (errors: number, outcome?: string) =>
        log.info("operation", {
          requestId: context.requestId,
          principal: context.principal?.sub ?? null,
          role: context.principal?.role ?? null,
          operationName: args.operationName ?? operation?.name?.value ?? null,
          operation: operation?.operation ?? null,
          fields,
          durationMs: Math.round((performance.now() - started) * 100) / 100,
          errors,
          ...(outcome === undefined ? {} : { outcome }),
        });
      const hooks = {
        onExecuteDone({ result }: { result: unknown }) {
          if (typeof result !== "object" || result === null) return;
          if (!("data" in result) && !("errors" in result)) return;
          const single = result as {
            data?: Record<string, unknown> | null;
            errors?: readonly GraphQLError[];
          };
          for (const root of roots) {
            const value = single.data?.[root.key] as
              | { __typename?: string; code?: string }
              | null
              | undefined;
            const outcome = value == null ? (single.errors?.length ? "error" : "ok") : (value.code ?? "ok");
            metrics.operations.inc({ field: root.name, outcome });
          }
          metrics.operationDuration.observe(
            { operation: operationLabel(args.schema, fields) },
            (performance.now() - started) / 1000,
          );
          logOperation(single.errors?.length ?? 0);
        },
      };
      if (
        operation?.operation !== "mutation" ||
        limiter === null ||
        context.principal === null ||
        !limiter.limits(context.principal)
      )
        return hooks;
      // Every root field is a mutation of its own (aliases included), so each counts. Only
      // mutations wait for the limiter: queries stay synchronous here.
      const mutations = mutationFieldCount(args.document, operation, args.variableValues ?? {});
      return limiter.take(context.principal, mutations).then((decision) => {
        if (decision.allowed) return hooks;
        metrics.rateLimited.inc();
        for (const field of fields) metrics.operations.inc({ field, outcome: "RATE_LIMITED" });
        logOperation(1, "RATE_LIMITED");
        setResultAndStopExecution({ errors: [rateLimitedError(decision, mutations)] });
        return undefined;
      });
    },
  };
}

/**
 * The RATE_LIMITED error: HTTP 429 (yoga turns `http.headers` into response
 * headers) with `Retry-After` in whole seconds until the window reopens.
 * Over graphql-ws it is an error on the operation and the socket stays open.
 * An operation larger than one window gets no Retry-After: retrying it as is
 * can never succeed.
 */
function rateLimitedError(
  decision: Exclude<RateDecision, { allowed: true }>,
  mutations: number,
): GraphQLError {
  const message = decision.tooLarge
    ? `This operation holds ${mutations} mutations and the rate limit lets at most ${decision.burstMax} through at once: split it (nothing was written)`
    : "Too many mutations: slow down and retry shortly (nothing was written)";
  const headers =
    decision.retryAfterSeconds === null
      ? {}
      : { headers: { "Retry-After": String(decision.retryAfterSeconds) } };
  return new GraphQLError(message, {
    extensions: { code: "RATE_LIMITED", http: { status: 429, ...headers } },
  });
}
