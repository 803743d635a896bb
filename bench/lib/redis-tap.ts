/**
 * Watches the servers' Redis event channels and notes when each ledger entry
 * was published. A server publishes right after its transaction commits
 * (src/server/events.ts), so the publish seen here is the closest outside
 * view of the commit: B3's commit → client latency is measured from it.
 *
 * Channel names and the event's JSON (accountId, entries[].sequence) are the
 * service's own; if they change, the tap sees nothing and the report falls
 * back to the other two latency measures.
 */
import { Redis } from "ioredis";
import { nowMs } from "./stats.ts";

/** The pattern of src/server/events.ts channelOf(accountId). */
const CHANNEL_PATTERN = "creditbook:account:*";

export class RedisTap {
  /** `${accountId}:${sequence}` → when its event was first seen (wall-clock ms). */
  readonly publishedAt = new Map<string, number>();
  private readonly redis: Redis;
  messages = 0;
  undecodable = 0;

  private constructor(redis: Redis) {
    this.redis = redis;
  }

  static async open(url: string): Promise<RedisTap> {
    const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    redis.on("error", () => {});
    await redis.connect();
    const tap = new RedisTap(redis);
    redis.on("pmessageBuffer", (_pattern: Buffer, _channel: Buffer, message: Buffer) => {
      const at = nowMs();
      tap.messages += 1;
      try {
        const event = JSON.parse(message.toString()) as {
          accountId?: string;
          entries?: { sequence?: number }[];
        };
        for (const entry of event.entries ?? []) {
          const key = `${event.accountId}:${entry.sequence}`;
          if (!tap.publishedAt.has(key)) tap.publishedAt.set(key, at);
        }
      } catch {
        tap.undecodable += 1;
      }
    });
    await redis.psubscribe(CHANNEL_PATTERN);
    return tap;
  }

  close(): void {
    this.redis.disconnect();
  }
}
