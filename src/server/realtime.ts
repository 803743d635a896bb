import type { Database } from "../db/database.ts";
import type { BalanceSnapshot } from "../domain/balance.ts";
import { loadBalance } from "../domain/balance.ts";
import type { GenerationStatus, LedgerEntryRecord } from "../domain/model.ts";
import type { AccountEvent, EventBus } from "./events.ts";
import type { Logger } from "./log.ts";

/** A ledger entry as subscribers receive it: with its generation's status, for the derived entry status. */
export type LiveEntry = LedgerEntryRecord & { readonly generationStatus: GenerationStatus | null };

/** WebSocket close code for a subscriber that fell too far behind; it resumes with `afterSequence`. */
export const CLOSE_TOO_SLOW = 4429;
/** Most events waiting for one subscriber before it is closed as too slow. @default 1_000 */
export const SUBSCRIBER_QUEUE_MAX = 1_000;
/** Entries read per query when replaying or filling a gap. */
export const REPLAY_PAGE_SIZE = 500;
/** How often every feed checks the database for entries no event announced (a lost publish). @default 2_000 // 2 seconds */
export const RESYNC_INTERVAL_MS = 2_000;

interface FeedListener {
  entry?(entry: LiveEntry): void;
  balance?(balance: BalanceSnapshot): void;
  generations?(ids: readonly string[]): void;
}

interface EntryRow {
  id: string;
  account_id: string;
  sequence: number;
  type: LedgerEntryRecord["type"];
  amount: bigint;
  balance_before: bigint;
  balance_after: bigint;
  title: string;
  reason: LedgerEntryRecord["reason"];
  message: string | null;
  generation_id: string | null;
  grant_id: string | null;
  transfer_id: string;
  created_at: Date;
  generation_status: GenerationStatus | null;
}

/** Entries of an account with sequence in (after, upTo], in order, at most `limit`. */
export async function readEntries(
  db: Database,
  accountId: string,
  after: number,
  upTo: number,
  limit: number,
): Promise<LiveEntry[]> {
  const rows = await db.query<EntryRow>(
    `SELECT e.*, g.status AS generation_status
       FROM ledger_entry e LEFT JOIN generation g ON g.id = e.generation_id
      WHERE e.account_id = $1 AND e.sequence > $2 AND e.sequence <= $3
      ORDER BY e.sequence LIMIT $4`,
    [accountId, after, upTo, limit],
  );
  return rows.map((row) => ({
    id: row.id,
    accountId: row.account_id,
    sequence: row.sequence,
    type: row.type,
    amount: row.amount,
    balanceBefore: row.balance_before,
    balanceAfter: row.balance_after,
    title: row.title,
    reason: row.reason,
    message: row.message,
    generationId: row.generation_id,
    grantId: row.grant_id,
    transferId: row.transfer_id,
    createdAt: row.created_at,
    generationStatus: row.generation_status,
  }));
}

/**
 * One account's live feed on this instance, shared by all local subscribers:
 * one event-bus subscription, one gap fill from the database per gap, and
 * entries emitted strictly in sequence order, each once.
 */
export class AccountFeed {
  /** Sequence of the last entry emitted to listeners. */
  sequence = 0;
  private balanceSequence = -1;
  private readonly listeners = new Set<FeedListener>();
  private chain: Promise<void> = Promise.resolve();
  private unsubscribe: (() => void) | null = null;

  constructor(
    readonly accountId: string,
    private readonly db: Database,
    private readonly log: Logger,
  ) {}

  /** Subscribes upstream, then reads where the account's ledger stands. */
  async open(bus: EventBus): Promise<void> {
    this.unsubscribe = bus.subscribe(this.accountId, (event) => this.enqueue(() => this.onEvent(event)));
    await bus.ready(this.accountId);
    const init = (async () => {
      const rows = await this.db.query<{ sequence: number }>("SELECT sequence FROM account WHERE id = $1", [
        this.accountId,
      ]);
      this.sequence = rows[0]?.sequence ?? 0;
    })();
    this.chain = init;
    await init;
  }

  close(): void {
    this.unsubscribe?.();
    this.unsubscribe = null;
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

  /** Catches up with the database when it is ahead (an event was lost or is late). */
  resync(databaseSequence: number): void {
    if (databaseSequence > this.sequence) this.enqueue(() => this.catchUp(databaseSequence, null));
  }

  private enqueue(work: () => Promise<void>): void {
    this.chain = this.chain.then(work).catch((error: unknown) => {
      this.log.error("live feed could not process an event", { accountId: this.accountId, err: error });
    });
  }

  private async onEvent(event: AccountEvent): Promise<void> {
    const fresh = event.entries.filter((entry) => entry.sequence > this.sequence);
    const first = fresh[0];
    if (first !== undefined && first.sequence > this.sequence + 1) {
      // A publish was lost or arrived out of order: fill the gap from the ledger first.
      await this.catchUp(first.sequence - 1, null);
    }
    for (const entry of fresh) {
      if (entry.sequence !== this.sequence + 1) continue;
      this.emitEntry({
        ...entry,
        generationStatus:
          entry.generationId === null ? null : (event.generationStatuses[entry.generationId] ?? null),
      });
    }
    this.emitBalance(event.balance);
    if (event.generationIds.length > 0) {
      for (const listener of this.listeners) listener.generations?.(event.generationIds);
    }
  }

  private async catchUp(upTo: number, _reason: null): Promise<void> {
    while (this.sequence < upTo) {
      const entries = await readEntries(this.db, this.accountId, this.sequence, upTo, REPLAY_PAGE_SIZE);
      if (entries.length === 0) break;
      for (const entry of entries) this.emitEntry(entry);
    }
    const balance = await loadBalance(this.db, this.accountId);
    if (balance !== null) this.emitBalance(balance);
  }

  private emitEntry(entry: LiveEntry): void {
    this.sequence = entry.sequence;
    for (const listener of this.listeners) listener.entry?.(entry);
  }

  private emitBalance(balance: BalanceSnapshot): void {
    if (balance.sequence < this.balanceSequence) return;
    this.balanceSequence = balance.sequence;
    for (const listener of this.listeners) listener.balance?.(balance);
  }
}

export interface RealtimeStats {
  feeds: number;
  subscribers: number;
  closedTooSlow: number;
  resyncs: number;
}

/**
 * All live feeds of this instance. A feed exists while it has subscribers;
 * a periodic resync (one query for all feeds) recovers entries whose events
 * were lost, e.g. while Redis was down.
 */
export class Realtime {
  private readonly feeds = new Map<string, Promise<AccountFeed>>();
  private timer: NodeJS.Timeout | null = null;
  readonly stats: RealtimeStats = { feeds: 0, subscribers: 0, closedTooSlow: 0, resyncs: 0 };

  constructor(
    private readonly db: Database,
    private readonly bus: EventBus,
    private readonly log: Logger,
    private readonly resyncIntervalMs = RESYNC_INTERVAL_MS,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.resync(), this.resyncIntervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    for (const feed of this.feeds.values()) void feed.then((f) => f.close());
    this.feeds.clear();
  }

  /** Subscribes `listener` to an account; returns the feed and the function that unsubscribes. */
  async listen(
    accountId: string,
    listener: FeedListener,
  ): Promise<{ feed: AccountFeed; startAfter: number; stop: () => void }> {
    let opening = this.feeds.get(accountId);
    if (opening === undefined) {
      const feed = new AccountFeed(accountId, this.db, this.log);
      opening = feed.open(this.bus).then(() => feed);
      this.feeds.set(accountId, opening);
      opening.catch(() => this.feeds.delete(accountId));
    }
    const feed = await opening;
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
        if (feed.size === 0 && this.feeds.get(accountId) === opening) {
          this.feeds.delete(accountId);
          feed.close();
          this.stats.feeds = this.feeds.size;
        }
      },
    };
  }

  /** One query for the sequences of every followed account; feeds behind catch up. */
  async resync(): Promise<void> {
    const ids = [...this.feeds.keys()];
    if (ids.length === 0) return;
    try {
      const rows = await this.db.query<{ id: string; sequence: number }>(
        "SELECT id, sequence FROM account WHERE id = ANY($1::uuid[])",
        [ids],
      );
      this.stats.resyncs += 1;
      for (const row of rows) {
        const feed = this.feeds.get(row.id);
        if (feed !== undefined) void feed.then((f) => f.resync(row.sequence));
      }
    } catch (error) {
      this.log.warn("live feed resync failed", { err: error });
    }
  }
}
