/**
 * The model-based test's commands (fast-check `AsyncCommand`s) and their
 * arbitraries. A command's generated values are seeds ("the n-th open
 * generation", "a cost of 1 + c mod unitCost"); `run` resolves them against
 * the model at that moment, so any sequence is meaningful and replays the
 * same way from the same seed.
 */
import fc from "fast-check";
import type { ItemInput, Op, Principal, Reason, Source, TimedEvent } from "./model.ts";
import { describeOp, GENERATIONS_MAX, type Session } from "./runner.ts";

type SessionCommand = fc.AsyncCommand<Session, Session>;

/** Reasons a report names: mostly failures, sometimes TIMEOUT or CANCELLED (same outcome as the reaper or a cancel). */
const REASONS: readonly Reason[] = [
  "GENERATION_FAILED",
  "PROVIDER_ERROR",
  "CONTENT_REJECTED",
  "SERVICE_UNAVAILABLE",
  "TIMEOUT",
  "CANCELLED",
];

const rare = (oneIn: number) => fc.nat(oneIn - 1).map((n) => n === 0);
const principalArb: fc.Arbitrary<Principal> = fc.constantFrom<Principal>("A", "A", "A", "B");

interface GenerationPick {
  readonly open: boolean;
  readonly n: number;
}
const pickArb: fc.Arbitrary<GenerationPick> = fc.record({
  open: fc.nat(4).map((n) => n > 0),
  n: fc.nat(1_000),
});

/** The picked generation: among unfinished ones when asked (and there are any), else among all. */
function pickGeneration(session: Session, pick: GenerationPick): string | null {
  const all = session.model.generationOrder;
  if (all.length === 0) return null;
  const open = all.filter((id) => session.model.generation(id)?.status === "IN_PROGRESS");
  const pool = pick.open && open.length > 0 ? open : all;
  return pool[pick.n % pool.length] ?? null;
}

interface GrantSpec {
  readonly source: Source;
  readonly amount: number;
  readonly expiryDays: number | null;
  readonly principal: Principal;
}
const grantArb: fc.Arbitrary<GrantSpec> = fc.record({
  source: fc.constantFrom<Source>("WALLET", "SUBSCRIPTION"),
  amount: fc.integer({ min: 1, max: 120 }),
  expiryDays: fc.option(fc.integer({ min: 1, max: 30 }), { nil: null }),
  principal: principalArb,
});

function grantOp(session: Session, spec: GrantSpec, expiresAt?: string): Op {
  const expiry =
    expiresAt ??
    (spec.source === "SUBSCRIPTION" && spec.expiryDays !== null
      ? new Date(Date.now() + spec.expiryDays * 86_400_000).toISOString()
      : undefined);
  return {
    kind: "grant",
    principal: spec.principal,
    input: {
      idempotencyKey: session.freshKey("grant"),
      accountId: session.accountId,
      source: spec.source,
      amount: spec.amount,
      ...(expiry === undefined ? {} : { expiresAt: expiry }),
    },
  };
}

interface ReserveSpec {
  readonly unitCost: number;
  readonly quantity: number;
  readonly feature: string;
  readonly principal: Principal;
}
const reserveArb: fc.Arbitrary<ReserveSpec> = fc.record({
  unitCost: fc.integer({ min: 1, max: 20 }),
  quantity: fc.integer({ min: 1, max: 5 }),
  feature: fc.constantFrom("Image", "Quick Video", "Voice"),
  principal: principalArb,
});

function reserveOp(session: Session, spec: ReserveSpec, timeoutSeconds = 3_600): Op {
  return {
    kind: "reserve",
    principal: spec.principal,
    input: {
      idempotencyKey: session.freshKey("reserve"),
      accountId: session.accountId,
      feature: spec.feature,
      unitCost: spec.unitCost,
      quantity: spec.quantity,
      timeoutSeconds,
    },
  };
}

interface ItemSpec {
  readonly index: number;
  readonly succeeded: boolean;
  readonly cost: number | null;
  readonly reason: Reason;
  /** Rarely an index past the last item or a cost above the unit cost: InvalidInputError, nothing written. */
  readonly twist: "none" | "outOfRange" | "overCost";
}
interface SettleSpec {
  readonly pick: GenerationPick;
  /** items omitted: every item succeeded at its unit cost. */
  readonly all: boolean;
  readonly items: readonly ItemSpec[];
  /** Rarely keep a repeated index (rejected by validation). */
  readonly repeatIndex: boolean;
  readonly principal: Principal;
}
const itemArb: fc.Arbitrary<ItemSpec> = fc.record({
  index: fc.nat(9),
  succeeded: fc.boolean(),
  cost: fc.option(fc.nat(99), { nil: null }),
  reason: fc.constantFrom(...REASONS),
  twist: fc.nat(29).map((n) => (n === 0 ? "outOfRange" : n === 1 ? "overCost" : "none")),
});
const settleArb: fc.Arbitrary<SettleSpec> = fc.record({
  pick: pickArb,
  all: fc.nat(3).map((n) => n === 0),
  items: fc.array(itemArb, { minLength: 1, maxLength: 4 }),
  repeatIndex: rare(40),
  principal: principalArb,
});

function settleOp(session: Session, spec: SettleSpec): Op | null {
  const id = pickGeneration(session, spec.pick);
  const generation = id === null ? undefined : session.model.generation(id);
  if (id === null || generation === undefined) return null;
  let items: ItemInput[] | undefined;
  if (!spec.all) {
    items = [];
    const seen = new Set<number>();
    for (const item of spec.items) {
      const index =
        item.twist === "outOfRange"
          ? generation.quantity + (item.index % 2)
          : item.index % generation.quantity;
      if (seen.has(index) && !spec.repeatIndex) continue;
      seen.add(index);
      if (item.succeeded) {
        const cost =
          item.twist === "overCost"
            ? generation.unitCost + 1
            : item.cost === null
              ? undefined
              : 1 + (item.cost % generation.unitCost);
        items.push({ index, succeeded: true, ...(cost === undefined ? {} : { cost }) });
      } else {
        items.push({ index, succeeded: false, reason: item.reason });
      }
    }
  }
  return {
    kind: "settle",
    principal: spec.principal,
    input: {
      idempotencyKey: session.freshKey("settle"),
      generationId: id,
      ...(items === undefined ? {} : { items }),
    },
  };
}

interface RefundSpec {
  readonly pick: GenerationPick;
  readonly reason: Reason;
  /** A cancel (reason CANCELLED) rather than a refund. */
  readonly cancel: boolean;
  readonly principal: Principal;
}
const refundArb: fc.Arbitrary<RefundSpec> = fc.record({
  pick: pickArb,
  reason: fc.constantFrom(...REASONS),
  cancel: fc.boolean(),
  principal: principalArb,
});

function refundOp(session: Session, spec: RefundSpec): Op | null {
  const id = pickGeneration(session, spec.pick);
  if (id === null) return null;
  const idempotencyKey = session.freshKey(spec.cancel ? "cancel" : "refund");
  return spec.cancel
    ? { kind: "cancel", principal: spec.principal, input: { idempotencyKey, generationId: id } }
    : {
        kind: "refund",
        principal: spec.principal,
        input: { idempotencyKey, generationId: id, reason: spec.reason },
      };
}

interface DuplicateSpec {
  readonly n: number;
  /** Sent by the other principal: a different idempotency scope, so it runs again. */
  readonly otherPrincipal: boolean;
}
const duplicateArb: fc.Arbitrary<DuplicateSpec> = fc.record({ n: fc.nat(10_000), otherPrincipal: rare(8) });

/**
 * Requests that can be sent again as they are: not a short reserve, which,
 * run again (its first attempt failed, or another principal sends it), would
 * start a second timed change while the model tracks one at a time. (An
 * expiring grant sent again after its `expiresAt` is fine: the stored answer,
 * see retry-after-expiry.test.ts.)
 */
function repeatable(session: Session): Op[] {
  return session.history.filter((op) => !(op.kind === "reserve" && op.input.timeoutSeconds < 60));
}

function duplicateOp(session: Session, spec: DuplicateSpec): Op | null {
  const candidates = repeatable(session);
  const original = candidates[spec.n % Math.max(1, candidates.length)];
  if (original === undefined) return null;
  // Another principal's copy of an expiring grant would be a second timed change (or, once
  // expired, a fresh request with a past expiresAt): the same principal's copy is a replay.
  const expiring = original.kind === "grant" && original.input.expiresAt !== undefined;
  if (!spec.otherPrincipal || expiring) return original;
  return { ...original, principal: original.principal === "A" ? "B" : "A" } as Op;
}

interface ReuseSpec {
  readonly n: number;
  /** The key of one mutation sent to another: a different scope, so no conflict. */
  readonly otherMutation: boolean;
  readonly pick: GenerationPick;
}
const reuseArb: fc.Arbitrary<ReuseSpec> = fc.record({
  n: fc.nat(10_000),
  otherMutation: rare(4),
  pick: pickArb,
});

/** The same key with a different input (→ IDEMPOTENCY_KEY_REUSED once the key is stored), or under another mutation. */
function reuseOp(session: Session, spec: ReuseSpec): Op | null {
  const original = session.history[spec.n % Math.max(1, session.history.length)];
  if (original === undefined) return null;
  const key = original.input.idempotencyKey;
  const other = (id: string) => session.model.generationOrder.find((candidate) => candidate !== id);
  if (spec.otherMutation) {
    if (original.kind === "reserve") {
      const id = pickGeneration(session, spec.pick);
      if (id === null) return null;
      return {
        kind: "refund",
        principal: original.principal,
        input: { idempotencyKey: key, generationId: id, reason: "GENERATION_FAILED" },
      };
    }
    return {
      kind: "reserve",
      principal: original.principal,
      input: {
        idempotencyKey: key,
        accountId: session.accountId,
        feature: "Image",
        unitCost: 1,
        quantity: 1,
        timeoutSeconds: 3_600,
      },
    };
  }
  switch (original.kind) {
    case "grant": {
      const { expiresAt, ...rest } = original.input;
      return {
        ...original,
        input: expiresAt === undefined ? { ...rest, amount: rest.amount + 1 } : rest,
      };
    }
    case "reserve":
      // A long timeout: if the key was never stored this runs, and must not start a timed change.
      return {
        ...original,
        input: { ...original.input, unitCost: original.input.unitCost + 1, timeoutSeconds: 3_600 },
      };
    case "settle": {
      const elsewhere = other(original.input.generationId);
      if (elsewhere !== undefined)
        return { ...original, input: { ...original.input, generationId: elsewhere } };
      const { items, ...rest } = original.input;
      return {
        ...original,
        input: items === undefined ? { ...rest, items: [{ index: 0, succeeded: true }] } : rest,
      };
    }
    case "refund": {
      const next = REASONS[(REASONS.indexOf(original.input.reason) + 1) % REASONS.length] as Reason;
      return { ...original, input: { ...original.input, reason: next } };
    }
    case "cancel": {
      const elsewhere = other(original.input.generationId);
      return elsewhere === undefined
        ? original
        : { ...original, input: { ...original.input, generationId: elsewhere } };
    }
  }
}

/** One request of a concurrent group. */
type SubSpec =
  | { readonly kind: "grant"; readonly spec: GrantSpec }
  | { readonly kind: "reserve"; readonly spec: ReserveSpec }
  | { readonly kind: "settle"; readonly spec: SettleSpec }
  | { readonly kind: "refund"; readonly spec: RefundSpec }
  | { readonly kind: "duplicate"; readonly spec: DuplicateSpec }
  /** The same request as another of the group, at the same moment: a concurrent duplicate delivery. */
  | { readonly kind: "sibling"; readonly n: number };

const subArb: fc.Arbitrary<SubSpec> = fc.oneof(
  {
    weight: 1,
    arbitrary: grantArb.map((spec) => ({ kind: "grant" as const, spec: { ...spec, expiryDays: null } })),
  },
  { weight: 4, arbitrary: reserveArb.map((spec) => ({ kind: "reserve" as const, spec })) },
  { weight: 5, arbitrary: settleArb.map((spec) => ({ kind: "settle" as const, spec })) },
  { weight: 3, arbitrary: refundArb.map((spec) => ({ kind: "refund" as const, spec })) },
  { weight: 1, arbitrary: duplicateArb.map((spec) => ({ kind: "duplicate" as const, spec })) },
  { weight: 2, arbitrary: fc.nat(10).map((n) => ({ kind: "sibling" as const, n })) },
);

function subOp(session: Session, sub: SubSpec, group: readonly Op[]): Op | null {
  switch (sub.kind) {
    case "grant":
      return grantOp(session, sub.spec);
    case "reserve":
      return session.model.generations.size + group.length < GENERATIONS_MAX
        ? reserveOp(session, sub.spec)
        : null;
    case "settle":
      return settleOp(session, sub.spec);
    case "refund":
      return refundOp(session, sub.spec);
    case "duplicate":
      return duplicateOp(session, sub.spec);
    case "sibling":
      return group.length === 0 ? null : (group[sub.n % group.length] ?? null);
  }
}

/** A command that sends one request built at run time. */
class SingleCommand implements SessionCommand {
  private sent = "";
  constructor(
    private readonly name: string,
    private readonly build: (session: Session) => Op | null,
    private readonly applies: (session: Session) => boolean = () => true,
  ) {}
  check(session: Readonly<Session>): boolean {
    return this.applies(session as Session);
  }
  async run(session: Session): Promise<void> {
    const op = this.build(session);
    if (op === null) return;
    this.sent = describeOp(op);
    await session.step([op]);
  }
  toString(): string {
    return this.sent === "" ? this.name : `${this.name}: ${this.sent}`;
  }
}

/** Sends 2–5 requests at once; the verifier accepts any order that explains what happened. */
class ConcurrentCommand implements SessionCommand {
  constructor(private readonly subs: readonly SubSpec[]) {}
  check(): boolean {
    return true;
  }
  async run(session: Session): Promise<void> {
    const group: Op[] = [];
    for (const sub of this.subs) {
      const op = subOp(session, sub, group);
      if (op !== null) group.push(op);
    }
    if (group.length > 0) await session.step(group);
  }
  toString(): string {
    return `concurrent(${this.subs.map((sub) => sub.kind).join(", ")})`;
  }
}

/** Starts a time-driven change: a 1–2 s generation timeout or a grant expiring in 1.2–2 s. */
class TimedCommand implements SessionCommand {
  constructor(
    private readonly spec:
      | { readonly kind: "shortReserve"; readonly reserve: ReserveSpec; readonly timeoutSeconds: number }
      | {
          readonly kind: "expiringGrant";
          readonly grant: GrantSpec;
          readonly inMs: number;
          /** Then reserve at once, so generations hold credits of the grant when it expires. */
          readonly hold: ReserveSpec | null;
        },
    private readonly timedMax: number,
  ) {}
  check(session: Readonly<Session>): boolean {
    return !session.timedOpen && session.timedCount < this.timedMax;
  }
  async run(session: Session): Promise<void> {
    session.timedOpen = true;
    session.timedCount += 1;
    if (this.spec.kind === "shortReserve") {
      const op = reserveOp(session, this.spec.reserve, this.spec.timeoutSeconds);
      await session.step([op], ([answer]): TimedEvent | null =>
        answer?.typename === "ReserveGenerationSuccess" &&
        answer.replayed === false &&
        answer.generationId !== undefined
          ? { kind: "timeout", generationId: answer.generationId, atMs: answer.facts?.deadlineMs ?? 0 }
          : null,
      );
      return;
    }
    const expiresAtMs = Date.now() + this.spec.inMs;
    // With a hold to follow, the grant is subscription credit: drawn first (soonest expiry first).
    const grant: GrantSpec =
      this.spec.hold === null ? this.spec.grant : { ...this.spec.grant, source: "SUBSCRIPTION" };
    const op = grantOp(session, grant, new Date(expiresAtMs).toISOString());
    await session.step([op], ([answer]): TimedEvent | null =>
      answer?.typename === "GrantCreditsSuccess" && answer.replayed === false && answer.grantId !== undefined
        ? { kind: "expiry", grantId: answer.grantId, atMs: expiresAtMs }
        : null,
    );
    if (this.spec.hold !== null && session.model.generations.size < GENERATIONS_MAX) {
      await session.step([reserveOp(session, this.spec.hold)]);
    }
  }
  toString(): string {
    return this.spec.kind === "shortReserve"
      ? `shortReserve(${this.spec.timeoutSeconds}s)`
      : `expiringGrant(${this.spec.grant.source} ${this.spec.grant.amount} in ${this.spec.inMs} ms)`;
  }
}

/** Waits past the pending change's moment until the service has applied it. */
class WaitCommand implements SessionCommand {
  check(session: Readonly<Session>): boolean {
    return session.timedOpen;
  }
  async run(session: Session): Promise<void> {
    await session.waitForPending();
  }
  toString(): string {
    return "wait";
  }
}

const hasGenerations = (session: Session) => session.model.generationOrder.length > 0;
const hasHistory = (session: Session) => session.history.length > 0;
const roomForGenerations = (session: Session) => session.model.generations.size < GENERATIONS_MAX - 5;

/** Every command, weighted; `timedMax` bounds the timed changes (real waiting) per run. */
export function commandArbitraries(timedMax: number): fc.Arbitrary<SessionCommand>[] {
  const command = fc.oneof(
    {
      weight: 10,
      arbitrary: grantArb.map((spec) => new SingleCommand("grant", (session) => grantOp(session, spec))),
    },
    {
      weight: 16,
      arbitrary: reserveArb.map(
        (spec) => new SingleCommand("reserve", (session) => reserveOp(session, spec), roomForGenerations),
      ),
    },
    {
      weight: 2,
      arbitrary: reserveArb.map(
        (spec) =>
          new SingleCommand(
            "invalid reserve",
            (session) => {
              const op = reserveOp(session, spec);
              // quantity 0 breaks a rule: InvalidInputError, nothing held, the key not stored.
              return op.kind === "reserve" ? { ...op, input: { ...op.input, quantity: 0 } } : op;
            },
            roomForGenerations,
          ),
      ),
    },
    {
      weight: 16,
      arbitrary: settleArb.map(
        (spec) => new SingleCommand("settle", (session) => settleOp(session, spec), hasGenerations),
      ),
    },
    {
      weight: 8,
      arbitrary: refundArb.map(
        (spec) => new SingleCommand("refund", (session) => refundOp(session, spec), hasGenerations),
      ),
    },
    {
      weight: 7,
      arbitrary: duplicateArb.map(
        (spec) => new SingleCommand("duplicate", (session) => duplicateOp(session, spec), hasHistory),
      ),
    },
    {
      weight: 5,
      arbitrary: reuseArb.map(
        (spec) => new SingleCommand("reuse key", (session) => reuseOp(session, spec), hasHistory),
      ),
    },
    {
      weight: 18,
      arbitrary: fc.array(subArb, { minLength: 2, maxLength: 5 }).map((subs) => new ConcurrentCommand(subs)),
    },
    {
      weight: 1,
      arbitrary: fc
        .record({ reserve: reserveArb, timeoutSeconds: fc.constantFrom(1, 2) })
        .map((spec) => new TimedCommand({ kind: "shortReserve", ...spec }, timedMax)),
    },
    {
      weight: 1,
      arbitrary: fc
        .record({
          grant: grantArb,
          inMs: fc.integer({ min: 1_200, max: 2_000 }),
          hold: fc.option(reserveArb, { freq: 3, nil: null }),
        })
        .map((spec) => new TimedCommand({ kind: "expiringGrant", ...spec }, timedMax)),
    },
    { weight: 8, arbitrary: fc.constant(null).map(() => new WaitCommand()) },
  );
  return [command];
}
