/**
 * M1: the resident memory of ONE server instance holding 10,000 idle
 * graphql-ws subscribers (SPEC §7), 5 per account on 2,000 accounts, each
 * its own WebSocket as a dashboard's would be. Every subscription is proved
 * live by one entry (a primer reserve per account); then nothing changes
 * for a few seconds, and the instance's RSS is read.
 */
import type { SubscribersConfig } from "../subscribers.ts";
import { ACCOUNT_CREDITS, type BenchContext, type PhaseRecorder, UNIT_COST } from "./context.ts";
import { globalId, seedAccounts } from "./db.ts";
import { GraphQLHttpClient, mapLimit } from "./http.ts";
import { sleep, waitExit } from "./proc.ts";
import { atMost, info } from "./report.ts";
import { sampleRss, startServer } from "./server.ts";
import { round } from "./stats.ts";
import { PRIMER, type SubscriberProcess, spawnSubscribers, waitFor } from "./subscriber-procs.ts";

/** SPEC §7 M1: the RSS ceiling of one instance with 10,000 idle subscribers. */
const RSS_MB_MAX = 300;
const PER_ACCOUNT = 5;
/** Subscriber processes (the client side's CPU, not the server's, is what they spread). */
const PROCESSES = 2;
/** How long the subscribers sit idle before the reading. */
const IDLE_MS = 5_000;

export async function runM1(ctx: BenchContext, record: PhaseRecorder): Promise<void> {
  const total = ctx.sizes.m1Subscribers;
  const uuids = await seedAccounts(ctx.db, "e1000000", total / PER_ACCOUNT, ACCOUNT_CREDITS, "M1");
  const accounts = uuids.map((id) => globalId("Account", id));
  const server = await startServer({
    name: "M1",
    databaseUrl: ctx.databaseUrl,
    secret: ctx.secret,
    redisUrl: ctx.redisUrl,
    // Room for the primer client beside the 10,000 sockets (the default cap is 10,000).
    env: { MAX_CONNECTIONS: String(total + 1_000) },
  });
  const procs: SubscriberProcess[] = [];
  try {
    const startRss = server.rssMb() ?? 0;
    const lists: SubscribersConfig["subscriptions"][number][][] = Array.from({ length: PROCESSES }, () => []);
    const tokens = await Promise.all(accounts.map((_, i) => ctx.dashboardToken(i)));
    accounts.forEach((accountId, i) => {
      for (let j = 0; j < PER_ACCOUNT; j += 1) {
        lists[(i * PER_ACCOUNT + j) % PROCESSES]?.push({
          accountId,
          accountIndex: i,
          afterSequence: 1,
          token: tokens[i],
        });
      }
    });
    lists.forEach((subscriptions, k) => {
      procs.push(
        spawnSubscribers(ctx, `M1-subscribers-${k}`, {
          wsUrl: server.wsUrl,
          token: ctx.serviceToken,
          subscriptions,
          resultPath: `${ctx.workDir}/M1-subscribers-${k}.result.json`,
        }),
      );
    });
    const connectStarted = performance.now();
    await waitFor(procs, "every socket to subscribe", (s) => s.subscribed + s.dead >= s.total, 300_000);
    const connectSeconds = (performance.now() - connectStarted) / 1000;
    const client = new GraphQLHttpClient(server.url, ctx.serviceToken, 16);
    await mapLimit(accounts, 16, async (accountId, i) => {
      const response = await client.execute<{ reserveGeneration: { __typename: string } }>(PRIMER, {
        input: {
          idempotencyKey: `${ctx.runId}-M1-primer-${i}`,
          accountId,
          feature: "Bench",
          unitCost: UNIT_COST,
          quantity: 1,
        },
      });
      if (response.data?.reserveGeneration.__typename !== "ReserveGenerationSuccess") {
        throw new Error(`M1 primer reserve failed: ${JSON.stringify(response)}`);
      }
    });
    client.close();
    await waitFor(
      procs,
      "every subscriber to receive its primer entry",
      (s) => s.live + s.dead >= s.total,
      180_000,
    );
    const dead = procs.reduce((sum, proc) => sum + (proc.status?.dead ?? 0), 0);
    const rss = sampleRss([server], 250);
    await sleep(IDLE_MS);
    const [idleRss = 0] = rss.stop();
    const perSubscriberKb = ((idleRss - startRss) * 1024) / total;
    ctx.log(
      `  ${total} subscribers live after ${round(connectSeconds)} s; RSS ${round(startRss)} MB started → ${round(idleRss)} MB (${round(perSubscriberKb)} KB a subscriber)`,
    );
    record.figure(
      atMost(
        {
          id: "M1.rssMb",
          label: `M1 server RSS with ${total.toLocaleString("en-US")} idle subscribers on ONE instance`,
          value: idleRss,
          unit: "MB",
          target: `≤ ${RSS_MB_MAX} MB`,
          note: `${round(startRss)} MB just started; ${round(perSubscriberKb)} KB a subscriber; ${dead} subscriptions ended early`,
        },
        RSS_MB_MAX,
      ),
    );
    record.figure(
      info({ id: "M1.perSubscriberKb", label: "M1 memory a subscriber", value: perSubscriberKb, unit: "KB" }),
    );
    record.details.m1 = { total, startRss, idleRss, perSubscriberKb, dead, connectSeconds };
    record.note(
      `One instance, ${total} WebSockets (graphql-transport-ws) from ${PROCESSES} client processes, ${PER_ACCOUNT} per account on ${accounts.length} accounts, each subscribed to ledgerEntryAdded(accountId, afterSequence: 1); one reserve per account proved every subscription live; RSS is the largest reading over the next ${IDLE_MS / 1000} s of no changes.`,
    );
    for (const proc of procs) proc.child.send({ type: "finish" });
    await Promise.all(procs.map((proc) => waitExit(proc.child, 60_000, "subscriber process")));
  } finally {
    for (const proc of procs) if (proc.child.exitCode === null) proc.child.kill("SIGKILL");
    await server.stop();
  }
}
