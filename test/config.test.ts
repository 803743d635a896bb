import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../src/server/config.ts";

const SECRET = "s".repeat(32);

/** The problems loadConfig reports for `env`; fails the test when it accepts it. */
function problemsOf(env: Record<string, string>): readonly string[] {
  try {
    loadConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    const problems = (error as ConfigError).problems;
    // The message is the same lines, one per problem, for whoever prints it.
    expect((error as ConfigError).message.split("\n")).toEqual(problems);
    return problems;
  }
  throw new Error(`loadConfig accepted ${JSON.stringify(env)}`);
}

describe("loadConfig", () => {
  it("has the documented defaults (embedded mode, no secret needed)", () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      port: 4000,
      host: "0.0.0.0",
      databaseUrl: undefined,
      dataDir: "./.data",
      redisUrl: undefined,
      authJwtSecret: undefined,
      authJwksUrl: undefined,
      authIssuer: undefined,
      authAudience: undefined,
      authRoleClaim: "role",
      apiKeyPepper: undefined,
      idempotencyTtlHours: 24,
      reaperIntervalMs: 1_000,
      reaperEnabled: true,
      reaperBatchSizeMax: 20_000,
      grantExpiryNoticeHours: 72,
      databasePoolSizeMax: 20,
      graphiql: true,
      logLevel: "info",
      persistedOperations: "optional",
      rateLimitPerSecond: 0,
      rateLimitServicePerSecond: 0,
    });
    expect(loadConfig({ NODE_ENV: "production" }).graphiql).toBe(false);
    // With a database, user tokens are limited by default; service and admin tokens are not.
    expect(loadConfig({ DATABASE_URL: "postgresql://db/x", AUTH_JWT_SECRET: SECRET })).toMatchObject({
      rateLimitPerSecond: 1_000,
      rateLimitServicePerSecond: 0,
    });
    // An identity provider may replace the shared secret; API key hashes then need their own pepper.
    const pepper = "p".repeat(32);
    expect(
      loadConfig({
        DATABASE_URL: "postgresql://db/x",
        AUTH_JWKS_URL: "https://id.example/jwks.json",
        AUTH_ISSUER: "https://id.example/",
        AUTH_AUDIENCE: "creditbook",
        AUTH_ROLE_CLAIM: "https://creditbook.example/role",
        API_KEY_PEPPER: pepper,
      }),
    ).toMatchObject({
      authJwtSecret: undefined,
      authJwksUrl: "https://id.example/jwks.json",
      authIssuer: "https://id.example/",
      authAudience: "creditbook",
      authRoleClaim: "https://creditbook.example/role",
      apiKeyPepper: pepper,
    });
  });

  it("reads good values, trimming spaces and treating blank as unset", () => {
    const config = loadConfig({
      PORT: " 8080 ",
      DATABASE_URL: "postgresql://app:pw@db:5432/creditbook",
      AUTH_JWT_SECRET: SECRET,
      REDIS_URL: "rediss://cache:6380",
      DATA_DIR: "/var/lib/creditbook",
      IDEMPOTENCY_TTL_HOURS: "48",
      GRANT_EXPIRY_NOTICE_HOURS: "24",
      REAPER_ENABLED: "off",
      LOG_LEVEL: "warn",
      PERSISTED_OPERATIONS: "required",
      RATE_LIMIT_SERVICE_PER_SECOND: "5000",
      HOST: "   ",
    });
    expect(config).toMatchObject({
      port: 8080,
      databaseUrl: "postgresql://app:pw@db:5432/creditbook",
      authJwtSecret: SECRET,
      redisUrl: "rediss://cache:6380",
      dataDir: "/var/lib/creditbook",
      idempotencyTtlHours: 48,
      grantExpiryNoticeHours: 24,
      reaperEnabled: false,
      logLevel: "warn",
      persistedOperations: "required",
      rateLimitServicePerSecond: 5_000,
      host: "0.0.0.0",
    });
  });

  // Each bad value gives exactly one line that names the variable and what came.
  const cases: [string, Record<string, string>, RegExp][] = [
    ["PORT not a number", { PORT: "http" }, /^PORT must be an integer from 0 to 65535, got "http"$/],
    ["PORT out of range", { PORT: "70000" }, /^PORT must be an integer from 0 to 65535, got "70000"$/],
    ["PORT a float", { PORT: "80.5" }, /^PORT .*got "80\.5"$/],
    ["PORT in exponent form", { PORT: "1e3" }, /^PORT .*got "1e3"$/],
    [
      "RATE_LIMIT_SERVICE_PER_SECOND negative",
      { RATE_LIMIT_SERVICE_PER_SECOND: "-1" },
      /^RATE_LIMIT_SERVICE_PER_SECOND must be an integer from 0 /,
    ],
    ["IDEMPOTENCY_TTL_HOURS below 24", { IDEMPOTENCY_TTL_HOURS: "1" }, /^IDEMPOTENCY_TTL_HOURS .*from 24 /],
    ["REAPER_INTERVAL_MS too small", { REAPER_INTERVAL_MS: "10" }, /^REAPER_INTERVAL_MS .*got "10"$/],
    ["REAPER_BATCH_SIZE zero", { REAPER_BATCH_SIZE: "0" }, /^REAPER_BATCH_SIZE .*got "0"$/],
    [
      "GRANT_EXPIRY_NOTICE_HOURS zero",
      { GRANT_EXPIRY_NOTICE_HOURS: "0" },
      /^GRANT_EXPIRY_NOTICE_HOURS must be an integer from 1 to 8760, got "0"$/,
    ],
    ["DATABASE_POOL_SIZE negative", { DATABASE_POOL_SIZE: "-5" }, /^DATABASE_POOL_SIZE .*got "-5"$/],
    [
      "REAPER_ENABLED not a boolean",
      { REAPER_ENABLED: "maybe" },
      /^REAPER_ENABLED must be true or false, got "maybe"$/,
    ],
    ["GRAPHIQL not a boolean", { GRAPHIQL: "2" }, /^GRAPHIQL must be true or false/],
    [
      "LOG_LEVEL unknown",
      { LOG_LEVEL: "verbose" },
      /^LOG_LEVEL must be one of debug, info, warn, error, silent, got "verbose"$/,
    ],
    [
      "PERSISTED_OPERATIONS unknown",
      { PERSISTED_OPERATIONS: "always" },
      /^PERSISTED_OPERATIONS must be one of optional, required/,
    ],
    [
      "DATABASE_URL of another database",
      { DATABASE_URL: "mysql://db/x", AUTH_JWT_SECRET: SECRET },
      /^DATABASE_URL must start with postgres:\/\/ or postgresql:\/\//,
    ],
    ["DATABASE_URL not a URL", { DATABASE_URL: "db:5432", AUTH_JWT_SECRET: SECRET }, /^DATABASE_URL /],
    [
      "REDIS_URL not redis",
      { REDIS_URL: "http://cache:6379" },
      /^REDIS_URL must start with redis:\/\/ or rediss:\/\//,
    ],
    [
      "AUTH_JWT_SECRET too short",
      { AUTH_JWT_SECRET: "short" },
      /^AUTH_JWT_SECRET must be at least 32 characters, got 5$/,
    ],
    [
      "AUTH_JWT_SECRET missing with DATABASE_URL",
      { DATABASE_URL: "postgres://db/x" },
      /^AUTH_JWT_SECRET is required when DATABASE_URL is set/,
    ],
    [
      "AUTH_JWKS_URL instead of AUTH_JWT_SECRET without API_KEY_PEPPER",
      { DATABASE_URL: "postgres://db/x", AUTH_JWKS_URL: "https://id.example/jwks.json" },
      /^API_KEY_PEPPER is required when AUTH_JWKS_URL replaces AUTH_JWT_SECRET/,
    ],
    ["AUTH_JWKS_URL not a URL", { AUTH_JWKS_URL: "id.example/jwks.json" }, /^AUTH_JWKS_URL must be a URL/],
    [
      "API_KEY_PEPPER too short",
      { API_KEY_PEPPER: "pepper" },
      /^API_KEY_PEPPER must be at least 32 characters/,
    ],
  ];
  it.each(cases)("%s: one line naming the variable", (_title, env, line) => {
    const problems = problemsOf(env);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(line);
    expect(problems[0]).not.toContain("\n");
  });

  it("reports every bad value together, one line each", () => {
    const problems = problemsOf({ PORT: "x", LOG_LEVEL: "loud", REDIS_URL: "tcp://r", REAPER_ENABLED: "?" });
    expect(problems).toHaveLength(4);
    for (const name of ["PORT", "LOG_LEVEL", "REDIS_URL", "REAPER_ENABLED"]) {
      expect(problems.filter((problem) => problem.startsWith(`${name} `))).toHaveLength(1);
    }
  });

  it("never repeats a password or a secret in a problem line", () => {
    const problems = problemsOf({
      DATABASE_URL: "mysql://app:hunter2-password@db/x",
      REDIS_URL: "http://:redis-password@cache:6379",
      AUTH_JWT_SECRET: "tiny-secret",
    });
    expect(problems).toHaveLength(3);
    for (const problem of problems) {
      expect(problem).not.toMatch(/hunter2|redis-password|tiny-secret/);
    }
    const unparsable = problemsOf({ DATABASE_URL: "postgres://app:pa ss@/%zz", AUTH_JWT_SECRET: SECRET });
    expect(unparsable.join("\n")).not.toContain("pa ss");
  });
});
