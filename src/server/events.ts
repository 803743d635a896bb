import { Redis } from "ioredis";
import type { AccountEvent, AccountListener, EventBus, EventStats } from "../domain/events.ts";

const DATE_KEYS = new Set(["createdAt", "updatedAt", "at"]);
const BIGINT_KEYS = new Set([
  "amount",
  "balanceBefore",
  "balanceAfter",
  "available",
  "held",
  "total",
  "subscription",
  "wallet",
  "threshold",
]);

/** JSON with bigint amounts as strings; `decodeEvent` restores them exactly. */
export function encodeEvent(event: AccountEvent): string {
  return JSON.stringify(event, (_key, value) => (typeof value === "bigint" ? value.toString() : value));
}

export function decodeEvent(text: string): AccountEvent {
  return JSON.parse(text, (key, value) => {
    if (typeof value === "string" && BIGINT_KEYS.has(key)) return BigInt(value);
    if (typeof value === "string" && DATE_KEYS.has(key)) return new Date(value);
    return value;
  }) as AccountEvent;
}

abstract class FanOut {
  protected readonly listeners = new Map<string, Set<AccountListener>>();
  readonly stats: EventStats = { published: 0, publishFailed: 0, received: 0, topics: 0 };

  protected deliver(accountId: string, event: AccountEvent): void {
    this.stats.received += 1;
    for (const listener of this.listeners.get(accountId) ?? []) {
      try {
        listener(event);
      } catch (error) {
        process.emitWarning(`event listener failed: ${(error as Error).message}`);
      }
    }
  }

  protected add(accountId: string, listener: AccountListener): boolean {
    let set = this.listeners.get(accountId);
    const first = set === undefined;
    if (set === undefined) {
      set = new Set();
      this.listeners.set(accountId, set);
      this.stats.topics = this.listeners.size;
    }
    set.add(listener);
    return first;
  }

  protected remove(accountId: string, listener: AccountListener): boolean {
    const set = this.listeners.get(accountId);
    if (set === undefined) return false;
    set.delete(listener);
    if (set.size > 0) return false;
    this.listeners.delete(accountId);
    this.stats.topics = this.listeners.size;
    return true;
  }
}

/** One process: events go straight to local listeners (after commit, asynchronously). */
export class InProcessEventBus extends FanOut implements EventBus {
  publish(event: AccountEvent): void {
    this.stats.published += 1;
    queueMicrotask(() => this.deliver(event.accountId, event));
  }

  subscribe(accountId: string, listener: AccountListener): () => void {
    this.add(accountId, listener);
    return () => this.remove(accountId, listener);
  }

  async ready(): Promise<void> {}

  async healthy(): Promise<boolean> {
    return true;
  }

  async close(): Promise<void> {
    this.listeners.clear();
  }
}

/** Channel names are per account, so Redis Cluster's sharded pub/sub fits the same way. */
export function channelOf(accountId: string): string {
  return `creditbook:account:${accountId}`;
}

/** At most one "publish failed" log line per this interval; the rest are counted into it. @default 1_000 // 1 second */
export const PUBLISH_FAILURE_LOG_INTERVAL_MS = 1_000;

/**
 * Redis pub/sub with two ioredis connections (a subscribed connection cannot
 * publish). We do not use @graphql-yoga/redis-event-target here: its
 * dispatchEvent drops the publish promise, so a Redis outage becomes an
 * unhandled rejection instead of a counted, logged failure.
 */
export class RedisEventBus extends FanOut implements EventBus {
  private readonly publisher: Redis;
  private readonly subscriber: Redis;
  private readonly subscribed = new Map<string, Promise<void>>();
  private readonly reconnectCallbacks: (() => void)[] = [];
  private connectedOnce = false;
  private connected = false;
  private failuresUnlogged = 0;
  private failureLoggedAtMs = 0;

  constructor(
    url: string,
    private readonly log: (message: string) => void = (message) => process.emitWarning(message),
  ) {
    super();
    const options = {
      // Fail fast while Redis is down instead of queueing publishes in memory.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      retryStrategy: (times: number) => Math.min(times * 100, 2_000),
      lazyConnect: false,
    };
    this.publisher = new Redis(url, {
      ...options,
      // A commit of many accounts publishes one event per account in one tick: one socket write
      // for all of them instead of one each (in order, on the one connection).
      enableAutoPipelining: true,
      connectionName: "creditbook-pub",
    });
    this.subscriber = new Redis(url, {
      ...options,
      enableOfflineQueue: true,
      // We resubscribe ourselves on "ready": ioredis only restores channels whose SUBSCRIBE had
      // succeeded, so a feed opened while Redis was down would otherwise never get live events.
      autoResubscribe: false,
      connectionName: "creditbook-sub",
    });
    // Connection errors are expected during an outage; ioredis reconnects and we log state changes below.
    this.publisher.on("error", () => {});
    this.subscriber.on("error", () => {});
    this.subscriber.on("close", () => {
      // Once per outage, not once per failed reconnect attempt.
      if (!this.connected) return;
      this.connected = false;
      this.log("event bus: Redis connection lost; reconnecting");
    });
    this.subscriber.on("ready", () => this.onReady());
    this.subscriber.on("messageBuffer", (channel: Buffer, message: Buffer) => {
      const name = channel.toString();
      const accountId = name.slice(name.lastIndexOf(":") + 1);
      let event: AccountEvent;
      try {
        event = decodeEvent(message.toString());
      } catch (error) {
        // Not ours (another publisher on the channel, or a version mismatch): the feeds resync from the ledger.
        this.log(`event on ${name} could not be decoded: ${(error as Error).message}`);
        return;
      }
      this.deliver(accountId, event);
    });
  }

  /**
   * (Re)subscribes every topic with local listeners, on the first connect too:
   * Redis may have been down when the server started. After an outage the
   * reconnect callbacks run once the channels are back.
   */
  private onReady(): void {
    const reconnected = this.connectedOnce;
    this.connectedOnce = true;
    this.connected = true;
    const channels = [...this.listeners.keys()].map(channelOf);
    const resubscribed =
      channels.length === 0
        ? Promise.resolve()
        : this.subscriber.subscribe(...channels).then(
            () => undefined,
            (error: Error) => this.log(`event bus: resubscribe failed: ${error.message}`),
          );
    if (!reconnected) return;
    void resubscribed.then(() => {
      this.log(`event bus: Redis is back; resubscribed ${channels.length} channels`);
      for (const callback of this.reconnectCallbacks) callback();
    });
  }

  onReconnect(callback: () => void): void {
    this.reconnectCallbacks.push(callback);
  }

  publish(event: AccountEvent): void {
    this.publisher.publish(channelOf(event.accountId), encodeEvent(event)).then(
      () => {
        this.stats.published += 1;
      },
      (error: Error) => {
        this.stats.publishFailed += 1;
        this.failuresUnlogged += 1;
        const now = Date.now();
        if (now - this.failureLoggedAtMs < PUBLISH_FAILURE_LOG_INTERVAL_MS) return;
        this.log(
          `event publish failed (${this.failuresUnlogged} since the last report, ${this.stats.publishFailed} in all; ` +
            `subscribers recover from the ledger), last for account ${event.accountId} ` +
            `sequence ${event.sequence}: ${error.message}`,
        );
        this.failuresUnlogged = 0;
        this.failureLoggedAtMs = now;
      },
    );
  }

  subscribe(accountId: string, listener: AccountListener): () => void {
    if (this.add(accountId, listener)) {
      const channel = channelOf(accountId);
      this.subscribed.set(
        accountId,
        this.subscriber.subscribe(channel).then(
          () => undefined,
          // Not fatal: the channel is subscribed again when Redis is back, and feeds resync from the ledger.
          (error: Error) => this.log(`subscribe to ${channel} failed: ${error.message}`),
        ),
      );
    }
    return () => {
      if (this.remove(accountId, listener)) {
        this.subscribed.delete(accountId);
        // While Redis is down there is nothing to unsubscribe from; "ready" only resubscribes live topics.
        this.subscriber.unsubscribe(channelOf(accountId)).catch(() => {});
      }
    };
  }

  async ready(accountId: string): Promise<void> {
    await this.subscribed.get(accountId);
  }

  async healthy(): Promise<boolean> {
    try {
      return (await this.publisher.ping()) === "PONG";
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    this.listeners.clear();
    this.publisher.disconnect();
    this.subscriber.disconnect();
  }
}
