import type { IncomingMessage, ServerResponse } from "node:http";
import type { Plugin } from "graphql-yoga";

/** Body of the answer to a request that arrives while the server shuts down. */
const SHUTTING_DOWN_BODY = JSON.stringify({
  errors: [
    {
      message: "The server is shutting down; nothing was done. Retry on another instance.",
      extensions: { code: "SERVICE_UNAVAILABLE" },
    },
  ],
});

/**
 * A graceful stop: from `begin()` on, /readyz answers 503, new requests are
 * refused with 503, every subscription ends (SSE streams complete, graphql-ws
 * subscriptions complete before their sockets close), and `settled()` waits
 * for the requests already in flight — mutations among them — to answer.
 */
export class Shutdown {
  private draining = false;
  /** Responses not yet finished, except event streams (they end when their subscriptions do). */
  private readonly inFlight = new Set<ServerResponse>();
  private readonly streams = new Set<ServerResponse>();
  private readonly subscriptionEnders = new Set<DrainingIterator<unknown>>();
  private idle: (() => void) | null = null;

  /** Whether `begin()` was called. */
  get isDraining(): boolean {
    return this.draining;
  }

  /** Requests still answering (not counting event streams). */
  get inFlightCount(): number {
    return this.inFlight.size;
  }

  /**
   * Admits a request, tracking it until its response finishes; while
   * draining, answers 503 (with `Connection: close`) instead and returns false.
   */
  admit(req: IncomingMessage, res: ServerResponse): boolean {
    if (this.draining) {
      res
        .writeHead(503, { "content-type": "application/json", "retry-after": "1", connection: "close" })
        .end(SHUTTING_DOWN_BODY);
      req.resume();
      return false;
    }
    const set = isEventStream(req) ? this.streams : this.inFlight;
    set.add(res);
    res.once("close", () => {
      set.delete(res);
      if (this.inFlight.size === 0) this.idle?.();
    });
    return true;
  }

  /** Starts draining: readiness fails, new requests are refused, subscriptions end. */
  begin(): void {
    if (this.draining) return;
    this.draining = true;
    // Answers still to be written ask their clients to reconnect elsewhere.
    for (const res of this.inFlight) if (!res.headersSent) res.setHeader("connection", "close");
    for (const subscription of [...this.subscriptionEnders]) subscription.end();
  }

  /** Resolves once no request is in flight, or at `deadlineMs` (epoch ms), whichever comes first. */
  async settled(deadlineMs: number): Promise<boolean> {
    if (this.inFlight.size === 0) return true;
    const remainingMs = Math.max(0, deadlineMs - Date.now());
    let timer: NodeJS.Timeout | undefined;
    const drained = await Promise.race([
      new Promise<boolean>((resolve) => {
        this.idle = () => resolve(true);
      }),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), remainingMs);
      }),
    ]);
    clearTimeout(timer);
    this.idle = null;
    return drained;
  }

  /** Ends the event streams still open (graphql-sse's single-connection stream outlives its operations). */
  endStreams(): void {
    for (const res of this.streams) res.end();
  }

  /**
   * Yoga plugin: every subscription (graphql-ws, SSE of both kinds) ends
   * when draining begins, so its transport sends `complete`.
   */
  plugin(): Plugin {
    return {
      onSubscribe: () => ({
        onSubscribeResult: ({ result, setResult }) => {
          if (isAsyncIterable(result)) setResult(this.endingOnDrain(result) as never);
        },
      }),
    };
  }

  /**
   * The subscription's iterator, ended by draining. A pending `next()` is
   * resolved as done from the outside (no race against a shared promise per
   * event, which would keep one reaction per event alive for as long as the
   * subscription lives).
   */
  private endingOnDrain<T>(source: AsyncIterable<T>): AsyncIterableIterator<T> {
    const subscription = new DrainingIterator(source[Symbol.asyncIterator](), this.subscriptionEnders);
    if (this.draining) subscription.ended = true;
    else this.subscriptionEnders.add(subscription as DrainingIterator<unknown>);
    return subscription;
  }
}

const DONE = { done: true, value: undefined } as IteratorReturnResult<undefined>;

/**
 * A subscription's iterator that draining ends (see `endingOnDrain`): a
 * class, so its methods cost a long-lived subscription nothing (see log.ts).
 */
class DrainingIterator<T> implements AsyncIterableIterator<T> {
  ended = false;
  private pending: ((result: IteratorResult<T>) => void) | null = null;

  constructor(
    private readonly iterator: AsyncIterator<T>,
    private readonly enders: Set<DrainingIterator<unknown>>,
  ) {}

  [Symbol.asyncIterator](): this {
    return this;
  }

  /** Ends the subscription from the outside: a pending `next()` resolves as done. */
  end(): void {
    this.ended = true;
    this.forget();
    this.pending?.(DONE);
    this.pending = null;
    void Promise.resolve(this.iterator.return?.()).catch(() => {
      // The source failing while it is being closed changes nothing: its subscriber is gone.
    });
  }

  next(): Promise<IteratorResult<T>> {
    if (this.ended) return Promise.resolve(DONE);
    return new Promise<IteratorResult<T>>((resolve, reject) => {
      this.pending = resolve;
      this.iterator.next().then(
        (result) => {
          this.pending = null;
          if (result.done) this.forget();
          resolve(result);
        },
        (error: unknown) => {
          this.pending = null;
          this.forget();
          reject(error);
        },
      );
    });
  }

  async return(value?: unknown): Promise<IteratorResult<T>> {
    this.ended = true;
    this.forget();
    this.pending?.(DONE);
    await this.iterator.return?.(value);
    return DONE;
  }

  async throw(error?: unknown): Promise<IteratorResult<T>> {
    this.forget();
    if (this.iterator.throw !== undefined) return this.iterator.throw(error);
    throw error;
  }

  private forget(): void {
    this.enders.delete(this as DrainingIterator<unknown>);
  }
}

function isEventStream(req: IncomingMessage): boolean {
  return (req.headers.accept ?? "").includes("text/event-stream");
}

function isAsyncIterable(value: unknown): value is AsyncIterable<unknown> {
  return typeof value === "object" && value !== null && Symbol.asyncIterator in value;
}
