/**
 * The mutation rate limit (SPEC §8.6): per token subject (or API key) and role, shared by
 * every instance through Redis when REDIS_URL is set, in memory otherwise.
 * Built on rate-limiter-flexible's fixed windows: a subject may send
 * `2 × perSecond` mutations in each window of RATE_LIMIT_WINDOW_SECONDS,
 * which keeps the long-standing "bursts of twice the rate" while averaging
 * `perSecond`. A refused attempt still counts in its window (the store adds
 * before it compares), so hammering does not get more through.
 */
import { Redis } from "ioredis";
import {
  type RateLimiterAbstract,
  RateLimiterMemory,
  RateLimiterRedis,
  RateLimiterRes,
} from "rate-limiter-flexible";
import type { Principal } from "../domain/access.ts";

/** Length of one rate-limit window; each window admits twice the per-second rate. */
export const RATE_LIMIT_WINDOW_SECONDS = 2;
/** How long one Redis round trip may take before the in-memory limiter answers instead. */
const REDIS_COMMAND_TIMEOUT_MS = 500;
/** Redis key prefix: keys are `rl:<role>:<sub>`. */
const KEY_PREFIX = "rl";

/** What the limiter decided for one operation. */
export type RateDecision =
  | { readonly allowed: true }
  | {
      readonly allowed: false;
      /** Most mutations one operation may hold for this subject. */
      readonly burstMax: number;
      /** The operation holds more mutations than one window admits: retrying cannot help. */
      readonly tooLarge: boolean;
      /** Whole seconds until the window reopens (at least 1); null when `tooLarge`. */
      readonly retryAfterSeconds: number | null;
    };

export interface MutationRateLimitOptions {
  /** RATE_LIMIT_PER_SECOND: `user` tokens; 0 = no limit. */
  readonly userPerSecond: number;
  /** RATE_LIMIT_SERVICE_PER_SECOND: `service` and `admin` tokens; 0 = no limit. */
  readonly servicePerSecond: number;
  /** Shared store; unset → each instance limits on its own, in memory. */
  readonly redisUrl: string | undefined;
}

/**
 * One limiter per rate (the user rate, the service rate, and each rate API
 * keys have of their own), on one shared Redis connection opened at once:
 * opened with the first limiter instead, the first mutations would arrive
 * while it still connects and be counted by each instance's in-memory
 * insurance alone, admitting up to the budget on every instance.
 */
export class MutationRateLimit {
  private readonly limiters = new Map<number, RateLimiterAbstract>();
  private readonly redis: Redis | null;

  private constructor(private readonly options: MutationRateLimitOptions) {
    this.redis = options.redisUrl === undefined ? null : connect(options.redisUrl);
  }

  /** The limiters for the options; keys with a rate of their own are limited even when both are off. */
  static create(options: MutationRateLimitOptions): MutationRateLimit {
    return new MutationRateLimit(options);
  }

  /** The limiter of a rate (created on first use); null for 0, no limit. */
  private limiterOf(perSecond: number): RateLimiterAbstract | null {
    if (perSecond <= 0) return null;
    let limiter = this.limiters.get(perSecond);
    if (limiter === undefined) {
      limiter = limiterOf(perSecond, this.redis);
      this.limiters.set(perSecond, limiter);
    }
    return limiter;
  }

  /** Whether the principal has a limit at all (when not, mutations need not wait for `take`). */
  limits(principal: Principal): boolean {
    return this.perSecondOf(principal) > 0;
  }

  private perSecondOf(principal: Principal): number {
    // Admin tokens are operators' own credentials, like service tokens: they get the service limit.
    // An API key may have a rate of its own (SPEC §8.6).
    return (
      principal.rateLimitPerSecond ??
      (principal.role === "user" ? this.options.userPerSecond : this.options.servicePerSecond)
    );
  }

  /** Takes `count` mutations (one per mutation root field) from the principal's window, or refuses. */
  async take(principal: Principal, count: number): Promise<RateDecision> {
    const limiter = this.limiterOf(this.perSecondOf(principal));
    if (limiter === null) return { allowed: true };
    const burstMax = limiter.points;
    // Never consume for an operation that cannot fit: it would only use up the subject's window.
    if (count > burstMax) return { allowed: false, burstMax, tooLarge: true, retryAfterSeconds: null };
    try {
      await limiter.consume(`${principal.role}:${principal.sub}`, count);
      return { allowed: true };
    } catch (error) {
      // Store errors never reach here: the in-memory insurance limiter answers them (see limiterOf).
      if (!(error instanceof RateLimiterRes)) throw error;
      const retryAfterSeconds = Math.max(1, Math.ceil(error.msBeforeNext / 1000));
      return { allowed: false, burstMax, tooLarge: false, retryAfterSeconds };
    }
  }

  /** Closes the Redis connection, if there is one. */
  async close(): Promise<void> {
    await this.redis?.quit().catch(() => {
      // Already disconnected (Redis down): nothing is left to close.
    });
  }
}

function limiterOf(perSecond: number, redis: Redis | null): RateLimiterAbstract {
  const window = { points: 2 * perSecond, duration: RATE_LIMIT_WINDOW_SECONDS, keyPrefix: KEY_PREFIX };
  const memory = new RateLimiterMemory(window);
  if (redis === null) return memory;
  return new RateLimiterRedis({
    ...window,
    storeClient: redis,
    // Redis down or slow must not fail every mutation: the insurance limiter answers instead,
    // in memory and per instance, so during an outage each instance admits up to the full
    // budget on its own (N instances → up to N × the limit) until Redis is back.
    insuranceLimiter: memory,
    rejectIfRedisNotReady: true,
  });
}

function connect(url: string): Redis {
  const redis = new Redis(url, {
    connectionName: "creditbook-ratelimit",
    // Fail fast while Redis is down (the insurance limiter answers) instead of queueing commands.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: REDIS_COMMAND_TIMEOUT_MS,
    retryStrategy: (times: number) => Math.min(times * 100, 2_000),
  });
  // Connection errors are expected during an outage: ioredis reconnects, the event bus logs the outage.
  redis.on("error", () => {});
  return redis;
}
