import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { DocumentNode, ExecutionArgs } from "graphql";
import { GraphQLError } from "graphql";
import { useServer } from "graphql-ws/use/ws";
import { createYoga, type YogaServerInstance } from "graphql-yoga";
import { WebSocketServer } from "ws";
import type { Database } from "../db/database.ts";
import { openDatabase } from "../db/open.ts";
import { Access, type Principal } from "../domain/access.ts";
import { type EventBus, eventOf } from "../domain/events.ts";
import { Ledger } from "../domain/ledger.ts";
import { Reaper } from "../jobs/reaper.ts";
import { WebhookWorker } from "../jobs/webhook-delivery.ts";
import { createLogger, currentRequestId, inRequest, iterateInRequest, type Logger } from "../log.ts";
import type { Context } from "../schema/context.ts";
import { schema } from "../schema/index.ts";
import { atExpiry, CLOSE_FORBIDDEN, Realtime } from "../schema/live/realtime.ts";
import { createLoaders } from "../schema/loaders.ts";
import { AuthenticationError, resolveSecret, TokenService } from "./auth.ts";
import type { Config } from "./config.ts";
import { limitConnections, serverTimeouts } from "./connections.ts";
import { corsOption, corsVaryPlugin } from "./cors.ts";
import { credentialsOf } from "./credentials.ts";
import { handleDashboard } from "./dashboard.ts";
import { databaseFaultAnswer } from "./database-faults.ts";
import { documentCachePlugin } from "./document-cache.ts";
import { documentShapePlugin } from "./document-shape.ts";
import { InProcessEventBus, RedisEventBus } from "./events.ts";
import { handleLedgerExport } from "./export.ts";
import { renderLocalGraphiQL } from "./graphiql.ts";
import { limitsPlugin, observabilityPlugin, REQUEST_BODY_BYTES_MAX } from "./hardening.ts";
import { cacheControlPlugin } from "./http-cache.ts";
import { keepAlive } from "./keepalive.ts";
import { Metrics } from "./metrics.ts";
import { MetricsEndpoint } from "./metrics-endpoint.ts";
import {
  acceptPersistedIdsOnly,
  PersistedOperations,
  persistedOperationsPlugin,
  resolveWsDocument,
} from "./persisted.ts";
import { MutationRateLimit } from "./rate-limit.ts";
import { sharedEventsPlugin } from "./shared-events.ts";
import { Shutdown } from "./shutdown.ts";
import { graphqlSsePlugin } from "./sse.ts";
import { SubscriptionLimits } from "./subscription-limits.ts";
import type { Tracing } from "./tracing.ts";

/** Close code for a WebSocket whose token is missing, bad or expired. */
export const CLOSE_UNAUTHORIZED = 4401;

interface ServerContext {
  /** Set for WebSocket operations, verified at connect. */
  readonly principal?: Principal | null;
  readonly requestId?: string;
  /** Set for WebSocket operations: closes the socket with a code. */
  readonly closeTransport?: (code: number, reason: string) => void;
}

export interface App {
  readonly server: Server;
  readonly db: Database;
  readonly ledger: Ledger;
  readonly events: EventBus;
  readonly reaper: Reaper;
  readonly webhooks: WebhookWorker;
  readonly realtime: Realtime;
  readonly yoga: YogaServerInstance<ServerContext, Context>;
  readonly log: Logger;
  /** The URL of /graphql once listening. */
  url(): string;
  /** The loopback /metrics URL once listening with METRICS_PORT; null without it. */
  metricsUrl(): string | null;
  listen(): Promise<void>;
  /** Stops accepting, finishes in-flight work, closes sockets and pools. */
  close(): Promise<void>;
}

export interface AppOptions {
  /**
   * An open, migrated database to use instead of opening one from the
   * configuration; its owner closes it (app.close() leaves it open). Lets
   * several servers in one process share one embedded PGlite.
   */
  readonly database?: Database;
}

/** Builds the whole service from a validated configuration. */
export async function createApp(config: Config, options: AppOptions = {}): Promise<App> {
  const log = createLogger(config.logLevel, { service: "creditbook" });
  // With DATABASE_URL and only AUTH_JWKS_URL there is no shared secret: HS256 tokens are refused.
  const secret =
    config.authJwtSecret === undefined && config.databaseUrl !== undefined
      ? null
      : resolveSecret(config.authJwtSecret, config.dataDir, config.databaseUrl === undefined);
  const tokens = secret === null ? null : new TokenService(secret);
  const { db, applied } = options.database
    ? { db: options.database, applied: [] }
    : await openDatabase({
        databaseUrl: config.databaseUrl,
        dataDir: config.dataDir,
        poolSizeMax: config.databasePoolSizeMax,
      });
  if (applied.length > 0) log.info("migrations applied", { migrations: applied });
  const events: EventBus =
    config.redisUrl === undefined
      ? new InProcessEventBus()
      : new RedisEventBus(config.redisUrl, (message) => log.warn(message));
  const ledger = new Ledger(db, {
    idempotencyTtlHours: config.idempotencyTtlHours,
    // Reads need connections too: ledger transactions never take the whole pool.
    lanes: Math.max(1, Math.min(config.ledgerLanes, config.databasePoolSizeMax - 1)),
    onCommit: (batch) => {
      events.publish(eventOf(batch));
      metrics.committed(batch);
    },
    aroundTransaction: (transaction, shape) =>
      metrics.timeTransaction(
        () => (tracing === null ? transaction() : tracing.aroundTransaction(transaction, shape)),
        shape,
      ),
  });
  const realtime = new Realtime(db, events, log.child({ component: "realtime" }), {
    subscriberQueueMax: config.subscriberQueueMax,
    replayConcurrencyMax: config.replayConcurrencyMax,
  });
  const subscriptionLimits = new SubscriptionLimits({
    perConnectionMax: config.subscriptionsPerConnectionMax,
    perPrincipalMax: config.subscriptionsPerPrincipalMax,
  });
  const reaper = new Reaper(
    db,
    ledger.executor,
    {
      intervalMs: config.reaperIntervalMs,
      batchSizeMax: config.reaperBatchSizeMax,
      grantExpiryNoticeHours: config.grantExpiryNoticeHours,
    },
    log.child({ component: "reaper" }),
  );

  const webhooks = new WebhookWorker(
    db,
    {
      retryBaseMs: config.webhookRetryBaseMs,
      retentionDays: config.webhookRetentionDays,
      allowPrivate: config.webhookAllowPrivate,
    },
    log.child({ component: "webhooks" }),
  );

  const metrics: Metrics = new Metrics({ db, events, realtime, reaper, webhooks });
  const metricsEndpoint = new MetricsEndpoint(metrics, {
    token: config.metricsToken,
    port: config.metricsPort,
    embedded: config.databaseUrl === undefined,
  });
  // Loaded only when asked for: without an endpoint no OpenTelemetry code is imported.
  const tracing: Tracing | null =
    config.otelExporterOtlpEndpoint === undefined
      ? null
      : (await import("./tracing.ts")).startTracing({
          endpoint: config.otelExporterOtlpEndpoint,
          serviceName: "creditbook",
          embedded: config.databaseUrl === undefined,
          warn: (message) => log.warn("tracing", { problem: message }),
        });
  const persisted = PersistedOperations.load();
  const limiter = MutationRateLimit.create({
    userPerSecond: config.rateLimitPerSecond,
    servicePerSecond: config.rateLimitServicePerSecond,
    redisUrl: config.redisUrl,
  });

  const { apiKeys, revocations, credentials } = credentialsOf(config, db, secret, tokens, (message) =>
    log.warn(message),
  );
  const principalOf = (authorization: string | null | undefined): Promise<Principal | null> =>
    credentials.principalOf(authorization);
  /** Whether a request may send a raw document when only persisted operations are accepted. */
  const mayUseRawDocuments = async (request: Request): Promise<boolean> => {
    try {
      return (await principalOf(request.headers.get("authorization")))?.role === "admin";
    } catch {
      return false;
    }
  };

  const shutdown = new Shutdown();
  const yoga = createYoga<ServerContext, Context>({
    schema,
    graphqlEndpoint: "/graphql",
    graphiql: config.graphiql ? { subscriptionsProtocol: "WS" } : false,
    renderGraphiQL: renderLocalGraphiQL,
    cors: corsOption(config.corsOrigins),
    landingPage: false,
    logging: false,
    // One operation per request: batched requests are off (yoga's default), so limits apply per request.
    batching: false,
    // The body limit is enforced before yoga (see tooLarge): a Content-Length of at most
    // REQUEST_BODY_BYTES_MAX is required, and Node's HTTP parser reads no byte past it. Yoga's
    // own limit would pipe every body through a web TransformStream (7% of the server's CPU).
    maxRequestBodySize: false,
    // Replaced by documentCachePlugin: bounded by bytes, and only for documents that passed validation.
    parserAndValidationCache: false,
    plugins: [
      ...(tracing === null ? [] : [tracing.plugin]),
      shutdown.plugin(),
      cacheControlPlugin(),
      corsVaryPlugin(config.corsOrigins),
      // graphql-sse's protocol on /graphql/stream, both modes (yoga's own SSE on /graphql is distinct mode only).
      graphqlSsePlugin((params, context) =>
        resolveWsDocument(persisted, config.persistedOperations, context.principal?.role === "admin", params),
      ),
      // Subscribers of one account share each event's execution (see shared-events.ts).
      sharedEventsPlugin(),
      documentCachePlugin(),
      documentShapePlugin(),
      limitsPlugin({ fieldSuggestions: config.fieldSuggestions }),
      persistedOperationsPlugin(persisted, config.persistedOperations, mayUseRawDocuments),
      observabilityPlugin(log.child({ component: "graphql" }), metrics, limiter),
    ],
    maskedErrors: {
      maskError(error, message) {
        if (isDeliberateGraphQLError(error)) return error as GraphQLError;
        const original = (error as GraphQLError).originalError ?? error;
        // yoga gives maskError no context: the request id comes from the request's async scope.
        const requestId = (error as GraphQLError).extensions?.requestId ?? currentRequestId();
        const fault = databaseFaultAnswer(original, (error as GraphQLError).path, requestId);
        if (fault !== null) {
          // An outage, not a bug (see database-faults.ts for what the client is told).
          log.warn(fault.logMessage, { err: original, requestId, path: (error as GraphQLError).path });
          metrics.databaseUnavailable.inc();
          return fault.error;
        }
        log.error("unexpected error", { err: original, requestId, path: (error as GraphQLError).path });
        return new GraphQLError(message, {
          path: (error as GraphQLError).path,
          extensions: { code: "INTERNAL_SERVER_ERROR", requestId },
        });
      },
    },
    context: async ({ request, principal, requestId, closeTransport }): Promise<Context> => {
      let resolved: Principal | null;
      if (principal !== undefined) resolved = principal;
      else {
        try {
          resolved = await principalOf(request.headers.get("authorization"));
        } catch (error) {
          if (error instanceof AuthenticationError) {
            throw new GraphQLError(error.message, {
              extensions: {
                code: "UNAUTHENTICATED",
                http: { status: 401, headers: { "WWW-Authenticate": "Bearer" } },
              },
            });
          }
          throw error;
        }
      }
      return {
        requestId: requestId ?? request.headers.get("x-request-id") ?? randomUUID(),
        principal: resolved,
        access: new Access(resolved, db),
        db,
        prisma: db.prisma,
        ledger,
        events,
        realtime,
        loaders: createLoaders(db),
        webhookAllowPrivate: config.webhookAllowPrivate,
        apiKeys,
        revocations,
        closeTransport,
      };
    },
  });

  const server = createServer(serverTimeouts(config), async (req, res) => {
    if (connections.refuse(req, res)) return;
    const path = (req.url ?? "/").split("?")[0];
    if (path === "/healthz") {
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ status: "ok" }));
      return;
    }
    if (path === "/readyz") {
      if (shutdown.isDraining) {
        res.writeHead(503, { "content-type": "application/json" }).end('{"status":"shutting down"}');
        return;
      }
      const checks = await readiness(db, events, config.redisUrl !== undefined);
      const ok = Object.values(checks).every(Boolean);
      res
        .writeHead(ok ? 200 : 503, { "content-type": "application/json" })
        .end(JSON.stringify({ status: ok ? "ok" : "unavailable", checks }));
      return;
    }
    if (!shutdown.admit(req, res)) return;
    if (await metricsEndpoint.handle(req, res, path ?? "/")) return;
    if (await handleDashboard(req, res, { devLogin: config.databaseUrl === undefined ? tokens : null }))
      return;
    if (
      await handleLedgerExport(req, res, path ?? "/", {
        db,
        principalOf,
        log: log.child({ component: "export" }),
      })
    )
      return;
    if (tooLarge(req)) {
      res.writeHead(413, { "content-type": "application/json", connection: "close" }).end(
        JSON.stringify({
          errors: [
            {
              message: `Request body must be at most ${REQUEST_BODY_BYTES_MAX} bytes with a Content-Length`,
              extensions: { code: "PAYLOAD_TOO_LARGE" },
            },
          ],
        }),
      );
      req.resume();
      return;
    }
    const requestId = headerValue(req, "x-request-id") ?? randomUUID();
    res.setHeader("x-request-id", requestId);
    reportServerTiming(res);
    await inRequest(requestId, () =>
      tracing === null
        ? yoga(req, res, { requestId })
        : tracing.request(req, res, () => yoga(req, res, { requestId })),
    );
  });

  const connections = limitConnections(server, config);
  const wsServer = new WebSocketServer({
    server,
    path: "/graphql",
    maxPayload: REQUEST_BODY_BYTES_MAX,
    // A socket on a slot reserved for health checks does not become a WebSocket.
    verifyClient: ({ req }, done) => done(!connections.isReserved(req.socket), 503, "Too many connections"),
  });
  // Caps and one-at-a-time setups per socket around onSubscribe and subscribe (see subscription-limits.ts).
  acceptPersistedIdsOnly(wsServer);
  useServer<Record<string, unknown>, { principal: Principal | null; request?: IncomingMessage }>(
    subscriptionLimits.serve({
      onConnect: async (ctx) => {
        const fromParams = ctx.connectionParams?.authorization ?? ctx.connectionParams?.Authorization;
        const header = typeof fromParams === "string" ? fromParams : ctx.extra.request?.headers.authorization;
        // Nothing after connect needs the upgrade request or the token: a socket lives long, keep neither.
        (ctx.extra as { request?: IncomingMessage }).request = undefined;
        (ctx as { connectionParams?: unknown }).connectionParams = undefined;
        let principal: Principal | null;
        try {
          principal = await principalOf(header);
        } catch {
          ctx.extra.socket.close(CLOSE_UNAUTHORIZED, "Unauthorized: bad or expired token");
          return false;
        }
        // Everything a socket can do needs an account to follow, so a socket without a token is refused
        // at connect, with the same close code as a bad one, rather than failing each subscribe later.
        if (principal === null) {
          ctx.extra.socket.close(CLOSE_UNAUTHORIZED, "Unauthorized: no token");
          return false;
        }
        (ctx.extra as { principal: Principal | null }).principal = principal;
        const { socket } = ctx.extra;
        if (principal.exp !== null) {
          const cancel = atExpiry(principal.exp, () => socket.close(CLOSE_UNAUTHORIZED, "Token expired"));
          socket.once("close", cancel);
        }
        // A revoked API key loses the whole socket, with or without subscriptions on it.
        socket.once(
          "close",
          revocations.watch(principal, null, (reason) => socket.close(CLOSE_FORBIDDEN, reason)),
        );
        return true;
      },
      onSubscribe: async (ctx, _id, payload) => {
        const requestId = randomUUID();
        // Only what the context needs: it lives as long as the subscription.
        const { socket } = ctx.extra;
        const enveloped = yoga.getEnveloped({
          principal: ctx.extra.principal,
          requestId,
          closeTransport: (code: number, reason: string) => socket.close(code, reason),
        });
        const source = resolveWsDocument(
          persisted,
          config.persistedOperations,
          ctx.extra.principal?.role === "admin",
          payload as { query?: unknown; extensions?: Record<string, unknown> | null; documentId?: unknown },
        );
        // Not `instanceof`: the error may come from the other build of graphql (see resolveWsDocument).
        if (typeof source !== "string") return [source];
        let document: DocumentNode;
        try {
          document = enveloped.parse(source);
        } catch (error) {
          // A syntax error or the token limit is the client's mistake: answer it as an error of this
          // operation, as over HTTP. Thrown out of onSubscribe, graphql-ws would take it for a server
          // fault and end the operation with an internal error.
          if (error instanceof Error && error.name === "GraphQLError") return [error as GraphQLError];
          throw error;
        }
        const errors = enveloped.validate(enveloped.schema, document);
        if (errors.length > 0) return errors;
        const args: ExecutionArgs = {
          schema: enveloped.schema,
          operationName: payload.operationName,
          document,
          variableValues: payload.variables,
          contextValue: await enveloped.contextFactory(),
          rootValue: { execute: enveloped.execute, subscribe: enveloped.subscribe },
        };
        // graphql-ws keeps the message for as long as the operation runs; its text is parsed already.
        (payload as { query?: unknown }).query = undefined;
        return args;
      },
      // Each operation runs in its request's scope, so a masked error logs the id the client sees.
      execute: (args) =>
        inRequest((args.contextValue as Context).requestId, () =>
          (args.rootValue as { execute: (a: ExecutionArgs) => unknown }).execute(args),
        ) as never,
      subscribe: async (args) => {
        const { requestId } = args.contextValue as Context;
        const result = await inRequest(requestId, () =>
          (args.rootValue as { subscribe: (a: ExecutionArgs) => unknown }).subscribe(args),
        );
        return (isAsyncIterable(result) ? iterateInRequest(requestId, result) : result) as never;
      },
    }),
    wsServer,
    // graphql-ws's keepalive is a timer per socket: one sweep for all of them instead (see keepalive.ts).
    0,
  );
  const stopKeepAlive = keepAlive(wsServer);

  let closing: Promise<void> | null = null;
  const url = () => {
    const address = server.address() as AddressInfo | null;
    if (address === null) throw new Error("the server is not listening");
    return `http://127.0.0.1:${address.port}/graphql`;
  };
  return {
    server,
    db,
    ledger,
    events,
    reaper,
    webhooks,
    realtime,
    yoga,
    log,
    url,
    metricsUrl: () => metricsEndpoint.url(),
    async listen() {
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(config.port, config.host, () => {
          server.off("error", reject);
          resolve();
        });
      });
      await metricsEndpoint.listen();
      if (config.reaperEnabled) reaper.start();
      if (config.webhookWorkerEnabled) webhooks.start();
      realtime.start();
      log.info("listening", {
        url: url(),
        database: db.kind,
        events: config.redisUrl === undefined ? "in-process" : "redis",
        metrics: metricsEndpoint.access,
        tracing: tracing !== null,
      });
    },
    close() {
      closing ??= (async () => {
        const deadlineMs = Date.now() + config.shutdownTimeoutMs;
        // Readiness fails and new requests are refused at once; subscriptions end on every transport.
        shutdown.begin();
        for (const client of wsServer.clients) client.close(1001, "Server shutting down");
        wsServer.close();
        stopKeepAlive();
        const drained = await shutdown.settled(deadlineMs);
        if (!drained) log.warn("shutdown: requests still in flight", { requests: shutdown.inFlightCount });
        shutdown.endStreams();
        const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        await reaper.stop();
        await webhooks.stop();
        realtime.stop();
        await ledger.drained();
        await Promise.race([stopped, new Promise((resolve) => setTimeout(resolve, 1_000).unref())]);
        server.closeAllConnections();
        await metricsEndpoint.close();
        await events.close();
        await revocations.close();
        await limiter?.close();
        if (options.database === undefined) await db.close();
        await tracing?.close();
      })();
      return closing;
    },
  };
}

/**
 * Whether an error is a GraphQL error all the way down its `originalError`
 * chain: raised on purpose (coercion, validation, auth scopes) and safe to
 * show. Anything with another error at its root is a bug and gets masked.
 * graphql ships a CommonJS and an ES module build; when both are loaded (a
 * test runner or bundler resolving `module` while graphql-yoga loads `main`)
 * their GraphQLError classes differ, so `instanceof` alone would mask every
 * coercion error made by the other copy. The name check covers that.
 */
function isDeliberateGraphQLError(error: unknown): boolean {
  let current: unknown = error;
  for (let depth = 0; current != null && depth < 10; depth += 1) {
    const isGraphQL =
      current instanceof GraphQLError || (current instanceof Error && current.name === "GraphQLError");
    if (!isGraphQL) return false;
    current = (current as GraphQLError).originalError;
  }
  return current == null;
}

/**
 * Whether a request body is refused before it is read: over the size limit,
 * or of unknown size (chunked) on a POST, which could otherwise grow without
 * bound before GraphQL sees it.
 */
/**
 * Adds `Server-Timing: app;dur=<ms>` to the response: the time from the
 * request reaching this handler to its head being written (parse, validate,
 * execute, serialise), without the network. Clients and benchmarks read the
 * server's share of a round trip from it.
 */
function reportServerTiming(res: ServerResponse): void {
  const started = performance.now();
  const writeHead = res.writeHead;
  res.writeHead = function (this: ServerResponse, ...args: Parameters<ServerResponse["writeHead"]>) {
    if (!this.headersSent)
      this.setHeader("server-timing", `app;dur=${(performance.now() - started).toFixed(3)}`);
    return writeHead.apply(this, args);
  } as ServerResponse["writeHead"];
}

function tooLarge(req: IncomingMessage): boolean {
  if (req.method !== "POST") return false;
  const length = req.headers["content-length"];
  if (length === undefined) return req.headers["transfer-encoding"] !== undefined;
  const bytes = Number(length);
  return !Number.isFinite(bytes) || bytes > REQUEST_BODY_BYTES_MAX;
}

function isAsyncIterable(value: unknown): value is AsyncIterable<unknown> {
  return typeof value === "object" && value !== null && Symbol.asyncIterator in value;
}

function headerValue(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  if (typeof value !== "string" || value.length === 0 || value.length > 200) return undefined;
  return value;
}

async function readiness(db: Database, events: EventBus, redis: boolean): Promise<Record<string, boolean>> {
  const database = await db
    .query("SELECT 1")
    .then(() => true)
    .catch(() => false);
  return redis ? { database, redis: await events.healthy() } : { database };
}
