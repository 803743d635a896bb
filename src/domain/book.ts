import { randomUUID } from "node:crypto";
import { type BalanceLowEvent, evaluateBalanceAlert } from "./alerts.ts";
import { assert } from "./assert.ts";
import { type Credits, minCredits, sumCredits } from "./credits.ts";
import {
  type AccountState,
  EXPIRY_TITLE,
  type GenerationState,
  type GrantState,
  isGrantExpired,
  type LedgerEntryRecord,
  type LedgerEntryType,
  type PostingBook,
  type PostingRecord,
  type RefundReason,
} from "./model.ts";
import type { Notice } from "./notices.ts";
import type { SpendCapState } from "./spend-caps.ts";

/** A stored mutation outcome (see idempotency.ts). */
export interface IdempotencyDraft {
  readonly principal: string;
  readonly operation: string;
  readonly key: string;
  readonly requestHash: string;
  readonly accountId: string;
  readonly result: unknown;
  readonly expiresAt: Date;
}

/** The actor of entries no request caused: the reaper, expiry and other background work. */
export const SYSTEM_ACTOR = "system";

export interface BoardItemDraft {
  readonly boardId: string;
  readonly generationId: string;
  readonly accountId: string;
}

/** What happened to an account in one committed operation; published after commit. */
export interface AccountChange {
  readonly accountId: string;
  readonly entries: readonly LedgerEntryRecord[];
  readonly generationIds: readonly string[];
}

interface EntryDraft {
  readonly type: LedgerEntryType;
  readonly amount: Credits;
  readonly title: string;
  readonly reason?: RefundReason | null;
  readonly message?: string | null;
  readonly generationId?: string | null;
  readonly grantId?: string | null;
}

/**
 * The in-memory unit of work of one account transaction: the account row (locked),
 * its open grants, and the generations the batch touches. Operations change
 * these only through the primitives below, each of which moves credits between
 * books with balanced postings and keeps the account's totals in step; entries
 * are appended by `Transfer.entry`. Nothing is written until the store flushes
 * the write set, after `assertConsistent`.
 */
export class Book {
  readonly entries: LedgerEntryRecord[] = [];
  readonly postings: PostingRecord[] = [];
  readonly idempotency: IdempotencyDraft[] = [];
  readonly boardItems: BoardItemDraft[] = [];
  readonly newGrants = new Set<string>();
  readonly dirtyGrants = new Set<string>();
  readonly newGenerations = new Set<string>();
  readonly dirtyGenerations = new Set<string>();
  readonly dirtyItems = new Map<string, Set<number>>();
  readonly dirtyDraws = new Map<string, Set<number>>();
  readonly changes: AccountChange[] = [];
  /** Outbound notices decided in this transaction, stored with it (notices.ts). */
  readonly notices: Notice[] = [];
  /**
   * Whether a webhook endpoint listens to the account (asked by the lock
   * statement): only then are its events written to the outbox.
   */
  listened = false;
  /** Generations that were in progress when loaded: those finishing here send generation.finished. */
  readonly openAtLoad: ReadonlySet<string>;
  /** Spend caps of the members this transaction reserves for, with their spending (spend-caps.ts). */
  readonly spendCaps: SpendCapState[] = [];
  /** Crossings below the alert threshold in this transaction, published after commit (alerts.ts). */
  readonly balanceLow: BalanceLowEvent[] = [];
  /** Whether the account row changed beyond what entries explain (its alert): it must be written. */
  accountChanged = false;
  private openTransfer: Transfer | null = null;
  /**
   * Who causes the entries being written: set by the executor around each
   * operation, SYSTEM_ACTOR otherwise (expiry and timeouts a batch runs first).
   */
  actor: string = SYSTEM_ACTOR;

  constructor(
    readonly account: AccountState,
    private readonly grantsById: Map<string, GrantState>,
    private readonly generationsById: Map<string, GenerationState>,
    readonly now: Date,
  ) {
    this.openAtLoad = new Set(
      [...generationsById.values()].filter((g) => g.status === "IN_PROGRESS").map((g) => g.id),
    );
  }

  /** Open grants (remaining or held credits) of the account. */
  grants(): GrantState[] {
    return [...this.grantsById.values()];
  }

  grant(id: string): GrantState {
    const grant = this.grantsById.get(id);
    assert(grant !== undefined, `grant ${id} is loaded before it is moved`);
    return grant;
  }

  generation(id: string): GenerationState | undefined {
    return this.generationsById.get(id);
  }

  generations(): GenerationState[] {
    return [...this.generationsById.values()];
  }

  /** A count that grows with every change; an operating error must leave it as it was. */
  changeCount(): number {
    return (
      this.entries.length +
      this.postings.length +
      this.newGrants.size +
      this.dirtyGrants.size +
      this.newGenerations.size +
      this.dirtyGenerations.size +
      this.boardItems.length
    );
  }

  /** Whether anything will be written. */
  get isDirty(): boolean {
    return this.changeCount() > 0 || this.idempotency.length > 0 || this.accountChanged;
  }

  addGrant(grant: GrantState): void {
    assert(!this.grantsById.has(grant.id), `grant ${grant.id} is new`);
    this.grantsById.set(grant.id, grant);
    this.newGrants.add(grant.id);
  }

  addGeneration(generation: GenerationState): void {
    assert(!this.generationsById.has(generation.id), `generation ${generation.id} is new`);
    this.generationsById.set(generation.id, generation);
    this.newGenerations.add(generation.id);
  }

  touchGeneration(
    generation: GenerationState,
    itemIndexes: Iterable<number>,
    drawIndexes: Iterable<number>,
  ): void {
    if (this.newGenerations.has(generation.id)) return;
    this.dirtyGenerations.add(generation.id);
    const items = this.dirtyItems.get(generation.id) ?? new Set<number>();
    for (const index of itemIndexes) items.add(index);
    this.dirtyItems.set(generation.id, items);
    const draws = this.dirtyDraws.get(generation.id) ?? new Set<number>();
    for (const index of drawIndexes) draws.add(index);
    this.dirtyDraws.set(generation.id, draws);
  }

  /** Starts the money movement of one operation; finish it with `Transfer.finish`. */
  begin(): Transfer {
    assert(this.openTransfer === null, "one transfer at a time");
    this.openTransfer = new Transfer(this, randomUUID());
    return this.openTransfer;
  }

  /** @internal called by Transfer.finish */
  closed(transfer: Transfer, change: AccountChange): void {
    assert(this.openTransfer === transfer, "the open transfer is the one finished");
    this.openTransfer = null;
    if (change.entries.length > 0 || change.generationIds.length > 0) this.changes.push(change);
    // Only entries move `available`; each transfer that wrote some may cross the alert's threshold.
    if (change.entries.length > 0) evaluateBalanceAlert(this);
  }

  /**
   * The account's invariants over everything loaded: totals equal the sum of
   * its open grants; nothing negative; every transfer balanced; entries gapless.
   */
  assertConsistent(): void {
    assert(this.openTransfer === null, "no transfer is left open");
    const grants = this.grants();
    const sum = (pick: (grant: GrantState) => Credits, source?: GrantState["source"]) =>
      sumCredits(grants.filter((grant) => source === undefined || grant.source === source).map(pick));
    const { account } = this;
    assert(account.available >= 0n && account.held >= 0n, `account ${account.id} totals are not negative`);
    assert(account.available === account.subscription + account.wallet, "available = subscription + wallet");
    assert(
      account.subscription === sum((g) => g.remaining, "SUBSCRIPTION"),
      "subscription = Σ subscription grants",
    );
    assert(account.wallet === sum((g) => g.remaining, "WALLET"), "wallet = Σ wallet grants");
    assert(account.held === sum((g) => g.held), "held = Σ grant holds");
    for (const grant of grants) {
      assert(grant.remaining >= 0n && grant.held >= 0n, `grant ${grant.id} is not negative`);
      assert(
        grant.remaining + grant.held <= grant.amount,
        `grant ${grant.id} holds no more than it was given`,
      );
      assert(
        grant.expiredAt === null || grant.remaining === 0n,
        `expired grant ${grant.id} keeps nothing available`,
      );
    }
    for (const generation of this.generations()) {
      const held = sumCredits(generation.draws.map((draw) => draw.held));
      const open = sumCredits(
        generation.items.filter((i) => i.status === "IN_PROGRESS").map((i) => i.reserved),
      );
      assert(
        held === open,
        `generation ${generation.id} holds exactly its unfinished items (${held} vs ${open})`,
      );
      assert(
        generation.charged === sumCredits(generation.draws.map((draw) => draw.charged)),
        `generation ${generation.id} charged = Σ draws charged`,
      );
    }
    const byTransfer = new Map<string, Credits>();
    for (const posting of this.postings) {
      byTransfer.set(posting.transferId, (byTransfer.get(posting.transferId) ?? 0n) + posting.amount);
    }
    for (const [transferId, total] of byTransfer)
      assert(total === 0n, `transfer ${transferId} balances (${total})`);
    this.entries.forEach((entry, i) => {
      const previous = this.entries[i - 1];
      if (previous !== undefined)
        assert(entry.sequence === previous.sequence + 1, "entry sequences are gapless");
      assert(entry.balanceAfter === entry.balanceBefore + entry.amount, "entry balance moves by its amount");
    });
    const last = this.entries.at(-1);
    if (last !== undefined) {
      assert(last.sequence === account.sequence, "account sequence = last entry");
      assert(last.balanceAfter === account.available, "last entry balance = available");
    }
  }
}

/**
 * The money movement of one operation. Every primitive posts a balanced pair;
 * entries are emitted at the end in the order the operation chooses, and
 * `finish` checks that they explain exactly how `available` moved.
 */
export class Transfer {
  private readonly availableAtStart: Credits;
  private readonly entryDrafts: EntryDraft[] = [];
  private readonly touched = new Set<string>();
  /** Credits written off because they came back to a grant that has expired. */
  expiredOnReturn: Credits = 0n;

  constructor(
    private readonly book: Book,
    readonly id: string,
  ) {
    this.availableAtStart = book.account.available;
  }

  private post(
    book: PostingBook,
    amount: Credits,
    grantId: string | null,
    generationId: string | null,
  ): void {
    assert(amount !== 0n, "postings move a non-zero amount");
    this.book.postings.push({
      accountId: this.book.account.id,
      transferId: this.id,
      book,
      grantId,
      generationId,
      amount,
      createdAt: this.book.now,
    });
  }

  private moveAvailable(grant: GrantState, delta: Credits): void {
    grant.remaining += delta;
    this.book.account.available += delta;
    if (grant.source === "SUBSCRIPTION") this.book.account.subscription += delta;
    else this.book.account.wallet += delta;
    this.book.dirtyGrants.add(grant.id);
  }

  /** New credits into a grant from outside the account (issuance or an adjustment). */
  issue(grant: GrantState, amount: Credits, from: "ISSUED" | "ADJUSTED"): void {
    assert(amount > 0n, "issued amount is positive");
    this.moveAvailable(grant, amount);
    this.post("GRANT_AVAILABLE", amount, grant.id, null);
    this.post(from, -amount, grant.id, null);
  }

  /** Takes available credits out of a grant for good (negative adjustment or expiry). */
  remove(grant: GrantState, amount: Credits, to: "EXPIRED" | "ADJUSTED"): void {
    assert(amount > 0n && amount <= grant.remaining, `removal of ${amount} fits grant ${grant.id}`);
    this.moveAvailable(grant, -amount);
    this.post("GRANT_AVAILABLE", -amount, grant.id, null);
    this.post(to, amount, grant.id, null);
  }

  /** Holds credits of a grant for a generation. */
  hold(grant: GrantState, amount: Credits, generationId: string): void {
    assert(amount > 0n && amount <= grant.remaining, `hold of ${amount} fits grant ${grant.id}`);
    this.moveAvailable(grant, -amount);
    grant.held += amount;
    this.book.account.held += amount;
    this.post("GRANT_AVAILABLE", -amount, grant.id, generationId);
    this.post("GRANT_HELD", amount, grant.id, generationId);
  }

  /** Turns held credits into revenue: the output was delivered. */
  charge(grant: GrantState, amount: Credits, generationId: string): void {
    assert(amount > 0n && amount <= grant.held, `charge of ${amount} fits the hold on grant ${grant.id}`);
    grant.held -= amount;
    this.book.account.held -= amount;
    this.book.dirtyGrants.add(grant.id);
    this.post("GRANT_HELD", -amount, grant.id, generationId);
    this.post("REVENUE", amount, grant.id, generationId);
  }

  /** Gives held credits back to their grant; written off at once if the grant has expired. */
  unhold(grant: GrantState, amount: Credits, generationId: string): void {
    assert(amount > 0n && amount <= grant.held, `return of ${amount} fits the hold on grant ${grant.id}`);
    grant.held -= amount;
    this.book.account.held -= amount;
    this.moveAvailable(grant, amount);
    this.post("GRANT_HELD", -amount, grant.id, generationId);
    this.post("GRANT_AVAILABLE", amount, grant.id, generationId);
    this.writeOffIfExpired(grant, amount);
  }

  /** Gives charged credits back (support refund); written off at once if the grant has expired. */
  uncharge(grant: GrantState, amount: Credits, generationId: string): void {
    assert(amount > 0n, "support refund amount is positive");
    this.moveAvailable(grant, amount);
    this.post("REVENUE", -amount, grant.id, generationId);
    this.post("GRANT_AVAILABLE", amount, grant.id, generationId);
    this.writeOffIfExpired(grant, amount);
  }

  private writeOffIfExpired(grant: GrantState, amount: Credits): void {
    if (!isGrantExpired(grant, this.book.now)) return;
    this.remove(grant, amount, "EXPIRED");
    grant.expiredAt ??= this.book.now;
    this.expiredOnReturn += amount;
  }

  /**
   * Charges `amount` of a generation's hold, consuming its draws in draw order.
   */
  chargeDraws(generation: GenerationState, amount: Credits): void {
    let left = amount;
    for (const draw of generation.draws) {
      if (left === 0n) break;
      const take = minCredits(left, draw.held);
      if (take === 0n) continue;
      draw.held -= take;
      draw.charged += take;
      this.charge(this.book.grant(draw.grantId), take, generation.id);
      this.touchDraw(generation, draw.drawIndex);
      left -= take;
    }
    assert(left === 0n, `generation ${generation.id} held enough to charge ${amount}`);
  }

  /** Returns `amount` of a generation's hold to the grants it came from, last drawn first. */
  returnDraws(generation: GenerationState, amount: Credits): void {
    let left = amount;
    for (const draw of [...generation.draws].reverse()) {
      if (left === 0n) break;
      const take = minCredits(left, draw.held);
      if (take === 0n) continue;
      draw.held -= take;
      draw.returned += take;
      this.unhold(this.book.grant(draw.grantId), take, generation.id);
      this.touchDraw(generation, draw.drawIndex);
      left -= take;
    }
    assert(left === 0n, `generation ${generation.id} held enough to return ${amount}`);
  }

  /** Returns `amount` of what a generation was charged, last drawn first (support refunds). */
  returnCharged(generation: GenerationState, amount: Credits): void {
    let left = amount;
    for (const draw of [...generation.draws].reverse()) {
      if (left === 0n) break;
      const take = minCredits(left, draw.charged - draw.supportRefunded);
      if (take === 0n) continue;
      draw.supportRefunded += take;
      this.uncharge(this.book.grant(draw.grantId), take, generation.id);
      this.touchDraw(generation, draw.drawIndex);
      left -= take;
    }
    assert(left === 0n, `generation ${generation.id} was charged enough to refund ${amount}`);
  }

  private touchDraw(generation: GenerationState, drawIndex: number): void {
    this.touched.add(generation.id);
    this.book.touchGeneration(generation, [], [drawIndex]);
  }

  /** Marks a generation (and the given items) as changed by this operation. */
  touch(generation: GenerationState, itemIndexes: Iterable<number> = []): void {
    this.touched.add(generation.id);
    this.book.touchGeneration(generation, itemIndexes, []);
  }

  /** Appends a ledger entry; entries are numbered in the order they are added. */
  entry(draft: EntryDraft): void {
    if (draft.amount === 0n) return;
    this.entryDrafts.push(draft);
  }

  /** Appends the EXPIRY entry for credits that came back to expired grants, if any. */
  entryForExpiredReturns(): void {
    if (this.expiredOnReturn > 0n)
      this.entry({ type: "EXPIRY", amount: -this.expiredOnReturn, title: EXPIRY_TITLE });
  }

  /**
   * Numbers the entries, checks that they explain the change of `available`
   * exactly, and closes the transfer.
   */
  finish(): LedgerEntryRecord[] {
    const { account, now } = this.book;
    const moved = sumCredits(this.entryDrafts.map((draft) => draft.amount));
    assert(
      this.availableAtStart + moved === account.available,
      `entries explain the change of available (${this.availableAtStart} + ${moved} ≠ ${account.available})`,
    );
    let balance = this.availableAtStart;
    const records = this.entryDrafts.map((draft): LedgerEntryRecord => {
      account.sequence += 1;
      const record: LedgerEntryRecord = {
        id: randomUUID(),
        accountId: account.id,
        sequence: account.sequence,
        type: draft.type,
        amount: draft.amount,
        balanceBefore: balance,
        balanceAfter: balance + draft.amount,
        title: draft.title,
        reason: draft.reason ?? null,
        message: draft.message ?? null,
        generationId: draft.generationId ?? null,
        grantId: draft.grantId ?? null,
        transferId: this.id,
        createdAt: now,
        actor: this.book.actor,
      };
      balance = record.balanceAfter;
      return record;
    });
    account.updatedAt = now;
    this.book.entries.push(...records);
    this.book.closed(this, { accountId: account.id, entries: records, generationIds: [...this.touched] });
    return records;
  }
}
