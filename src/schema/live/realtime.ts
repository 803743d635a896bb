import type { Database } from "../../db/database.ts";
import type { BalanceLowEvent } from "../../domain/alerts.ts";
import type { BalanceSnapshot } from "../../domain/balance.ts";
import { loadBalance } from "../../domain/balance.ts";
import type { AccountEvent, EventBus } from "../../domain/events.ts";
import { entriesAfter, type LedgerEntryView } from "../../domain/history.ts";
import type { Logger } from "../../log.ts";
import { REPLAY_CONCURRENCY_MAX, Semaphore } from "./replay.ts";

/** A ledger entry as subscribers receive it: with its generation's status, for the derived entry status. */
export type LiveEntry = LedgerEntryView;

/**
 * WebSocket close code for a subscriber that fell too far behind; it resumes
 * with `afterSequence`. 1013 "Try Again Later": graphql-ws clients retry it
 * (4429 is graphql-ws's "too many initialisation requests", fatal to them).
 */
export const CLOSE_TOO_SLOW = 1013;

/**
 * WebSocket close code for a socket whose access was revoked while open (an
 * API key revoked, or a member removed from a followed account): graphql-ws's
 * Forbidden, which its client does not retry by itself.
 */
export const CLOSE_FORBIDDEN = 4403;
/** Most events waiting for one subscriber before it is closed as too slow. @default 1_000 */
export const SUBSCRIBER_QUEUE_MAX = 1_000;
/** Entries read per query when replaying or filling a gap. */
export const REPLAY_PAGE_SIZE = 500;
/** How often every feed checks the database for changes no event announced (a lost publish). @default 2_000 // 2 seconds */
export const RESYNC_INTERVAL_MS = 2_000;

/** The longest delay `setTimeout` honours (2^31 − 1 ms, about 24.8 days); a longer one fires at once. */
const TIMER_DELAY_MAX_MS = 2_147_483_647;

/**
 * Calls `callback` once `expSeconds` (a token's `exp`) has passed; returns
 * the function that cancels it. Tokens often live longer than one timer can
 * wait (30 days by default), so the timer re-arms itself until the expiry is
 * within reach.
 */
export function atExpiry(expSeconds: number, callback: () => void): () => void {
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    const remainingMs = expSeconds * 1_000 - Date.now();
    if (remainingMs <= 0) {
      timer = undefined;
      callback();
      return;
    }
    timer = setTimeout(arm, Math.min(remainingMs, TIMER_DELAY_MAX_MS));
    timer.unref();
  };
  arm();
  return () => clearTimeout(timer);
}

/** A generation that changed, as one event hands it to every listener. */
export interface ChangedGeneration {
  readonly id: string;
}

interface FeedListener {
  entry?(entry: LiveEntry): void;
  balance?(balance: BalanceSnapshot): void;
  /**
   * Generations that changed: one reference object per generation and
   * event, the same object for every listener (so their executions of it can
   * be shared, see shared-events.ts).
   */
  generations?(refs: readonly ChangedGeneration[]): void;
  /**
   * A fall below the alert threshold. Not recovered from the database when
   * its event is lost (the `balance.low` webhook is the reliable copy).
   */
  balanceLow?(event: BalanceLowEvent): void;
}

/**
 * One account's live feed on this instance, shared by all local subscribers:
 * one event-bus subscription, one gap fill from the database per gap, and
 * entries emitted strictly in sequence order, each once.
 *
 * All work (events, gap fills, resyncs) runs one step at a time on `chain`,
 * so `sequence` only moves forward, one entry at a time, and a listener
 * added between two steps sees exactly the entries after `sequence`.
 */
export class AccountFeed {
  /** Sequence of the last entry emitted to listeners. */
  sequence = 0;
  private lastBalance: BalanceSnapshot | null = null;
  private readonly listeners = new Set<FeedListener>();
  private chain: Promise<void> = Promise.resolve();
  private unsubscribe: (() => void) | null = null;

  constructor(
    readonly accountId: string,
    private readonly db: Database,
    private readonly log: Logger,
  ) {}

  /**
   * Subscribes upstream first, then reads where the account's ledger stands:
   * a commit either shows in that read or arrives as an event after it.
   * Events that come in meanwhile wait behind the read on the chain.
   */
  async open(bus: EventBus): Promise<void> {
    let release = () => {};
    let fail = (_error: unknown) => {};
    const opened = new Promise<void>((resolve, reject) => {
      release = resolve;
      fail = reject;
    });
    // A failed open reaches its caller through `throw` below; the chain only orders the steps
    // queued meanwhile, which must not fail with it (the feed is closed and dropped anyway).
    this.chain = opened.catch(() => {});
    this.unsubscribe = bus.subscribe(this.accountId, (event) => this.enqueue(() => this.onEvent(event)));
    try {
      await bus.ready(this.accountId);
      // The balance now is the baseline: later events and resyncs are compared with it.
      const balance = await loadBalance(this.db, this.accountId);
      this.sequence = balance?.sequence ?? 0;
      this.lastBalance = balance;
      release();
    } catch (error) {
      this.close();
      fail(error);
      throw error;
    }
  }

  close(): void {
    this.unsubscribe?.();
    this.unsubscribe = null;
  }

  get closed(): boolean {
    return this.unsubscribe === null;
  }

  get size(): number {
    return this.listeners.size;
  }

  /** Adds a listener; returns the sequence it starts after (nothing up to it will be emitted to it). */
  add(listener: FeedListener): number {
    this.listeners.add(listener);
    return this.sequence;
  }

  remove(listener: FeedListener): void {
    this.listeners.delete(listener);
  }

  /**
   * Catches up with the database when it is ahead (an event was lost or is
   * late), and re-reads the balance when it changed without a new entry
   * (a settle at full cost moves `held` only) and that event was lost.
   */
  resync(databaseSequence: number, updatedAt: Date): void {
    if (databaseSequence > this.sequence) {
      this.enqueue(() => this.catchUp(databaseSequence));
    } else if (this.lastBalance !== null && updatedAt.getTime() > this.lastBalance.updatedAt.getTime()) {
      this.enqueue(() => this.refreshBalance());
    }
  }

  private enqueue(work: () => Promise<void>): void {
    this.chain = this.chain.then(work).catch((error: unknown) => {
      this.log.error("live feed could not process an event", { accountId: this.accountId, err: error });
    });
  }

  private async onEvent(event: AccountEvent): Promise<void> {
    // Entries of one event are in commit order already; sorting makes that an invariant here.
    const fresh = event.entries
      .filter((entry) => entry.sequence > this.sequence)
      .sort((a, b) => a.sequence - b.sequence);
    for (const entry of fresh) {
      if (entry.sequence > this.sequence + 1) {
        // A publish was lost or arrived out of order: fill the gap from the ledger first.
        await this.catchUp(entry.sequence - 1);
      }
      if (entry.sequence !== this.sequence + 1) continue;
      this.emitEntry({
        ...entry,
        generationStatus:
          entry.generationId === null ? null : (event.generationStatuses[entry.generationId] ?? null),
      });
    }
    this.emitBalance(event.balance);
    this.emitGenerations(event.generationIds);
    for (const low of event.balanceLow ?? []) {
      for (const listener of this.listeners) listener.balanceLow?.(low);
    }
  }

  /** Emits the ledger's entries after `sequence` up to `upTo`, then the balance as it is now. */
  private async catchUp(upTo: number): Promise<void> {
    const generationIds = new Set<string>();
    while (this.sequence < upTo) {
      const entries = await entriesAfter(this.db, this.accountId, this.sequence, upTo, REPLAY_PAGE_SIZE);
      const before = this.sequence;
      for (const entry of entries) {
        if (entry.sequence !== this.sequence + 1) break;
        this.emitEntry(entry);
        if (entry.generationId !== null) generationIds.add(entry.generationId);
      }
      // Sequences are gapless, so no progress means the rows are not there (yet): stop, a later event or resync retries.
      if (this.sequence === before) break;
    }
    await this.refreshBalance();
    // Their events were lost too, so generation subscribers learn of the changes here.
    this.emitGenerations([...generationIds]);
  }

  private async refreshBalance(): Promise<void> {
    const balance = await loadBalance(this.db, this.accountId);
    if (balance !== null) this.emitBalance(balance);
  }

  private emitEntry(entry: LiveEntry): void {
    this.sequence = entry.sequence;
    for (const listener of this.listeners) listener.entry?.(entry);
  }

  /**
   * Emits a balance unless it is older than the last one seen (events can
   * arrive late or out of order) or the same one again (a gap fill reads the
   * balance its event also carries).
   */
  private emitBalance(balance: BalanceSnapshot): void {
    const last = this.lastBalance;
    if (last !== null) {
      if (balance.sequence < last.sequence) return;
      if (balance.sequence === last.sequence && balance.updatedAt.getTime() < last.updatedAt.getTime())
        return;
    }
    this.lastBalance = balance;
    const unchanged =
      last !== null &&
      balance.sequence === last.sequence &&
      balance.available === last.available &&
      balance.held === last.held &&
      balance.subscription === last.subscription &&
      balance.wallet === last.wallet;
    if (unchanged) return;
    for (const listener of this.listeners) listener.balance?.(balance);
  }

  private emitGenerations(ids: readonly string[]): void {
    if (ids.length === 0) return;
    const refs = ids.map((id): ChangedGeneration => ({ id }));
    for (const listener of this.listeners) listener.generations?.(refs);
  }
}

export interface RealtimeStats {
  feeds: number;
  subscribers: number;
  closedTooSlow: number;
  resyncs: number;
}

export interface RealtimeOptions {
  /** @default RESYNC_INTERVAL_MS */
  readonly resyncIntervalMs?: number;
  /** Bound of each subscriber's queue. @default SUBSCRIBER_QUEUE_MAX */
  readonly subscriberQueueMax?: number;
  /** Replay pages read and delivered at once. @default REPLAY_CONCURRENCY_MAX */
  readonly replayConcurrencyMax?: number;
}

/**
 * All live feeds of this instance. A feed exists while it has subscribers;
 * a periodic resync (one query for all feeds) recovers changes whose events
 * were lost, e.g. while Redis was down, and runs at once when the event bus
 * reconnects.
 */
export class Realtime {
  private readonly feeds = new Map<string, Promise<AccountFeed>>();
  private timer: NodeJS.Timeout | null = null;
  private resyncing: Promise<void> | null = null;
  readonly stats: RealtimeStats = { feeds: 0, subscribers: 0, closedTooSlow: 0, resyncs: 0 };
  readonly resyncIntervalMs: number;
  /** Most events waiting for one subscriber before it is closed as too slow. */
  readonly subscriberQueueMax: number;
  /** Turns for subscribers' replay pages: the slice of the pool replays may use (see replay.ts). */
  readonly replays: Semaphore;

  constructor(
    private readonly db: Database,
    private readonly bus: EventBus,
    private readonly log: Logger,
    options: RealtimeOptions = {},
  ) {
    this.resyncIntervalMs = options.resyncIntervalMs ?? RESYNC_INTERVAL_MS;
    this.subscriberQueueMax = options.subscriberQueueMax ?? SUBSCRIBER_QUEUE_MAX;
    this.replays = new Semaphore(options.replayConcurrencyMax ?? REPLAY_CONCURRENCY_MAX);
    // Whatever was published while the bus was away is in the ledger; fetch it now, not at the next tick.
    bus.onReconnect?.(() => void this.resync());
  }

  start(): void {
    this.timer = setInterval(() => void this.resync(), this.resyncIntervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    // A feed whose open failed has nothing to close: it closed itself and its subscriber got the error.
    for (const feed of this.feeds.values()) void feed.then((f) => f.close()).catch(() => {});
    this.feeds.clear();
    this.stats.feeds = 0;
  }

  /** Records a subscriber closed for falling behind. */
  tooSlow(accountId: string, resumeAfter: number): void {
    this.stats.closedTooSlow += 1;
    this.log.warn("subscriber closed: too slow", { accountId, resumeAfter });
  }

  /** Subscribes `listener` to an account; returns the feed and the function that unsubscribes. */
  async listen(
    accountId: string,
    listener: FeedListener,
  ): Promise<{ feed: AccountFeed; startAfter: number; stop: () => void }> {
    for (;;) {
      let opening = this.feeds.get(accountId);
      if (opening === undefined) {
        const feed = new AccountFeed(accountId, this.db, this.log);
        const created: Promise<AccountFeed> = feed.open(this.bus).then(() => feed);
        opening = created;
        this.feeds.set(accountId, created);
        created.catch(() => {
          if (this.feeds.get(accountId) === created) this.feeds.delete(accountId);
        });
      }
      const feed = await opening;
      // The last subscriber of this feed may have left while we waited, closing it: start a new one.
      if (feed.closed || this.feeds.get(accountId) !== opening) continue;
      const current = opening;
      const startAfter = feed.add(listener);
      this.stats.subscribers += 1;
      this.stats.feeds = this.feeds.size;
      let stopped = false;
      return {
        feed,
        startAfter,
        stop: () => {
          if (stopped) return;
          stopped = true;
          this.stats.subscribers -= 1;
          feed.remove(listener);
          if (feed.size === 0 && this.feeds.get(accountId) === current) {
            this.feeds.delete(accountId);
            feed.close();
            this.stats.feeds = this.feeds.size;
          }
        },
      };
    }
  }

  /** One query for the state of every followed account; feeds behind catch up. */
  resync(): Promise<void> {
    // One at a time: a slow database must not pile up overlapping rounds.
    this.resyncing ??= this.resyncOnce().finally(() => {
      this.resyncing = null;
    });
    return this.resyncing;
  }

  private async resyncOnce(): Promise<void> {
    const ids = [...this.feeds.keys()];
    if (ids.length === 0) return;
    try {
      const rows = await this.db.query<{ id: string; sequence: number; updated_at: Date }>(
        "SELECT id, sequence, updated_at FROM account WHERE id = ANY($1::uuid[])",
        [ids],
      );
      this.stats.resyncs += 1;
      for (const row of rows) {
        const feed = this.feeds.get(row.id);
        // A feed whose open failed is being dropped (see listen) and its subscriber has the error.
        if (feed !== undefined) void feed.then((f) => f.resync(row.sequence, row.updated_at)).catch(() => {});
      }
    } catch (error) {
      this.log.warn("live feed resync failed", { err: error });
    }
  }
}
