/**
 * An in-memory reference model of one account under the SPEC §5 rules: grants
 * and their draw order, holds, per-item settles, refunds, cancels, timeouts,
 * expiries (including credits returned to an expired grant), idempotency keys
 * and the ledger entries every operation writes. It knows nothing of the
 * service's code: it is the oracle the model-based test compares the real
 * system against after every step.
 *
 * Amounts are plain numbers (the test keeps them far below 2^53). Ids are the
 * API's global ids; grants also carry their local uuid, because draw order
 * breaks ties on it.
 *
 * Where SPEC leaves an order open the model follows the service's documented
 * choice, so that sequences and balances can be compared exactly:
 * - one operation writes its REFUND entries in the order of the RefundReason
 *   enum, then one RELEASE, then one EXPIRY for credits that came back to an
 *   expired grant;
 * - a generation's `failureReason` is the reason of its first failed item (by index).
 */

import { REFUND_REASONS } from "../support/refund-reasons.ts";

export type Reason = (typeof REFUND_REASONS)[number];
export type Source = "SUBSCRIPTION" | "WALLET";
export type ItemStatus = "IN_PROGRESS" | "SUCCEEDED" | "FAILED" | "TIMED_OUT" | "CANCELLED";
export type GenerationStatus = ItemStatus | "PARTIALLY_SUCCEEDED";
export type EntryType = "GRANT" | "USAGE" | "REFUND" | "RELEASE" | "EXPIRY";

/** Who sends a request: two service tokens, so idempotency scoping by `sub` is exercised. */
export type Principal = "A" | "B";

export interface GrantInput {
  readonly idempotencyKey: string;
  readonly accountId: string;
  readonly source: Source;
  readonly amount: number;
  readonly expiresAt?: string;
}
export interface ReserveInput {
  readonly idempotencyKey: string;
  readonly accountId: string;
  readonly feature: string;
  readonly unitCost: number;
  readonly quantity: number;
  readonly timeoutSeconds: number;
}
export interface ItemInput {
  readonly index: number;
  readonly succeeded: boolean;
  readonly cost?: number;
  readonly reason?: Reason;
}
export interface SettleInput {
  readonly idempotencyKey: string;
  readonly generationId: string;
  readonly items?: readonly ItemInput[];
}
export interface RefundInput {
  readonly idempotencyKey: string;
  readonly generationId: string;
  readonly reason: Reason;
}
export interface CancelInput {
  readonly idempotencyKey: string;
  readonly generationId: string;
}

/** One request to the service, exactly as it is sent. */
export type Op =
  | { readonly kind: "grant"; readonly principal: Principal; readonly input: GrantInput }
  | { readonly kind: "reserve"; readonly principal: Principal; readonly input: ReserveInput }
  | { readonly kind: "settle"; readonly principal: Principal; readonly input: SettleInput }
  | { readonly kind: "refund"; readonly principal: Principal; readonly input: RefundInput }
  | { readonly kind: "cancel"; readonly principal: Principal; readonly input: CancelInput };

/** The mutation each kind of request calls (the idempotency scope's middle part). */
export const MUTATION_OF: Readonly<Record<Op["kind"], string>> = {
  grant: "grantCredits",
  reserve: "reserveGeneration",
  settle: "settleGeneration",
  refund: "refundGeneration",
  cancel: "cancelGeneration",
};

/** The generation a request reads or changes, if any. */
export function targetOf(op: Op): string | null {
  return op.kind === "settle" || op.kind === "refund" || op.kind === "cancel" ? op.input.generationId : null;
}

export interface BalanceView {
  readonly available: number;
  readonly held: number;
  readonly total: number;
  readonly subscription: number;
  readonly wallet: number;
  readonly sequence: number;
}

export interface ItemView {
  readonly index: number;
  readonly status: ItemStatus;
  readonly charged: number;
  readonly refunded: number;
  readonly reason: Reason | null;
}

export interface GenerationView {
  readonly id: string;
  readonly status: GenerationStatus;
  readonly reserved: number;
  readonly charged: number;
  readonly refunded: number;
  readonly released: number;
  readonly failureReason: Reason | null;
  readonly items: readonly ItemView[];
}

/**
 * A mutation's answer reduced to what the model predicts. `facts` are values
 * the service chooses (new ids, times) that the model takes from the real
 * answer instead of predicting.
 */
export interface Answer {
  typename: string;
  code?: string;
  replayed?: boolean;
  generationId?: string;
  grantId?: string;
  balance?: BalanceView;
  available?: number;
  required?: number;
  /** The generation as the answer showed it (read after commit); compared only when nothing later touched it. */
  generation?: GenerationView;
  facts?: {
    readonly deadlineMs?: number;
    readonly grantCreatedAtMs?: number;
    readonly grantLocalId?: string;
  };
}

/** A time-driven change the reaper (or the next transaction) applies once its moment has passed. */
export type TimedEvent =
  | { readonly kind: "timeout"; readonly generationId: string; readonly atMs: number }
  | { readonly kind: "expiry"; readonly grantId: string; readonly atMs: number };

interface Grant {
  readonly id: string;
  readonly localId: string;
  readonly source: Source;
  readonly amount: number;
  remaining: number;
  held: number;
  readonly expiresAtMs: number | null;
  expired: boolean;
  readonly createdAtMs: number;
}

interface Draw {
  readonly grantId: string;
  held: number;
  charged: number;
}

interface Item {
  readonly index: number;
  status: ItemStatus;
  readonly reserved: number;
  charged: number;
  refunded: number;
  released: number;
  reason: Reason | null;
}

interface Generation {
  readonly id: string;
  readonly feature: string;
  readonly unitCost: number;
  readonly quantity: number;
  readonly reserved: number;
  charged: number;
  refunded: number;
  released: number;
  status: GenerationStatus;
  failureReason: Reason | null;
  readonly items: Item[];
  readonly draws: Draw[];
  readonly deadlineMs: number;
}

export interface Entry {
  readonly sequence: number;
  readonly type: EntryType;
  readonly amount: number;
  readonly balanceBefore: number;
  readonly balanceAfter: number;
  readonly reason: Reason | null;
  readonly title: string;
  readonly generationId: string | null;
}

interface StoredKey {
  readonly requestHash: string;
  readonly generationId?: string;
  readonly grantId?: string;
}

interface EntryDraft {
  readonly type: EntryType;
  readonly amount: number;
  readonly title: string;
  readonly reason?: Reason;
  readonly generationId?: string;
}

const EXPIRY_TITLE = "Credits expired";

/** A digest of an input that ignores key order, null and undefined (as the service's request hash does). */
export function canonical(value: unknown): string {
  if (value === undefined || value === null) return "null";
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (typeof value === "object") {
    const fields = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined && v !== null)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${fields.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

function itemStatusFor(reason: Reason): ItemStatus {
  if (reason === "TIMEOUT") return "TIMED_OUT";
  if (reason === "CANCELLED") return "CANCELLED";
  return "FAILED";
}

function statusOf(items: readonly Item[]): GenerationStatus {
  if (items.some((item) => item.status === "IN_PROGRESS")) return "IN_PROGRESS";
  const succeeded = items.filter((item) => item.status === "SUCCEEDED").length;
  if (succeeded === items.length) return "SUCCEEDED";
  if (succeeded > 0) return "PARTIALLY_SUCCEEDED";
  const first = items[0]?.status;
  return first !== undefined && items.every((item) => item.status === first) ? first : "FAILED";
}

function error(typename: string, code: string, extra: Partial<Answer> = {}): Answer {
  return { typename, code, ...extra };
}

/** What a settle's items say once checked: an InvalidInputError, or the outcomes to apply. */
type SettleCheck = { readonly invalid: true } | { readonly invalid: false };

/**
 * Checks that need no state (the service's input validation, before any
 * idempotency lookup): a non-empty list, no repeated index, a reason exactly
 * for failures, a positive cost only for successes.
 */
export function settleInputProblem(input: SettleInput): SettleCheck {
  if (input.items === undefined) return { invalid: false };
  if (input.items.length === 0) return { invalid: true };
  const seen = new Set<number>();
  for (const item of input.items) {
    if (!Number.isInteger(item.index) || item.index < 0 || item.index > 99 || seen.has(item.index))
      return { invalid: true };
    seen.add(item.index);
    if (item.succeeded) {
      if (item.reason !== undefined) return { invalid: true };
      if (item.cost !== undefined && (!Number.isInteger(item.cost) || item.cost < 1))
        return { invalid: true };
    } else if (item.cost !== undefined || item.reason === undefined) return { invalid: true };
  }
  return { invalid: false };
}

/** Whether a reserve breaks a rule of SPEC §5 (checked before anything else, the key included). */
export function reserveInputProblem(input: ReserveInput): boolean {
  const integerIn = (value: number, min: number, max: number) =>
    Number.isInteger(value) && value >= min && value <= max;
  return (
    !integerIn(input.unitCost, 1, Number.MAX_SAFE_INTEGER) ||
    !integerIn(input.quantity, 1, 100) ||
    !integerIn(input.timeoutSeconds, 1, 86_400) ||
    input.feature.length === 0
  );
}

/** The reference model of one account. Mutated in place by `apply`; `clone` before trying an order. */
export class LedgerModel {
  grants: Grant[] = [];
  generations = new Map<string, Generation>();
  /** Generation ids in the order they were reserved. */
  generationOrder: string[] = [];
  entries: Entry[] = [];
  keys = new Map<string, StoredKey>();
  /** A time-driven change that has been announced and not yet applied (at most one at a time). */
  pending: TimedEvent | null = null;
  /** Operations that wrote off credits coming back to an expired grant (for the figures). */
  writeOffsOnReturn = 0;

  constructor(readonly accountId: string) {}

  clone(): LedgerModel {
    const copy = new LedgerModel(this.accountId);
    copy.grants = this.grants.map((grant) => ({ ...grant }));
    for (const [id, generation] of this.generations) {
      copy.generations.set(id, {
        ...generation,
        items: generation.items.map((item) => ({ ...item })),
        draws: generation.draws.map((draw) => ({ ...draw })),
      });
    }
    copy.generationOrder = [...this.generationOrder];
    copy.entries = [...this.entries];
    copy.keys = new Map(this.keys);
    copy.pending = this.pending;
    copy.writeOffsOnReturn = this.writeOffsOnReturn;
    return copy;
  }

  get sequence(): number {
    return this.entries.length;
  }

  get available(): number {
    return this.grants.reduce((sum, grant) => sum + grant.remaining, 0);
  }

  balance(): BalanceView {
    const held = this.grants.reduce((sum, grant) => sum + grant.held, 0);
    const subscription = this.grants
      .filter((grant) => grant.source === "SUBSCRIPTION")
      .reduce((sum, grant) => sum + grant.remaining, 0);
    const available = this.available;
    return {
      available,
      held,
      total: available + held,
      subscription,
      wallet: available - subscription,
      sequence: this.sequence,
    };
  }

  generation(id: string): Generation | undefined {
    return this.generations.get(id);
  }

  /** The generation as the API shows it. */
  view(id: string): GenerationView | undefined {
    const generation = this.generations.get(id);
    if (generation === undefined) return undefined;
    return {
      id: generation.id,
      status: generation.status,
      reserved: generation.reserved,
      charged: generation.charged,
      refunded: generation.refunded,
      released: generation.released,
      failureReason: generation.failureReason,
      items: generation.items.map((item) => ({
        index: item.index,
        status: item.status,
        charged: item.charged,
        refunded: item.refunded,
        reason: item.reason,
      })),
    };
  }

  grantViews(): {
    id: string;
    source: Source;
    amount: number;
    remaining: number;
    held: number;
    expired: boolean;
  }[] {
    return this.grants.map(({ id, source, amount, remaining, held, expired }) => ({
      id,
      source,
      amount,
      remaining,
      held,
      expired,
    }));
  }

  /** An entry's derived status: a USAGE entry follows its generation; every other entry is COMPLETED. */
  entryStatus(entry: Entry): "PENDING" | "COMPLETED" | "FAILED" {
    if (entry.type !== "USAGE" || entry.generationId === null) return "COMPLETED";
    const status = this.generations.get(entry.generationId)?.status;
    if (status === "IN_PROGRESS") return "PENDING";
    if (status === "SUCCEEDED" || status === "PARTIALLY_SUCCEEDED") return "COMPLETED";
    return "FAILED";
  }

  /**
   * Applies one request and returns the answer the service must give.
   * `observed` is the real answer, read only for the values the service
   * chooses (a new generation's id and deadline, a new grant's id and time).
   */
  apply(op: Op, observed: Answer | undefined): Answer {
    if (
      (op.kind === "settle" && settleInputProblem(op.input).invalid) ||
      (op.kind === "reserve" && reserveInputProblem(op.input))
    ) {
      return error("InvalidInputError", "INVALID_INPUT");
    }
    const scope = `${op.principal}\u0000${MUTATION_OF[op.kind]}\u0000${op.input.idempotencyKey}`;
    const { idempotencyKey: _key, ...rest } = op.input;
    const requestHash = canonical(rest);
    const stored = this.keys.get(scope);
    if (stored !== undefined) {
      if (stored.requestHash !== requestHash)
        return error("IdempotencyKeyReusedError", "IDEMPOTENCY_KEY_REUSED");
      return {
        typename: successTypename(op.kind),
        replayed: true,
        ...(stored.generationId === undefined ? {} : { generationId: stored.generationId }),
        ...(stored.grantId === undefined ? {} : { grantId: stored.grantId }),
        balance: this.balance(),
      };
    }
    const answer = this.run(op, observed);
    if (answer.code === undefined) {
      this.keys.set(scope, {
        requestHash,
        ...(answer.generationId === undefined ? {} : { generationId: answer.generationId }),
        ...(answer.grantId === undefined ? {} : { grantId: answer.grantId }),
      });
    }
    return answer;
  }

  private run(op: Op, observed: Answer | undefined): Answer {
    switch (op.kind) {
      case "grant":
        return this.grant(op.input, observed);
      case "reserve":
        return this.reserve(op.input, observed);
      case "settle":
        return this.settle(op.input);
      case "refund":
        return this.refund(op.input.generationId, op.input.reason, "RefundGenerationSuccess");
      case "cancel":
        return this.refund(op.input.generationId, "CANCELLED", "CancelGenerationSuccess");
    }
  }

  private success(typename: string, ids: { generationId?: string; grantId?: string }): Answer {
    return { typename, replayed: false, ...ids, balance: this.balance() };
  }

  private grant(input: GrantInput, observed: Answer | undefined): Answer {
    const fresh = observed?.typename === "GrantCreditsSuccess" && observed.replayed === false;
    const id = fresh && observed.grantId !== undefined ? observed.grantId : "<a new grant>";
    const start = this.available;
    this.grants.push({
      id,
      localId: observed?.facts?.grantLocalId ?? "",
      source: input.source,
      amount: input.amount,
      remaining: input.amount,
      held: 0,
      expiresAtMs: input.expiresAt === undefined ? null : Date.parse(input.expiresAt),
      expired: false,
      createdAtMs: observed?.facts?.grantCreatedAtMs ?? 0,
    });
    this.write(start, [
      {
        type: "GRANT",
        amount: input.amount,
        title: input.source === "WALLET" ? "Credit purchase" : "Subscription credits",
      },
    ]);
    return this.success("GrantCreditsSuccess", { grantId: id });
  }

  /** Grants that can be drawn from, in draw order (SPEC §2). */
  private drawOrder(): Grant[] {
    const expiry = (grant: Grant) => grant.expiresAtMs ?? Number.POSITIVE_INFINITY;
    return this.grants
      .filter((grant) => grant.remaining > 0 && !grant.expired)
      .sort((a, b) => {
        if (a.source !== b.source) return a.source === "SUBSCRIPTION" ? -1 : 1;
        if (a.source === "SUBSCRIPTION" && expiry(a) !== expiry(b)) return expiry(a) < expiry(b) ? -1 : 1;
        if (a.createdAtMs !== b.createdAtMs) return a.createdAtMs - b.createdAtMs;
        return a.localId < b.localId ? -1 : a.localId > b.localId ? 1 : 0;
      });
  }

  private reserve(input: ReserveInput, observed: Answer | undefined): Answer {
    const required = input.unitCost * input.quantity;
    const available = this.available;
    if (available < required) {
      return error("InsufficientCreditsError", "INSUFFICIENT_CREDITS", { available, required });
    }
    const fresh = observed?.typename === "ReserveGenerationSuccess" && observed.replayed === false;
    const id = fresh && observed.generationId !== undefined ? observed.generationId : "<a new generation>";
    const draws: Draw[] = [];
    let left = required;
    for (const grant of this.drawOrder()) {
      if (left === 0) break;
      const take = Math.min(left, grant.remaining);
      grant.remaining -= take;
      grant.held += take;
      draws.push({ grantId: grant.id, held: take, charged: 0 });
      left -= take;
    }
    this.generations.set(id, {
      id,
      feature: input.feature,
      unitCost: input.unitCost,
      quantity: input.quantity,
      reserved: required,
      charged: 0,
      refunded: 0,
      released: 0,
      status: "IN_PROGRESS",
      failureReason: null,
      items: Array.from({ length: input.quantity }, (_, index) => ({
        index,
        status: "IN_PROGRESS" as const,
        reserved: input.unitCost,
        charged: 0,
        refunded: 0,
        released: 0,
        reason: null,
      })),
      draws,
      deadlineMs: observed?.facts?.deadlineMs ?? Number.POSITIVE_INFINITY,
    });
    this.generationOrder.push(id);
    this.write(available, [{ type: "USAGE", amount: -required, title: input.feature, generationId: id }]);
    return this.success("ReserveGenerationSuccess", { generationId: id });
  }

  private finalized(generation: Generation): Answer {
    return error("AlreadyFinalizedError", "ALREADY_FINALIZED", { generationId: generation.id });
  }

  private settle(input: SettleInput): Answer {
    const generation = this.generations.get(input.generationId);
    if (generation === undefined) return error("NotFoundError", "NOT_FOUND");
    let outcomes: { index: number; succeeded: boolean; cost: number; reason: Reason | null }[];
    if (input.items === undefined) {
      if (generation.items.some((item) => item.status !== "IN_PROGRESS" && item.status !== "SUCCEEDED")) {
        return this.finalized(generation);
      }
      outcomes = generation.items
        .filter((item) => item.status === "IN_PROGRESS")
        .map((item) => ({ index: item.index, succeeded: true, cost: generation.unitCost, reason: null }));
    } else {
      for (const item of input.items) {
        if (item.index >= generation.quantity) return error("InvalidInputError", "INVALID_INPUT");
        if (item.succeeded && (item.cost ?? generation.unitCost) > generation.unitCost) {
          return error("InvalidInputError", "INVALID_INPUT");
        }
      }
      outcomes = [];
      for (const reported of input.items) {
        const item = generation.items[reported.index];
        if (item === undefined) throw new Error("model: items are stored by index");
        const cost = reported.cost ?? generation.unitCost;
        if (item.status === "IN_PROGRESS") {
          outcomes.push({
            index: reported.index,
            succeeded: reported.succeeded,
            cost,
            reason: reported.reason ?? null,
          });
          continue;
        }
        const same = reported.succeeded
          ? item.status === "SUCCEEDED" && item.charged === cost
          : item.status !== "SUCCEEDED" && item.reason === reported.reason;
        if (!same) return this.finalized(generation);
      }
    }
    if (outcomes.length > 0) this.endItems(generation, outcomes);
    return this.success("SettleGenerationSuccess", { generationId: generation.id });
  }

  private refund(generationId: string, reason: Reason, typename: string): Answer {
    const generation = this.generations.get(generationId);
    if (generation === undefined) return error("NotFoundError", "NOT_FOUND");
    const open = generation.items.filter((item) => item.status === "IN_PROGRESS");
    if (open.length === 0) return this.finalized(generation);
    this.endItems(
      generation,
      open.map((item) => ({ index: item.index, succeeded: false, cost: 0, reason })),
    );
    return this.success(typename, { generationId: generation.id });
  }

  /**
   * Ends unfinished items: successes are charged from the first draws on,
   * failures and surpluses go back to the last draws first; credits that come
   * back to an expired grant are written off at once.
   */
  private endItems(
    generation: Generation,
    outcomes: readonly { index: number; succeeded: boolean; cost: number; reason: Reason | null }[],
  ): void {
    const start = this.available;
    const refunds = new Map<Reason, number>();
    let charged = 0;
    let released = 0;
    for (const outcome of outcomes) {
      const item = generation.items[outcome.index];
      if (item === undefined || item.status !== "IN_PROGRESS")
        throw new Error("model: ends unfinished items only");
      if (outcome.succeeded) {
        item.status = "SUCCEEDED";
        item.charged = outcome.cost;
        item.released = item.reserved - outcome.cost;
        charged += item.charged;
        released += item.released;
      } else {
        const reason = outcome.reason as Reason;
        item.status = itemStatusFor(reason);
        item.refunded = item.reserved;
        item.reason = reason;
        refunds.set(reason, (refunds.get(reason) ?? 0) + item.reserved);
      }
    }
    const refunded = [...refunds.values()].reduce((sum, amount) => sum + amount, 0);
    let toCharge = charged;
    for (const draw of generation.draws) {
      const take = Math.min(toCharge, draw.held);
      if (take === 0) continue;
      draw.held -= take;
      draw.charged += take;
      this.grantById(draw.grantId).held -= take;
      toCharge -= take;
    }
    let toReturn = refunded + released;
    let writtenOff = 0;
    for (const draw of [...generation.draws].reverse()) {
      const take = Math.min(toReturn, draw.held);
      if (take === 0) continue;
      draw.held -= take;
      const grant = this.grantById(draw.grantId);
      grant.held -= take;
      if (grant.expired) writtenOff += take;
      else grant.remaining += take;
      toReturn -= take;
    }
    if (toCharge !== 0 || toReturn !== 0)
      throw new Error("model: a generation holds what its items reserved");
    generation.charged += charged;
    generation.released += released;
    generation.refunded += refunded;
    generation.failureReason = generation.items.find((item) => item.reason !== null)?.reason ?? null;
    generation.status = statusOf(generation.items);
    const drafts: EntryDraft[] = [];
    for (const reason of REFUND_REASONS) {
      const amount = refunds.get(reason);
      if (amount !== undefined) {
        drafts.push({
          type: "REFUND",
          amount,
          title: generation.feature,
          reason,
          generationId: generation.id,
        });
      }
    }
    drafts.push({
      type: "RELEASE",
      amount: released,
      title: generation.feature,
      generationId: generation.id,
    });
    drafts.push({ type: "EXPIRY", amount: -writtenOff, title: EXPIRY_TITLE });
    if (writtenOff > 0) this.writeOffsOnReturn += 1;
    this.write(start, drafts);
  }

  private grantById(id: string): Grant {
    const grant = this.grants.find((candidate) => candidate.id === id);
    if (grant === undefined) throw new Error(`model: grant ${id} exists`);
    return grant;
  }

  /** Applies a due time-driven change (the reaper's work, or the next transaction's first step). */
  applyEvent(event: TimedEvent): void {
    if (this.pending === event) this.pending = null;
    if (event.kind === "timeout") {
      const generation = this.generations.get(event.generationId);
      const open = generation?.items.filter((item) => item.status === "IN_PROGRESS") ?? [];
      if (generation === undefined || open.length === 0) return;
      this.endItems(
        generation,
        open.map((item) => ({ index: item.index, succeeded: false, cost: 0, reason: "TIMEOUT" as const })),
      );
      return;
    }
    const grant = this.grantById(event.grantId);
    if (grant.expired) return;
    const start = this.available;
    const amount = grant.remaining;
    grant.remaining = 0;
    grant.expired = true;
    this.write(start, [{ type: "EXPIRY", amount: -amount, title: EXPIRY_TITLE }]);
  }

  /** Appends an operation's entries (zero amounts are not written), numbered and balanced from `start`. */
  private write(start: number, drafts: readonly EntryDraft[]): void {
    let balance = start;
    for (const draft of drafts) {
      if (draft.amount === 0) continue;
      this.entries.push({
        sequence: this.entries.length + 1,
        type: draft.type,
        amount: draft.amount,
        balanceBefore: balance,
        balanceAfter: balance + draft.amount,
        reason: draft.reason ?? null,
        title: draft.title,
        generationId: draft.generationId ?? null,
      });
      balance += draft.amount;
    }
    if (balance !== this.available) {
      throw new Error(
        `model: entries explain the balance (${start} → ${balance}, available ${this.available})`,
      );
    }
  }
}

function successTypename(kind: Op["kind"]): string {
  switch (kind) {
    case "grant":
      return "GrantCreditsSuccess";
    case "reserve":
      return "ReserveGenerationSuccess";
    case "settle":
      return "SettleGenerationSuccess";
    case "refund":
      return "RefundGenerationSuccess";
    case "cancel":
      return "CancelGenerationSuccess";
  }
}
