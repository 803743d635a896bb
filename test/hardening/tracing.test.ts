/**
 * OpenTelemetry traces (src/server/tracing.ts): with OTEL_EXPORTER_OTLP_ENDPOINT
 * set, a mutation's request span, its operation span and its ledger
 * transaction span reach an OTLP/HTTP receiver as one trace, the
 * transaction a descendant of the operation. Without the variable none of
 * the OpenTelemetry code is loaded.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ReserveGenerationDocument } from "../../src/generated/graphql/graphql.ts";
import { sourceOf } from "../support/documents.ts";
import { TEST_SECRET, testDatabaseUrl } from "../support/env.ts";
import { createAccount, grant } from "../support/fixtures.ts";
import { startServer, type TestServer, unique } from "../support/harness.ts";

interface ReceivedSpan {
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId: string;
  readonly name: string;
  readonly kind: number;
}

/** A real OTLP/HTTP receiver: collects the spans of every JSON export POSTed to /v1/traces. */
async function startReceiver(): Promise<{
  server: Server;
  url: string;
  spans: ReceivedSpan[];
  bodies: string[];
}> {
  const spans: ReceivedSpan[] = [];
  const bodies: string[] = [];
  const server = createServer((req, res) => {
    let body = "";
    req.setEncoding("utf8").on("data", (chunk: string) => {
      body += chunk;
    });
    req.on("end", () => {
      if (req.method !== "POST" || req.url !== "/v1/traces") {
        res.writeHead(404).end();
        return;
      }
      bodies.push(`${req.headers["content-type"]}`);
      const exported = JSON.parse(body) as {
        resourceSpans: { scopeSpans: { spans: ReceivedSpan[] }[] }[];
      };
      for (const resource of exported.resourceSpans)
        for (const scope of resource.scopeSpans) spans.push(...scope.spans);
      res.writeHead(200, { "content-type": "application/json" }).end("{}");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return { server, url: `http://127.0.0.1:${port}`, spans, bodies };
}

describe("traces over OTLP/HTTP", () => {
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  let server: TestServer;
  let service: string;
  let accountId: string;
  const scheduleDelay = process.env.OTEL_BSP_SCHEDULE_DELAY;

  beforeAll(async () => {
    receiver = await startReceiver();
    // The batch processor reads its schedule from the environment: export within 50 ms, not 5 s.
    process.env.OTEL_BSP_SCHEDULE_DELAY = "50";
    server = await startServer({ reaperEnabled: false, otelExporterOtlpEndpoint: `${receiver.url}/` });
    service = await server.token(unique("tracing"), "service");
    accountId = (await createAccount(server, service)).id;
    await grant(server, service, accountId, 100);
  });
  afterAll(async () => {
    if (scheduleDelay === undefined) delete process.env.OTEL_BSP_SCHEDULE_DELAY;
    else process.env.OTEL_BSP_SCHEDULE_DELAY = scheduleDelay;
    await server?.close();
    await new Promise((resolve) => receiver?.server.close(resolve));
  });

  /** POSTs a reserve with extra headers; returns its generation id. */
  async function reserve(headers: Record<string, string> = {}): Promise<void> {
    const response = await fetch(server.url, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${service}`, ...headers },
      body: JSON.stringify({
        query: sourceOf(ReserveGenerationDocument),
        variables: {
          input: { idempotencyKey: unique("reserve"), accountId, feature: "Traced", unitCost: 1 },
        },
      }),
    });
    const body = (await response.json()) as { data?: { reserveGeneration: { __typename: string } } };
    expect(body.data?.reserveGeneration.__typename).toBe("ReserveGenerationSuccess");
  }

  /** Waits for a trace holding the three spans; returns them. */
  async function traceOf(traceId?: string) {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const operations = receiver.spans.filter(
        (span) =>
          span.name === "mutation.ReserveGeneration" && (traceId === undefined || span.traceId === traceId),
      );
      for (const operation of operations) {
        const inTrace = receiver.spans.filter((span) => span.traceId === operation.traceId);
        const byId = new Map(inTrace.map((span) => [span.spanId, span]));
        const ancestors = (span: ReceivedSpan) => {
          const chain: string[] = [];
          for (let at = byId.get(span.parentSpanId); at !== undefined; at = byId.get(at.parentSpanId))
            chain.push(at.spanId);
          return chain;
        };
        const transaction = inTrace.find(
          (span) => span.name === "ledger.transaction" && ancestors(span).includes(operation.spanId),
        );
        const request = byId.get(operation.parentSpanId);
        if (transaction !== undefined && request !== undefined) return { request, operation, transaction };
      }
      if (Date.now() > deadline)
        throw new Error(`no complete trace; spans: ${JSON.stringify(receiver.spans.map((s) => s.name))}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  it("exports request → operation → database transaction as one trace", async () => {
    await reserve();
    const { request, operation, transaction } = await traceOf();
    expect(request.name).toBe("POST /graphql");
    expect(request.kind).toBe(2); // SERVER
    expect(request.parentSpanId ?? "").toBe("");
    expect(operation.traceId).toBe(request.traceId);
    expect(transaction.traceId).toBe(request.traceId);
    expect(transaction.kind).toBe(3); // CLIENT
    expect(receiver.bodies.every((type) => type.startsWith("application/json"))).toBe(true);
  });

  it("continues the caller's trace from a traceparent header", async () => {
    const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
    const parentId = "00f067aa0ba902b7";
    await reserve({ traceparent: `00-${traceId}-${parentId}-01` });
    const { request, transaction } = await traceOf(traceId);
    expect(request.parentSpanId).toBe(parentId);
    expect(transaction.traceId).toBe(traceId);
  });
});

describe("without OTEL_EXPORTER_OTLP_ENDPOINT", () => {
  const dir = mkdtempSync(join(tmpdir(), "creditbook-tracing-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /**
   * Starts the service in a child process whose module loader writes every
   * module it loads to a file, serves one request, and returns the modules
   * whose URL names OpenTelemetry or the tracing file.
   */
  async function tracingModulesLoaded(extraEnv: Record<string, string>): Promise<string[]> {
    const loadedFile = join(dir, `loaded-${unique("run")}.txt`);
    writeFileSync(loadedFile, "");
    const hooks = `
      import { appendFileSync } from "node:fs";
      export async function resolve(specifier, context, next) {
        const resolved = await next(specifier, context);
        appendFileSync(${JSON.stringify(loadedFile)}, resolved.url + "\\n");
        return resolved;
      }`;
    const register = `import { register } from "node:module"; register("data:text/javascript,${encodeURIComponent(hooks)}");`;
    const script = `
      const { loadConfig } = await import("./src/server/config.ts");
      const { createApp } = await import("./src/server/app.ts");
      const app = await createApp({ ...loadConfig(), port: 0, host: "127.0.0.1", databasePoolSizeMax: 2 });
      await app.listen();
      await fetch(app.url(), { method: "POST", headers: { "content-type": "application/json" }, body: '{"query":"{ __typename }"}' });
      await app.close();`;
    await promisify(execFile)(
      process.execPath,
      [
        "--import",
        `data:text/javascript,${encodeURIComponent(register)}`,
        "--import",
        "tsx",
        "--input-type=module",
        "-e",
        script,
      ],
      {
        cwd: new URL("../..", import.meta.url).pathname,
        env: {
          PATH: process.env.PATH,
          DATABASE_URL: testDatabaseUrl(),
          AUTH_JWT_SECRET: TEST_SECRET,
          LOG_LEVEL: "silent",
          REAPER_ENABLED: "false",
          ...extraEnv,
        },
        // Each start compiles the sources with tsx: seconds alone, much longer on a loaded machine.
        timeout: 120_000,
      },
    );
    return readFileSync(loadedFile, "utf8")
      .split("\n")
      .filter((url) =>
        /@opentelemetry\/(sdk|exporter)|@envelop\/opentelemetry|server\/tracing\.ts/.test(url),
      );
  }

  it("loads no OpenTelemetry SDK, exporter or plugin (and does with it)", async () => {
    expect(await tracingModulesLoaded({})).toEqual([]);
    // The probe sees them when tracing is on: an empty list above is not the probe missing them.
    const loaded = await tracingModulesLoaded({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:9" });
    expect(loaded.some((url) => url.includes("server/tracing.ts"))).toBe(true);
    expect(loaded.some((url) => url.includes("@envelop/opentelemetry"))).toBe(true);
  }, 250_000);
});
