/**
 * SIGTERM on a real server process: /readyz answers 503 at once, new
 * requests are refused, a mutation already in flight (held behind a row lock
 * taken from another connection) still gets its answer, an SSE stream ends
 * with `complete`, a WebSocket closes with 1001, and the process exits 0 —
 * or, if the mutation outlasts SHUTDOWN_TIMEOUT_MS, exits 1 on time.
 */
import { createClient } from "graphql-sse";
import pg from "pg";
import { afterEach, describe, expect, it } from "vitest";
import { localId } from "../../src/schema/ids.ts";
import {
  type Api,
  accountWithOwner,
  BALANCE_CHANGED,
  LEDGER_ENTRY_ADDED,
  subscribeSse,
  unique,
} from "../realtime/helpers.ts";
import { testDatabaseUrl } from "../support/env.ts";
import { type ServerProcess, startServerProcess } from "../support/process.ts";
import { connect, type LiveClient } from "../support/ws.ts";

const GRANT = `mutation($input: GrantCreditsInput!) { grantCredits(input: $input) {
  __typename ... on GrantCreditsSuccess { balance { available } } ... on Error { code message } } }`;

/** Locks the account's row from another connection, so a mutation on it waits in the database. */
async function lockAccount(accountId: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: testDatabaseUrl() });
  await client.connect();
  await client.query("BEGIN");
  await client.query("SELECT id FROM account WHERE id = $1 FOR UPDATE", [localId(accountId, "Account")]);
  return client;
}

/** Waits until some query of this database waits for a lock (the mutation behind ours). */
async function untilWaitingOnLock(lock: pg.Client): Promise<void> {
  // Not a timing claim: how soon the mutation reaches the lock depends on the machine's load.
  const deadline = Date.now() + 30_000;
  for (;;) {
    const { rows } = await lock.query(
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
    );
    if (rows[0].n > 0) return;
    if (Date.now() > deadline) throw new Error("no query waited for the account's lock");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Starts a grant and records its answer when it comes. */
function grantInFlight(service: Api, accountId: string) {
  const outcome: { body?: unknown; error?: unknown; atMs?: number } = {};
  const done = fetch(service.url, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${service.token}` },
    body: JSON.stringify({
      query: GRANT,
      variables: { input: { idempotencyKey: unique("grant"), accountId, source: "WALLET", amount: 5 } },
    }),
  }).then(
    async (response) => {
      outcome.body = { status: response.status, ...((await response.json()) as object) };
      outcome.atMs = Date.now();
    },
    (error: unknown) => {
      outcome.error = error;
      outcome.atMs = Date.now();
    },
  );
  return { outcome, done };
}

describe("shutdown on SIGTERM", () => {
  let server: ServerProcess | undefined;
  let lock: pg.Client | undefined;
  const clients: LiveClient[] = [];

  afterEach(async () => {
    await lock?.query("ROLLBACK").catch(() => {});
    await lock?.end().catch(() => {});
    await Promise.all(clients.map((client) => client.dispose()));
    await server?.stop("SIGKILL");
  });

  it("answers the in-flight mutation, ends streams and sockets, refuses new work, and exits 0", async () => {
    server = await startServerProcess({ SHUTDOWN_TIMEOUT_MS: "10000" });
    const { service, ownerToken, accountId } = await accountWithOwner(server.url, 100);
    const readyz = new URL("/readyz", server.url).toString();
    expect((await fetch(readyz)).status).toBe(200);

    const ws = connect(server.url, { token: ownerToken });
    clients.push(ws);
    const wsBalances = ws.subscribe(BALANCE_CHANGED, { accountId });
    const sse = await subscribeSse(server.url, ownerToken, BALANCE_CHANGED, { accountId });
    expect(sse.status).toBe(200);
    // graphql-sse's single connection: its stream outlives operations, so the drain must end it too.
    const single = createClient({
      url: new URL("/graphql/stream", server.url).toString(),
      singleConnection: true,
      headers: { authorization: `Bearer ${ownerToken}` },
      retryAttempts: 0,
    });
    let singleReplayed!: () => void;
    const singleUp = new Promise<void>((resolve) => {
      singleReplayed = resolve;
    });
    const singleEnded = new Promise<string>((resolve) => {
      single.subscribe(
        { query: LEDGER_ENTRY_ADDED, variables: { accountId, afterSequence: 0 } },
        {
          next: () => singleReplayed(),
          error: (error) => resolve(`error: ${JSON.stringify(error)}`),
          complete: () => resolve("complete"),
        },
      );
    });
    // The replayed grant: the operation runs on its stream.
    await singleUp;

    lock = await lockAccount(accountId);
    const inFlight = grantInFlight(service, accountId);
    await untilWaitingOnLock(lock);

    const exited = new Promise<number | null>((resolve) => server?.child.once("exit", resolve));
    const signalledMs = Date.now();
    server.child.kill("SIGTERM");

    // Readiness fails at once, while the mutation still waits.
    await untilAsync(async () => (await fetch(readyz)).status === 503, 2_000);
    expect(Date.now() - signalledMs).toBeLessThan(2_000);
    const refused = await fetch(server.url, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${service.token}` },
      body: JSON.stringify({ query: "{ __typename }" }),
    });
    expect(refused.status).toBe(503);
    expect(
      ((await refused.json()) as { errors: { extensions: { code: string } }[] }).errors[0]?.extensions.code,
    ).toBe("SERVICE_UNAVAILABLE");

    // Subscriptions end: the WebSocket with 1001, the SSE stream with `complete`.
    expect((await ws.waitClosed(5_000)).code).toBe(1001);
    await wsBalances.waitEnded(5_000);
    await sse.ended;
    expect(sse.events.at(-1)?.event).toBe("complete");
    expect(await singleEnded).toBe("complete");
    single.dispose();

    expect(inFlight.outcome).toEqual({});
    const releasedMs = Date.now();
    await lock.query("COMMIT");
    await inFlight.done;
    expect(inFlight.outcome.error).toBeUndefined();
    expect(inFlight.outcome.body).toMatchObject({
      status: 200,
      data: { grantCredits: { __typename: "GrantCreditsSuccess", balance: { available: 105 } } },
    });
    expect(await exited).toBe(0);
    expect(inFlight.outcome.atMs ?? 0).toBeGreaterThanOrEqual(releasedMs);
    expect(Date.now() - signalledMs).toBeLessThan(10_000);
  });

  it("exits 1 once SHUTDOWN_TIMEOUT_MS has passed with a mutation still waiting", async () => {
    const timeoutMs = 1_500;
    server = await startServerProcess({ SHUTDOWN_TIMEOUT_MS: String(timeoutMs) });
    const { service, accountId } = await accountWithOwner(server.url, 10);
    lock = await lockAccount(accountId);
    const inFlight = grantInFlight(service, accountId);
    await untilWaitingOnLock(lock);
    const exited = new Promise<number | null>((resolve) => server?.child.once("exit", resolve));
    const signalledMs = Date.now();
    server.child.kill("SIGTERM");
    expect(await exited).toBe(1);
    const elapsedMs = Date.now() - signalledMs;
    expect(elapsedMs).toBeGreaterThanOrEqual(timeoutMs - 100);
    expect(elapsedMs).toBeLessThan(timeoutMs + 2_000);
    await inFlight.done;
    expect(inFlight.outcome.error).toBeDefined();
    expect(server.logs.some((line) => line.includes("shutdown timed out"))).toBe(true);
  });
});

async function untilAsync(condition: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
