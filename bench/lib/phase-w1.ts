/**
 * W1: webhooks (SPEC §7): ledger changes at a steady rate (one grant = one
 * `ledger_entry.added` event) through TWO instances, each running the
 * delivery worker, to a local receiver over HTTP; one instance is killed with
 * SIGKILL midway. Every event committed must reach the receiver (its
 * deliveries claimed by the killed worker come again when their lease ends),
 * and commit→delivered (the receiver's clock minus the body's `timestamp`,
 * the transaction's moment; one machine, one clock) is measured outside the
 * kill window.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { ACCOUNT_CREDITS, type BenchContext, type PhaseRecorder } from "./context.ts";
import { globalId, seedAccounts } from "./db.ts";
import { GraphQLHttpClient } from "./http.ts";
import { sleep } from "./proc.ts";
import { atMost, info, zero } from "./report.ts";
import { type ServerInstance, startServer } from "./server.ts";
import { round, summarize } from "./stats.ts";

/** SPEC §7 W1: p99 commit→delivered outside the kill window. */
const P99_MS_MAX = 1_000;
const ACCOUNTS = 500;
/** Events committed this close to the kill may wait for the killed worker's lease (30 s). */
const KILL_WINDOW_MS = 2_000;
/** How long the run waits, after the load, for the last deliveries (the lease is 30 s). */
const DRAIN_MS_MAX = 90_000;

const GRANT = `mutation W1Grant($input: GrantCreditsInput!) {
  grantCredits(input: $input) { __typename ... on Error { code message } }
}`;

interface Receiver {
  readonly url: string;
  /** Milliseconds from commit to arrival, by webhook-id (the first arrival of each). */
  readonly arrivals: Map<string, { latencyMs: number; committedAt: number }>;
  duplicates: number;
  close(): Promise<void>;
}

async function startReceiver(): Promise<Receiver> {
  const arrivals = new Map<string, { latencyMs: number; committedAt: number }>();
  const receiver = { arrivals, duplicates: 0 } as Receiver & { duplicates: number };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const now = Date.now();
      const id = String(req.headers["webhook-id"]);
      const committedAt = Date.parse(
        (JSON.parse(Buffer.concat(chunks).toString()) as { timestamp: string }).timestamp,
      );
      if (arrivals.has(id)) receiver.duplicates += 1;
      else arrivals.set(id, { latencyMs: now - committedAt, committedAt });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return Object.assign(receiver, {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/w1`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  });
}

/** Sends grants at `ratePerSecond` for `durationMs`, to the instances `targets()` names at each moment. */
async function load(
  ctx: BenchContext,
  accounts: readonly string[],
  targets: () => readonly GraphQLHttpClient[],
  ratePerSecond: number,
  durationMs: number,
): Promise<{ sent: number; ok: number; failed: number }> {
  const counts = { sent: 0, ok: 0, failed: 0 };
  const started = performance.now();
  const inFlight = new Set<Promise<void>>();
  while (performance.now() - started < durationMs) {
    const due = Math.floor(((performance.now() - started) / 1000) * ratePerSecond);
    while (counts.sent < due) {
      const n = counts.sent;
      counts.sent += 1;
      const clients = targets();
      const client = clients[n % clients.length] as GraphQLHttpClient;
      const body = {
        input: {
          idempotencyKey: `${ctx.runId}-W1-${n}`,
          accountId: accounts[n % accounts.length],
          source: "WALLET",
          amount: 1,
        },
      };
      const sending = client
        .execute<{ grantCredits: { __typename: string } }>(GRANT, body)
        .then((response) => {
          if (response.data?.grantCredits.__typename === "GrantCreditsSuccess") counts.ok += 1;
          else counts.failed += 1;
        })
        .catch(() => {
          // The killed instance's requests: their outcome is unknown, and what committed is in the outbox.
          counts.failed += 1;
        })
        .finally(() => inFlight.delete(sending));
      inFlight.add(sending);
    }
    await sleep(2);
  }
  await Promise.all(inFlight);
  return counts;
}

export async function runW1(ctx: BenchContext, record: PhaseRecorder): Promise<void> {
  const ratePerSecond = ctx.quick ? 200 : 1_000;
  const durationMs = ctx.quick ? 10_000 : 60_000;
  const uuids = await seedAccounts(ctx.db, "f1000000", ACCOUNTS, ACCOUNT_CREDITS, "W1");
  const accounts = uuids.map((id) => globalId("Account", id));
  const receiver = await startReceiver();
  await ctx.db.query(
    `INSERT INTO webhook_endpoint (url, account_id, event_types, secret, description)
     VALUES ($1, NULL, ARRAY['ledger_entry.added'], $2, 'W1')`,
    [receiver.url, `whsec_${Buffer.alloc(32, 1).toString("base64")}`],
  );
  const env = { WEBHOOK_ALLOW_PRIVATE: "true", WEBHOOK_WORKER_ENABLED: "true", REAPER_ENABLED: "false" };
  const common = { databaseUrl: ctx.databaseUrl, secret: ctx.secret, redisUrl: ctx.redisUrl, env };
  const servers: ServerInstance[] = [
    await startServer({ name: "W1-a", ...common }),
    await startServer({ name: "W1-b", ...common }),
  ];
  const [a, b] = servers as [ServerInstance, ServerInstance];
  const clientA = new GraphQLHttpClient(a.url, ctx.serviceToken, 32);
  const clientB = new GraphQLHttpClient(b.url, ctx.serviceToken, 32);
  let killedAt: number | null = null;
  try {
    const killer = sleep(durationMs / 2).then(() => {
      a.child.kill("SIGKILL");
      killedAt = Date.now();
      ctx.log(`  W1: instance a killed with SIGKILL after ${durationMs / 2000} s`);
    });
    const counts = await load(
      ctx,
      accounts,
      () => (killedAt === null ? [clientA, clientB] : [clientB]),
      ratePerSecond,
      durationMs,
    );
    await killer;
    const committed = async () =>
      (await ctx.db.query<{ event_id: string }>("SELECT DISTINCT event_id FROM webhook_delivery")).map(
        (row) => row.event_id,
      );
    const drainStarted = Date.now();
    let events = await committed();
    while (events.some((id) => !receiver.arrivals.has(id)) && Date.now() - drainStarted < DRAIN_MS_MAX) {
      await sleep(500);
      events = await committed();
    }
    const lost = events.filter((id) => !receiver.arrivals.has(id)).length;
    const kill = killedAt ?? 0;
    const outside = [...receiver.arrivals.values()]
      .filter(({ committedAt }) => Math.abs(committedAt - kill) > KILL_WINDOW_MS)
      .map(({ latencyMs }) => latencyMs)
      .sort((x, y) => x - y);
    const all = summarize(
      [...receiver.arrivals.values()].map(({ latencyMs }) => latencyMs).sort((x, y) => x - y),
    );
    const latency = summarize(outside);
    ctx.log(
      `  W1: ${counts.sent} grants sent (${counts.ok} ok, ${counts.failed} failed or cut by the kill), ${events.length} events committed, ${receiver.arrivals.size} delivered, ${lost} lost, ${receiver.duplicates} duplicates; commit→delivered p50 ${round(latency.p50)} ms, p99 ${round(latency.p99)} ms outside the kill window, max ${round(all.max)} ms overall`,
    );
    record.figure(
      zero({
        id: "W1.lost",
        label: "W1 webhook events committed but never delivered",
        value: lost,
        unit: "events",
      }),
    );
    record.figure(
      atMost(
        {
          id: "W1.p99Ms",
          label: `W1 commit→delivered p99, ${ratePerSecond.toLocaleString("en-US")} events/s, outside the kill window`,
          value: latency.p99,
          unit: "ms",
          target: `≤ ${P99_MS_MAX} ms`,
          note: `p50 ${round(latency.p50)} ms; ${outside.length} of ${receiver.arrivals.size} events outside ±${KILL_WINDOW_MS / 1000} s of the kill`,
        },
        P99_MS_MAX,
      ),
    );
    record.figure(
      info({
        id: "W1.maxMs",
        label: "W1 commit→delivered max (the killed worker's claims wait for their lease)",
        value: all.max,
        unit: "ms",
      }),
    );
    record.figure(
      info({
        id: "W1.duplicates",
        label: "W1 deliveries received twice (at least once)",
        value: receiver.duplicates,
        unit: "events",
      }),
    );
    record.details.w1 = {
      ratePerSecond,
      durationMs,
      ...counts,
      committed: events.length,
      lost,
      duplicates: receiver.duplicates,
      latency,
      all,
    };
    record.note(
      `Two instances with the delivery worker, one endpoint for every account, ${ACCOUNTS} accounts; grants (one ledger entry, one event each) at ${ratePerSecond}/s for ${durationMs / 1000} s split over both instances, all to the survivor after instance a was killed with SIGKILL at half time. Latency: receiver clock minus the body's timestamp (the transaction's moment, before commit).`,
    );
  } finally {
    clientA.close();
    clientB.close();
    for (const server of servers) await server.stop();
    await receiver.close();
  }
}
