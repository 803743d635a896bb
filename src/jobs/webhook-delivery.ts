import type { LookupAddress } from "node:dns";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { Webhook } from "standardwebhooks";
import type { Database } from "../db/database.ts";
import {
  type ClaimedDelivery,
  claimDue,
  pruneDeliveries,
  type QueueStats,
  queueStats,
  recordAttempt,
} from "../db/webhooks.ts";
import { InvalidInputError } from "../domain/errors.ts";
import { hostOf, parseWebhookUrl, resolvePublic } from "../domain/webhook-url.ts";
import type { Logger } from "../log.ts";

/** How long one attempt may take, connection included, before it counts as failed. @default 10_000 // 10 seconds */
export const WEBHOOK_TIMEOUT_MS = 10_000;
/** Attempts of one delivery before it is FAILED: the first and 10 retries, spanning over 25 hours at the default base. */
export const WEBHOOK_ATTEMPTS_MAX = 11;
/** The first retry's delay; each next one is 3 times longer, up to WEBHOOK_RETRY_DELAY_MAX_MS. @default 10_000 // 10 seconds */
export const WEBHOOK_RETRY_BASE_MS = 10_000;
/** The longest pause between two attempts at the default base. @default 28_800_000 // 8 hours */
export const WEBHOOK_RETRY_DELAY_MAX_MS = 8 * 3_600_000;

/**
 * The pause after failed attempt number `attempt` (1 = the first): base ×
 * 3^(attempt−1), capped at 2,880 × base (8 hours at the default), plus up to
 * 25% random jitter so that retries of many deliveries spread out. Jitter
 * only adds, so the schedule spans at least 25.1 hours at the default base:
 * 10 s, 30 s, 1.5 min, 4.5 min, 13.5 min, 40.5 min, 2 h, 6.1 h, 8 h, 8 h.
 */
export function retryDelayMs(attempt: number, baseMs: number, random: () => number = Math.random): number {
  const capMs = baseMs * (WEBHOOK_RETRY_DELAY_MAX_MS / WEBHOOK_RETRY_BASE_MS);
  const delayMs = Math.min(baseMs * 3 ** (attempt - 1), capMs);
  return Math.round(delayMs * (1 + 0.25 * random()));
}

export interface WebhookWorkerOptions {
  /** Pause between rounds when nothing was due. @default 200 // ms */
  readonly intervalMs?: number;
  /** Deliveries one instance sends at once; a round claims only as many as are free. @default 64 */
  readonly concurrencyMax?: number;
  /** See retryDelayMs (the server passes WEBHOOK_RETRY_BASE_MS). */
  readonly retryBaseMs: number;
  /** Deliveries older than this many days are deleted (WEBHOOK_RETENTION_DAYS). */
  readonly retentionDays: number;
  /** WEBHOOK_ALLOW_PRIVATE: http and private addresses allowed (development and tests). */
  readonly allowPrivate: boolean;
  readonly clock?: () => Date;
}

export interface WebhookWorkerStats {
  /** Attempts by outcome: succeeded (2xx), retrying (failed, another attempt is due), failed (every attempt spent). */
  readonly deliveries: { succeeded: number; retrying: number; failed: number };
  pruned: number;
}

/** What one attempt came to. */
interface AttemptResult {
  readonly responseStatus: number | null;
  readonly problem: string | null;
}

/** Since a claim's lease must outlast the attempt, with room for the bookkeeping around it. */
const LEASE_MS = WEBHOOK_TIMEOUT_MS * 3;
/** How often the worker prunes old deliveries. @default 60_000 // 1 minute */
const PRUNE_INTERVAL_MS = 60_000;
/** Bytes of a response read before the rest is dropped: the body is never used. */
const RESPONSE_BYTES_MAX = 64 * 1024;

/**
 * Sends the outbox's due deliveries (SPEC §8.4), on every instance at once:
 * each round claims due rows with FOR UPDATE SKIP LOCKED and a lease (one
 * worker per delivery at a time), POSTs each signed per Standard Webhooks,
 * and records the outcome: 2xx within 10 s is SUCCEEDED, anything else is
 * retried on the backoff schedule until WEBHOOK_ATTEMPTS_MAX, then FAILED.
 * A worker killed mid-attempt leaves its rows due again when the lease ends.
 */
export class WebhookWorker {
  readonly stats: WebhookWorkerStats = { deliveries: { succeeded: 0, retrying: 0, failed: 0 }, pruned: 0 };
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private stopped = true;
  private roundRunning = false;
  /** A round ended while it was running: it runs again at once. */
  private again = false;
  /** The last round filled every free slot: more is probably due. */
  private saturated = false;
  private readonly concurrencyMax: number;
  private lastPruneMs = 0;
  private readonly inFlight = new Set<Promise<void>>();
  private readonly clock: () => Date;

  constructor(
    private readonly db: Database,
    private readonly options: WebhookWorkerOptions,
    private readonly log: Logger,
  ) {
    this.clock = options.clock ?? (() => new Date());
    this.concurrencyMax = options.concurrencyMax ?? 64;
  }

  start(): void {
    this.stopped = false;
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    await this.running;
    await this.settled();
  }

  /** Pending deliveries over every endpoint, for the metrics. */
  queueStats(): Promise<QueueStats> {
    return queueStats(this.db, this.clock());
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    if (this.roundRunning) {
      // The running round schedules the next one when it ends.
      this.again = true;
      return;
    }
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.runRound(), delayMs);
    this.timer.unref();
  }

  private runRound(): void {
    this.timer = null;
    this.roundRunning = true;
    this.again = false;
    this.running = this.round()
      .catch((error: unknown) => {
        this.log.error("webhook round failed", { err: error });
        return false;
      })
      .then((more) => {
        this.roundRunning = false;
        this.schedule(more || this.again ? 0 : (this.options.intervalMs ?? 200));
      });
  }

  /**
   * One round: claims as many due deliveries as there are free slots and
   * starts them without waiting for them (a slow endpoint holds one slot,
   * not the round). When it fills every free slot, more is probably due:
   * the next round starts as soon as half the slots are free again (see
   * `track`), else after the interval. @returns whether to start the next
   * round at once (false: `track` or the interval starts it)
   */
  async round(): Promise<boolean> {
    const now = this.clock();
    if (now.getTime() - this.lastPruneMs >= PRUNE_INTERVAL_MS) {
      this.lastPruneMs = now.getTime();
      const before = new Date(now.getTime() - this.options.retentionDays * 86_400_000);
      this.stats.pruned += await pruneDeliveries(this.db, before, 10_000);
    }
    const free = this.concurrencyMax - this.inFlight.size;
    if (free <= 0) {
      // Every slot is taken: the next round starts when half of them are free again.
      this.saturated = true;
      return false;
    }
    const claimed = await claimDue(this.db, now, new Date(now.getTime() + LEASE_MS), free);
    for (const delivery of claimed) this.track(this.deliver(delivery), delivery.id);
    if (claimed.length >= free) this.saturated = true;
    return false;
  }

  private track(sending: Promise<void>, deliveryId: string): void {
    const tracked: Promise<void> = sending
      .catch((error: unknown) => this.log.error("webhook delivery failed", { err: error, deliveryId }))
      .finally(() => {
        this.inFlight.delete(tracked);
        if (this.saturated && this.inFlight.size <= this.concurrencyMax / 2) {
          this.saturated = false;
          this.schedule(0);
        }
      });
    this.inFlight.add(tracked);
  }

  /** Resolves when every delivery started so far has been recorded. */
  async settled(): Promise<void> {
    await Promise.all([...this.inFlight]);
  }

  private async deliver(delivery: ClaimedDelivery): Promise<void> {
    const result = await this.attempt(delivery);
    const at = this.clock();
    const succeeded =
      result.responseStatus !== null && result.responseStatus >= 200 && result.responseStatus < 300;
    const attempts = delivery.attempts + 1;
    const nextAttemptAt =
      succeeded || attempts >= WEBHOOK_ATTEMPTS_MAX
        ? null
        : new Date(at.getTime() + retryDelayMs(attempts, this.options.retryBaseMs));
    await recordAttempt(this.db, delivery, {
      at,
      succeeded,
      responseStatus: result.responseStatus,
      nextAttemptAt,
    });
    const outcome = succeeded ? "succeeded" : nextAttemptAt === null ? "failed" : "retrying";
    this.stats.deliveries[outcome] += 1;
    if (!succeeded) {
      this.log.warn("webhook attempt failed", {
        deliveryId: delivery.id,
        eventId: delivery.eventId,
        attempts,
        responseStatus: result.responseStatus,
        problem: result.problem,
        nextAttemptAt: nextAttemptAt?.toISOString() ?? null,
      });
    }
  }

  /** Signs and POSTs one delivery; never throws. */
  private async attempt(delivery: ClaimedDelivery): Promise<AttemptResult> {
    const url = parseWebhookUrl(delivery.url, this.options.allowPrivate);
    if (url instanceof InvalidInputError) return { responseStatus: null, problem: url.message };
    // Checked at every attempt: what a name resolves to may have changed since the endpoint was made.
    const addresses = await resolvePublic(hostOf(url), this.options.allowPrivate);
    if (addresses instanceof InvalidInputError) return { responseStatus: null, problem: addresses.message };
    const body = JSON.stringify(delivery.payload);
    const timestamp = this.clock();
    const signature = new Webhook(delivery.secret).sign(delivery.eventId, timestamp, body);
    const headers = {
      "content-type": "application/json",
      "user-agent": "Creditbook-Webhooks/1",
      "webhook-id": delivery.eventId,
      "webhook-timestamp": Math.floor(timestamp.getTime() / 1000).toString(),
      "webhook-signature": signature,
    };
    try {
      return { responseStatus: await post(url, addresses, headers, body), problem: null };
    } catch (error) {
      return { responseStatus: null, problem: (error as Error).message };
    }
  }
}

/**
 * POSTs `body` and resolves with the response status. The connection goes to
 * the addresses that were checked (never a second lookup that could answer
 * differently); redirects are not followed (a 3xx is just a failed attempt).
 */
function post(
  url: URL,
  addresses: readonly LookupAddress[],
  headers: Record<string, string>,
  body: string,
): Promise<number> {
  const request = url.protocol === "https:" ? httpsRequest : httpRequest;
  return new Promise<number>((resolve, reject) => {
    const req = request(
      url,
      {
        method: "POST",
        headers: { ...headers, "content-length": Buffer.byteLength(body).toString() },
        lookup: (_host, options, callback) => {
          const all = (options as { all?: boolean }).all === true;
          const first = addresses[0] as LookupAddress;
          if (all) (callback as unknown as (e: null, a: readonly LookupAddress[]) => void)(null, addresses);
          else callback(null, first.address, first.family);
        },
      },
      (res) => {
        let read = 0;
        res.on("data", (chunk: Buffer) => {
          read += chunk.length;
          if (read > RESPONSE_BYTES_MAX) res.destroy();
        });
        // A response cut short (the timeout's destroy, a reset) still has its status: "close" settles it.
        res.on("error", () => {});
        res.on("close", () => resolve(res.statusCode ?? 0));
        res.resume();
      },
    );
    const timer = setTimeout(
      () => req.destroy(new Error(`no answer within ${WEBHOOK_TIMEOUT_MS / 1000} s`)),
      WEBHOOK_TIMEOUT_MS,
    );
    req.on("error", reject);
    req.on("close", () => clearTimeout(timer));
    req.end(body);
  });
}
