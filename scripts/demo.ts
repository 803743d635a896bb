/**
 * `npm run demo`: plays an AI-generation platform against a running server so
 * the dashboard has something to show. It signs a service token the way
 * `npm run token` does, creates a workspace with two members, grants
 * subscription and wallet credits, then keeps starting generations: some
 * succeed, some fail for different reasons, some time out, some are sent
 * twice with the same idempotency key. One line per event.
 *
 *   npm run demo -- [--url http://localhost:4000/graphql] [--generations N] [--interval-ms 1500]
 *
 * Without --generations it runs until Ctrl-C.
 */
import { randomBytes } from "node:crypto";
import { parseArgs } from "node:util";
import { GraphQLClient, persisted, RequestError } from "../dashboard/src/graphql.ts";
import {
  AddAccountMemberDocument,
  CancelGenerationDocument,
  CreateAccountDocument,
  DashboardGenerationDocument,
  type GenerationFieldsFragment,
  GrantCreditsDocument,
  RefundGenerationDocument,
  type RefundReason,
  ReserveGenerationDocument,
  SettleGenerationDocument,
} from "../src/generated/graphql/graphql.ts";
import { resolveSecret, TokenService } from "../src/server/auth.ts";

const { values: args } = parseArgs({
  options: {
    url: { type: "string", default: process.env.CREDITBOOK_URL ?? "http://localhost:4000/graphql" },
    generations: { type: "string" },
    "interval-ms": { type: "string", default: "1500" },
  },
});

/** Most generations running at once, so a slow server is not flooded. */
const IN_FLIGHT_MAX = 8;
/** Below this many available credits the platform tops the wallet up, so the demo runs forever. */
const TOP_UP_BELOW = 150;
const TOP_UP_AMOUNT = 1_000;

const generationsMax =
  args.generations === undefined
    ? Number.POSITIVE_INFINITY
    : positiveInteger("generations", args.generations);
const intervalMs = positiveInteger("interval-ms", args["interval-ms"]);
const graphqlUrl = args.url;

const reserve = persisted(ReserveGenerationDocument);
const settle = persisted(SettleGenerationDocument);
const refund = persisted(RefundGenerationDocument);
const cancel = persisted(CancelGenerationDocument);
const grantCredits = persisted(GrantCreditsDocument);
const createAccount = persisted(CreateAccountDocument);
const generationQuery = persisted(DashboardGenerationDocument);
const addAccountMember = persisted(AddAccountMemberDocument);

interface Feature {
  readonly feature: string;
  readonly model: string;
  readonly unitCost: number;
}

const FEATURES: readonly Feature[] = [
  { feature: "Quick Video", model: "veo-3-fast", unitCost: 12 },
  { feature: "Image", model: "flux-1.1-pro", unitCost: 2 },
  { feature: "Multi-shot Video", model: "kling-2.1", unitCost: 8 },
  { feature: "Voiceover", model: "eleven-v3", unitCost: 3 },
  { feature: "Email Draft", model: "gpt-5-mini", unitCost: 1 },
];

const FAILURES: readonly { reason: RefundReason; message: string }[] = [
  { reason: "PROVIDER_ERROR", message: "upstream returned HTTP 502" },
  { reason: "SERVICE_UNAVAILABLE", message: "model endpoint overloaded, try later" },
  { reason: "MALFORMED_RESPONSE", message: "provider sent an empty video" },
  { reason: "CONTENT_REJECTED", message: "the model's safety filter rejected the output" },
  { reason: "SYSTEM_ERROR", message: "job orchestrator lost the worker" },
];

type Outcome = "succeeded" | "batch" | "failed" | "timed out" | "retried" | "cancelled" | "late report";

/** The first round plays every scenario once, in this order; after that they are drawn by weight. */
const SCENARIOS: readonly { readonly kind: Outcome; readonly weight: number }[] = [
  { kind: "succeeded", weight: 30 },
  { kind: "batch", weight: 20 },
  { kind: "failed", weight: 16 },
  { kind: "retried", weight: 12 },
  { kind: "timed out", weight: 10 },
  { kind: "cancelled", weight: 6 },
  { kind: "late report", weight: 6 },
];

const runId = randomBytes(3).toString("hex");
const users = [`alice-${runId}`, `bob-${runId}`] as const;
const counts = new Map<string, number>();
let problems = 0;
let topUp: Promise<void> | null = null;

function positiveInteger(name: string, raw: string): number {
  const value = Number(raw);
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(value) || value < 1) {
    process.stderr.write(`--${name} must be a positive integer, got "${raw}"\n`);
    process.exit(2);
  }
  return value;
}

function line(subject: string, text: string): void {
  const at = new Date().toISOString().slice(11, 19);
  process.stdout.write(`${at}  ${subject.padEnd(24)} ${text}\n`);
}

function count(event: string): void {
  counts.set(event, (counts.get(event) ?? 0) + 1);
}

function pick<T>(items: readonly T[]): T {
  return items[Math.floor(Math.random() * items.length)] as T;
}

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

const key = (label: string) => `demo-${runId}-${label}-${randomBytes(4).toString("hex")}`;

async function main(): Promise<void> {
  const embedded = !process.env.AUTH_JWT_SECRET?.trim();
  let tokens: TokenService;
  try {
    tokens = new TokenService(
      resolveSecret(
        process.env.AUTH_JWT_SECRET?.trim() || undefined,
        process.env.DATA_DIR?.trim() || "./.data",
        false,
      ),
    );
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n`);
    process.exit(1);
  }
  const serviceToken = await tokens.sign(`demo-platform-${runId}`, "service", "1d");
  const client = new GraphQLClient({ url: graphqlUrl, token: () => serviceToken });

  const created = await client.data(createAccount, {
    input: {
      idempotencyKey: key("workspace"),
      kind: "WORKSPACE",
      name: `Demo Studio ${runId}`,
      ownerId: users[0],
    },
  });
  if (created.createAccount.__typename !== "CreateAccountSuccess") {
    throw new Error(`createAccount: ${created.createAccount.message}`);
  }
  const accountId = created.createAccount.account.id;
  const member = await client.data(addAccountMember, {
    input: { accountId, userId: users[1], role: "MEMBER" },
  });
  if (member.addAccountMember.__typename !== "AddAccountMemberSuccess") {
    throw new Error(`addAccountMember: ${member.addAccountMember.message}`);
  }
  line("workspace", `"Demo Studio ${runId}" ${accountId}, owner ${users[0]}, member ${users[1]}`);

  const periodEnd = new Date(Date.now() + 30 * 24 * 3600 * 1000).toISOString();
  await grant(client, accountId, "SUBSCRIPTION", 600, "Pro plan, monthly credits", periodEnd);
  await grant(client, accountId, "WALLET", 1_500, "Credit pack");

  const origin = new URL(graphqlUrl).origin;
  const userToken = await tokens.sign(users[0], "user", "12h");
  process.stdout.write("\nWatch it live:\n");
  if (embedded) {
    process.stdout.write(
      `  ${origin}/dashboard/dev-login?sub=${users[0]}&account=${encodeURIComponent(accountId)}\n`,
    );
    process.stdout.write("or, from another machine, with a 12-hour token:\n");
  }
  process.stdout.write(
    `  ${origin}/dashboard/?account=${encodeURIComponent(accountId)}#token=${userToken}\n\n`,
  );

  const running = new Set<Promise<void>>();
  let stopping = false;
  process.once("SIGINT", () => {
    stopping = true;
  });
  for (let index = 0; index < generationsMax && !stopping; index += 1) {
    while (running.size >= IN_FLIGHT_MAX) await Promise.race(running);
    const scenario = index < SCENARIOS.length ? (SCENARIOS[index]?.kind ?? "succeeded") : drawScenario();
    const run = play(client, accountId, index + 1, scenario).catch((error: unknown) => {
      problems += 1;
      line(`#${index + 1}`, `unexpected: ${error instanceof RequestError ? error.message : String(error)}`);
    });
    running.add(run);
    void run.finally(() => running.delete(run));
    await pause(Math.round(intervalMs * (0.5 + Math.random())));
  }
  if (!stopping) await Promise.all(running);
  const summary = [...counts.entries()].map(([event, n]) => `${n} ${event}`).join(", ");
  process.stdout.write(
    `\nDone: ${summary || "nothing ran"}${problems > 0 ? `; ${problems} unexpected errors` : ""}\n`,
  );
  process.exit(problems > 0 ? 1 : 0);
}

function drawScenario(): Outcome {
  const total = SCENARIOS.reduce((sum, s) => sum + s.weight, 0);
  let ticket = Math.random() * total;
  for (const scenario of SCENARIOS) {
    ticket -= scenario.weight;
    if (ticket < 0) return scenario.kind;
  }
  return "succeeded";
}

async function grant(
  client: GraphQLClient,
  accountId: string,
  source: "SUBSCRIPTION" | "WALLET",
  amount: number,
  title: string,
  expiresAt?: string,
): Promise<void> {
  const data = await client.data(grantCredits, {
    input: { idempotencyKey: key("grant"), accountId, source, amount, title, expiresAt },
  });
  if (data.grantCredits.__typename !== "GrantCreditsSuccess")
    throw new Error(`grantCredits: ${data.grantCredits.message}`);
  line(
    "grant",
    `+${amount} ${source.toLowerCase()} "${title}" (available ${data.grantCredits.balance.available})`,
  );
}

/** Starts one generation and plays `scenario` to its end. */
async function play(client: GraphQLClient, accountId: string, n: number, scenario: Outcome): Promise<void> {
  const feature = scenario === "batch" ? pick(FEATURES.filter((f) => f.unitCost <= 8)) : pick(FEATURES);
  const quantity = scenario === "batch" ? 4 : 1;
  const subject = `#${n} ${feature.feature}${quantity > 1 ? ` ×${quantity}` : ""}`;
  const input = {
    idempotencyKey: key("reserve"),
    accountId,
    requestedBy: pick(users),
    feature: feature.feature,
    model: feature.model,
    unitCost: feature.unitCost,
    quantity,
    // Real generations time out after 150 minutes; the demo's do after seconds so it is seen.
    timeoutSeconds: scenario === "timed out" ? 5 : 600,
  };
  const reserved = await client.data(reserve, { input });
  const result = reserved.reserveGeneration;
  if (result.__typename === "InsufficientCreditsError") {
    line(subject, `refused: needs ${result.required}, ${result.available} available; nothing held`);
    count("refused");
    await topUpWallet(client, accountId);
    return;
  }
  if (result.__typename !== "ReserveGenerationSuccess") throw new Error(`reserve: ${result.message}`);
  const generation = result.generation;
  line(
    subject,
    `started by ${input.requestedBy}: −${generation.reserved} held (available ${result.balance.available})`,
  );
  if (result.balance.available < TOP_UP_BELOW) void topUpWallet(client, accountId);
  await pause(800 + Math.random() * 3_000);

  switch (scenario) {
    case "succeeded": {
      // Some deliveries cost less than reserved (a shorter video); the surplus is released.
      const cost = Math.random() < 0.4 ? Math.max(1, feature.unitCost - 2) : undefined;
      const settled = await settleOnce(
        client,
        generation.id,
        cost === undefined ? undefined : [{ index: 0, succeeded: true, cost }],
      );
      line(
        subject,
        `delivered: charged ${settled.charged}${settled.released > 0 ? `, ${settled.released} released` : ""}`,
      );
      count("succeeded");
      return;
    }
    case "batch": {
      const failure = pick(FAILURES);
      const failedIndex = Math.floor(Math.random() * quantity);
      const items = Array.from({ length: quantity }, (_, index) =>
        index === failedIndex
          ? { index, succeeded: false, reason: failure.reason, message: failure.message }
          : { index, succeeded: true },
      );
      const settled = await settleOnce(client, generation.id, items);
      line(
        subject,
        `${quantity - 1} of ${quantity} delivered: charged ${settled.charged}, refunded ${settled.refunded} (${failure.reason})`,
      );
      count("partly delivered");
      return;
    }
    case "failed": {
      const failure = pick(FAILURES);
      const refunded = await refundOnce(client, generation.id, failure.reason, failure.message);
      line(subject, `failed (${failure.reason}: ${failure.message}): +${refunded.refunded} refunded`);
      count("failed");
      return;
    }
    case "retried": {
      // The platform's HTTP call timed out and it sent the same settle again: applied once.
      const settleKey = key("settle");
      const first = await client.data(settle, {
        input: { idempotencyKey: settleKey, generationId: generation.id },
      });
      const again = await client.data(settle, {
        input: { idempotencyKey: settleKey, generationId: generation.id },
      });
      const replayed =
        again.settleGeneration.__typename === "SettleGenerationSuccess" && again.settleGeneration.replayed;
      const reserveAgain = await client.data(reserve, { input });
      const reserveReplayed =
        reserveAgain.reserveGeneration.__typename === "ReserveGenerationSuccess" &&
        reserveAgain.reserveGeneration.replayed;
      if (first.settleGeneration.__typename !== "SettleGenerationSuccess" || !replayed || !reserveReplayed) {
        throw new Error("a retried request was applied twice or refused");
      }
      line(
        subject,
        `delivered, settle and reserve sent twice with the same keys: replayed, charged once (${first.settleGeneration.generation.charged})`,
      );
      count("retried");
      return;
    }
    case "timed out": {
      line(subject, "the provider never answers; the deadline is in 5 s");
      const ended = await waitFinished(client, generation.id, 20_000);
      line(
        subject,
        `timed out (${ended.failureReason ?? ended.status}): +${ended.refunded} refunded by the reaper`,
      );
      count("timed out");
      return;
    }
    case "cancelled": {
      const data = await client.data(cancel, {
        input: { idempotencyKey: key("cancel"), generationId: generation.id },
      });
      if (data.cancelGeneration.__typename !== "CancelGenerationSuccess")
        throw new Error(`cancel: ${data.cancelGeneration.message}`);
      line(subject, `cancelled by the user: +${data.cancelGeneration.generation.refunded} refunded`);
      count("cancelled");
      return;
    }
    case "late report": {
      const failure = pick(FAILURES);
      const refunded = await refundOnce(client, generation.id, failure.reason, failure.message);
      const late = await client.data(settle, {
        input: { idempotencyKey: key("settle"), generationId: generation.id },
      });
      const ignored = late.settleGeneration.__typename === "AlreadyFinalizedError";
      if (!ignored)
        throw new Error(`a success reported after a refund was applied: ${late.settleGeneration.__typename}`);
      line(
        subject,
        `failed (+${refunded.refunded} refunded), then a late "success" arrived: ignored, nothing charged`,
      );
      count("late report ignored");
      return;
    }
  }
}

async function settleOnce(
  client: GraphQLClient,
  generationId: string,
  items?: { index: number; succeeded: boolean; cost?: number; reason?: RefundReason; message?: string }[],
): Promise<GenerationFieldsFragment> {
  const data = await client.data(settle, { input: { idempotencyKey: key("settle"), generationId, items } });
  if (data.settleGeneration.__typename !== "SettleGenerationSuccess")
    throw new Error(`settle: ${data.settleGeneration.message}`);
  return data.settleGeneration.generation;
}

async function refundOnce(
  client: GraphQLClient,
  generationId: string,
  reason: RefundReason,
  message: string,
): Promise<GenerationFieldsFragment> {
  const data = await client.data(refund, {
    input: { idempotencyKey: key("refund"), generationId, reason, message },
  });
  if (data.refundGeneration.__typename !== "RefundGenerationSuccess")
    throw new Error(`refund: ${data.refundGeneration.message}`);
  return data.refundGeneration.generation;
}

/** Polls until the generation has ended (the reaper ends overdue ones within seconds). */
async function waitFinished(
  client: GraphQLClient,
  id: string,
  timeoutMs: number,
): Promise<GenerationFieldsFragment> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { generation } = await client.data(generationQuery, { id });
    if (generation === null) throw new Error(`generation ${id} disappeared`);
    if (generation.status !== "IN_PROGRESS") return generation;
    if (Date.now() > deadline) throw new Error(`generation ${id} still in progress after ${timeoutMs} ms`);
    await pause(500);
  }
}

/** Buys more wallet credits, once at a time however many generations notice the low balance. */
function topUpWallet(client: GraphQLClient, accountId: string): Promise<void> {
  topUp ??= grant(client, accountId, "WALLET", TOP_UP_AMOUNT, "Auto top-up").finally(() => {
    topUp = null;
  });
  return topUp;
}

main().catch((error: unknown) => {
  const message = (error as Error).message;
  process.stderr.write(`demo: ${message}\n`);
  if (/Could not reach/.test(message))
    process.stderr.write(`Is the server running at ${graphqlUrl}? Start it with: npm start\n`);
  process.exit(1);
});
