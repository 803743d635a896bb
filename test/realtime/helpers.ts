/**
 * Shared pieces of the realtime tests: GraphQL over HTTP against any server
 * URL (in-process or a separate process), the subscription documents, a
 * throwaway redis-server, and latency statistics.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { once } from "node:events";
import { Redis } from "ioredis";
import { TokenService } from "../../src/server/auth.ts";
import { REDIS_URL, TEST_SECRET } from "../support/env.ts";
import { freePort } from "../support/services.ts";

// biome-ignore lint/suspicious/noExplicitAny: tests read the API's JSON as it comes.
export type Json = any;

export const tokens = new TokenService(TEST_SECRET);

/** A unique name for test data, so parallel tests never collide. */
export function unique(prefix: string): string {
  return `${prefix}-${randomUUID().slice(0, 8)}`;
}

export const ENTRY_FIELDS = "id sequence type amount status title balanceBefore balanceAfter reason message";
export const BALANCE_FIELDS = "accountId available held total subscription wallet sequence";

export const LEDGER_ENTRY_ADDED = `subscription($accountId: ID!, $afterSequence: Int) {
  ledgerEntryAdded(accountId: $accountId, afterSequence: $afterSequence) { ${ENTRY_FIELDS} }
}`;

export const BALANCE_CHANGED = `subscription($accountId: ID!) {
  balanceChanged(accountId: $accountId) { ${BALANCE_FIELDS} }
}`;

export const GENERATION_UPDATED = `subscription($accountId: ID!, $generationId: ID) {
  generationUpdated(accountId: $accountId, generationId: $generationId) {
    id status reserved charged refunded failureReason items { index status reason }
  }
}`;

/** GraphQL over HTTP against one server URL with one token. */
export class Api {
  constructor(
    readonly url: string,
    readonly token: string,
  ) {}

  async gql(query: string, variables: Record<string, unknown> = {}): Promise<Json> {
    const response = await fetch(this.url, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${this.token}` },
      body: JSON.stringify({ query, variables }),
    });
    const body = (await response.json()) as Json;
    if (body.errors !== undefined) throw new Error(`GraphQL errors: ${JSON.stringify(body.errors)}`);
    return body.data;
  }

  /** Creates a PERSONAL account owned by `ownerId`; returns its global id. */
  async createAccount(ownerId: string): Promise<string> {
    const data = await this.gql(
      `mutation($input: CreateAccountInput!) { createAccount(input: $input) {
        __typename ... on CreateAccountSuccess { account { id } } ... on Error { code message } } }`,
      { input: { idempotencyKey: unique("acct"), kind: "PERSONAL", name: "Realtime test", ownerId } },
    );
    return success(data.createAccount, "CreateAccountSuccess").account.id;
  }

  /** Grants WALLET credits; `title` becomes the GRANT entry's title. */
  async grant(accountId: string, amount: number, title?: string): Promise<Json> {
    const data = await this.gql(
      `mutation($input: GrantCreditsInput!) { grantCredits(input: $input) {
        __typename ... on GrantCreditsSuccess { balance { available sequence } } ... on Error { code message } } }`,
      { input: { idempotencyKey: unique("grant"), accountId, source: "WALLET", amount, title } },
    );
    return success(data.grantCredits, "GrantCreditsSuccess");
  }

  /** Reserves a generation; returns its global id and the balance after. */
  async reserve(
    accountId: string,
    options: { unitCost?: number; quantity?: number; feature?: string } = {},
  ): Promise<{ id: string; balance: Json }> {
    const data = await this.gql(
      `mutation($input: ReserveGenerationInput!) { reserveGeneration(input: $input) {
        __typename ... on ReserveGenerationSuccess { generation { id } balance { available held sequence } }
        ... on Error { code message } } }`,
      {
        input: {
          idempotencyKey: unique("reserve"),
          accountId,
          feature: options.feature ?? "Quick Video",
          unitCost: options.unitCost ?? 10,
          quantity: options.quantity ?? 1,
          timeoutSeconds: 3_600,
        },
      },
    );
    const result = success(data.reserveGeneration, "ReserveGenerationSuccess");
    return { id: result.generation.id, balance: result.balance };
  }

  async refund(generationId: string, reason: string, message?: string): Promise<Json> {
    const data = await this.gql(
      `mutation($input: RefundGenerationInput!) { refundGeneration(input: $input) {
        __typename ... on RefundGenerationSuccess { generation { id status } balance { available held sequence } }
        ... on Error { code message } } }`,
      { input: { idempotencyKey: unique("refund"), generationId, reason, message } },
    );
    return success(data.refundGeneration, "RefundGenerationSuccess");
  }

  /** The account's latest entry sequence. */
  async sequence(accountId: string): Promise<number> {
    const data = await this.gql("query($id: ID!) { balance(accountId: $id) { sequence } }", {
      id: accountId,
    });
    return data.balance.sequence;
  }
}

function success(result: Json, typename: string): Json {
  if (result.__typename !== typename) throw new Error(`expected ${typename}, got ${JSON.stringify(result)}`);
  return result;
}

/** A platform (service) API client and a user who owns a fresh account with `credits`. */
export async function accountWithOwner(
  url: string,
  credits: number,
): Promise<{ service: Api; owner: Api; ownerId: string; ownerToken: string; accountId: string }> {
  const service = new Api(url, await tokens.sign("platform", "service"));
  const ownerId = unique("user");
  const accountId = await service.createAccount(ownerId);
  if (credits > 0) await service.grant(accountId, credits);
  const ownerToken = await tokens.sign(ownerId, "user");
  return { service, owner: new Api(url, ownerToken), ownerId, ownerToken, accountId };
}

/** A redis-server this test starts, stops and restarts on one port. */
export interface RedisServer {
  readonly port: number;
  readonly url: string;
  /** Kills it (SIGKILL: like a crash, nothing flushed). */
  kill(): Promise<void>;
  /** Starts it again on the same port. */
  start(): Promise<void>;
  /** Runs a command through redis-cli and returns its output. */
  cli(...args: string[]): Promise<string>;
}

/** Starts `redis-server --port <free> --save "" --appendonly no` and waits until it answers. */
export async function startRedis(): Promise<RedisServer> {
  const port = await freePort();
  let child: ChildProcess | null = null;
  const cli = async (...args: string[]) => {
    const process = spawn("redis-cli", ["-p", String(port), ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    process.stdout?.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    await once(process, "exit");
    return output.trim();
  };
  const start = async () => {
    const started = spawn(
      "redis-server",
      [
        "--port",
        String(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    child = started;
    const ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("redis-server did not start in 10 s")), 10_000);
      started.stdout?.on("data", (chunk: Buffer) => {
        if (chunk.toString().includes("Ready to accept connections")) {
          clearTimeout(timer);
          resolve();
        }
      });
      started.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`redis-server exited with ${code}`));
      });
    });
    await ready;
  };
  await start();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    start,
    cli,
    async kill() {
      const running = child;
      child = null;
      if (running === null || running.exitCode !== null || running.signalCode !== null) return;
      running.kill("SIGKILL");
      await once(running, "exit");
    },
  };
}

/** p50 and max of a list of milliseconds, rounded to 0.1 ms. */
export function latencyStats(values: readonly number[]): { count: number; p50: number; max: number } {
  const sorted = [...values].sort((a, b) => a - b);
  const round = (value: number) => Math.round(value * 10) / 10;
  return {
    count: sorted.length,
    p50: round(sorted[Math.floor((sorted.length - 1) / 2)] ?? Number.NaN),
    max: round(sorted.at(-1) ?? Number.NaN),
  };
}

/** The sequences a ledgerEntryAdded subscription received. */
export function sequencesOf(values: readonly Json[]): number[] {
  return values.map((value) => value.ledgerEntryAdded.sequence as number);
}

/** 1..n (or from..to). */
export function range(from: number, to: number): number[] {
  return Array.from({ length: Math.max(0, to - from + 1) }, (_, index) => from + index);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Reserves and refunds 1-credit generations until every subscription has
 * received something, so each is known to be listening (a grant would not
 * reach generationUpdated). Each round adds a USAGE and a REFUND entry.
 */
export async function warmUp(
  service: Api,
  accountId: string,
  subscriptions: readonly { readonly values: readonly unknown[] }[],
): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (subscriptions.some((subscription) => subscription.values.length === 0)) {
    if (Date.now() > deadline) {
      const counts = subscriptions.map((subscription) => subscription.values.length);
      throw new Error(`subscriptions never started receiving (values per subscription: ${counts})`);
    }
    const generation = await service.reserve(accountId, { unitCost: 1, feature: "Warm-up" });
    await service.refund(generation.id, "SYSTEM_ERROR");
    await sleep(100);
  }
}

export function accountUuid(globalId: string): string {
  return Buffer.from(globalId, "base64").toString().split(":")[1] ?? "";
}

/** How many connections (instances) subscribe to a Redis channel. */
export async function numberOfSubscribers(channel: string, redisUrl = REDIS_URL): Promise<number> {
  const redis = new Redis(redisUrl);
  try {
    const reply = (await redis.call("PUBSUB", "NUMSUB", channel)) as [string, number];
    return Number(reply[1]);
  } finally {
    redis.disconnect();
  }
}

export async function waitForSubscribers(channel: string, count: number): Promise<void> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    const now = await numberOfSubscribers(channel);
    if (now === count) return;
    if (Date.now() > deadline) throw new Error(`${channel} has ${now} subscribers, expected ${count}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A subscription over SSE (yoga's "distinct connections" mode): POST with `Accept: text/event-stream`. */
export interface SseSubscription {
  /** The HTTP status of the response. */
  readonly status: number;
  /** `data` of every `event: next`, in order. */
  readonly values: Json[];
  /** Every event as sent: its name and raw data. */
  readonly events: { event: string; data: string }[];
  /** Resolves when the server ends the stream. */
  readonly ended: Promise<void>;
  close(): void;
}

/** Opens an SSE subscription; resolves once the response headers have arrived. */
export async function subscribeSse(
  url: string,
  token: string | null,
  query: string,
  variables: Record<string, unknown>,
): Promise<SseSubscription> {
  const abort = new AbortController();
  const response = await fetch(url, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      accept: "text/event-stream",
      ...(token === null ? {} : { authorization: `Bearer ${token}` }),
    },
    body: JSON.stringify({ query, variables }),
    signal: abort.signal,
  });
  const values: Json[] = [];
  const events: { event: string; data: string }[] = [];
  const read = async () => {
    if (response.body === null) return;
    const decoder = new TextDecoder();
    let buffer = "";
    try {
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true });
        // Events are separated by a blank line; each has `event:` and `data:` lines (or is a `:` keep-alive).
        for (let end = buffer.indexOf("\n\n"); end >= 0; end = buffer.indexOf("\n\n")) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let event = "message";
          const data: string[] = [];
          for (const line of block.split("\n")) {
            if (line.startsWith("event:")) event = line.slice(6).trim();
            else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
          }
          if (data.length === 0 && event === "message") continue;
          events.push({ event, data: data.join("\n") });
          if (event === "next") values.push(JSON.parse(data.join("\n")));
        }
      }
    } catch (error) {
      if (!abort.signal.aborted) throw error;
    }
  };
  return { status: response.status, values, events, ended: read(), close: () => abort.abort() };
}

/** Prints the error lines a server process logged (they explain a masked "Unexpected error."). */
export function reportServerErrors(
  servers: Record<string, { readonly logs: readonly string[] } | undefined>,
): void {
  for (const [name, server] of Object.entries(servers)) {
    const errors = server?.logs.filter((line) => line.includes('"level":"error"')) ?? [];
    if (errors.length > 0) console.error(`server ${name} logged errors:\n${errors.slice(0, 5).join("\n")}`);
  }
}
