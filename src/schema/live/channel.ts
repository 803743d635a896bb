/**
 * A bounded async queue feeding one subscriber. Live events that find it full
 * end it with `overflow` (the subscriber is too slow and resumes from where it
 * was); replays wait for room instead (`pushWhenRoom`). Values pushed with
 * `pushLatest` (state such as a balance) keep only the newest waiting one.
 * Once it ends, whichever way, nothing queued is served any more: every
 * value still waiting would cost a resolver's queries for a client that is
 * gone.
 */
export class Channel<T> implements AsyncIterableIterator<T> {
  private readonly queue: T[] = [];
  private waiting: { resolve: (result: IteratorResult<T>) => void; reject: (error: Error) => void } | null =
    null;
  private failure: Error | null = null;
  private done = false;
  private roomWaiters: (() => void)[] = [];
  private drainWaiters: (() => void)[] = [];
  private taken: T | undefined;
  private consumed: T | undefined;
  private readonly aborter = new AbortController();
  private takes = 0;

  constructor(
    private readonly sizeMax: number,
    private readonly onClose: () => void,
    private readonly overflow: () => Error,
  ) {}

  /** Queues a live value; ends the channel with the overflow error when it is full. */
  push(value: T): void {
    if (this.done) return;
    if (this.waiting !== null) {
      const { resolve } = this.waiting;
      this.waiting = null;
      this.taken = value;
      this.takes += 1;
      resolve({ value, done: false });
      return;
    }
    if (this.queue.length >= this.sizeMax) {
      this.fail(this.overflow());
      return;
    }
    this.queue.push(value);
  }

  /** Queues a value that supersedes any older one of the same kind still waiting. */
  pushLatest(value: T, sameKind: (queued: T) => boolean): void {
    const index = this.queue.findIndex(sameKind);
    if (index >= 0) this.queue.splice(index, 1);
    this.push(value);
  }

  /**
   * Queues a value, waiting for room first (backpressure for replays). It
   * fills at most half the queue, so live values arriving right after a
   * replay find room and a subscriber that keeps reading is not closed as
   * too slow just because its replay was long.
   */
  async pushWhenRoom(value: T): Promise<void> {
    const fillMax = Math.max(1, Math.floor(this.sizeMax / 2));
    while (!this.done && this.queue.length >= fillMax) {
      await new Promise<void>((resolve) => this.roomWaiters.push(resolve));
    }
    this.push(value);
  }

  get closed(): boolean {
    return this.done;
  }

  /** Values queued and not yet taken. */
  get size(): number {
    return this.queue.length;
  }

  /** How many values the consumer has taken so far: it moves while the consumer keeps reading. */
  get takenCount(): number {
    return this.takes;
  }

  /** Aborted when the channel ends: work done for this subscriber stops on it. */
  get signal(): AbortSignal {
    return this.aborter.signal;
  }

  /**
   * Resolves once the consumer has taken everything queued and asks for
   * more (so it is done with the last value), or the channel has ended.
   */
  drained(): Promise<void> {
    if (this.done || (this.queue.length === 0 && this.waiting !== null)) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  /**
   * The last value the consumer is done with: it has asked for another one
   * since. (The value it took last may still be on its way: over graphql-ws
   * it is being resolved and sent, and a close can overtake it.) What was
   * queued is dropped when the channel fails, so this, not the last value
   * pushed, is the safe point for a subscriber closed as too slow to resume
   * from.
   */
  get lastConsumed(): T | undefined {
    return this.consumed;
  }

  /** Ends the channel: the consumer gets `error` after what is already queued is dropped. */
  fail(error: Error): void {
    if (this.done) return;
    this.failure = error;
    this.queue.length = 0;
    this.finish();
  }

  /** Ends the channel: what is still queued is dropped, and the consumer gets `done`. */
  end(): void {
    if (this.done) return;
    this.queue.length = 0;
    this.finish();
  }

  private finish(): void {
    this.done = true;
    for (const resolve of this.roomWaiters.splice(0)) resolve();
    for (const resolve of this.drainWaiters.splice(0)) resolve();
    this.aborter.abort();
    this.onClose();
    if (this.waiting !== null) {
      const waiter = this.waiting;
      this.waiting = null;
      if (this.failure !== null) {
        const error = this.failure;
        this.failure = null;
        waiter.reject(error);
      } else waiter.resolve({ value: undefined as never, done: true });
    }
  }

  async next(): Promise<IteratorResult<T>> {
    this.consumed = this.taken;
    if (this.failure !== null) {
      const error = this.failure;
      this.failure = null;
      throw error;
    }
    if (this.done) return { value: undefined as never, done: true };
    const value = this.queue.shift();
    if (value !== undefined) {
      this.taken = value;
      this.takes += 1;
      const room = this.roomWaiters.shift();
      room?.();
      return { value, done: false };
    }
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject };
      for (const drained of this.drainWaiters.splice(0)) drained();
    });
  }

  async return(): Promise<IteratorResult<T>> {
    this.end();
    return { value: undefined as never, done: true };
  }

  async throw(error?: unknown): Promise<IteratorResult<T>> {
    this.fail(error instanceof Error ? error : new Error(String(error)));
    return { value: undefined as never, done: true };
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this;
  }
}
