import { randomUUID } from "node:crypto";
import type { Role } from "../../src/domain/access.ts";
import { type App, createApp } from "../../src/server/app.ts";
import { TokenService } from "../../src/server/auth.ts";
import { type Config, loadConfig } from "../../src/server/config.ts";
import { TEST_SECRET, testDatabaseUrl } from "./env.ts";
import { embeddedTestDatabase, onPglite } from "./test-database.ts";

export interface GraphQLResponse<T = Record<string, any>> {
  data?: T | null;
  errors?: { message: string; path?: string[]; extensions?: Record<string, unknown> }[];
}

/** A running server on the test database, with helpers to call it as any role. */
export interface TestServer {
  readonly app: App;
  readonly url: string;
  token(sub: string, role: Role, expiresIn?: string): Promise<string>;
  /** POSTs a GraphQL request with `token` (or none) and returns the parsed body. */
  gql<T = Record<string, any>>(
    token: string | null,
    query: string,
    variables?: Record<string, unknown>,
  ): Promise<GraphQLResponse<T>>;
  /** Like `gql`, but returns the raw HTTP response. */
  post(token: string | null, body: unknown): Promise<Response>;
  close(): Promise<void>;
}

/**
 * Starts the real service in this process on an ephemeral port, on the
 * PostgreSQL test database or, in the pglite project, on the file's embedded
 * database (configured as the embedded default is: no DATABASE_URL).
 */
export async function startServer(overrides: Partial<Config> = {}): Promise<TestServer> {
  const config: Config = {
    ...loadConfig({
      DATABASE_URL: onPglite() ? undefined : testDatabaseUrl(),
      AUTH_JWT_SECRET: TEST_SECRET,
      LOG_LEVEL: "error",
      PORT: "0",
    }),
    host: "127.0.0.1",
    // Many test servers share one PostgreSQL (max_connections 100): keep each pool small.
    databasePoolSizeMax: 5,
    // Tests fire bursts of mutations from one principal; the rate limit has its own test.
    rateLimitPerSecond: 0,
    // Webhook tests start the delivery worker themselves; other tests' servers leave the outbox alone.
    webhookWorkerEnabled: false,
    ...overrides,
  };
  const app = await createApp(config, onPglite() ? { database: await embeddedTestDatabase() } : {});
  if (onPglite()) {
    // PGlite runs inside this process: a long statement stalls the server's and the test
    // client's timers alike, and when they fire late together the server's keep-alive close
    // can hit a request the client has just written (ECONNRESET). Idle sockets are left for
    // the client to close.
    app.server.keepAliveTimeout = 0;
  }
  await app.listen();
  const url = app.url();
  const tokens = new TokenService(TEST_SECRET);
  const post = (token: string | null, body: unknown) =>
    fetch(url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        ...(token === null ? {} : { authorization: `Bearer ${token}` }),
      },
      body: JSON.stringify(body),
    });
  return {
    app,
    url,
    token: (sub, role, expiresIn) => tokens.sign(sub, role, expiresIn),
    post,
    async gql(token, query, variables) {
      const response = await post(token, { query, variables });
      return (await response.json()) as GraphQLResponse<any>;
    },
    close: () => app.close(),
  };
}

/** A unique name for test data, so parallel tests never collide. */
export function unique(prefix: string): string {
  return `${prefix}-${randomUUID().slice(0, 8)}`;
}

/** Fails with the GraphQL errors when there are any; returns `data`. */
export function dataOf<T>(response: GraphQLResponse<T>): T {
  if (response.errors !== undefined && response.errors.length > 0) {
    throw new Error(`GraphQL errors: ${JSON.stringify(response.errors)}`);
  }
  if (response.data == null) throw new Error("no data");
  return response.data;
}
