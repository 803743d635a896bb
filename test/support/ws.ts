/**
 * A real graphql-ws (`graphql-transport-ws`) client for tests, on the `ws`
 * WebSocket, that records what each subscription receives (with the time it
 * arrived, for latency) and how the socket closed.
 */
import { performance } from "node:perf_hooks";
import { type Client, createClient } from "graphql-ws";
import WebSocket from "ws";

/** How a socket closed, as the client saw it. */
export interface Closed {
  readonly code: number;
  readonly reason: string;
}

/** One `next` payload and when it arrived (`performance.now()` of this process). */
export interface Received<T> {
  readonly data: T;
  readonly atMs: number;
}

export interface LiveSubscription<T> {
  /** Every `next` with data, in arrival order. */
  readonly received: Received<T>[];
  /** The data of every `next`, in arrival order. */
  readonly values: T[];
  /** GraphQL errors (an `error` message, or errors inside a `next`) and close events that ended it. */
  readonly errors: unknown[];
  /** Resolves when the server completes the subscription or it fails. */
  readonly ended: Promise<void>;
  /** Waits until `predicate(values)` holds; fails naming `what` and showing what came. */
  waitFor(predicate: (values: T[]) => boolean, what: string, timeoutMs?: number): Promise<void>;
  /** Waits for the subscription to end (complete, error or socket closed). */
  waitEnded(timeoutMs?: number): Promise<void>;
  stop(): void;
}

export interface LiveClient {
  readonly client: Client;
  /** Every close the client saw, in order. */
  readonly closes: Closed[];
  /** Waits until the socket has closed once; returns that first close. */
  waitClosed(timeoutMs?: number): Promise<Closed>;
  subscribe<T = Record<string, unknown>>(
    query: string,
    variables?: Record<string, unknown>,
  ): LiveSubscription<T>;
  dispose(): Promise<void>;
}

export interface LiveClientOptions {
  /** Sent as `connectionParams.authorization = "Bearer <token>"`; null sends no token. */
  token?: string | null;
  /** Sent as the upgrade request's `Authorization` header instead (verbatim). */
  authorizationHeader?: string;
  /** Reconnect attempts after a non-fatal close. @default 0 */
  retryAttempts?: number;
}

/** How long a test waits for a live event before failing. @default 10_000 // 10 seconds */
export const WAIT_TIMEOUT_MS = 10_000;

/** `http://host/graphql` → `ws://host/graphql`. */
export function wsUrl(httpUrl: string): string {
  return httpUrl.replace(/^http/, "ws");
}

/** Polls `condition` every 20 ms until it holds; fails with `what()` after `timeoutMs`. */
export async function until(
  condition: () => boolean,
  what: () => string,
  timeoutMs = WAIT_TIMEOUT_MS,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what()}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Opens a graphql-ws client to a server's /graphql URL (http or ws), connecting at once. */
export function connect(url: string, options: LiveClientOptions = {}): LiveClient {
  const closes: Closed[] = [];
  const header = options.authorizationHeader;
  // graphql-ws creates the socket itself; a subclass is how the upgrade request gets a header.
  const webSocketImpl =
    header === undefined
      ? WebSocket
      : class extends WebSocket {
          constructor(address: string, protocols?: string | string[]) {
            super(address, protocols, { headers: { authorization: header } });
          }
        };
  const client = createClient({
    url: wsUrl(url),
    webSocketImpl,
    lazy: false,
    retryAttempts: options.retryAttempts ?? 0,
    onNonLazyError: () => {},
    connectionParams: () => (options.token == null ? {} : { authorization: `Bearer ${options.token}` }),
    on: {
      closed: (event) => {
        const { code, reason } = event as { code: number; reason: string };
        closes.push({ code, reason: String(reason) });
      },
    },
  });
  return {
    client,
    closes,
    async waitClosed(timeoutMs = WAIT_TIMEOUT_MS) {
      await until(
        () => closes.length > 0,
        () => "the socket to close",
        timeoutMs,
      );
      return closes[0] as Closed;
    },
    subscribe<T>(query: string, variables: Record<string, unknown> = {}): LiveSubscription<T> {
      const received: Received<T>[] = [];
      const values: T[] = [];
      const errors: unknown[] = [];
      let end!: () => void;
      const ended = new Promise<void>((resolve) => {
        end = resolve;
      });
      const stop = client.subscribe<T>(
        { query, variables },
        {
          next: (result) => {
            if (result.errors !== undefined) errors.push(...result.errors);
            if (result.data != null) {
              received.push({ data: result.data as T, atMs: performance.now() });
              values.push(result.data as T);
            }
          },
          error: (error) => {
            errors.push(error);
            end();
          },
          complete: () => end(),
        },
      );
      let isEnded = false;
      void ended.then(() => {
        isEnded = true;
      });
      return {
        received,
        values,
        errors,
        ended,
        waitFor: (predicate, what, timeoutMs = WAIT_TIMEOUT_MS) =>
          until(
            () => {
              if (errors.length > 0) throw new Error(`${what}: subscription failed: ${show(errors)}`);
              return predicate(values);
            },
            () => `${what}; received ${values.length}: ${show(values.slice(-5))}`,
            timeoutMs,
          ),
        waitEnded: (timeoutMs = WAIT_TIMEOUT_MS) =>
          until(
            () => isEnded,
            () => "the subscription to end",
            timeoutMs,
          ),
        stop,
      };
    },
    dispose: async () => {
      await client.dispose();
    },
  };
}

function show(value: unknown): string {
  const text = JSON.stringify(value, (_key, v) => {
    if (v instanceof Error) return { name: v.name, message: v.message };
    // A close event: its fields are getters, which JSON.stringify skips.
    if (typeof v === "object" && v !== null && "code" in v && "reason" in v && "wasClean" in v)
      return { close: v.code, reason: String(v.reason) };
    return v;
  });
  return text === undefined ? String(value) : text.slice(0, 2_000);
}
