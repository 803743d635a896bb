import type { Database } from "../db/database.ts";
import { assert } from "./assert.ts";
import { type BalanceSnapshot, balanceOf } from "./balance.ts";
import { type AccountChange, Book } from "./book.ts";
import { DomainError, IdempotencyKeyReusedError, NotFoundError } from "./errors.ts";
import { expireDueGrants } from "./grants.ts";
import type { IdempotencyRequest } from "./idempotency.ts";
import type { GenerationState, GenerationStatus } from "./model.ts";
import { timeOutOverdue } from "./settle.ts";
import {
  flush,
  type IdempotencyLookup,
  loadForBatch,
  lockAccountStatement,
  lockedAccount,
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
}

export interface ExecutorOptions {
  /** Upper bound of one account transaction, lock waits included. @default 10_000 // 10 seconds */
  readonly transactionTimeoutMs?: number;
  /** Most operations one account transaction takes from the queue. @default 256 */
  readonly batchSizeMax?: number;
  /** Attempts for transient failures (serialization, deadlock, key race). @default 4 */
  readonly attemptsMax?: number;
  readonly idempotencyTtlHours?: number;
  readonly clock?: () => Date;
  /** Called after every commit that changed something; never inside the transaction. */
  readonly onCommit?: (batch: CommittedBatch) => void;
}

interface Pending {
  readonly operation: Operation<unknown>;
  readonly resolve: (outcome: Outcome<unknown>) => void;
  readonly reject: (error: unknown) => void;
}

/** PostgreSQL errors that mean "try the same transaction again". */
const TRANSIENT_CODES = new Set(["40001", "40P01", "23505", "55P03"]);

function isTransient(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" && TRANSIENT_CODES.has(code);
}

/**
 * Runs money operations with group commit. Operations on one account queue
 * in this process; whatever queued while the account's previous transaction
 * ran goes into the next one: one lock, one load, one write and one commit for
 * the whole batch, each operation still all-or-nothing in its outcome. Across
 * processes the account row lock serialises batches. If a batch fails, its
 * operations are retried one by one so one bad operation cannot fail others.
 */
export class Executor {
  private readonly queues = new Map<string, Pending[]>();
  private readonly transactionTimeoutMs: number;
  private readonly batchSizeMax: number;
  private readonly attemptsMax: number;
  private readonly idempotencyTtlMs: number;
  private readonly clock: () => Date;
  private readonly onCommit: (batch: CommittedBatch) => void;
  private inFlight = 0;
  private idle: (() => void)[] = [];

  constructor(
    private readonly db: Database,
    options: ExecutorOptions = {},
  ) {
    this.transactionTimeoutMs = options.transactionTimeoutMs ?? 10_000;
    this.batchSizeMax = options.batchSizeMax ?? 256;
    this.attemptsMax = options.attemptsMax ?? 4;
    this.idempotencyTtlMs = (options.idempotencyTtlHours ?? 24) * 3_600_000;
    this.clock = options.clock ?? (() => new Date());
    this.onCommit = options.onCommit ?? (() => {});
  }

  /** Queues an operation on its account and resolves with its outcome after commit. */
  run<T>(operation: Operation<T>): Promise<Outcome<Success<T>>> {
    return new Promise<Outcome<Success<T>>>((resolve, reject) => {
      const pending: Pending = {
        operation: operation as Operation<unknown>,
        resolve: resolve as unknown as (outcome: Outcome<unknown>) => void,
        reject,
      };
      const queue = this.queues.get(operation.accountId);
      if (queue !== undefined) {
        queue.push(pending);
        return;
      }
      this.queues.set(operation.accountId, [pending]);
      this.inFlight += 1;
      void this.drain(operation.accountId);
    });
  }

  /** Resolves when no operation is queued or running (graceful shutdown). */
  async drained(): Promise<void> {
    if (this.inFlight === 0) return;
    await new Promise<void>((resolve) => this.idle.push(resolve));
  }

  private async drain(accountId: string): Promise<void> {
    try {
      for (;;) {
        const queue = this.queues.get(accountId);
        assert(queue !== undefined, "a draining account has a queue");
        if (queue.length === 0) break;
        const batch = queue.splice(0, this.batchSizeMax);
        await this.runBatch(accountId, batch);
      }
    } finally {
      this.queues.delete(accountId);
      this.inFlight -= 1;
      if (this.inFlight === 0) for (const resolve of this.idle.splice(0)) resolve();
    }
  }

  private async runBatch(accountId: string, batch: Pending[]): Promise<void> {
    try {
      const outcomes = await this.withRetries(() =>
        this.transact(
          accountId,
          batch.map((p) => p.operation),
        ),
      );
      batch.forEach((pending, i) => {
        const outcome = outcomes[i];
        assert(outcome !== undefined, "every operation of a batch has an outcome");
        pending.resolve(outcome);
      });
    } catch (error) {
      if (batch.length === 1) {
        batch[0]?.reject(error);
        return;
      }
      // Isolate the failing operation: the others must not fail with it.
      for (const pending of batch) await this.runBatch(accountId, [pending]);
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

  private async transact(
    accountId: string,
    operations: readonly Operation<unknown>[],
  ): Promise<Outcome<unknown>[]> {
    const background = operations.every((operation) => operation.background === true);
    const result = await this.db.transaction(
      {
        isolation: "READ COMMITTED",
        timeoutMs: this.transactionTimeoutMs,
        keyedAccessOnly: true,
        prelude: lockAccountStatement(accountId, background),
      },
      async (tx, lockRows) => {
        const account = lockedAccount(lockRows);
        if (account === null) {
          return {
            outcomes: operations.map(() => ({ ok: false as const, error: new NotFoundError("Account") })),
            book: null,
          };
        }
        // The batch's moment is taken once the account is ours, not before the lock wait: a
        // deadline or an expiry that passed while another transaction held the account has
        // passed for this batch too, and entries get times in the order of their sequence.
        const now = this.clock();
        const generationIds = [...new Set(operations.flatMap((operation) => operation.generationIds))];
        const keys: IdempotencyLookup[] = operations.flatMap((operation) =>
          operation.idempotency === null
            ? []
            : [
                {
                  principal: operation.idempotency.principal,
                  operation: operation.operation,
                  key: operation.idempotency.key,
                },
              ],
        );
        const loaded = await loadForBatch(tx, accountId, generationIds, keys, now);
        const book = new Book(
          account,
          new Map(loaded.grants.map((grant) => [grant.id, grant])),
          new Map(loaded.generations.map((generation) => [generation.id, generation])),
          now,
        );
        // The reaper's work on what this batch touches comes first, so no
        // operation draws from an expired grant or settles an overdue item.
        expireDueGrants(book);
        timeOutOverdue(book);
        const outcomes = operations.map((operation) => this.apply(book, operation, loaded.records));
        await flush(tx, book);
        return { outcomes, book };
      },
    );
    const { book } = result;
    if (book !== null && book.changes.length > 0) {
      try {
        const generationStatuses: Record<string, GenerationStatus> = {};
        for (const change of book.changes) {
          for (const id of change.generationIds) {
            const generation = book.generation(id);
            if (generation !== undefined) generationStatuses[id] = generation.status;
          }
        }
        this.onCommit({
          accountId,
          changes: book.changes,
          balance: balanceOf(book.account, book.grants(), book.now),
          generationStatuses,
        });
      } catch (error) {
        // Publishing is best effort: the ledger is the truth and subscribers catch up from it.
        process.emitWarning(`publishing committed changes failed: ${(error as Error).message}`);
      }
    }
    return result.outcomes;
  }

  private apply(
    book: Book,
    operation: Operation<unknown>,
    stored: readonly StoredIdempotency[],
  ): Outcome<unknown> {
    const request = operation.idempotency;
    if (request !== null) {
      const same = (record: { principal: string; operation: string; key: string }) =>
        record.principal === request.principal &&
        record.operation === operation.operation &&
        record.key === request.key;
      const previous = stored.find(same) ?? book.idempotency.find(same);
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
    const value = operation.apply(book);
    if (value instanceof DomainError) {
      assert(
        book.changeCount() === before,
        `${operation.operation} changed nothing when it returned ${value.code}`,
      );
      return { ok: false, error: value };
    }
    if (request !== null) {
      book.idempotency.push({
        principal: request.principal,
        operation: operation.operation,
        key: request.key,
        requestHash: request.requestHash,
        accountId: book.account.id,
        result: value,
        expiresAt: new Date(book.now.getTime() + this.idempotencyTtlMs),
      });
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
