/**
 * The dashboard's state rules, free of the DOM so they can be tested in Node:
 * which balance snapshot is newer, how a generation's status shows on its
 * usage entry, and how the feed stays ordered with each entry once.
 */
import type {
  BalanceFieldsFragment,
  EntryStatus,
  GenerationFieldsFragment,
  GenerationStatus,
  LedgerEntryFieldsFragment,
  RefundReason,
} from "../../src/generated/graphql/graphql.ts";

export type Balance = BalanceFieldsFragment;
export type Entry = LedgerEntryFieldsFragment;
export type Generation = GenerationFieldsFragment;

/** How many of the newest entries the feed keeps and replays on first connect. */
export const FEED_SIZE_MAX = 50;

/**
 * The newer of two snapshots of one account's balance. The ledger sequence
 * orders them; a hold can change without a new entry (a settle at full cost),
 * so within one sequence the later `updatedAt` wins, and on a tie the one that
 * arrived last.
 */
export function newerBalance(current: Balance | null, next: Balance): Balance {
  if (current === null || next.sequence > current.sequence) return next;
  if (next.sequence < current.sequence) return current;
  return Date.parse(next.updatedAt) >= Date.parse(current.updatedAt) ? next : current;
}

/** A USAGE entry's status for its generation's status (SPEC: pending while items run). */
export function usageStatusOf(status: GenerationStatus): EntryStatus {
  switch (status) {
    case "IN_PROGRESS":
      return "PENDING";
    case "SUCCEEDED":
    case "PARTIALLY_SUCCEEDED":
      return "COMPLETED";
    default:
      return "FAILED";
  }
}

/**
 * The newest ledger entries, each once, newest first. Live events, the replay
 * after a reconnect and status updates may overlap; a sequence seen twice
 * replaces the older copy instead of adding a row.
 */
export class Feed {
  private readonly bySequence = new Map<number, Entry>();

  constructor(private sizeMax = FEED_SIZE_MAX) {}

  /** Keeps `count` more entries: older pages loaded on request stay on screen. */
  grow(count: number): void {
    this.sizeMax += count;
  }

  /** The highest sequence seen: where a resumed subscription continues. */
  get lastSequence(): number {
    let last = 0;
    for (const sequence of this.bySequence.keys()) last = Math.max(last, sequence);
    return last;
  }

  /** Adds or replaces an entry; returns whether it is new and kept (an entry older than a full feed is not). */
  put(entry: Entry): boolean {
    const isNew = !this.bySequence.has(entry.sequence);
    this.bySequence.set(entry.sequence, entry);
    if (this.bySequence.size > this.sizeMax) {
      const oldest = Math.min(...this.bySequence.keys());
      this.bySequence.delete(oldest);
    }
    return isNew && this.bySequence.has(entry.sequence);
  }

  has(sequence: number): boolean {
    return this.bySequence.has(sequence);
  }

  sequences(): Set<number> {
    return new Set(this.bySequence.keys());
  }

  /** Sets the status of the generation's USAGE entries; returns the entries that changed. */
  applyGeneration(generation: Pick<Generation, "id" | "status">): Entry[] {
    const status = usageStatusOf(generation.status);
    const changed: Entry[] = [];
    for (const entry of this.bySequence.values()) {
      if (entry.type !== "USAGE" || entry.generation?.id !== generation.id || entry.status === status)
        continue;
      const updated = { ...entry, status };
      this.bySequence.set(entry.sequence, updated);
      changed.push(updated);
    }
    return changed;
  }

  /** Generation ids of the USAGE entries still shown as pending. */
  pendingGenerationIds(): string[] {
    const ids = new Set<string>();
    for (const entry of this.bySequence.values()) {
      if (entry.type === "USAGE" && entry.status === "PENDING" && entry.generation !== null) {
        ids.add(entry.generation.id);
      }
    }
    return [...ids];
  }

  /** Newest first. */
  entries(): Entry[] {
    return [...this.bySequence.values()].sort((a, b) => b.sequence - a.sequence);
  }
}

/**
 * Generations in progress. Items only ever finish, so a generation seen
 * finished never comes back, even when an older answer still lists it.
 */
export class InProgress {
  private readonly byId = new Map<string, Generation>();
  private readonly finished = new Map<string, GenerationStatus>();

  /** Applies one generation's state; returns whether the list changed. */
  apply(generation: Generation): boolean {
    if (generation.status !== "IN_PROGRESS") {
      this.finished.set(generation.id, generation.status);
      return this.byId.delete(generation.id);
    }
    if (this.finished.has(generation.id)) return false;
    this.byId.set(generation.id, generation);
    return true;
  }

  /** The final status of a generation seen finished, if any. */
  finishedStatus(id: string): GenerationStatus | undefined {
    return this.finished.get(id);
  }

  has(id: string): boolean {
    return this.byId.has(id);
  }

  ids(): string[] {
    return [...this.byId.keys()];
  }

  /** Soonest deadline first. */
  list(): Generation[] {
    return [...this.byId.values()].sort((a, b) => Date.parse(a.deadline) - Date.parse(b.deadline));
  }
}

const REASON_LABELS: Readonly<Record<RefundReason, string>> = {
  GENERATION_FAILED: "Generation failed",
  TIMEOUT: "Processing timeout",
  SYSTEM_ERROR: "System error",
  PROVIDER_ERROR: "Provider error",
  SERVICE_UNAVAILABLE: "Service unavailable",
  CONTENT_REJECTED: "Content rejected",
  MALFORMED_RESPONSE: "Malformed response",
  INVALID_INPUT: "Invalid input",
  CANCELLED: "Cancelled",
  BILLING_ERROR: "Billing error",
};

/** The words a person reads for a refund reason. */
export function reasonLabel(reason: RefundReason): string {
  return REASON_LABELS[reason] ?? reason;
}

/** "+12", "−12" (a true minus sign), "0". */
export function signedCredits(amount: number): string {
  const digits = Math.abs(amount).toLocaleString("en-US");
  if (amount > 0) return `+${digits}`;
  if (amount < 0) return `\u2212${digits}`;
  return "0";
}

/** "2h 29m", "4m 05s", "12s"; "now" once the time has come. */
export function durationUntil(targetMs: number, nowMs: number): string {
  const totalSeconds = Math.max(0, Math.round((targetMs - nowMs) / 1000));
  if (totalSeconds === 0) return "now";
  const hours = Math.floor(totalSeconds / 3600);
  const minutes = Math.floor((totalSeconds % 3600) / 60);
  const seconds = totalSeconds % 60;
  if (hours > 0) return `${hours}h ${minutes}m`;
  if (minutes > 0) return `${minutes}m ${String(seconds).padStart(2, "0")}s`;
  return `${seconds}s`;
}
