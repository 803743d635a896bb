/**
 * OpenTelemetry traces: a server span per HTTP request, a span per GraphQL
 * operation (envelop's plugin) and a span per ledger transaction, exported
 * over OTLP/HTTP (JSON). app.ts imports this file only when
 * OTEL_EXPORTER_OTLP_ENDPOINT is set: without it none of the SDK is loaded
 * and the request path pays nothing.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { useOpenTelemetry } from "@envelop/opentelemetry";
import {
  context,
  DiagLogLevel,
  diag,
  propagation,
  SpanKind,
  SpanStatusCode,
  trace,
} from "@opentelemetry/api";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { node, resources } from "@opentelemetry/sdk-node";
import { BatchSpanProcessor } from "@opentelemetry/sdk-trace-base";
import type { Plugin } from "graphql-yoga";
import type { TransactionObserver } from "../domain/executor.ts";

/** What the server wires in when tracing is on. */
export interface Tracing {
  /** envelop's OpenTelemetry plugin: one span per GraphQL operation, a child of the request's span. */
  readonly plugin: Plugin;
  /**
   * Runs one HTTP request's handling inside a server span, which continues
   * the caller's trace when it sends a `traceparent` header and ends when
   * the response is closed.
   */
  request<T>(req: IncomingMessage, res: ServerResponse, handle: () => Promise<T>): Promise<T>;
  /** A span per ledger transaction attempt, a child of the operation whose arrival started it. */
  readonly aroundTransaction: TransactionObserver;
  /** Exports the spans still buffered, then stops. */
  close(): Promise<void>;
}

export interface TracingOptions {
  /** OTEL_EXPORTER_OTLP_ENDPOINT: the collector's base URL; spans go to `<endpoint>/v1/traces`. */
  readonly endpoint: string;
  readonly serviceName: string;
  /** Whether the ledger runs on embedded PGlite (a span attribute). */
  readonly embedded: boolean;
  /** Where the SDK's own problems go (a collector that cannot be reached, spans dropped). */
  readonly warn: (message: string) => void;
}

/**
 * Starts the tracer provider. It is registered globally because context
 * propagation needs the global AsyncLocalStorage context manager: the
 * operation span must be the active span while resolvers run, so the
 * ledger's transaction span finds its parent. The batch processor keeps
 * export off the request path; OTEL_BSP_* variables tune it.
 */
export function startTracing(options: TracingOptions): Tracing {
  // The SDK reports failed exports through `diag`, silent by default: an unreachable collector must show.
  const report = (message: string, ...args: unknown[]) =>
    options.warn(
      [message, ...args.map((arg) => (arg instanceof Error ? arg.message : String(arg)))].join(" "),
    );
  diag.setLogger(
    { error: report, warn: report, info: () => {}, debug: () => {}, verbose: () => {} },
    DiagLogLevel.WARN,
  );
  const provider = new node.NodeTracerProvider({
    resource: resources.resourceFromAttributes({ "service.name": options.serviceName }),
    spanProcessors: [
      new BatchSpanProcessor(
        new OTLPTraceExporter({ url: `${options.endpoint.replace(/\/+$/, "")}/v1/traces` }),
      ),
    ],
  });
  provider.register();
  const tracer = provider.getTracer(options.serviceName);
  // Never the variables or the result: they may hold a customer's metadata.
  const plugin = useOpenTelemetry(
    { resolvers: false, variables: false, result: false },
    provider,
    SpanKind.INTERNAL,
    {},
    options.serviceName,
  ) as Plugin;

  return {
    plugin,
    request(req, res, handle) {
      const parent = propagation.extract(context.active(), req.headers);
      const path = (req.url ?? "/").split("?")[0] ?? "/";
      const span = tracer.startSpan(
        `${req.method ?? "GET"} ${path}`,
        {
          kind: SpanKind.SERVER,
          attributes: { "http.request.method": req.method ?? "GET", "url.path": path },
        },
        parent,
      );
      res.once("close", () => {
        span.setAttribute("http.response.status_code", res.statusCode);
        if (res.statusCode >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
        span.end();
      });
      return context.with(trace.setSpan(parent, span), handle);
    },
    aroundTransaction: (transaction, shape) =>
      tracer.startActiveSpan(
        "ledger.transaction",
        {
          kind: SpanKind.CLIENT,
          attributes: {
            "db.system.name": "postgresql",
            "creditbook.database": options.embedded ? "embedded" : "postgres",
            "creditbook.transaction.accounts": shape.accounts,
            "creditbook.transaction.operations": shape.operations,
          },
        },
        async (span) => {
          try {
            return await transaction();
          } catch (error) {
            span.recordException(error as Error);
            span.setStatus({ code: SpanStatusCode.ERROR, message: (error as Error).message });
            throw error;
          } finally {
            span.end();
          }
        },
      ),
    async close() {
      try {
        await provider.shutdown();
      } catch (error) {
        // Spans the collector could not take are lost, not the shutdown: the service's work is done.
        options.warn(`could not export the last spans: ${(error as Error).message}`);
      }
    },
  };
}
