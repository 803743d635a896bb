import type { BalanceLowEvent } from "./alerts.ts";
import type { BalanceSnapshot } from "./balance.ts";
import type { CommittedBatch } from "./executor.ts";
import type { GenerationStatus, LedgerEntryRecord } from "./model.ts";

/**
 * What one committed account transaction tells subscribers. Amounts travel as
 * decimal strings so they stay exact through JSON and Redis.
 */
export interface AccountEvent {
  readonly accountId: string;
  /** The account's latest entry sequence after this commit. */
  readonly sequence: number;
  readonly entries: readonly LedgerEntryRecord[];
  readonly generationIds: readonly string[];
  readonly generationStatuses: Readonly<Record<string, GenerationStatus>>;
  readonly balance: BalanceSnapshot;
  /** Falls below the alert threshold in this commit (usually none; absent from older publishers). */
  readonly balanceLow?: readonly BalanceLowEvent[];
}

export type AccountListener = (event: AccountEvent) => void;

/**
 * Events between server instances, one topic per account. Each instance
 * holds at most one upstream subscription per topic, shared by all of its
 * local listeners. Publishing never throws: the ledger is the truth, and a
 * lost event is recovered by subscribers from the database.
 */
export interface EventBus {
  publish(event: AccountEvent): void;
  /** Listens to one account; returns the function that stops listening. */
  subscribe(accountId: string, listener: AccountListener): () => void;
  /** Resolves when the upstream subscription for the account is active (immediately in process). */
  ready(accountId: string): Promise<void>;
  readonly stats: EventStats;
  /** Whether the transport is reachable (for /readyz). */
  healthy(): Promise<boolean>;
  /**
   * Registers a callback for when the transport is back after an outage and
   * every topic is subscribed again; events published meanwhile were lost.
   */
  onReconnect?(callback: () => void): void;
  close(): Promise<void>;
}

export interface EventStats {
  published: number;
  publishFailed: number;
  received: number;
  topics: number;
}

/** Turns a committed batch into one event. */
export function eventOf(batch: CommittedBatch): AccountEvent {
  return {
    accountId: batch.accountId,
    sequence: batch.balance.sequence,
    entries: batch.changes.flatMap((change) => change.entries),
    generationIds: [...new Set(batch.changes.flatMap((change) => change.generationIds))],
    generationStatuses: batch.generationStatuses,
    balance: batch.balance,
    balanceLow: batch.balanceLow,
  };
}
