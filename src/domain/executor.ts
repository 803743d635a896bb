import type { Database } from "../db/database.ts";
import { isOutcomeUnknown } from "../db/unavailable.ts";
import type { BalanceLowEvent } from "./alerts.ts";
import { assert } from "./assert.ts";
import { type BalanceSnapshot, balanceOf } from "./balance.ts";
import { type AccountChange, Book, SYSTEM_ACTOR } from "./book.ts";
import { DomainError, IdempotencyKeyReusedError, NotFoundError } from "./errors.ts";
import { expireDueGrants } from "./grants.ts";
import type { IdempotencyRequest } from "./idempotency.ts";
import type { GenerationState, GenerationStatus } from "./model.ts";
import { timeOutOverdue } from "./settle.ts";
import type { SpendCapState } from "./spend-caps.ts";
import {
  flush,
  type IdempotencyLookup,
  listenedAccounts,
  loadForBatch,
  lockAccountsStatement,
  lockedAccounts,
  type StoredIdempotency,
} from "./store.ts";

/** One money operation on one account, run inside a locked account transaction. */
export interface Operation<T> {
  /** The mutation's name; part of the idempotency scope (principal, operation, key). */
  readonly operation: string;
  readonly accountId: string;
  /** Generations the operation reads or changes; loaded with their items and draws. */
  readonly generationIds: readonly string[];
  readonly idempotency: IdempotencyRequest | null;
  /** The member whose spend caps bound the operation (a reserve's requestedBy); loaded with the account. */
  readonly capMember?: string | null;
  /**
   * Who causes it, recorded on every entry it writes (SPEC §8.3 `LedgerEntry.actor`):
   * the token's sub, `apikey:<id>` for an API key, SYSTEM_ACTOR for background work.
   */
  readonly actor: string;
  /**
   * Background work (the reaper): skips the account when another transaction
   * holds its lock, instead of waiting; the next round picks it up.
   */
  readonly background?: boolean;
  /**
   * Applies the operation to the book. Returns an operating error without
   * changing anything, or a JSON-serialisable value (stored for replays).
   */
  apply(book: Book): T;
}

/** The success value of an operation whose `apply` returns `T`. */
export type Success<T> = Exclude<T, DomainError>;

export type Outcome<T> =
  | {
      readonly ok: true;
      readonly value: T;
      readonly replayed: boolean;
      readonly balance: BalanceSnapshot;
      /**
       * The generation the operation touched, as committed (fresh results only):
       * lets a mutation answer without reading it back.
       */
      readonly generation?: GenerationState;
    }
  | { readonly ok: false; readonly error: DomainError };

/** What one committed account transaction changed; handed to `onCommit` after COMMIT. */
export interface CommittedBatch {
  readonly accountId: string;
  readonly changes: readonly AccountChange[];
  readonly balance: BalanceSnapshot;
  /** Status after commit of every generation the batch changed (entries derive their status from it). */
  readonly generationStatuses: Readonly<Record<string, GenerationStatus>>;
  /** Falls below the account's alert threshold that this transaction decided (alerts.ts). */
  readonly balanceLow: readonly BalanceLowEvent[];
}

export interface ExecutorOptions {
  /** Upper bound of one ledger transaction, lock waits included. @default 10_000 // 10 seconds */
  readonly transactionTimeoutMs?: number;
  /** Most operations one transaction takes from the queues, over all its accounts. @default 256 */
  readonly batchSizeMax?: number;
  /** Most accounts one transaction locks. @default 64 */
  readonly batchAccountsMax?: number;
  /**
   * Ledger transactions this process runs at once. Fewer lanes mean bigger
   * batches (more operations per commit) under load; a lone operation still
   * starts at once when a lane is free. @default 4
   */
  readonly lanes?: number;
  /** Attempts for transient failures (serialization, deadlock, key race). @default 4 */
  readonly attemptsMax?: number;
  readonly idempotencyTtlHours?: number;
  readonly clock?: () => Date;
  /** Called after every commit that changed something, once per changed account; never inside the transaction. */
  readonly onCommit?: (batch: CommittedBatch) => void;
  /** Wraps every attempt of a ledger transaction, to time or trace it (the server's metrics and spans). */
  readonly aroundTransaction?: TransactionObserver;
}

/** What one ledger transaction takes on, for whoever observes it. */
export interface TransactionShape {
  readonly accounts: number;
  readonly operations: number;
}

/**
 * Runs `transaction` once and settles as it settles (its value or its
 * rejection, unchanged); may time it or open a span around it. It must not
 * retry, swallow or delay the outcome: the executor's retries and isolation
 * of a failing operation rely on seeing every failure.
 */
export type TransactionObserver = <T>(transaction: () => Promise<T>, shape: TransactionShape) => Promise<T>;

interface Pending {
  readonly operation: Operation<unknown>;
  /** When it was queued (performance.now()). */
  readonly queuedAt: number;
  readonly resolve: (outcome: Outcome<unknown>) => void;
  readonly reject: (error: unknown) => void;
}

/** The operations of one account that one transaction takes. */
interface AccountBatch {
  readonly accountId: string;
  readonly pending: readonly Pending[];
}

/** Longest background work waits while users' operations go first. @default 100 // ms */
const BACKGROUND_WAIT_MAX_MS = 100;

/** PostgreSQL errors that mean "try the same transaction again". */
const TRANSIENT_CODES = new Set(["40001", "40P01", "23505", "55P03"]);

function isTransient(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" && TRANSIENT_CODES.has(code);
}

/** One idempotency scope as a map key. */
function recordKey(record: { principal: string; operation: string; key: string }): string {
  return `${record.principal}\u0000${record.operation}\u0000${record.key}`;
}

/** The stored record an operation's idempotency key may have, as the batch load looks it up. */
function idempotencyLookup(operation: Operation<unknown>): IdempotencyLookup[] {
  const request = operation.idempotency;
  return request === null
    ? []
    : [{ principal: request.principal, operation: operation.operation, key: request.key }];
}

/** Rows by their account, then by id. */
function byAccount<T extends { id: string; accountId: string }>(
  rows: readonly T[],
): Map<string, Map<string, T>> {
  const accounts = new Map<string, Map<string, T>>();
  for (const row of rows) {
    let ofAccount = accounts.get(row.accountId);
    if (ofAccount === undefined) {
      ofAccount = new Map();
      accounts.set(row.accountId, ofAccount);
    }
    ofAccount.set(row.id, row);
  }
  return accounts;
}

/** Whether every operation of an account's batch is background work (it skips a locked account). */
function isBackground(pending: readonly Pending[]): boolean {
  return pending.every((p) => p.operation.background === true);
}

/**
 * Runs money operations with group commit, as high-throughput ledgers batch.
 * Operations queue per account in this process. A free lane takes the queued
 * operations of up to `batchAccountsMax` accounts that no other lane holds
 * and runs them as one transaction: one round trip to begin and lock the
 * accounts (in id order), one load, one write, one commit for the whole
 * batch, each operation still all-or-nothing in its outcome and each account
 * still applying its operations in arrival order. Across processes the
 * account row locks serialise transactions. If a transaction fails, its
 * accounts are retried one by one, then their operations one by one, so one
 * bad operation cannot fail others.
 */
export class Executor {
  /** Operations waiting, per account, in arrival order. */
  private readonly queues = new Map<string, Pending[]>();
  /** Accounts with waiting operations that no running transaction holds, oldest first. */
  private readonly ready = new Set<string>();
  /** Accounts a running transaction holds. */
  private readonly busy = new Set<string>();
  private readonly transactionTimeoutMs: number;
  private readonly batchSizeMax: number;
  private readonly batchAccountsMax: number;
  private readonly lanes: number;
  private readonly attemptsMax: number;
  private readonly idempotencyTtlMs: number;
  private readonly clock: () => Date;
  private readonly onCommit: (batch: CommittedBatch) => void;
  private readonly aroundTransaction: TransactionObserver;
  private running = 0;
  private idle: (() => void)[] = [];

  constructor(
    private readonly db: Database,
    options: ExecutorOptions = {},
  ) {
    this.transactionTimeoutMs = options.transactionTimeoutMs ?? 10_000;
    this.batchSizeMax = options.batchSizeMax ?? 256;
    this.batchAccountsMax = options.batchAccountsMax ?? 64;
    this.lanes = options.lanes ?? 4;
    assert(
      this.lanes >= 1 && this.batchSizeMax >= 1 && this.batchAccountsMax >= 1,
      "executor bounds are positive",
    );
    this.attemptsMax = options.attemptsMax ?? 4;
    this.idempotencyTtlMs = (options.idempotencyTtlHours ?? 24) * 3_600_000;
    this.clock = options.clock ?? (() => new Date());
    this.onCommit = options.onCommit ?? (() => {});
    this.aroundTransaction = options.aroundTransaction ?? ((transaction) => transaction());
  }

  /** Queues an operation on its account and resolves with its outcome after commit. */
  run<T>(operation: Operation<T>): Promise<Outcome<Success<T>>> {
    const outcome = this.enqueue(operation);
    this.pump();
    return outcome;
  }

  /**
   * Queues operations together (a bulk request) before any lane starts, so
   * they share transactions within the batch bounds instead of the first one
   * leaving alone on a free lane. Outcomes come in the order given.
   */
  runAll<T>(operations: readonly Operation<T>[]): Promise<Outcome<Success<T>>[]> {
    const outcomes = operations.map((operation) => this.enqueue(operation));
    this.pump();
    return Promise.all(outcomes);
  }

  private enqueue<T>(operation: Operation<T>): Promise<Outcome<Success<T>>> {
    return new Promise<Outcome<Success<T>>>((resolve, reject) => {
      const pending: Pending = {
        operation: operation as Operation<unknown>,
        queuedAt: performance.now(),
        resolve: resolve as unknown as (outcome: Outcome<unknown>) => void,
        reject,
      };
      const { accountId } = operation;
      const queue = this.queues.get(accountId);
      if (queue === undefined) this.queues.set(accountId, [pending]);
      else queue.push(pending);
      if (!this.busy.has(accountId)) this.ready.add(accountId);
    });
  }

  /** Resolves when no operation is queued or running (graceful shutdown). */
  async drained(): Promise<void> {
    if (this.running === 0 && this.queues.size === 0) return;
    await new Promise<void>((resolve) => this.idle.push(resolve));
  }

  /** Starts transactions on free lanes while accounts are ready. */
  private pump(): void {
    while (this.running < this.lanes && this.ready.size > 0) {
      const batch = this.take();
      this.running += 1;
      void this.runBatch(batch).finally(() => this.release(batch));
    }
  }

  /**
   * The next transaction's work: ready accounts in the order they became
   * ready, within the batch bounds, all foreground or all background (a
   * background transaction skips accounts others hold). Foreground work goes
   * first, so a reaper storm does not queue users' operations behind it,
   * unless background work has waited BACKGROUND_WAIT_MAX_MS: a steady
   * stream of users' operations must not starve timeouts and expiries.
   */
  private take(): AccountBatch[] {
    let foregroundReady = false;
    let oldestBackground = Number.POSITIVE_INFINITY;
    for (const accountId of this.ready) {
      const queue = this.queues.get(accountId) ?? [];
      if (isBackground(queue))
        oldestBackground = Math.min(oldestBackground, queue[0]?.queuedAt ?? oldestBackground);
      else foregroundReady = true;
    }
    const background = !foregroundReady || performance.now() - oldestBackground > BACKGROUND_WAIT_MAX_MS;
    const batch: AccountBatch[] = [];
    let operations = 0;
    for (const accountId of this.ready) {
      if (batch.length >= this.batchAccountsMax || operations >= this.batchSizeMax) break;
      const queue = this.queues.get(accountId);
      assert(queue !== undefined && queue.length > 0, "a ready account has queued operations");
      const taken = queue.slice(0, this.batchSizeMax - operations);
      if (isBackground(taken) !== background) continue;
      queue.splice(0, taken.length);
      if (queue.length === 0) this.queues.delete(accountId);
      this.ready.delete(accountId);
      this.busy.add(accountId);
      batch.push({ accountId, pending: taken });
      operations += taken.length;
    }
    assert(batch.length > 0, "a free lane takes at least one account");
    return batch;
  }

  private release(batch: readonly AccountBatch[]): void {
    this.running -= 1;
    for (const { accountId } of batch) {
      this.busy.delete(accountId);
      if (this.queues.has(accountId)) this.ready.add(accountId);
    }
    this.pump();
    if (this.running === 0 && this.queues.size === 0) for (const resolve of this.idle.splice(0)) resolve();
  }

  private async runBatch(batch: readonly AccountBatch[]): Promise<void> {
    try {
      const shape = { accounts: batch.length, operations: batch.reduce((n, b) => n + b.pending.length, 0) };
      const outcomes = await this.withRetries(() =>
        this.aroundTransaction(() => this.transact(batch), shape),
      );
      batch.forEach(({ pending }, a) => {
        pending.forEach((p, i) => {
          const outcome = outcomes[a]?.[i];
          assert(outcome !== undefined, "every operation of a batch has an outcome");
          p.resolve(outcome);
        });
      });
    } catch (error) {
      if (isOutcomeUnknown(error)) {
        // The batch may have committed: running it again account by account would act as if it had
        // not. Every operation of it gets the error, and its client retries with the same key, which
        // replays what was committed or performs the operation once.
        for (const { pending } of batch) for (const p of pending) p.reject(error);
        return;
      }
      const only = batch.length === 1 ? batch[0] : undefined;
      if (only === undefined) {
        // Isolate the failing account: the others must not fail with it.
        for (const accountBatch of batch) await this.runBatch([accountBatch]);
      } else if (only.pending.length > 1) {
        // Then the failing operation.
        for (const p of only.pending) await this.runBatch([{ accountId: only.accountId, pending: [p] }]);
      } else {
        only.pending[0]?.reject(error);
      }
    }
  }

  private async withRetries<T>(work: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt += 1) {
      try {
        return await work();
      } catch (error) {
        if (attempt >= this.attemptsMax || !isTransient(error)) throw error;
        await new Promise((resolve) => setTimeout(resolve, Math.random() * 5 * attempt));
      }
    }
  }

  /** One transaction over the batch's accounts; outcomes per account, per operation. */
  private async transact(batch: readonly AccountBatch[]): Promise<Outcome<unknown>[][]> {
    const background = batch.every(({ pending }) => isBackground(pending));
    const result = await this.db.transaction(
      {
        isolation: "READ COMMITTED",
        timeoutMs: this.transactionTimeoutMs,
        keyedAccessOnly: true,
        prelude: lockAccountsStatement(
          batch.map(({ accountId }) => accountId),
          background,
        ),
      },
      async (tx, lockRows) => {
        const accounts = lockedAccounts(lockRows);
        const listened = listenedAccounts(lockRows);
        // The batch's moment is taken once the accounts are ours, not before the lock wait: a
        // deadline or an expiry that passed while another transaction held an account has
        // passed for this batch too, and entries get times in the order of their sequence.
        const now = this.clock();
        const locked = batch.filter(({ accountId }) => accounts.has(accountId));
        const operations = locked.flatMap(({ pending }) => pending.map((p) => p.operation));
        const loaded =
          locked.length === 0
            ? null
            : await loadForBatch(
                tx,
                locked.map(({ accountId }) => accountId),
                [...new Set(operations.flatMap((operation) => operation.generationIds))],
                operations.flatMap(idempotencyLookup),
                now,
                [...new Set(operations.flatMap((operation) => operation.capMember ?? []))],
              );
        // Stored keys, then keys first used in this transaction over all its accounts: a duplicate in
        // another account's batch is answered from here, not written twice.
        const records = new Map((loaded?.records ?? []).map((record) => [recordKey(record), record]));
        const grants = byAccount(loaded?.grants ?? []);
        const generations = byAccount(loaded?.generations ?? []);
        const caps = new Map<string, SpendCapState[]>();
        for (const cap of loaded?.caps ?? [])
          caps.set(cap.accountId, [...(caps.get(cap.accountId) ?? []), cap]);
        const books: Book[] = [];
        const outcomes = batch.map(({ accountId, pending }) => {
          const account = accounts.get(accountId);
          if (account === undefined) {
            return pending.map(() => ({ ok: false as const, error: new NotFoundError("Account") }));
          }
          const book = new Book(
            account,
            grants.get(accountId) ?? new Map(),
            generations.get(accountId) ?? new Map(),
            now,
          );
          book.listened = listened.has(accountId);
          book.spendCaps.push(...(caps.get(accountId) ?? []));
          books.push(book);
          // The reaper's work on what this batch touches comes first, so no
          // operation draws from an expired grant or settles an overdue item.
          // A background batch holds only the reaper's own operations, which do
          // it themselves (reap.ts) so that they count what they did.
          if (!background) {
            expireDueGrants(book);
            timeOutOverdue(book);
          }
          return pending.map(({ operation }) => this.apply(book, operation, records));
        });
        await flush(tx, books);
        return { outcomes, books };
      },
    );
    for (const book of result.books) {
      if (book.changes.length > 0) this.published(book);
    }
    return result.outcomes;
  }

  /** Hands one committed account's changes to `onCommit`. */
  private published(book: Book): void {
    try {
      const generationStatuses: Record<string, GenerationStatus> = {};
      for (const change of book.changes) {
        for (const id of change.generationIds) {
          const generation = book.generation(id);
          if (generation !== undefined) generationStatuses[id] = generation.status;
        }
      }
      this.onCommit({
        accountId: book.account.id,
        changes: book.changes,
        balance: balanceOf(book.account, book.grants(), book.now),
        generationStatuses,
        balanceLow: book.balanceLow,
      });
    } catch (error) {
      // Publishing is best effort: the ledger is the truth and subscribers catch up from it.
      process.emitWarning(`publishing committed changes failed: ${(error as Error).message}`);
    }
  }

  private apply(
    book: Book,
    operation: Operation<unknown>,
    records: Map<string, StoredIdempotency>,
  ): Outcome<unknown> {
    const request = operation.idempotency;
    if (request !== null) {
      const previous = records.get(
        recordKey({ principal: request.principal, operation: operation.operation, key: request.key }),
      );
      if (previous !== undefined) {
        if (previous.requestHash !== request.requestHash) {
          return { ok: false, error: new IdempotencyKeyReusedError(operation.operation) };
        }
        return {
          ok: true,
          value: previous.result,
          replayed: true,
          balance: balanceOf(book.account, book.grants(), book.now),
        };
      }
    }
    const before = book.changeCount();
    // Entries written by the operation are its actor's; what the batch does around it
    // (expiry and timeouts before the first operation) stays the system's.
    book.actor = operation.actor;
    let value: unknown;
    try {
      value = operation.apply(book);
    } finally {
      book.actor = SYSTEM_ACTOR;
    }
    if (value instanceof DomainError) {
      assert(
        book.changeCount() === before,
        `${operation.operation} changed nothing when it returned ${value.code}`,
      );
      return { ok: false, error: value };
    }
    if (request !== null) {
      const record = {
        principal: request.principal,
        operation: operation.operation,
        key: request.key,
        requestHash: request.requestHash,
        accountId: book.account.id,
        result: value,
        expiresAt: new Date(book.now.getTime() + this.idempotencyTtlMs),
      };
      book.idempotency.push(record);
      records.set(recordKey(record), record);
    }
    const generationId = (value as { generationId?: unknown } | null)?.generationId;
    const generation = typeof generationId === "string" ? book.generation(generationId) : undefined;
    return {
      ok: true,
      value,
      replayed: false,
      balance: balanceOf(book.account, book.grants(), book.now),
      generation: generation === undefined ? undefined : structuredClone(generation),
    };
  }
}
