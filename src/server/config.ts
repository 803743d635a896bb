/**
 * Configuration from environment variables (names fixed by SPEC §6). Every bad
 * value is reported on one line naming the variable, what was expected and
 * what came, and all of them are reported together.
 */

import { GRANT_EXPIRY_NOTICE_HOURS_DEFAULT, GRANT_EXPIRY_NOTICE_HOURS_MAX } from "../domain/alerts.ts";
import { SUBSCRIBER_QUEUE_MAX } from "../schema/live/realtime.ts";
import { REPLAY_CONCURRENCY_MAX } from "../schema/live/replay.ts";
import { SUBSCRIPTIONS_PER_CONNECTION_MAX, SUBSCRIPTIONS_PER_PRINCIPAL_MAX } from "./subscription-limits.ts";

export type PersistedOperationsMode = "optional" | "required";

export interface Config {
  /** HTTP port for /graphql, /healthz, /readyz, /metrics. @default 4000 */
  port: number;
  /** Interface to listen on. @default "0.0.0.0" */
  host: string;
  /** PostgreSQL URL; unset → embedded PGlite in `dataDir`. */
  databaseUrl: string | undefined;
  /** Embedded database and generated secret folder. @default "./.data" */
  dataDir: string;
  /** Redis URL for cross-instance events; unset → in-process events. */
  redisUrl: string | undefined;
  /** HS256 secret; unset is allowed only in embedded mode, or with `authJwksUrl`. */
  authJwtSecret: string | undefined;
  /** An identity provider's JWKS (RS256/ES256 keys); set → its tokens are accepted too. */
  authJwksUrl: string | undefined;
  /** The `iss` identity-provider tokens must have; unset → not checked. */
  authIssuer: string | undefined;
  /** A value identity-provider tokens' `aud` must hold; unset → not checked. */
  authAudience: string | undefined;
  /** The identity-provider token claim holding the role. @default "role" */
  authRoleClaim: string;
  /**
   * HMAC key of stored API key hashes (≥ 32 characters); unset → derived from
   * the JWT secret (AUTH_JWT_SECRET or the embedded one). See api-keys.ts.
   */
  apiKeyPepper: string | undefined;
  /** How long idempotency keys are kept. @default 24 // hours */
  idempotencyTtlHours: number;
  /** How often the reaper looks for overdue generations and expired grants. @default 1_000 // 1 second */
  reaperIntervalMs: number;
  /** Whether this instance runs the reaper. @default true */
  reaperEnabled: boolean;
  /** Most overdue generations one reaper round picks up (one background operation per account, batched into transactions of many accounts). @default 20_000 */
  reaperBatchSizeMax: number;
  /** How long before a grant with credits left expires the reaper sends its `grant.expiring` notice. @default 72 // hours */
  grantExpiryNoticeHours: number;
  /** PostgreSQL pool size. @default 20 */
  databasePoolSizeMax: number;
  /**
   * Ledger transactions one instance runs at once; operations arriving
   * meanwhile share the next transaction (group commit over accounts).
   * Kept below the pool size so reads always find a connection. @default 4
   */
  ledgerLanes: number;
  /** Whether GraphiQL is served on GET /graphql. @default true unless NODE_ENV=production */
  graphiql: boolean;
  /** Log level for pino-style structured logs. @default "info" */
  logLevel: "debug" | "info" | "warn" | "error" | "silent";
  /** Bearer token that /metrics requires (≥ 16 characters); see MetricsAccess in metrics-endpoint.ts. */
  metricsToken: string | undefined;
  /** Loopback-only port serving /metrics instead of the main port. */
  metricsPort: number | undefined;
  /** OTLP/HTTP collector base URL; set → traces are exported to `<url>/v1/traces`, unset → no tracing loaded. */
  otelExporterOtlpEndpoint: string | undefined;
  /** Whether clients may send documents or only persisted ids. @default "optional" */
  persistedOperations: PersistedOperationsMode;
  /**
   * Mutations per second per `user` token subject (bursts of twice that); 0 turns the limit off.
   * @default 0 in embedded mode, 1_000 with DATABASE_URL
   */
  rateLimitPerSecond: number;
  /** Mutations per second per `service` or `admin` token subject (bursts of twice that); 0 = no limit. @default 0 */
  rateLimitServicePerSecond: number;
  /** Most events waiting for one subscriber before it is closed as too slow (1013). @default 1_000 */
  subscriberQueueMax: number;
  /** Most subscriptions one WebSocket holds at once. @default 50 */
  subscriptionsPerConnectionMax: number;
  /** Most subscriptions one principal holds at once on one instance. @default 500 */
  subscriptionsPerPrincipalMax: number;
  /** Replay pages (`afterSequence`) one instance reads and delivers at once. @default 2 */
  replayConcurrencyMax: number;
  /** How long a SIGTERM waits for in-flight requests before the process exits anyway. @default 10_000 // 10 seconds */
  shutdownTimeoutMs: number;
  /** Origins browsers may call from (CORS_ORIGINS); null: any origin, never with credentials. @default null */
  corsOrigins: readonly string[] | null;
  /** Whether validation errors suggest names ("Did you mean …"). @default true unless NODE_ENV=production */
  fieldSuggestions: boolean;
  /** Time for a request's headers to arrive before its socket is closed (408). @default 10_000 // 10 seconds */
  httpHeadersTimeoutMs: number;
  /** Time for a whole request, body included, to arrive; never limits a streamed answer. @default 30_000 // 30 seconds */
  httpRequestTimeoutMs: number;
  /** Open sockets served (WebSockets included); a few more answer only health checks. @default 10_000 */
  connectionsMax: number;
  /** Whether this instance runs the webhook delivery worker (safe on every instance at once). @default true */
  webhookWorkerEnabled: boolean;
  /** Whether webhooks may go to http URLs and loopback, private or link-local addresses. @default false */
  webhookAllowPrivate: boolean;
  /** Days webhook deliveries are kept before they are deleted. @default 30 */
  webhookRetentionDays: number;
  /** The first webhook retry's delay; each next one is 3 times longer (see retryDelayMs). @default 10_000 // 10 seconds */
  webhookRetryBaseMs: number;
}

export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(problems.join("\n"));
    this.name = "ConfigError";
  }
}

type Env = Readonly<Record<string, string | undefined>>;

/** Reads and validates the configuration; throws ConfigError listing every bad value. */
export function loadConfig(env: Env = process.env): Config {
  const problems: string[] = [];
  const text = (name: string): string | undefined => {
    const value = env[name];
    return value === undefined || value.trim() === "" ? undefined : value.trim();
  };
  const integer = (name: string, fallback: number, min: number, max: number): number => {
    const raw = text(name);
    if (raw === undefined) return fallback;
    const value = Number(raw);
    if (!/^-?\d+$/.test(raw) || !Number.isSafeInteger(value) || value < min || value > max) {
      problems.push(`${name} must be an integer from ${min} to ${max}, got "${raw}"`);
      return fallback;
    }
    return value;
  };
  const oneOf = <T extends string>(name: string, allowed: readonly T[], fallback: T): T => {
    const raw = text(name);
    if (raw === undefined) return fallback;
    if (!(allowed as readonly string[]).includes(raw)) {
      problems.push(`${name} must be one of ${allowed.join(", ")}, got "${raw}"`);
      return fallback;
    }
    return raw as T;
  };
  const boolean = (name: string, fallback: boolean): boolean => {
    const raw = text(name);
    if (raw === undefined) return fallback;
    if (["1", "true", "yes", "on"].includes(raw.toLowerCase())) return true;
    if (["0", "false", "no", "off"].includes(raw.toLowerCase())) return false;
    problems.push(`${name} must be true or false, got "${raw}"`);
    return fallback;
  };
  const url = (name: string, protocols: readonly string[]): string | undefined => {
    const raw = text(name);
    if (raw === undefined) return undefined;
    try {
      const parsed = new URL(raw);
      if (!protocols.includes(parsed.protocol)) {
        problems.push(
          `${name} must start with ${protocols.map((p) => `${p}//`).join(" or ")}, got "${parsed.protocol}//…"`,
        );
      }
    } catch {
      problems.push(
        `${name} must be a URL such as ${protocols[0]}//host:port, got a value that does not parse`,
      );
    }
    return raw;
  };

  const secretOf = (name: string, lengthMin: number): string | undefined => {
    const value = text(name);
    if (value !== undefined && value.length < lengthMin)
      problems.push(`${name} must be at least ${lengthMin} characters, got ${value.length}`);
    return value;
  };

  const databaseUrl = url("DATABASE_URL", ["postgres:", "postgresql:"]);
  const authJwtSecret = text("AUTH_JWT_SECRET");
  if (authJwtSecret !== undefined && authJwtSecret.length < 32) {
    problems.push(`AUTH_JWT_SECRET must be at least 32 characters, got ${authJwtSecret.length}`);
  }
  const authJwksUrl = url("AUTH_JWKS_URL", ["https:", "http:"]);
  const apiKeyPepper = secretOf("API_KEY_PEPPER", 32);
  if (databaseUrl !== undefined && authJwtSecret === undefined && authJwksUrl === undefined) {
    problems.push(
      "AUTH_JWT_SECRET is required when DATABASE_URL is set (tokens must verify on every instance), unless AUTH_JWKS_URL is",
    );
  }
  if (
    databaseUrl !== undefined &&
    authJwtSecret === undefined &&
    authJwksUrl !== undefined &&
    apiKeyPepper === undefined
  ) {
    problems.push(
      "API_KEY_PEPPER is required when AUTH_JWKS_URL replaces AUTH_JWT_SECRET (API key hashes must agree on every instance)",
    );
  }

  const config: Config = {
    port: integer("PORT", 4000, 0, 65_535),
    host: text("HOST") ?? "0.0.0.0",
    databaseUrl,
    dataDir: text("DATA_DIR") ?? "./.data",
    redisUrl: url("REDIS_URL", ["redis:", "rediss:"]),
    authJwtSecret,
    apiKeyPepper,
    authJwksUrl,
    authIssuer: text("AUTH_ISSUER"),
    authAudience: text("AUTH_AUDIENCE"),
    authRoleClaim: text("AUTH_ROLE_CLAIM") ?? "role",
    idempotencyTtlHours: integer("IDEMPOTENCY_TTL_HOURS", 24, 24, 24 * 365),
    reaperIntervalMs: integer("REAPER_INTERVAL_MS", 1_000, 50, 60_000),
    reaperEnabled: boolean("REAPER_ENABLED", true),
    reaperBatchSizeMax: integer("REAPER_BATCH_SIZE", 20_000, 1, 50_000),
    grantExpiryNoticeHours: integer(
      "GRANT_EXPIRY_NOTICE_HOURS",
      GRANT_EXPIRY_NOTICE_HOURS_DEFAULT,
      1,
      GRANT_EXPIRY_NOTICE_HOURS_MAX,
    ),
    databasePoolSizeMax: integer("DATABASE_POOL_SIZE", 20, 1, 500),
    ledgerLanes: integer("LEDGER_LANES", 4, 1, 100),
    graphiql: boolean("GRAPHIQL", env.NODE_ENV !== "production"),
    logLevel: oneOf("LOG_LEVEL", ["debug", "info", "warn", "error", "silent"] as const, "info"),
    metricsToken: secretOf("METRICS_TOKEN", 16),
    metricsPort: text("METRICS_PORT") === undefined ? undefined : integer("METRICS_PORT", 0, 0, 65_535),
    otelExporterOtlpEndpoint: url("OTEL_EXPORTER_OTLP_ENDPOINT", ["http:", "https:"]),
    persistedOperations: oneOf("PERSISTED_OPERATIONS", ["optional", "required"] as const, "optional"),
    rateLimitPerSecond: integer("RATE_LIMIT_PER_SECOND", databaseUrl === undefined ? 0 : 1_000, 0, 1_000_000),
    rateLimitServicePerSecond: integer("RATE_LIMIT_SERVICE_PER_SECOND", 0, 0, 1_000_000),
    subscriberQueueMax: integer("SUBSCRIBER_QUEUE_MAX", SUBSCRIBER_QUEUE_MAX, 1, 1_000_000),
    subscriptionsPerConnectionMax: integer(
      "SUBSCRIPTIONS_PER_CONNECTION_MAX",
      SUBSCRIPTIONS_PER_CONNECTION_MAX,
      1,
      100_000,
    ),
    subscriptionsPerPrincipalMax: integer(
      "SUBSCRIPTIONS_PER_PRINCIPAL_MAX",
      SUBSCRIPTIONS_PER_PRINCIPAL_MAX,
      1,
      1_000_000,
    ),
    replayConcurrencyMax: integer("REPLAY_CONCURRENCY_MAX", REPLAY_CONCURRENCY_MAX, 1, 100),
    shutdownTimeoutMs: integer("SHUTDOWN_TIMEOUT_MS", 10_000, 0, 600_000),
    corsOrigins: parseCorsOrigins(text("CORS_ORIGINS"), problems),
    fieldSuggestions: env.NODE_ENV !== "production",
    httpHeadersTimeoutMs: integer("HTTP_HEADERS_TIMEOUT_MS", 10_000, 100, 600_000),
    httpRequestTimeoutMs: integer("HTTP_REQUEST_TIMEOUT_MS", 30_000, 100, 3_600_000),
    connectionsMax: integer("MAX_CONNECTIONS", 10_000, 1, 1_000_000),
    webhookWorkerEnabled: boolean("WEBHOOK_WORKER_ENABLED", true),
    webhookAllowPrivate: boolean("WEBHOOK_ALLOW_PRIVATE", false),
    webhookRetentionDays: integer("WEBHOOK_RETENTION_DAYS", 30, 1, 3_650),
    webhookRetryBaseMs: integer("WEBHOOK_RETRY_BASE_MS", 10_000, 10, 3_600_000),
  };
  // Node refuses a headers timeout longer than the request timeout.
  if (config.httpHeadersTimeoutMs > config.httpRequestTimeoutMs) {
    problems.push(
      `HTTP_HEADERS_TIMEOUT_MS must be at most HTTP_REQUEST_TIMEOUT_MS (${config.httpRequestTimeoutMs}), got ${config.httpHeadersTimeoutMs}`,
    );
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}

/**
 * CORS_ORIGINS: a comma list of origins (`scheme://host[:port]`, as browsers
 * send them in `Origin`). Unset or `*`: null, any origin.
 */
function parseCorsOrigins(raw: string | undefined, problems: string[]): readonly string[] | null {
  if (raw === undefined || raw === "*") return null;
  const origins = raw
    .split(",")
    .map((origin) => origin.trim().replace(/\/$/, ""))
    .filter((origin) => origin !== "");
  for (const origin of origins) {
    let parsed: string | null = null;
    try {
      parsed = new URL(origin).origin;
    } catch {
      // Not a URL at all: reported below like an origin with a path.
    }
    if (parsed !== origin) {
      problems.push(
        `CORS_ORIGINS must be a comma list of origins such as https://app.example.com, got "${origin}"`,
      );
    }
  }
  return origins.length === 0 ? null : origins;
}
