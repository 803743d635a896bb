/**
 * The real side of the model-based test: sends the model's requests to a
 * running service over GraphQL HTTP, reads the account back (balance, grants,
 * generations with items, the new ledger entries) and checks, after every
 * step, that some valid order of what happened explains both the answers and
 * the state exactly.
 *
 * "Some valid order": the requests of one step run concurrently, and a
 * time-driven change (a timeout or an expiry) may land before, between or
 * after them, so the verifier tries every order of the step's requests and
 * every position of the pending change, applies each to a copy of the model,
 * and accepts the first whose predicted answers and state equal what the
 * service shows. No order matching is a divergence, reported with the closest
 * candidate's differences.
 */
import type { Database } from "../../src/db/database.ts";
import { auditLedger } from "../../src/domain/audit.ts";
import { localIdOf } from "../billing/ops.ts";
import {
  type Answer,
  type BalanceView,
  type Entry,
  type GenerationView,
  LedgerModel,
  type Op,
  type Principal,
  type TimedEvent,
  targetOf,
} from "./model.ts";

// biome-ignore lint/suspicious/noExplicitAny: the API's JSON is read as it comes.
type Json = any;

const BALANCE = "available held total subscription wallet sequence";
const GENERATION = `id status reserved charged refunded released failureReason deadline
  items { index status charged refunded reason }`;
const ERRORS = "... on Error { code message } ... on InvalidInputError { field }";
const PAYLOAD = `replayed balance { ${BALANCE} } generation { ${GENERATION} }`;
const FINALIZED = `... on AlreadyFinalizedError { generation { ${GENERATION} } }`;

const DOCUMENTS: Readonly<Record<Op["kind"], { field: string; query: string }>> = {
  grant: {
    field: "grantCredits",
    query: `mutation Grant($input: GrantCreditsInput!) { grantCredits(input: $input) { __typename
      ... on GrantCreditsSuccess { replayed balance { ${BALANCE} } grant { id createdAt } } ${ERRORS} } }`,
  },
  reserve: {
    field: "reserveGeneration",
    query: `mutation Reserve($input: ReserveGenerationInput!) { reserveGeneration(input: $input) { __typename
      ... on ReserveGenerationSuccess { ${PAYLOAD} }
      ... on InsufficientCreditsError { available required } ${ERRORS} } }`,
  },
  settle: {
    field: "settleGeneration",
    query: `mutation Settle($input: SettleGenerationInput!) { settleGeneration(input: $input) { __typename
      ... on SettleGenerationSuccess { ${PAYLOAD} } ${FINALIZED} ${ERRORS} } }`,
  },
  refund: {
    field: "refundGeneration",
    query: `mutation Refund($input: RefundGenerationInput!) { refundGeneration(input: $input) { __typename
      ... on RefundGenerationSuccess { ${PAYLOAD} } ${FINALIZED} ${ERRORS} } }`,
  },
  cancel: {
    field: "cancelGeneration",
    query: `mutation Cancel($input: CancelGenerationInput!) { cancelGeneration(input: $input) { __typename
      ... on CancelGenerationSuccess { ${PAYLOAD} } ${FINALIZED} ${ERRORS} } }`,
  },
};

const OBSERVE = `query Observe($accountId: ID!, $ledgerFirst: Int!) {
  account(id: $accountId) {
    balance { ${BALANCE} }
    open: grants { id }
    grants(includeExpired: true) { id source amount remaining held }
  }
  ledger(accountId: $accountId, first: $ledgerFirst) {
    edges { node { sequence type amount status title balanceBefore balanceAfter reason generation { id } } }
  }
  generations(accountId: $accountId, first: 100) { edges { node { ${GENERATION} } } }
}`;

const LEDGER_PAGE = `query Ledger($accountId: ID!, $after: String) {
  ledger(accountId: $accountId, first: 100, after: $after) {
    edges { node { sequence type amount status title balanceBefore balanceAfter reason generation { id } } }
    pageInfo { hasNextPage endCursor }
  }
}`;

/** Most generations one model run creates: the observation reads them on one page of 100. */
export const GENERATIONS_MAX = 90;

/** How late after its moment a timeout or expiry may be applied before the test fails (SPEC: 5 s; slack for a busy machine). */
export const TIMED_EVENT_LATENESS_MAX_MS = 10_000;

interface ObservedEntry extends Omit<Entry, "generationId"> {
  readonly generationId: string | null;
  readonly status: string;
}

export interface Observation {
  readonly balance: BalanceView;
  readonly grants: readonly {
    id: string;
    source: string;
    amount: number;
    remaining: number;
    held: number;
    expired: boolean;
  }[];
  /** Newest first, as many as were asked for. */
  readonly entries: readonly ObservedEntry[];
  readonly generations: ReadonlyMap<string, GenerationView>;
  /** Client clock when the answer arrived: nothing later than this can be in it. */
  readonly atMs: number;
}

/** Counts a model run reports. */
export interface Figures {
  operations: number;
  steps: number;
  concurrentSteps: number;
  timedEvents: number;
  reorderedSteps: number;
  eventsBetween: number;
  replays: number;
  errorsByCode: Record<string, number>;
  maxEventLatenessMs: number;
  audits: number;
  /** Ledger entries the runs wrote and checked, by type (and EXPIRY split by cause). */
  entriesByType: Record<string, number>;
  /** Wall time by phase: sending, reading back, checking candidates, auditing, waiting for timed changes. */
  phaseMs: Record<string, number>;
}

export function newFigures(): Figures {
  return {
    operations: 0,
    steps: 0,
    concurrentSteps: 0,
    timedEvents: 0,
    reorderedSteps: 0,
    eventsBetween: 0,
    replays: 0,
    errorsByCode: {},
    maxEventLatenessMs: 0,
    audits: 0,
    entriesByType: {},
    phaseMs: {},
  };
}

export function addFigures(into: Figures, from: Figures): void {
  into.operations += from.operations;
  into.steps += from.steps;
  into.concurrentSteps += from.concurrentSteps;
  into.timedEvents += from.timedEvents;
  into.reorderedSteps += from.reorderedSteps;
  into.eventsBetween += from.eventsBetween;
  into.replays += from.replays;
  into.audits += from.audits;
  into.maxEventLatenessMs = Math.max(into.maxEventLatenessMs, from.maxEventLatenessMs);
  for (const [code, count] of Object.entries(from.errorsByCode)) {
    into.errorsByCode[code] = (into.errorsByCode[code] ?? 0) + count;
  }
  for (const [phase, ms] of Object.entries(from.phaseMs)) {
    into.phaseMs[phase] = (into.phaseMs[phase] ?? 0) + ms;
  }
  for (const [type, n] of Object.entries(from.entriesByType)) {
    into.entriesByType[type] = (into.entriesByType[type] ?? 0) + n;
  }
}

/** A model-vs-service disagreement: the test's failure, with everything needed to read it. */
export class Divergence extends Error {
  override name = "Divergence";
}

/** GraphQL over HTTP for one run: one token per principal. */
export class ApiClient {
  constructor(
    readonly url: string,
    private readonly tokens: Readonly<Record<Principal, string>>,
  ) {}

  async post(principal: Principal, query: string, variables: Record<string, unknown>): Promise<Json> {
    for (let attempt = 1; ; attempt += 1) {
      try {
        const response = await fetch(this.url, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${this.tokens[principal]}` },
          body: JSON.stringify({ query, variables }),
        });
        return await response.json();
      } catch (error) {
        // A keep-alive socket the server closed under us: the request carries an
        // idempotency key (or is a read), so sending it again is safe.
        const code = (error as { cause?: { code?: string } }).cause?.code;
        if (attempt >= 3 || (code !== "ECONNRESET" && code !== "UND_ERR_SOCKET")) throw error;
      }
    }
  }

  async send(op: Op): Promise<Answer> {
    const document = DOCUMENTS[op.kind];
    const body = await this.post(op.principal, document.query, { input: op.input });
    return answerOf(body, document.field);
  }

  async observe(accountId: string, ledgerFirst: number): Promise<Observation> {
    const body = await this.post("A", OBSERVE, { accountId, ledgerFirst });
    const atMs = Date.now();
    if (body.errors !== undefined) throw new Divergence(`observation failed: ${JSON.stringify(body.errors)}`);
    const { account, ledger, generations } = body.data;
    const open = new Set<string>(account.open.map((grant: Json) => grant.id));
    return {
      balance: pickBalance(account.balance),
      grants: account.grants.map((grant: Json) => ({
        id: grant.id,
        source: grant.source,
        amount: grant.amount,
        remaining: grant.remaining,
        held: grant.held,
        expired: !open.has(grant.id),
      })),
      entries: ledger.edges.map((edge: Json) => entryOf(edge.node)),
      generations: new Map(
        generations.edges.map((edge: Json) => [edge.node.id, generationOf(edge.node)] as const),
      ),
      atMs,
    };
  }

  /** Every entry of the account, oldest first. */
  async ledger(accountId: string): Promise<ObservedEntry[]> {
    const entries: ObservedEntry[] = [];
    let after: string | null = null;
    for (;;) {
      const body = await this.post("A", LEDGER_PAGE, { accountId, after });
      if (body.errors !== undefined)
        throw new Divergence(`ledger read failed: ${JSON.stringify(body.errors)}`);
      const page = body.data.ledger;
      entries.push(...page.edges.map((edge: Json) => entryOf(edge.node)));
      if (!page.pageInfo.hasNextPage) break;
      after = page.pageInfo.endCursor;
    }
    return entries.reverse();
  }
}

function pickBalance(balance: Json): BalanceView {
  return {
    available: balance.available,
    held: balance.held,
    total: balance.total,
    subscription: balance.subscription,
    wallet: balance.wallet,
    sequence: balance.sequence,
  };
}

function generationOf(node: Json): GenerationView {
  return {
    id: node.id,
    status: node.status,
    reserved: node.reserved,
    charged: node.charged,
    refunded: node.refunded,
    released: node.released,
    failureReason: node.failureReason ?? null,
    items: node.items.map((item: Json) => ({
      index: item.index,
      status: item.status,
      charged: item.charged,
      refunded: item.refunded,
      reason: item.reason ?? null,
    })),
  };
}

function entryOf(node: Json): ObservedEntry {
  return {
    sequence: node.sequence,
    type: node.type,
    amount: node.amount,
    balanceBefore: node.balanceBefore,
    balanceAfter: node.balanceAfter,
    reason: node.reason ?? null,
    title: node.title,
    generationId: node.generation?.id ?? null,
    status: node.status,
  };
}

/** A mutation's JSON reduced to an Answer (a GraphQL error becomes typename "GraphQLError"). */
export function answerOf(body: Json, field: string): Answer {
  if (body.errors !== undefined && body.errors.length > 0) {
    return {
      typename: "GraphQLError",
      code: String(body.errors[0]?.extensions?.code ?? body.errors[0]?.message),
    };
  }
  const result = body.data?.[field];
  if (result == null) return { typename: "NoData" };
  const answer: Answer = { typename: result.__typename };
  if (typeof result.code === "string") answer.code = result.code;
  if (typeof result.replayed === "boolean") answer.replayed = result.replayed;
  if (result.balance != null) answer.balance = pickBalance(result.balance);
  if (result.generation != null) {
    answer.generationId = result.generation.id;
    answer.generation = generationOf(result.generation);
    answer.facts = { deadlineMs: Date.parse(result.generation.deadline) };
  }
  if (result.grant != null) {
    answer.grantId = result.grant.id;
    answer.facts = {
      grantCreatedAtMs: Date.parse(result.grant.createdAt),
      grantLocalId: localIdOf(result.grant.id),
    };
  }
  if (typeof result.available === "number") answer.available = result.available;
  if (typeof result.required === "number") answer.required = result.required;
  return answer;
}

interface Candidate {
  readonly model: LedgerModel;
  /** Predicted answers, by the request's position in the step (not in the order tried). */
  readonly predicted: Answer[];
  readonly order: readonly number[];
  /** Where the pending change was applied: before order[k], `order.length` = after all, null = not yet. */
  readonly eventAt: number | null;
  readonly announcedApplied: boolean;
}

/** Every order of 0..n-1, the identity first. */
export function permutations(n: number): number[][] {
  if (n <= 1) return [Array.from({ length: n }, (_, i) => i)];
  const out: number[][] = [];
  const rest = permutations(n - 1);
  for (const perm of rest) {
    for (let at = perm.length; at >= 0; at -= 1) out.push([...perm.slice(0, at), n - 1, ...perm.slice(at)]);
  }
  return out;
}

/**
 * One run on one account: the model, the client, and the step verifier. The
 * model-based test's commands call `step` with the requests they built.
 */
export class Session {
  model: LedgerModel;
  /** Sequence up to which the ledger has been compared entry by entry. */
  verifiedSequence = 0;
  /** Every request sent in this run, for duplicates and reused keys. */
  readonly history: Op[] = [];
  /** A timed command ran and its Wait has not: no second one until then. */
  timedOpen = false;
  timedCount = 0;
  private keyCounter = 0;
  readonly log: string[] = [];

  constructor(
    readonly api: ApiClient,
    readonly db: Database,
    readonly accountId: string,
    readonly runId: string,
    readonly figures: Figures,
  ) {
    this.model = new LedgerModel(accountId);
  }

  freshKey(prefix: string): string {
    this.keyCounter += 1;
    return `${prefix}-${this.runId}-${this.keyCounter}`;
  }

  /**
   * Sends `ops` at once, reads the account, and moves the model to the one
   * candidate order that explains everything; `announce` names the timed
   * change a request of this step starts (from the real answers).
   */
  async step(
    ops: readonly Op[],
    announce?: (answers: readonly Answer[]) => TimedEvent | null,
  ): Promise<Answer[]> {
    let mark = performance.now();
    const phase = (name: string) => {
      const now = performance.now();
      this.figures.phaseMs[name] = Math.round((this.figures.phaseMs[name] ?? 0) + now - mark);
      mark = now;
    };
    const answers = await Promise.all(ops.map((op) => this.api.send(op)));
    phase("send");
    this.history.push(...ops);
    this.figures.operations += ops.length;
    this.figures.steps += 1;
    if (ops.length > 1) this.figures.concurrentSteps += 1;
    const announced = announce?.(answers) ?? null;
    const ledgerFirst = Math.min(100, 8 * ops.length + 10);
    // The audit's invariants hold at every commit, so it runs alongside the read-back.
    const [first] = await Promise.all([this.api.observe(this.accountId, ledgerFirst), this.audit()]);
    let observation = first;
    phase("observe+audit");
    for (let attempt = 1; ; attempt += 1) {
      let closest: { candidate: Candidate; problems: string[]; answersMatch: boolean } | null = null;
      let tried = 0;
      for (const candidate of this.candidates(ops, answers, announced)) {
        if (!this.timely(candidate, announced, observation.atMs)) continue;
        tried += 1;
        // Answers first: they are cheap to compare and rule out most orders.
        const answerProblems = this.answerProblems(ops, answers, candidate, announced);
        const answersMatch = answerProblems.length === 0;
        const problems = answersMatch ? this.stateProblems(candidate.model, observation) : answerProblems;
        if (problems.length === 0) {
          this.accept(ops, answers, candidate);
          phase("check");
          return answers;
        }
        const better =
          closest === null ||
          (answersMatch && !closest.answersMatch) ||
          (answersMatch === closest.answersMatch && problems.length < closest.problems.length);
        if (better) closest = { candidate, problems, answersMatch };
      }
      // A timed change may land between the reads of one observation (they are not one snapshot):
      // look again before calling it a divergence.
      const eventPending = this.model.pending !== null || announced !== null;
      if (eventPending && attempt < 4) {
        await sleep(300);
        observation = await this.api.observe(this.accountId, ledgerFirst);
        continue;
      }
      throw this.divergence(ops, answers, closest, tried);
    }
  }

  /**
   * Waits until the pending timeout or expiry has been applied by the service
   * (the reaper, within seconds of its moment) and moves the model past it.
   */
  async waitForPending(): Promise<void> {
    const event = this.model.pending;
    this.timedOpen = false;
    if (event === null) return;
    const started = performance.now();
    await sleep(Math.max(0, event.atMs - Date.now()) + 50);
    const applied = this.model.clone();
    applied.applyEvent(event);
    let neither = 0;
    for (;;) {
      const observation = await this.api.observe(this.accountId, 20);
      const problems = this.stateProblems(applied, observation);
      if (problems.length === 0) {
        const latenessMs = Math.max(0, observation.atMs - event.atMs);
        this.figures.maxEventLatenessMs = Math.max(this.figures.maxEventLatenessMs, latenessMs);
        this.figures.timedEvents += 1;
        this.log.push(`  ${event.kind} applied (seen ${latenessMs} ms after its moment)`);
        this.model = applied;
        this.verifiedSequence = applied.sequence;
        await this.audit();
        this.figures.phaseMs.wait = Math.round(
          (this.figures.phaseMs.wait ?? 0) + performance.now() - started,
        );
        return;
      }
      const notYet = this.stateProblems(this.model, observation);
      // One read that matches neither may have straddled the change (its reads are not one
      // snapshot); two in a row cannot.
      neither = notYet.length > 0 ? neither + 1 : 0;
      if (neither >= 2) {
        throw new Divergence(
          `${this.where()}: waiting for ${JSON.stringify(event)}, the account matches neither before nor after it:\n` +
            `  as if applied: ${problems.join("\n    ")}\n  as if not yet: ${notYet.join("\n    ")}`,
        );
      }
      if (Date.now() > event.atMs + TIMED_EVENT_LATENESS_MAX_MS) {
        throw new Divergence(
          `${this.where()}: ${JSON.stringify(event)} not applied ${TIMED_EVENT_LATENESS_MAX_MS} ms after its moment:\n    ${problems.join("\n    ")}`,
        );
      }
      await sleep(100);
    }
  }

  /** The whole ledger, entry by entry with derived statuses, and the audit: the end of a run. */
  async finalCheck(): Promise<void> {
    const entries = await this.api.ledger(this.accountId);
    const problems = this.entryProblems(this.model, entries, 0);
    if (entries.length !== this.model.sequence) {
      problems.push(`ledger has ${entries.length} entries, model ${this.model.sequence}`);
    }
    if (problems.length > 0) {
      throw new Divergence(`${this.where()}: final ledger differs:\n    ${problems.join("\n    ")}`);
    }
    await this.audit();
    for (const entry of this.model.entries) {
      const type = entry.type === "REFUND" ? `REFUND/${entry.reason}` : entry.type;
      this.figures.entriesByType[type] = (this.figures.entriesByType[type] ?? 0) + 1;
    }
    const writeOffs = "EXPIRY on return to an expired grant";
    this.figures.entriesByType[writeOffs] =
      (this.figures.entriesByType[writeOffs] ?? 0) + this.model.writeOffsOnReturn;
  }

  private timely(candidate: Candidate, announced: TimedEvent | null, observedAtMs: number): boolean {
    const pending = this.model.pending;
    if (candidate.eventAt !== null && pending !== null && pending.atMs > observedAtMs) return false;
    if (candidate.announcedApplied && announced !== null && announced.atMs > observedAtMs) return false;
    return true;
  }

  /**
   * Every way the step could have happened, lazily: each order of its
   * requests, with the pending change (if any) not yet applied or applied
   * before any one of them or after all, and the change a request of this
   * step announced (if any) not yet applied or applied at the end.
   */
  private *candidates(
    ops: readonly Op[],
    answers: readonly Answer[],
    announced: TimedEvent | null,
  ): Generator<Candidate> {
    const pending = this.model.pending;
    const positions: (number | null)[] = [null];
    if (pending !== null) for (let k = 0; k <= ops.length; k += 1) positions.push(k);
    for (const order of permutations(ops.length)) {
      for (const eventAt of positions) {
        const model = this.model.clone();
        const predicted: Answer[] = new Array(ops.length);
        order.forEach((index, k) => {
          if (eventAt === k && pending !== null) model.applyEvent(pending);
          predicted[index] = model.apply(ops[index] as Op, answers[index]);
        });
        if (eventAt === ops.length && pending !== null) model.applyEvent(pending);
        if (announced !== null && model.pending === null) model.pending = announced;
        const applied = announced === null ? null : model.clone();
        yield { model, predicted, order, eventAt, announcedApplied: false };
        if (applied !== null && announced !== null) {
          applied.applyEvent(announced);
          yield { model: applied, predicted, order, eventAt, announcedApplied: true };
        }
      }
    }
  }

  private accept(ops: readonly Op[], answers: readonly Answer[], candidate: Candidate): void {
    const identity = candidate.order.every((index, k) => index === k);
    if (!identity) this.figures.reorderedSteps += 1;
    if (candidate.eventAt !== null || candidate.announcedApplied) this.figures.eventsBetween += 1;
    for (const answer of answers) {
      if (answer.replayed === true) this.figures.replays += 1;
      if (answer.code !== undefined) {
        this.figures.errorsByCode[answer.code] = (this.figures.errorsByCode[answer.code] ?? 0) + 1;
      }
    }
    const shown = ops.map((op, i) => `${describeOp(op)} → ${describeAnswer(answers[i])}`);
    const note = [
      identity ? "" : ` order ${candidate.order.join(",")}`,
      candidate.eventAt === null ? "" : ` pending change at ${candidate.eventAt}`,
      candidate.announcedApplied ? " new change applied" : "",
    ].join("");
    this.log.push(`  ${shown.join(" ‖ ")}${note}`);
    this.model = candidate.model;
    this.verifiedSequence = candidate.model.sequence;
  }

  private async audit(): Promise<void> {
    const report = await auditLedger(this.db, localIdOf(this.accountId));
    this.figures.audits += 1;
    if (!report.ok) throw new Divergence(`${this.where()}: audit: ${report.problems.join("; ")}`);
  }

  private answerProblems(
    ops: readonly Op[],
    answers: readonly Answer[],
    candidate: Candidate,
    announced: TimedEvent | null,
  ): string[] {
    const problems: string[] = [];
    const pending = this.model.pending;
    candidate.order.forEach((index, k) => {
      const expected = candidate.predicted[index] as Answer;
      const actual = answers[index] as Answer;
      const label = `answer ${index} (${describeOp(ops[index] as Op)})`;
      for (const key of [
        "typename",
        "code",
        "replayed",
        "generationId",
        "grantId",
        "available",
        "required",
      ] as const) {
        if (expected[key] !== actual[key]) {
          problems.push(`${label}: ${key} ${show(actual[key])}, model ${show(expected[key])}`);
        }
      }
      if (expected.balance !== undefined && !same(expected.balance, actual.balance)) {
        problems.push(`${label}: balance ${show(actual.balance)}, model ${show(expected.balance)}`);
      }
      // The generation in an answer is read after commit: compare it when nothing after this
      // request (in this order) could have changed it since.
      const id = actual.generationId;
      if (id === undefined || actual.generation === undefined) return;
      const touchedLater =
        candidate.order.slice(k + 1).some((later) => targetOf(ops[later] as Op) === id) ||
        (candidate.eventAt !== null &&
          candidate.eventAt > k &&
          pending?.kind === "timeout" &&
          pending.generationId === id) ||
        (announced?.kind === "timeout" && announced.generationId === id) ||
        (pending?.kind === "timeout" && pending.generationId === id && candidate.eventAt === null);
      if (touchedLater) return;
      const view = candidate.model.view(id);
      const { deadline: _deadline, ...shown } = actual.generation as GenerationView & { deadline?: string };
      if (!same(view, shown)) problems.push(`${label}: generation ${show(shown)}, model ${show(view)}`);
    });
    return problems;
  }

  private stateProblems(model: LedgerModel, observation: Observation): string[] {
    const problems: string[] = [];
    if (!same(model.balance(), observation.balance)) {
      problems.push(`balance ${show(observation.balance)}, model ${show(model.balance())}`);
    }
    const grants = model.grantViews();
    if (grants.length !== observation.grants.length) {
      problems.push(`${observation.grants.length} grants, model ${grants.length}`);
    }
    for (const grant of grants) {
      const real = observation.grants.find((candidate) => candidate.id === grant.id);
      if (!same(grant, real)) problems.push(`grant ${show(real)}, model ${show(grant)}`);
    }
    if (observation.generations.size !== model.generations.size) {
      problems.push(`${observation.generations.size} generations, model ${model.generations.size}`);
    }
    for (const id of model.generationOrder) {
      const real = observation.generations.get(id);
      if (real === undefined) {
        problems.push(`generation ${id} missing`);
        continue;
      }
      const { deadline: _deadline, ...shown } = real as GenerationView & { deadline?: string };
      if (!same(model.view(id), shown))
        problems.push(`generation ${show(shown)}, model ${show(model.view(id))}`);
    }
    const fresh = observation.entries.filter((entry) => entry.sequence > this.verifiedSequence).reverse();
    problems.push(...this.entryProblems(model, fresh, this.verifiedSequence));
    return problems;
  }

  private entryProblems(model: LedgerModel, real: readonly ObservedEntry[], from: number): string[] {
    const problems: string[] = [];
    const expected = model.entries.slice(from);
    if (real.length !== expected.length) {
      problems.push(
        `entries after ${from}: ${real.map(describeEntry).join(", ")}; model ${expected.map(describeEntry).join(", ")}`,
      );
      return problems;
    }
    expected.forEach((entry, i) => {
      const actual = real[i] as ObservedEntry;
      const want = { ...entry, status: model.entryStatus(entry) };
      if (!same(want, actual)) problems.push(`entry ${show(actual)}, model ${show(want)}`);
    });
    return problems;
  }

  private where(): string {
    return `account ${this.accountId} (run ${this.runId})`;
  }

  private divergence(
    ops: readonly Op[],
    answers: readonly Answer[],
    closest: { candidate: Candidate; problems: string[] } | null,
    tried: number,
  ): Divergence {
    const sent = ops
      .map((op, i) => `    ${describeOp(op)} ${show(op.input)} → ${show(answers[i])}`)
      .join("\n");
    const detail =
      closest === null
        ? "no candidate order was possible"
        : `closest of ${tried} candidate orders (order ${closest.candidate.order.join(",")}, pending change at ${closest.candidate.eventAt}):\n    ${closest.problems.join("\n    ")}`;
    return new Divergence(
      `${this.where()}: the service and the model disagree after:\n${sent}\n  ${detail}\n  steps so far:\n${this.log.slice(-15).join("\n")}`,
    );
  }
}

function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(sortKeys(a)) === JSON.stringify(sortKeys(b));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(
      Object.entries(value as Record<string, unknown>)
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([k, v]) => [k, sortKeys(v)]),
    );
  }
  return value;
}

function show(value: unknown): string {
  return JSON.stringify(value, (key, v) => (key === "facts" ? undefined : v)) ?? "undefined";
}

function shortId(id: string): string {
  try {
    return localIdOf(id).slice(0, 8);
  } catch {
    return id;
  }
}

export function describeOp(op: Op): string {
  const who = op.principal === "A" ? "" : "[B]";
  switch (op.kind) {
    case "grant":
      return `${who}grant ${op.input.source} ${op.input.amount}${op.input.expiresAt === undefined ? "" : " expiring"}`;
    case "reserve":
      return `${who}reserve ${op.input.quantity}×${op.input.unitCost} t=${op.input.timeoutSeconds}s`;
    case "settle":
      return `${who}settle ${shortId(op.input.generationId)} ${op.input.items === undefined ? "all" : JSON.stringify(op.input.items)}`;
    case "refund":
      return `${who}refund ${shortId(op.input.generationId)} ${op.input.reason}`;
    case "cancel":
      return `${who}cancel ${shortId(op.input.generationId)}`;
  }
}

function describeAnswer(answer: Answer | undefined): string {
  if (answer === undefined) return "?";
  if (answer.code !== undefined) return answer.code;
  return answer.replayed === true ? "replayed" : "ok";
}

function describeEntry(entry: {
  sequence: number;
  type: string;
  amount: number;
  reason: string | null;
}): string {
  return `#${entry.sequence} ${entry.type}${entry.reason === null ? "" : `/${entry.reason}`} ${entry.amount}`;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
