import { type ExecutionArgs, type GraphQLError, getOperationAST } from "graphql";
import type { OperationResult, ServerOptions } from "graphql-ws";
import { createGraphQLError } from "graphql-yoga";

/** Most subscriptions one WebSocket may hold at once. @default 50 */
export const SUBSCRIPTIONS_PER_CONNECTION_MAX = 50;
/** Most subscriptions one principal (token subject) may hold at once on one instance. @default 500 */
export const SUBSCRIPTIONS_PER_PRINCIPAL_MAX = 500;

export interface SubscriptionLimitsOptions {
  /** @default SUBSCRIPTIONS_PER_CONNECTION_MAX */
  readonly perConnectionMax?: number;
  /** @default SUBSCRIPTIONS_PER_PRINCIPAL_MAX */
  readonly perPrincipalMax?: number;
}

/** Gives a subscription's place back; calling it again does nothing. */
export type Release = () => void;

/** `WebSocket.OPEN`. */
const SOCKET_OPEN = 1;

interface Connection {
  /** Subscriptions holding a place. */
  count: number;
  /** The end of the last operation setup queued on this socket: setups run one after another. */
  setups: Promise<void>;
}

interface Place {
  readonly release: Release;
  /** Lets the socket's next operation setup start. */
  readonly endTurn: () => void;
}

/** What the limits need to know of a graphql-ws connection. */
interface Extra {
  readonly socket: { readonly readyState: number };
  readonly principal?: { readonly sub: string } | null;
}

/**
 * Places for subscriptions over WebSocket: per connection and per principal
 * on this instance. Every subscription costs a feed listener, a queue and,
 * with `afterSequence`, a replay from the database, so one socket (or one
 * token over many sockets) must not open them without bound. A subscribe
 * past a limit is refused as an error of that operation only: the socket
 * and its other subscriptions carry on.
 *
 * A place is taken when the operation is accepted and given back when its
 * stream ends, however it ends (done, failed, completed by the client, or
 * the socket closing, which returns every stream of the socket).
 *
 * The operations of one socket are set up one at a time (parse, validate,
 * and for a subscription its visibility checks and joining the feed), so a
 * burst of subscribes queues on its own socket, not in the event loop or
 * the database pool; setups still queued when the socket closes are dropped
 * without any work.
 */
export class SubscriptionLimits {
  readonly perConnectionMax: number;
  readonly perPrincipalMax: number;
  private readonly byConnection = new WeakMap<object, Connection>();
  private readonly byPrincipal = new Map<string, number>();
  /** Places taken at subscribe, waiting for their operation's stream (keyed by its context). */
  private readonly held = new WeakMap<object, Place>();

  constructor(options: SubscriptionLimitsOptions = {}) {
    this.perConnectionMax = options.perConnectionMax ?? SUBSCRIPTIONS_PER_CONNECTION_MAX;
    this.perPrincipalMax = options.perPrincipalMax ?? SUBSCRIPTIONS_PER_PRINCIPAL_MAX;
  }

  /** Subscriptions the principal holds on this instance. */
  ofPrincipal(principal: string): number {
    return this.byPrincipal.get(principal) ?? 0;
  }

  /** graphql-ws server options with these limits around their `onSubscribe` and `subscribe`. */
  serve<P extends Record<string, unknown>, E extends Extra>(
    options: ServerOptions<P, E>,
  ): ServerOptions<P, E> {
    const { onSubscribe, subscribe } = options;
    if (onSubscribe === undefined || subscribe === undefined) {
      throw new Error("SubscriptionLimits.serve needs onSubscribe and subscribe");
    }
    return {
      ...options,
      onSubscribe: (ctx, id, payload) => this.admit(ctx.extra, () => onSubscribe(ctx, id, payload)),
      subscribe: (args) => this.track(args.contextValue, () => subscribe(args)),
    };
  }

  /**
   * Sets up an operation in its socket's turn; a subscription also takes a
   * place, and keeps the turn until `track` has run its subscribe.
   */
  private async admit<T>(extra: Extra, setup: () => T | Promise<T>): Promise<T | readonly GraphQLError[]> {
    const connection = this.connectionOf(extra.socket);
    let endTurn = () => {};
    const turnEnded = new Promise<void>((resolve) => {
      endTurn = resolve;
    });
    const previous = connection.setups;
    connection.setups = turnEnded;
    let handedOn = false;
    try {
      await previous;
      if (extra.socket.readyState !== SOCKET_OPEN) return [connectionClosed()];
      const result = await setup();
      if (!isSubscription(result)) return result;
      const refused = this.take(
        connection,
        extra.principal?.sub ?? "",
        result.contextValue as object,
        endTurn,
      );
      if (refused !== null) return [refused];
      handedOn = true;
      return result;
    } finally {
      if (!handedOn) endTurn();
    }
  }

  private connectionOf(socket: object): Connection {
    let connection = this.byConnection.get(socket);
    if (connection === undefined) {
      connection = { count: 0, setups: Promise.resolve() };
      this.byConnection.set(socket, connection);
    }
    return connection;
  }

  /** Takes a place for the operation whose context is `context`, or returns the error that refuses it. */
  private take(
    connection: Connection,
    principal: string,
    context: object,
    endTurn: () => void,
  ): GraphQLError | null {
    if (connection.count >= this.perConnectionMax) {
      return tooMany(
        `Too many subscriptions on this connection: at most ${this.perConnectionMax} (SUBSCRIPTIONS_PER_CONNECTION_MAX). Complete one before starting another.`,
        this.perConnectionMax,
      );
    }
    const ofPrincipal = this.ofPrincipal(principal);
    if (ofPrincipal >= this.perPrincipalMax) {
      return tooMany(
        `Too many subscriptions for this token on this server: at most ${this.perPrincipalMax} (SUBSCRIPTIONS_PER_PRINCIPAL_MAX). Complete one before starting another.`,
        this.perPrincipalMax,
      );
    }
    connection.count += 1;
    this.byPrincipal.set(principal, ofPrincipal + 1);
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      connection.count -= 1;
      const left = this.ofPrincipal(principal) - 1;
      if (left > 0) this.byPrincipal.set(principal, left);
      else this.byPrincipal.delete(principal);
    };
    this.held.set(context, { release, endTurn });
    return null;
  }

  /**
   * Runs the subscribe of an operation admitted with a place, ends its
   * socket's turn, and ties the place to the stream it returns: given back
   * when the stream ends, or at once when there is no stream (an error).
   */
  private async track(context: unknown, subscribe: () => OperationResult): Promise<Awaited<OperationResult>> {
    const place = typeof context === "object" && context !== null ? this.held.get(context) : undefined;
    if (place === undefined) return subscribe();
    this.held.delete(context as object);
    let result: Awaited<OperationResult>;
    try {
      result = await subscribe();
    } catch (error) {
      place.release();
      throw error;
    } finally {
      place.endTurn();
    }
    if (!isAsyncIterable(result)) {
      place.release();
      return result;
    }
    return releasingAtEnd(result, place.release);
  }
}

/**
 * Whether onSubscribe's answer is a subscription to run. graphql-ws picks
 * the operation with graphql's getOperationAST, so the same is used here:
 * an operation it cannot pick never reaches subscribe.
 */
function isSubscription(result: unknown): result is ExecutionArgs {
  if (typeof result !== "object" || result === null || Array.isArray(result)) return false;
  const args = result as Partial<ExecutionArgs>;
  if (args.document === undefined) return false;
  return getOperationAST(args.document, args.operationName)?.operation === "subscription";
}

function connectionClosed(): GraphQLError {
  return createGraphQLError("The connection is closed", { extensions: { code: "CONNECTION_CLOSED" } });
}

function tooMany(message: string, limit: number): GraphQLError {
  // yoga's helper: graphql-ws accepts only errors of the graphql copy it loaded (see persisted.ts).
  return createGraphQLError(message, { extensions: { code: "TOO_MANY_SUBSCRIPTIONS", limit } });
}

function isAsyncIterable(value: unknown): value is AsyncIterable<unknown> {
  return typeof value === "object" && value !== null && Symbol.asyncIterator in value;
}

/** The same stream, calling `release` once when it is done, fails or is returned. */
function releasingAtEnd<T>(source: AsyncIterable<T>, release: Release): AsyncIterableIterator<T> {
  return new ReleasingIterator(source[Symbol.asyncIterator](), release);
}

/** A class: its methods cost a long-lived subscription nothing (see log.ts). */
class ReleasingIterator<T> implements AsyncIterableIterator<T> {
  constructor(
    private readonly iterator: AsyncIterator<T>,
    private readonly release: Release,
  ) {}

  [Symbol.asyncIterator](): this {
    return this;
  }

  async next(): Promise<IteratorResult<T>> {
    let step: IteratorResult<T>;
    try {
      step = await this.iterator.next();
    } catch (error) {
      this.release();
      throw error;
    }
    if (step.done === true) this.release();
    return step;
  }

  async return(value?: unknown): Promise<IteratorResult<T>> {
    try {
      return (await this.iterator.return?.(value)) ?? { done: true as const, value: undefined };
    } finally {
      this.release();
    }
  }

  async throw(error?: unknown): Promise<IteratorResult<T>> {
    try {
      return (
        (await (this.iterator.throw?.(error) ?? Promise.reject(error))) ?? { done: true, value: undefined }
      );
    } finally {
      this.release();
    }
  }
}
