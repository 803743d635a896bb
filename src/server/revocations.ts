/**
 * Revocations between instances over Redis pub/sub (one channel for all):
 * every instance ends what a revoked API key or a removed member held open
 * (see domain/revocations.ts), within a Redis round trip of the announcement.
 */
import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import type { Revocation, RevocationTransport } from "../domain/revocations.ts";

/** The one channel revocations travel on. */
export const REVOCATIONS_CHANNEL = "creditbook:revocations";

interface Message {
  /** The instance that announced it: that one has applied it already. */
  readonly from: string;
  readonly revocation: Revocation;
}

function isRevocation(value: unknown): value is Revocation {
  const r = value as Record<string, unknown> | null;
  if (typeof r !== "object" || r === null) return false;
  if (r.kind === "apiKey") return typeof r.apiKeyId === "string";
  return r.kind === "member" && typeof r.accountId === "string" && typeof r.userId === "string";
}

/**
 * Two ioredis connections (a subscribed one cannot publish). The announcing
 * instance applies its own revocation at once, not when Redis echoes it.
 */
export class RedisRevocationTransport implements RevocationTransport {
  private readonly instanceId = randomUUID();
  private readonly publisher: Redis;
  private readonly subscriber: Redis;
  private readonly subscribed: Promise<void>;
  private listener: (revocation: Revocation) => void = () => {};

  constructor(
    url: string,
    private readonly warn: (message: string) => void,
  ) {
    const options = {
      maxRetriesPerRequest: 1,
      retryStrategy: (times: number) => Math.min(times * 100, 2_000),
    };
    this.publisher = new Redis(url, { ...options, connectionName: "creditbook-revocations-pub" });
    this.subscriber = new Redis(url, { ...options, connectionName: "creditbook-revocations-sub" });
    // Outages are logged by the event bus, which shares this Redis; ioredis reconnects and resubscribes.
    this.publisher.on("error", () => {});
    this.subscriber.on("error", () => {});
    this.subscriber.on("message", (_channel: string, text: string) => this.received(text));
    this.subscribed = this.subscriber.subscribe(REVOCATIONS_CHANNEL).then(
      () => {},
      (error: unknown) => this.warn(`subscribing to revocations failed: ${(error as Error).message}`),
    );
  }

  /** Resolves once this instance receives revocations (or its first subscribe failed). */
  ready(): Promise<void> {
    return this.subscribed;
  }

  publish(revocation: Revocation): void {
    queueMicrotask(() => this.listener(revocation));
    const message: Message = { from: this.instanceId, revocation };
    this.publisher.publish(REVOCATIONS_CHANNEL, JSON.stringify(message)).catch((error: unknown) => {
      // The other instances still refuse the key within API_KEY_CACHE_MS and a removed member's
      // next request; only their open subscriptions stay open until they reconnect.
      this.warn(`announcing a revocation failed: ${(error as Error).message}`);
    });
  }

  listen(listener: (revocation: Revocation) => void): void {
    this.listener = listener;
  }

  private received(text: string): void {
    let message: Message;
    try {
      message = JSON.parse(text) as Message;
    } catch (error) {
      this.warn(`a revocation could not be decoded: ${(error as Error).message}`);
      return;
    }
    if (message.from === this.instanceId || !isRevocation(message.revocation)) return;
    this.listener(message.revocation);
  }

  async close(): Promise<void> {
    await Promise.all(
      [this.publisher, this.subscriber].map((redis) =>
        redis.quit().catch(() => {
          // Already disconnected (Redis down): nothing is left to close.
        }),
      ),
    );
  }
}
