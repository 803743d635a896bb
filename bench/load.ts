/**
 * HTTP load generator, run in its own process by bench/run.ts:
 *
 *   node --import tsx bench/load.ts <config.json>
 *
 * Modes (config.mode):
 * - "cycles" (B1, B2): `clients` closed-loop clients, each doing reserve →
 *   settle cycles on a random account of `accounts` (one account: all on
 *   it) for `warmupMs` + `durationMs`. Only cycles that finish inside the
 *   measured window count.
 * - "changes" (B3, B3b): an open-loop schedule of `ratePerSecond` balance
 *   changes for `durationMs`, each on a random account of `accounts`: a
 *   refund of a generation this driver reserved earlier on that account if
 *   there is one, else a new reserve. Every change writes exactly one ledger
 *   entry (USAGE or REFUND). Requests alternate between `urls`.
 *
 * Writes its result as JSON to config.resultPath and exits 0; exits 1 on a
 * setup failure (bad config).
 */
import { readFileSync, writeFileSync } from "node:fs";
import { GraphQLHttpClient } from "./lib/http.ts";
import { nowMs } from "./lib/stats.ts";

export interface CyclesConfig {
  readonly mode: "cycles";
  readonly url: string;
  readonly token: string;
  /** Account global ids. */
  readonly accounts: readonly string[];
  readonly clients: number;
  readonly warmupMs: number;
  readonly durationMs: number;
  readonly unitCost: number;
  /** Makes idempotency keys unique across runs. */
  readonly runId: string;
  readonly resultPath: string;
}

export interface ChangesConfig {
  readonly mode: "changes";
  readonly urls: readonly string[];
  readonly token: string;
  readonly accounts: readonly string[];
  /** Generation global ids already reserved (and still in progress) per account index: refunded first. */
  readonly open: Readonly<Record<number, readonly string[]>>;
  readonly ratePerSecond: number;
  readonly durationMs: number;
  readonly unitCost: number;
  readonly runId: string;
  readonly resultPath: string;
}

export type LoadConfig = CyclesConfig | ChangesConfig;

/** Counts of what went wrong, by kind; `samples` keeps a few messages to show. */
export interface ErrorTally {
  /** Everything that is not a success, except InsufficientCreditsError. */
  total: number;
  insufficientCredits: number;
  byKind: Record<string, number>;
  samples: string[];
}

export interface CyclesResult {
  readonly mode: "cycles";
  readonly measuredMs: number;
  readonly cycles: number;
  /** Cycles completed in the whole run, warm-up included. */
  readonly cyclesAll: number;
  /** CPU this process used in the whole run, ms. */
  readonly cpuMs: number;
  /** Per-cycle latency (reserve sent → settle answered), ms, for measured cycles. */
  readonly cycleMs: number[];
  readonly reserveMs: number[];
  readonly settleMs: number[];
  readonly errors: ErrorTally;
}

/** CPU the load process used (user + system), ms. */
function cpuMs(): number {
  const usage = process.resourceUsage();
  return (usage.userCPUTime + usage.systemCPUTime) / 1000;
}

export interface ChangeRecord {
  /** Account index in config.accounts. */
  readonly a: number;
  /** The account's balance sequence in the response (the last entry of the commit that included it). */
  readonly seq: number;
  readonly sentMs: number;
  readonly answeredMs: number;
  readonly kind: "reserve" | "refund";
}

export interface ChangesResult {
  readonly mode: "changes";
  readonly measuredMs: number;
  readonly scheduled: number;
  readonly changes: ChangeRecord[];
  /** How late requests left compared with the schedule (ms): shows whether the driver kept up. */
  readonly sendLagMs: number[];
  readonly errors: ErrorTally;
}

const RESERVE = `mutation BenchReserve($input: ReserveGenerationInput!) {
  reserveGeneration(input: $input) {
    __typename
    ... on ReserveGenerationSuccess { generation { id } }
    ... on Error { code message }
  }
}`;

const RESERVE_WITH_BALANCE = `mutation BenchReserveB($input: ReserveGenerationInput!) {
  reserveGeneration(input: $input) {
    __typename
    ... on ReserveGenerationSuccess { generation { id } balance { sequence } }
    ... on Error { code message }
  }
}`;

const SETTLE = `mutation BenchSettle($input: SettleGenerationInput!) {
  settleGeneration(input: $input) {
    __typename
    ... on Error { code message }
  }
}`;

const REFUND = `mutation BenchRefund($input: RefundGenerationInput!) {
  refundGeneration(input: $input) {
    __typename
    ... on RefundGenerationSuccess { balance { sequence } }
    ... on Error { code message }
  }
}`;

interface MutationPayload {
  __typename?: string;
  code?: string;
  message?: string;
  generation?: { id: string };
  balance?: { sequence: number };
}

function newTally(): ErrorTally {
  return { total: 0, insufficientCredits: 0, byKind: {}, samples: [] };
}

function count(tally: ErrorTally, kind: string, message: string): void {
  if (kind === "InsufficientCreditsError") {
    tally.insufficientCredits += 1;
    return;
  }
  tally.total += 1;
  tally.byKind[kind] = (tally.byKind[kind] ?? 0) + 1;
  if (tally.samples.length < 10) tally.samples.push(`${kind}: ${message}`.slice(0, 300));
}

/**
 * Sends one mutation and returns its payload when it is the expected success
 * type; otherwise counts the failure (HTTP status, GraphQL error code,
 * error union member, network error) and returns null.
 */
async function mutate(
  client: GraphQLHttpClient,
  tally: ErrorTally,
  query: string,
  field: string,
  success: string,
  input: Record<string, unknown>,
): Promise<MutationPayload | null> {
  let status: number;
  let text: string;
  try {
    ({ status, text } = await client.postRaw(JSON.stringify({ query, variables: { input } })));
  } catch (error) {
    count(tally, "network", (error as Error).message);
    return null;
  }
  let body: {
    data?: Record<string, MutationPayload | null> | null;
    errors?: { message: string; extensions?: { code?: string } }[];
  };
  try {
    body = JSON.parse(text) as typeof body;
  } catch {
    count(tally, `http ${status}`, text.slice(0, 200));
    return null;
  }
  if (body.errors !== undefined && body.errors.length > 0) {
    const first = body.errors[0];
    count(tally, `graphql ${first?.extensions?.code ?? "error"}`, first?.message ?? "");
    return null;
  }
  if (status !== 200) {
    count(tally, `http ${status}`, text.slice(0, 200));
    return null;
  }
  const payload = body.data?.[field];
  if (payload == null) {
    count(tally, "no data", text.slice(0, 200));
    return null;
  }
  if (payload.__typename !== success) {
    count(tally, payload.__typename ?? "unknown", `${payload.code ?? ""} ${payload.message ?? ""}`);
    return null;
  }
  return payload;
}

async function runCycles(config: CyclesConfig): Promise<CyclesResult> {
  const client = new GraphQLHttpClient(config.url, config.token, config.clients);
  const tally = newTally();
  const cycleMs: number[] = [];
  const reserveMs: number[] = [];
  const settleMs: number[] = [];
  const start = nowMs();
  const measureFrom = start + config.warmupMs;
  const end = measureFrom + config.durationMs;
  let cycles = 0;
  let cyclesAll = 0;

  const worker = async (clientIndex: number) => {
    for (let n = 0; nowMs() < end; n += 1) {
      const accountId = config.accounts[Math.floor(Math.random() * config.accounts.length)] as string;
      const key = `${config.runId}-${clientIndex}-${n}`;
      const t0 = nowMs();
      const reserved = await mutate(client, tally, RESERVE, "reserveGeneration", "ReserveGenerationSuccess", {
        idempotencyKey: `${key}-r`,
        accountId,
        feature: "Bench",
        unitCost: config.unitCost,
        quantity: 1,
      });
      const t1 = nowMs();
      if (reserved?.generation === undefined) continue;
      const settled = await mutate(client, tally, SETTLE, "settleGeneration", "SettleGenerationSuccess", {
        idempotencyKey: `${key}-s`,
        generationId: reserved.generation.id,
      });
      const t2 = nowMs();
      if (settled === null) continue;
      cyclesAll += 1;
      // Throughput counts the cycles that finish inside the window, whenever they started.
      if (t2 >= measureFrom && t2 <= end) {
        cycles += 1;
        cycleMs.push(t2 - t0);
        reserveMs.push(t1 - t0);
        settleMs.push(t2 - t1);
      }
    }
  };
  await Promise.all(Array.from({ length: config.clients }, (_, i) => worker(i)));
  client.close();
  return {
    mode: "cycles",
    measuredMs: config.durationMs,
    cycles,
    cyclesAll,
    cpuMs: cpuMs(),
    cycleMs,
    reserveMs,
    settleMs,
    errors: tally,
  };
}

async function runChanges(config: ChangesConfig): Promise<ChangesResult> {
  const clients = config.urls.map((url) => new GraphQLHttpClient(url, config.token, 64));
  const tally = newTally();
  const open = new Map<number, string[]>();
  for (const [index, ids] of Object.entries(config.open)) open.set(Number(index), [...ids]);
  const changes: ChangeRecord[] = [];
  const sendLagMs: number[] = [];
  const intervalMs = 1000 / config.ratePerSecond;
  const total = Math.round((config.durationMs / 1000) * config.ratePerSecond);
  const inFlight = new Set<Promise<void>>();
  const start = nowMs();

  const change = async (k: number) => {
    const a = Math.floor(Math.random() * config.accounts.length);
    const accountId = config.accounts[a] as string;
    const client = clients[k % clients.length] as GraphQLHttpClient;
    const stack = open.get(a) ?? [];
    open.set(a, stack);
    const generationId = stack.pop();
    const sentMs = nowMs();
    if (generationId !== undefined) {
      const refunded = await mutate(client, tally, REFUND, "refundGeneration", "RefundGenerationSuccess", {
        idempotencyKey: `${config.runId}-f-${k}`,
        generationId,
        reason: "PROVIDER_ERROR",
        message: "bench",
      });
      if (refunded?.balance !== undefined) {
        changes.push({ a, seq: refunded.balance.sequence, sentMs, answeredMs: nowMs(), kind: "refund" });
      }
      return;
    }
    const reserved = await mutate(
      client,
      tally,
      RESERVE_WITH_BALANCE,
      "reserveGeneration",
      "ReserveGenerationSuccess",
      {
        idempotencyKey: `${config.runId}-r-${k}`,
        accountId,
        feature: "Bench",
        unitCost: config.unitCost,
        quantity: 1,
      },
    );
    if (reserved?.balance !== undefined && reserved.generation !== undefined) {
      changes.push({ a, seq: reserved.balance.sequence, sentMs, answeredMs: nowMs(), kind: "reserve" });
      stack.push(reserved.generation.id);
    }
  };

  for (let k = 0; k < total; k += 1) {
    const due = start + k * intervalMs;
    const wait = due - nowMs();
    if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
    sendLagMs.push(Math.max(0, nowMs() - due));
    const promise: Promise<void> = change(k).finally(() => inFlight.delete(promise));
    inFlight.add(promise);
  }
  await Promise.all(inFlight);
  for (const client of clients) client.close();
  return {
    mode: "changes",
    measuredMs: nowMs() - start,
    scheduled: total,
    changes,
    sendLagMs,
    errors: tally,
  };
}

async function main(): Promise<void> {
  const path = process.argv[2];
  if (path === undefined) throw new Error("usage: load.ts <config.json>");
  const config = JSON.parse(readFileSync(path, "utf8")) as LoadConfig;
  const result = config.mode === "cycles" ? await runCycles(config) : await runChanges(config);
  writeFileSync(config.resultPath, JSON.stringify(result));
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`load: ${(error as Error).stack ?? String(error)}\n`);
    process.exit(1);
  },
);
