import { AsyncLocalStorage } from "node:async_hooks";
import { pino } from "pino";

/**
 * Structured logs (pino): one JSON object per line on stdout. Callers pass
 * fields, never secrets; authorization headers and tokens are redacted anyway.
 */
export type LogLevel = "debug" | "info" | "warn" | "error" | "silent";

export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

function wrap(logger: pino.Logger): Logger {
  return {
    debug: (message, fields) => logger.debug(fields ?? {}, message),
    info: (message, fields) => logger.info(fields ?? {}, message),
    warn: (message, fields) => logger.warn(fields ?? {}, message),
    error: (message, fields) => logger.error(fields ?? {}, message),
    child: (fields) => wrap(logger.child(fields)),
  };
}

export function createLogger(level: LogLevel, base: Record<string, unknown> = {}): Logger {
  return wrap(
    pino({
      level,
      base,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      serializers: { err: pino.stdSerializers.err },
      redact: {
        paths: [
          "authorization",
          "token",
          "*.authorization",
          "*.token",
          "headers.authorization",
          "connectionParams",
        ],
        censor: "[redacted]",
      },
    }),
  );
}

/**
 * The request id of the work running now: set around each HTTP request and
 * each WebSocket operation, so code that has no context at hand (yoga's
 * error masking) can still log the id the client was given.
 */
const requestScope = new AsyncLocalStorage<{ readonly requestId: string }>();

/** Runs `work` (and everything it awaits) as part of the request `requestId`. */
export function inRequest<T>(requestId: string, work: () => T): T {
  return requestScope.run({ requestId }, work);
}

/** The id of the request the caller runs for, if any. */
export function currentRequestId(): string | undefined {
  return requestScope.getStore()?.requestId;
}

/**
 * An async iterable whose steps run as part of the request `requestId`. A
 * graphql-ws subscription is iterated by the socket's message loop, outside
 * the scope it was started in; this keeps its events in it.
 */
export function iterateInRequest<T>(requestId: string, source: AsyncIterable<T>): AsyncIterableIterator<T> {
  return new InRequestIterator(requestId, source[Symbol.asyncIterator]());
}

/**
 * A class, not an object literal with arrow functions: a subscription keeps
 * its iterator for as long as it lives, and methods on the prototype cost
 * it nothing (a literal's `[Symbol.asyncIterator]` method even gets a name
 * string of its own).
 */
class InRequestIterator<T> implements AsyncIterableIterator<T> {
  constructor(
    private readonly requestId: string,
    private readonly iterator: AsyncIterator<T>,
  ) {}

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<T>> {
    return inRequest(this.requestId, () => this.iterator.next());
  }

  return(value?: unknown): Promise<IteratorResult<T>> {
    return inRequest(
      this.requestId,
      () => this.iterator.return?.(value) ?? Promise.resolve({ done: true as const, value: undefined }),
    );
  }

  throw(error?: unknown): Promise<IteratorResult<T>> {
    return inRequest(this.requestId, () => this.iterator.throw?.(error) ?? Promise.reject(error));
  }
}
