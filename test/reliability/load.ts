/**
 * Load for the fault tests: clients that run generations (reserve, then one
 * settle / refund / cancel) against a service that may vanish at any moment,
 * retrying each request with the same idempotency key until it gets an
 * answer, and a journal of what every client was told. `verifyJournal` then
 * holds the database to that journal: each answered reserve made exactly one
 * generation with exactly one USAGE entry, each generation ended the way its
 * final answer says, nothing was charged twice or lost, the audit is clean.
 */
import { randomUUID } from "node:crypto";
import type { Sql } from "../../src/db/database.ts";
import { auditLedger } from "../../src/domain/audit.ts";
import { TokenService } from "../../src/server/auth.ts";
import { localIdOf } from "../billing/ops.ts";
import { TEST_SECRET } from "../support/env.ts";
import { CREATE_ACCOUNT, GRANT } from "../support/fixtures.ts";
import { sleep } from "./runner.ts";

// biome-ignore lint/suspicious/noExplicitAny: the API's JSON is read as it comes.
type Json = any;

const GENERATION =
  "id status reserved charged refunded released deadline items { index status charged refunded reason }";
const ERRORS = "... on Error { code message }";

export const RESERVE = `mutation Reserve($input: ReserveGenerationInput!) { reserveGeneration(input: $input) { __typename
  ... on ReserveGenerationSuccess { replayed generation { ${GENERATION} } } ${ERRORS} } }`;
export const SETTLE = `mutation Settle($input: SettleGenerationInput!) { settleGeneration(input: $input) { __typename
  ... on SettleGenerationSuccess { replayed generation { ${GENERATION} } }
  ... on AlreadyFinalizedError { generation { ${GENERATION} } } ${ERRORS} } }`;
export const REFUND = `mutation Refund($input: RefundGenerationInput!) { refundGeneration(input: $input) { __typename
  ... on RefundGenerationSuccess { replayed generation { ${GENERATION} } }
  ... on AlreadyFinalizedError { generation { ${GENERATION} } } ${ERRORS} } }`;
export const CANCEL = `mutation Cancel($input: CancelGenerationInput!) { cancelGeneration(input: $input) { __typename
  ... on CancelGenerationSuccess { replayed generation { ${GENERATION} } }
  ... on AlreadyFinalizedError { generation { ${GENERATION} } } ${ERRORS} } }`;

/** How a generation is finished: every item reported, so the expected end state is exact. */
export type Finish =
  | { readonly kind: "settleAll" }
  | {
      readonly kind: "items";
      readonly items: readonly { index: number; succeeded: boolean; cost?: number; reason?: string }[];
    }
  | { readonly kind: "refund"; readonly reason: string }
  | { readonly kind: "cancel" };

export interface Job {
  readonly accountId: string;
  readonly unitCost: number;
  readonly quantity: number;
  readonly reserveKey: string;
  readonly finishKey: string;
  readonly finish: Finish;
  reserveAnswer?: Json;
  finishAnswer?: Json;
}

/** What the clients went through, for the report and the checks. */
export interface LoadFigures {
  requests: number;
  answers: number;
  /** Attempts that got no answer (connection refused or reset, 5xx, a GraphQL error) and were retried. */
  retriedAttempts: number;
  /** Answers with replayed: true after a retry: the earlier attempt had committed, its answer was lost. */
  replayedAfterRetry: number;
  failuresByKind: Record<string, number>;
}

export function newLoadFigures(): LoadFigures {
  return { requests: 0, answers: 0, retriedAttempts: 0, replayedAfterRetry: 0, failuresByKind: {} };
}

/** The answer of one GraphQL request, or why there was none (a retryable failure). */
type Attempt = { readonly ok: true; readonly result: Json } | { readonly ok: false; readonly kind: string };

async function attempt(
  url: string,
  token: string,
  query: string,
  variables: unknown,
  field: string,
): Promise<Attempt> {
  let response: Response;
  try {
    response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body: JSON.stringify({ query, variables }),
      signal: AbortSignal.timeout(20_000),
    });
  } catch (error) {
    const cause = (error as { cause?: { code?: string } }).cause?.code;
    return { ok: false, kind: `network ${cause ?? (error as Error).name}` };
  }
  let body: Json;
  try {
    body = await response.json();
  } catch {
    return { ok: false, kind: `HTTP ${response.status} without JSON` };
  }
  if (body.errors !== undefined && body.errors.length > 0) {
    const code = body.errors[0]?.extensions?.code ?? "no code";
    return { ok: false, kind: `HTTP ${response.status} GraphQL error ${code}` };
  }
  const result = body.data?.[field];
  if (result == null) return { ok: false, kind: `HTTP ${response.status} without data` };
  return { ok: true, result };
}

/** The service's current address and the tokens clients use. */
export interface Target {
  url(): string;
  readonly service: string;
}

export async function serviceTarget(url: () => string): Promise<Target> {
  return {
    url,
    service: await new TokenService(TEST_SECRET).sign(`load-${randomUUID().slice(0, 8)}`, "service"),
  };
}

/**
 * Sends one request until it gets an answer (a union member: success or an
 * operating error), with the same body every time. Gives up after `giveUpMs`.
 */
export async function untilAnswered(
  target: Target,
  query: string,
  variables: unknown,
  field: string,
  figures: LoadFigures,
  giveUpMs = 90_000,
): Promise<Json> {
  const started = Date.now();
  for (let tries = 1; ; tries += 1) {
    figures.requests += 1;
    const outcome = await attempt(target.url(), target.service, query, variables, field);
    if (outcome.ok) {
      figures.answers += 1;
      if (tries > 1 && outcome.result.replayed === true) figures.replayedAfterRetry += 1;
      return outcome.result;
    }
    figures.retriedAttempts += 1;
    figures.failuresByKind[outcome.kind] = (figures.failuresByKind[outcome.kind] ?? 0) + 1;
    if (Date.now() - started > giveUpMs) {
      throw new Error(
        `no answer to ${field} after ${giveUpMs} ms (${tries} attempts, last: ${outcome.kind})`,
      );
    }
    await sleep(50 + Math.random() * 150);
  }
}

/** Creates `count` accounts holding `credits` wallet credits each, through the API (retrying like a client). */
export async function createAccounts(
  target: Target,
  count: number,
  credits: number,
  figures: LoadFigures,
): Promise<string[]> {
  return Promise.all(
    Array.from({ length: count }, async () => {
      const created = await untilAnswered(
        target,
        CREATE_ACCOUNT,
        {
          input: {
            idempotencyKey: `acct-${randomUUID()}`,
            kind: "PERSONAL",
            name: "Load",
            ownerId: `load-${randomUUID()}`,
          },
        },
        "createAccount",
        figures,
      );
      if (created.__typename !== "CreateAccountSuccess") throw new Error(JSON.stringify(created));
      const granted = await untilAnswered(
        target,
        GRANT,
        {
          input: {
            idempotencyKey: `grant-${randomUUID()}`,
            accountId: created.account.id,
            source: "WALLET",
            amount: credits,
          },
        },
        "grantCredits",
        figures,
      );
      if (granted.__typename !== "GrantCreditsSuccess") throw new Error(JSON.stringify(granted));
      return created.account.id as string;
    }),
  );
}

const REASONS = ["GENERATION_FAILED", "PROVIDER_ERROR", "CONTENT_REJECTED"];

/** A random job on one of `accounts`. */
export function randomJob(accounts: readonly string[]): Job {
  const quantity = 1 + Math.floor(Math.random() * 4);
  const unitCost = 1 + Math.floor(Math.random() * 20);
  const roll = Math.random();
  let finish: Finish;
  if (roll < 0.35) finish = { kind: "settleAll" };
  else if (roll < 0.7) {
    finish = {
      kind: "items",
      items: Array.from({ length: quantity }, (_, index) =>
        Math.random() < 0.6
          ? { index, succeeded: true, cost: 1 + Math.floor(Math.random() * unitCost) }
          : { index, succeeded: false, reason: REASONS[index % REASONS.length] as string },
      ),
    };
  } else if (roll < 0.85)
    finish = { kind: "refund", reason: REASONS[Math.floor(Math.random() * 3)] as string };
  else finish = { kind: "cancel" };
  return {
    accountId: accounts[Math.floor(Math.random() * accounts.length)] as string,
    unitCost,
    quantity,
    reserveKey: `reserve-${randomUUID()}`,
    finishKey: `finish-${randomUUID()}`,
    finish,
  };
}

/** The request that finishes a job's generation: [document, input, field]. */
export function finishRequest(job: Job, generationId: string): [string, Record<string, unknown>, string] {
  const base = { idempotencyKey: job.finishKey, generationId };
  switch (job.finish.kind) {
    case "settleAll":
      return [SETTLE, base, "settleGeneration"];
    case "items":
      return [SETTLE, { ...base, items: job.finish.items }, "settleGeneration"];
    case "refund":
      return [REFUND, { ...base, reason: job.finish.reason }, "refundGeneration"];
    case "cancel":
      return [CANCEL, base, "cancelGeneration"];
  }
}

export function reserveInput(job: Job): Record<string, unknown> {
  return {
    idempotencyKey: job.reserveKey,
    accountId: job.accountId,
    feature: "Load",
    unitCost: job.unitCost,
    quantity: job.quantity,
    // Long enough that no timeout interferes: these tests are about crashes and outages.
    timeoutSeconds: 3_600,
  };
}

/** Runs one job to its end: reserve until answered, then finish until answered. */
export async function runJob(target: Target, job: Job, figures: LoadFigures): Promise<void> {
  job.reserveAnswer = await untilAnswered(
    target,
    RESERVE,
    { input: reserveInput(job) },
    "reserveGeneration",
    figures,
  );
  if (job.reserveAnswer.__typename !== "ReserveGenerationSuccess") return;
  const [document, input, field] = finishRequest(job, job.reserveAnswer.generation.id);
  job.finishAnswer = await untilAnswered(target, document, { input }, field, figures);
}

/** `clients` loops of jobs until `stop()` says so; each client finishes the job it is on. */
export async function runClients(
  target: Target,
  accounts: readonly string[],
  clients: number,
  stop: () => boolean,
  figures: LoadFigures,
): Promise<Job[]> {
  const jobs: Job[] = [];
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (!stop()) {
        const job = randomJob(accounts);
        jobs.push(job);
        await runJob(target, job, figures);
      }
    }),
  );
  return jobs;
}

interface ExpectedEnd {
  readonly status: string;
  readonly charged: number;
  readonly refunded: number;
  readonly released: number;
  /** REFUND amount by reason. */
  readonly refunds: Record<string, number>;
}

/** The state a generation must end in after its job's finish request succeeded. */
export function expectedEnd(job: Job): ExpectedEnd {
  const reserved = job.unitCost * job.quantity;
  switch (job.finish.kind) {
    case "settleAll":
      return { status: "SUCCEEDED", charged: reserved, refunded: 0, released: 0, refunds: {} };
    case "refund":
      return {
        status: "FAILED",
        charged: 0,
        refunded: reserved,
        released: 0,
        refunds: { [job.finish.reason]: reserved },
      };
    case "cancel":
      return {
        status: "CANCELLED",
        charged: 0,
        refunded: reserved,
        released: 0,
        refunds: { CANCELLED: reserved },
      };
    case "items": {
      let charged = 0;
      let released = 0;
      const refunds: Record<string, number> = {};
      for (const item of job.finish.items) {
        if (item.succeeded) {
          charged += item.cost ?? job.unitCost;
          released += job.unitCost - (item.cost ?? job.unitCost);
        } else {
          refunds[item.reason as string] = (refunds[item.reason as string] ?? 0) + job.unitCost;
        }
      }
      const succeeded = job.finish.items.filter((item) => item.succeeded).length;
      const status =
        succeeded === job.quantity ? "SUCCEEDED" : succeeded > 0 ? "PARTIALLY_SUCCEEDED" : "FAILED";
      const refunded = Object.values(refunds).reduce((sum, amount) => sum + amount, 0);
      return { status, charged, refunded, released, refunds };
    }
  }
}

export interface JournalReport {
  readonly generations: number;
  readonly problems: string[];
}

/**
 * Holds the database to what clients were told. For every account the jobs
 * used: exactly the generations answered to reserves exist (no orphan from a
 * reserve run twice), each with one USAGE entry, the REFUND/RELEASE entries
 * and totals its final answer implies, available = credits − Σ charged,
 * nothing held, and a clean audit.
 */
export async function verifyJournal(
  sql: Sql,
  jobs: readonly Job[],
  accounts: readonly string[],
  creditsPerAccount: number,
): Promise<JournalReport> {
  const problems: string[] = [];
  const byGeneration = new Map<string, Job>();
  for (const job of jobs) {
    const answer = job.reserveAnswer;
    if (answer === undefined) {
      problems.push(`job ${job.reserveKey} never got a reserve answer`);
      continue;
    }
    if (answer.__typename !== "ReserveGenerationSuccess") {
      problems.push(`job ${job.reserveKey}: reserve answered ${answer.__typename} (${answer.message ?? ""})`);
      continue;
    }
    const id = localIdOf(answer.generation.id);
    if (byGeneration.has(id)) problems.push(`generation ${id} answered to two reserves`);
    byGeneration.set(id, job);
    const finish = job.finishAnswer;
    if (finish === undefined || !String(finish.__typename).endsWith("Success")) {
      problems.push(`job ${job.reserveKey}: finish answered ${JSON.stringify(finish)}`);
      continue;
    }
    if (finish.generation.id !== answer.generation.id)
      problems.push(`job ${job.reserveKey}: finish names another generation`);
  }
  const localAccounts = accounts.map(localIdOf);
  const rows = await sql.query<{
    id: string;
    account_id: string;
    status: string;
    reserved: bigint;
    charged: bigint;
    refunded: bigint;
    released: bigint;
    usage: number;
    usage_amount: bigint;
    releases: number;
    release_amount: bigint;
    refunds: Record<string, string> | null;
    refund_entries: number;
  }>(
    `SELECT g.id, g.account_id, g.status, g.reserved, g.charged, g.refunded, g.released,
            (SELECT count(*)::int FROM ledger_entry e WHERE e.generation_id = g.id AND e.type = 'USAGE') AS usage,
            (SELECT coalesce(sum(e.amount), 0) FROM ledger_entry e WHERE e.generation_id = g.id AND e.type = 'USAGE') AS usage_amount,
            (SELECT count(*)::int FROM ledger_entry e WHERE e.generation_id = g.id AND e.type = 'RELEASE') AS releases,
            (SELECT coalesce(sum(e.amount), 0) FROM ledger_entry e WHERE e.generation_id = g.id AND e.type = 'RELEASE') AS release_amount,
            (SELECT json_object_agg(e.reason, e.amount::text) FROM ledger_entry e WHERE e.generation_id = g.id AND e.type = 'REFUND') AS refunds,
            (SELECT count(*)::int FROM ledger_entry e WHERE e.generation_id = g.id AND e.type = 'REFUND') AS refund_entries
       FROM generation g WHERE g.account_id = ANY($1::uuid[])`,
    [localAccounts],
  );
  const seen = new Set<string>();
  for (const row of rows) {
    seen.add(row.id);
    const job = byGeneration.get(row.id);
    if (job === undefined) {
      problems.push(`generation ${row.id} exists but no client was told about it (a reserve ran twice?)`);
      continue;
    }
    const reserved = job.unitCost * job.quantity;
    const want = expectedEnd(job);
    const refunds = Object.fromEntries(
      Object.entries(row.refunds ?? {}).map(([reason, amount]) => [reason, Number(amount)]),
    );
    const got = {
      status: row.status,
      reserved: Number(row.reserved),
      charged: Number(row.charged),
      refunded: Number(row.refunded),
      released: Number(row.released),
      usage: row.usage,
      usageAmount: Number(row.usage_amount),
      releases: row.releases,
      releaseAmount: Number(row.release_amount),
      refunds,
      refundEntries: row.refund_entries,
    };
    const expected = {
      status: want.status,
      reserved,
      charged: want.charged,
      refunded: want.refunded,
      released: want.released,
      usage: 1,
      usageAmount: -reserved,
      releases: want.released > 0 ? 1 : 0,
      releaseAmount: want.released,
      refunds: want.refunds,
      refundEntries: Object.keys(want.refunds).length,
    };
    if (JSON.stringify(sorted(got)) !== JSON.stringify(sorted(expected))) {
      problems.push(`generation ${row.id}: ${JSON.stringify(got)}, expected ${JSON.stringify(expected)}`);
    }
  }
  for (const id of byGeneration.keys())
    if (!seen.has(id)) problems.push(`generation ${id} was answered but is not stored`);
  const totals = await sql.query<{ id: string; available: bigint; held: bigint; charged: bigint }>(
    `SELECT a.id, a.available, a.held, coalesce((SELECT sum(g.charged) FROM generation g WHERE g.account_id = a.id), 0) AS charged
       FROM account a WHERE a.id = ANY($1::uuid[])`,
    [localAccounts],
  );
  for (const row of totals) {
    if (Number(row.available) !== creditsPerAccount - Number(row.charged) || Number(row.held) !== 0) {
      problems.push(
        `account ${row.id}: available ${row.available}, held ${row.held}, charged ${row.charged} of ${creditsPerAccount}`,
      );
    }
  }
  for (const accountId of localAccounts) {
    const report = await auditLedger(sql, accountId);
    problems.push(...report.problems);
  }
  return { generations: rows.length, problems };
}

/**
 * Sends every job's requests once more with the same keys: each must be the
 * stored answer (replayed: true, the same generation), proving that the
 * answers clients got are the ones the ledger kept.
 */
export async function replayJournal(
  target: Target,
  jobs: readonly Job[],
  figures: LoadFigures,
): Promise<string[]> {
  const problems: string[] = [];
  const queue = jobs.filter((job) => job.reserveAnswer?.__typename === "ReserveGenerationSuccess");
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      for (let job = queue.pop(); job !== undefined; job = queue.pop()) {
        const reserve = await untilAnswered(
          target,
          RESERVE,
          { input: reserveInput(job) },
          "reserveGeneration",
          figures,
        );
        if (reserve.replayed !== true || reserve.generation?.id !== job.reserveAnswer.generation.id) {
          problems.push(`reserve ${job.reserveKey} replayed as ${JSON.stringify(reserve)}`);
        }
        const [document, input, field] = finishRequest(job, job.reserveAnswer.generation.id);
        const finish = await untilAnswered(target, document, { input }, field, figures);
        if (finish.replayed !== true || finish.__typename !== job.finishAnswer?.__typename) {
          problems.push(`finish ${job.finishKey} replayed as ${JSON.stringify(finish)}`);
        }
      }
    }),
  );
  return problems;
}

function sorted(value: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(value)
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([k, v]) => [
        k,
        v !== null && typeof v === "object" && !Array.isArray(v) ? sorted(v as Record<string, unknown>) : v,
      ]),
  );
}
