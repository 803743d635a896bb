import { EnvelopArmorPlugin } from "@escape.tech/graphql-armor";
import { GraphQLError, Kind, type OperationDefinitionNode, type ValidationContext } from "graphql";
import { createGraphQLError, type Plugin } from "graphql-yoga";
import type { Context } from "../schema/context.ts";
import type { Logger } from "./log.ts";
import { type Metrics, operationLabel } from "./metrics.ts";

/** Deepest query accepted (SPEC §5). */
export const QUERY_DEPTH_MAX = 12;
/** Most aliases in one document. */
export const ALIASES_MAX = 30;
/** Most tokens in one document (a generous real query has a few hundred). */
export const TOKENS_MAX = 3_000;
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
 */
export function limitsPlugin(): Plugin {
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
    blockFieldSuggestion: { enabled: true },
  }) as Plugin;
}

/**
 * A token bucket per principal for mutations: `ratePerSecond` sustained,
 * bursts of `burst`. A refused mutation never reaches a resolver, so nothing
 * is written.
 */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly ratePerSecond: number,
    private readonly burst: number,
  ) {}

  take(principal: string, now = Date.now()): boolean {
    const bucket = this.buckets.get(principal) ?? { tokens: this.burst, at: now };
    bucket.tokens = Math.min(this.burst, bucket.tokens + ((now - bucket.at) / 1000) * this.ratePerSecond);
    bucket.at = now;
    this.buckets.set(principal, bucket);
    if (this.buckets.size > 100_000) this.buckets.clear();
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }
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
 * Per-operation logging and metrics, and the mutation rate limit: one log
 * line per operation with request id, principal, operation name, duration and
 * outcome (never tokens or variables). A rate-limited mutation gets its line
 * and its count too (outcome RATE_LIMITED), so refusals show in both.
 */
export function observabilityPlugin(
  log: Logger,
  metrics: Metrics,
  limiter: RateLimiter | null,
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
      if (operation?.operation === "mutation" && limiter !== null && context.principal !== null) {
        if (!limiter.take(context.principal.sub)) {
          metrics.rateLimited.inc();
          for (const field of fields) metrics.operations.inc({ field, outcome: "RATE_LIMITED" });
          logOperation(1, "RATE_LIMITED");
          setResultAndStopExecution({
            errors: [
              new GraphQLError("Too many mutations: slow down and retry shortly (nothing was written)", {
                extensions: { code: "RATE_LIMITED", http: { status: 429 } },
              }),
            ],
          });
          return;
        }
      }
      return {
        onExecuteDone({ result }) {
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
    },
  };
}
