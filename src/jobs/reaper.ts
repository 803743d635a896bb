import type { Database } from "../db/database.ts";
import { GRANT_EXPIRY_NOTICE_HOURS_DEFAULT } from "../domain/alerts.ts";
import type { Executor } from "../domain/executor.ts";
import { reapAccount } from "../domain/reap.ts";
import type { Logger } from "../log.ts";

export interface ReaperOptions {
  /** Pause between rounds when there is nothing left to do (the server passes REAPER_INTERVAL_MS). */
  readonly intervalMs: number;
  /**
   * Most generations (or grant accounts) one round picks up; idempotency keys
   * are pruned four times as many at a time (the server passes REAPER_BATCH_SIZE).
   */
  readonly batchSizeMax: number;
  /**
   * Accounts one round hands to the executor at once; it batches them into
   * transactions of many accounts (behind users' operations). @default 256
   */
  readonly concurrencyMax?: number;
  /**
   * How long before a grant with credits left expires its `grant.expiring`
   * notice is sent (the server passes GRANT_EXPIRY_NOTICE_HOURS). @default 72 // hours
   */
  readonly grantExpiryNoticeHours?: number;
  readonly clock?: () => Date;
}

export interface ReaperStats {
  rounds: number;
  /** Generations timed out by this reaper's own transactions. */
  generationsTimedOut: number;
  /** Grants written off by this reaper's own transactions. */
  grantsExpired: number;
  /** Grants whose `grant.expiring` notice this reaper's own transactions sent. */
  grantsNoticed: number;
  keysPruned: number;
  /** Seconds between now and the oldest deadline still overdue at the last round's start. */
  lagSeconds: number;
}

/**
 * The background reaper: times out generations past their deadline, expires
 * grants past `expiresAt`, sends the `grant.expiring` notice of grants about
 * to expire, and prunes expired idempotency keys. Each account
 * is handled by one background operation of the executor (`reapAccount`,
 * which does the timing out and expiring and says how much), which skips accounts another
 * transaction holds (`SKIP LOCKED`) and re-checks everything under the lock,
 * so any number of instances can run it at once and each item still ends once.
 */
export class Reaper {
  readonly stats: ReaperStats = {
    rounds: 0,
    generationsTimedOut: 0,
    grantsExpired: 0,
    grantsNoticed: 0,
    keysPruned: 0,
    lagSeconds: 0,
  };
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private stopped = true;
  private readonly clock: () => Date;

  constructor(
    private readonly db: Database,
    private readonly executor: Executor,
    private readonly options: ReaperOptions,
    private readonly log: Logger,
  ) {
    this.clock = options.clock ?? (() => new Date());
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
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.round()
        .then((busy) => this.schedule(busy ? 0 : this.options.intervalMs))
        .catch((error: unknown) => {
          this.log.error("reaper round failed", { err: error });
          this.schedule(this.options.intervalMs);
        });
    }, delayMs);
    this.timer.unref();
  }

  /**
   * One round. @returns true when a batch was full, so more work is probably waiting.
   */
  async round(): Promise<boolean> {
    const now = this.clock();
    this.stats.rounds += 1;
    const overdue = await this.db.query<{ account_id: string; ids: string[]; oldest: Date }>(
      `SELECT account_id, array_agg(id) AS ids, min(deadline) AS oldest FROM (
         SELECT account_id, id, deadline FROM generation
          WHERE status = 'IN_PROGRESS' AND deadline <= $1 ORDER BY deadline LIMIT $2) due
       GROUP BY account_id`,
      [now, this.options.batchSizeMax],
    );
    const oldest = overdue.reduce<number>(
      (min, row) => Math.min(min, new Date(row.oldest).getTime()),
      now.getTime(),
    );
    this.stats.lagSeconds = (now.getTime() - oldest) / 1000;
    const expiring = await this.db.query<{ account_id: string }>(
      `SELECT DISTINCT account_id FROM credit_grant
        WHERE expired_at IS NULL AND expires_at <= $1 LIMIT $2`,
      [now, this.options.batchSizeMax],
    );
    const noticeHours = this.options.grantExpiryNoticeHours ?? GRANT_EXPIRY_NOTICE_HOURS_DEFAULT;
    // Unnoticed grants with credits left that expire within the notice window (the partial index
    // credit_grant_expiry_notice_idx holds only unnoticed open grants with an expiry).
    const noticing = await this.db.query<{ account_id: string }>(
      `SELECT DISTINCT account_id FROM credit_grant
        WHERE expiry_noticed_at IS NULL AND expired_at IS NULL AND expires_at IS NOT NULL
          AND expires_at > $1 AND expires_at <= $2 AND remaining > 0 LIMIT $3`,
      [now, new Date(now.getTime() + noticeHours * 3_600_000), this.options.batchSizeMax],
    );
    const work = [
      ...overdue.map((row) => ({ accountId: row.account_id, generationIds: row.ids })),
      ...[...expiring, ...noticing].map((row) => ({
        accountId: row.account_id,
        generationIds: [] as string[],
      })),
    ];
    await this.inParallel(work, async ({ accountId, generationIds }) => {
      const outcome = await this.executor.run(reapAccount(accountId, generationIds, noticeHours));
      // A skipped account (locked by another transaction) is not ok, and counts nothing.
      if (outcome.ok) {
        this.stats.generationsTimedOut += outcome.value.generationsTimedOut;
        this.stats.grantsExpired += outcome.value.grantsExpired;
        this.stats.grantsNoticed += outcome.value.grantsNoticed;
      }
    });
    const pruned = await this.db.query<{ n: number }>(
      `WITH gone AS (
         DELETE FROM idempotency_record WHERE ctid IN (
           SELECT ctid FROM idempotency_record WHERE expires_at < $1 LIMIT $2)
         RETURNING 1)
       SELECT count(*)::int AS n FROM gone`,
      [now, this.options.batchSizeMax * 4],
    );
    this.stats.keysPruned += pruned[0]?.n ?? 0;
    const dueCount = overdue.reduce((n, row) => n + row.ids.length, 0);
    return (
      dueCount >= this.options.batchSizeMax ||
      expiring.length >= this.options.batchSizeMax ||
      noticing.length >= this.options.batchSizeMax
    );
  }

  private async inParallel<T>(items: readonly T[], work: (item: T) => Promise<void>): Promise<void> {
    let next = 0;
    const lanes = Array.from(
      { length: Math.min(this.options.concurrencyMax ?? 256, items.length) },
      async () => {
        while (next < items.length) {
          const item = items[next];
          next += 1;
          if (item === undefined) continue;
          try {
            await work(item);
          } catch (error) {
            this.log.error("reaper could not finish an account", { err: error });
          }
        }
      },
    );
    await Promise.all(lanes);
  }
}
