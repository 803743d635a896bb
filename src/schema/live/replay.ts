import type { Sql } from "../../db/database.ts";
import { entriesAfter, type LedgerEntryView } from "../../domain/history.ts";
import type { Channel } from "./channel.ts";

/** Replay pages one instance reads and delivers at once, over all its subscribers. @default 2 */
export const REPLAY_CONCURRENCY_MAX = 2;
/** Entries one replay page reads: the most a subscriber holds in memory for its replay. */
export const SUBSCRIBER_REPLAY_PAGE_SIZE = 100;
/**
 * How long a replay page keeps its turn while its subscriber takes nothing.
 * A subscriber that keeps reading keeps the turn until it has consumed the
 * page (its entries' resolvers are what the turn bounds); one that stops
 * reading gives it up after this, and asks again only once it has consumed
 * the page. @default 500 // 0.5 seconds
 */
export const REPLAY_STALL_MS = 500;

/** Gives a permit back; calling it again does nothing. */
export type Release = () => void;

/**
 * A counting semaphore whose waiters can give up: an aborted `signal` takes
 * a waiter out of the queue, so a closed subscriber leaves nothing behind.
 * Permits go to waiters in arrival order.
 */
export class Semaphore {
  private active = 0;
  private readonly waiters = new Set<() => void>();

  constructor(readonly permitsMax: number) {}

  /** Permits held now. */
  get running(): number {
    return this.active;
  }

  /** Waiters in the queue now. */
  get queued(): number {
    return this.waiters.size;
  }

  /** Waits for a permit; resolves null (holding nothing) if `signal` aborts first. */
  acquire(signal: AbortSignal): Promise<Release | null> {
    if (signal.aborted) return Promise.resolve(null);
    if (this.active < this.permitsMax) {
      this.active += 1;
      return Promise.resolve(this.releaser());
    }
    return new Promise((resolve) => {
      const grant = () => {
        signal.removeEventListener("abort", abandon);
        resolve(this.releaser());
      };
      const abandon = () => {
        this.waiters.delete(grant);
        resolve(null);
      };
      signal.addEventListener("abort", abandon, { once: true });
      this.waiters.add(grant);
    });
  }

  private releaser(): Release {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      // The permit passes straight to the next waiter, so `active` never dips below what is held.
      const next = this.waiters.values().next();
      if (next.done === true) this.active -= 1;
      else {
        this.waiters.delete(next.value);
        next.value();
      }
    };
  }
}

export interface ReplayOptions {
  readonly db: Sql;
  readonly gate: Semaphore;
  readonly accountId: string;
  /** Replays the entries after this sequence. */
  readonly after: number;
  readonly channel: Channel<LedgerEntryView>;
  /** The account's live feed the subscriber listens to: where it stands decides the seam. */
  readonly feed: { readonly sequence: number };
  /**
   * Called, with the last sequence replayed, at the moment live entries take
   * over; synchronously after the seam check, with nothing in between.
   */
  readonly goLive: (delivered: number) => void;
  /** @default SUBSCRIBER_REPLAY_PAGE_SIZE */
  readonly pageSize?: number;
  /** @default REPLAY_STALL_MS */
  readonly stallMs?: number;
}

/**
 * Replays an account's entries into a subscriber's channel, a page at a
 * time: each page waits for a permit of `gate` (a small slice of the pool
 * shared by every replay of the instance, so replays never starve money
 * operations), and the next page is read only once the subscriber has
 * consumed the previous one (its entries' resolvers query the database too,
 * so the permit is held while they run, unless the subscriber takes nothing
 * for `stallMs`). A closed channel
 * stops it at once: waiting for a permit, for room or for the consumer.
 *
 * The seam: after a page is consumed, if it was short and the feed has not
 * emitted past what was replayed, everything later is still to come from
 * the feed, so live entries take over right there (no await between the
 * check and `goLive`); otherwise the next page reads what the feed emitted.
 */
export async function replayPaged(options: ReplayOptions): Promise<void> {
  const { channel, gate } = options;
  const pageSize = options.pageSize ?? SUBSCRIBER_REPLAY_PAGE_SIZE;
  const stallMs = options.stallMs ?? REPLAY_STALL_MS;
  let delivered = options.after;
  while (!channel.closed) {
    const release = await gate.acquire(channel.signal);
    if (release === null) return;
    let watchdog: NodeJS.Timeout | undefined;
    try {
      const page = await entriesAfter(options.db, options.accountId, delivered, null, pageSize);
      // A subscriber that stops reading must not keep the permit from everyone else.
      let takenCount = channel.takenCount;
      watchdog = setInterval(() => {
        if (channel.takenCount === takenCount) {
          clearInterval(watchdog);
          release();
        }
        takenCount = channel.takenCount;
      }, stallMs);
      for (const entry of page) {
        if (channel.closed) return;
        delivered = entry.sequence;
        await channel.pushWhenRoom(entry);
      }
      await channel.drained();
      if (channel.closed) return;
      if (page.length < pageSize && options.feed.sequence <= delivered) {
        options.goLive(delivered);
        return;
      }
    } finally {
      clearInterval(watchdog);
      release();
    }
  }
}
