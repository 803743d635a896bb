/**
 * Redis outage under load: the load-oriented companion of
 * test/realtime/redis-outage.test.ts (which checks one account's stream
 * through a sequential outage, the log lines and /readyz). Here many clients
 * run generations on several accounts through two server processes while
 * Redis is killed and started again: every mutation still gets its answer
 * (none fails), and every subscriber on both instances ends with every entry
 * of its account exactly once, in order.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectPostgres } from "../../src/db/database.ts";
import { localIdOf } from "../billing/ops.ts";
import {
  type Json,
  LEDGER_ENTRY_ADDED,
  type RedisServer,
  range,
  sequencesOf,
  startRedis,
  tokens,
} from "../realtime/helpers.ts";
import { testDatabaseUrl } from "../support/env.ts";
import { type ServerProcess, startServerProcess } from "../support/process.ts";
import { connect, type LiveClient, type LiveSubscription } from "../support/ws.ts";
import {
  createAccounts,
  type Job,
  type LoadFigures,
  newLoadFigures,
  randomJob,
  runJob,
  serviceTarget,
  verifyJournal,
} from "./load.ts";
import { sleep } from "./processes.ts";

const ACCOUNTS = 4;
const CLIENTS = 8;
const CREDITS = 1_000_000;

describe("Redis outage under load", () => {
  let redis: RedisServer;
  let a: ServerProcess;
  let b: ServerProcess;
  const clients: LiveClient[] = [];
  const db = connectPostgres({ url: testDatabaseUrl(), poolSizeMax: 2 });

  beforeAll(async () => {
    redis = await startRedis();
    [a, b] = await Promise.all([
      startServerProcess({ REDIS_URL: redis.url }),
      startServerProcess({ REDIS_URL: redis.url }),
    ]);
  }, 120_000);

  afterAll(async () => {
    await Promise.all(clients.map((client) => client.dispose()));
    await Promise.all([a?.stop(), b?.stop()]);
    await redis?.kill();
    await db.close();
  });

  it("keeps every mutation answering and every subscriber whole", async () => {
    const urls = [a.url, b.url];
    let next = 0;
    // Each request goes to the other instance than the one before.
    const target = await serviceTarget(() => urls[next++ % 2] as string);
    const figures: LoadFigures = newLoadFigures();
    const accounts = await createAccounts(target, ACCOUNTS, CREDITS, figures);

    // One subscriber per account on each instance, from the first entry.
    const viewer = await tokens.sign("reliability-admin", "admin");
    const subscriptions: { accountId: string; on: string; live: LiveSubscription<Json> }[] = [];
    for (const [name, url] of [
      ["A", a.url],
      ["B", b.url],
    ] as const) {
      const client = connect(url, { token: viewer });
      clients.push(client);
      for (const accountId of accounts) {
        subscriptions.push({
          accountId,
          on: name,
          live: client.subscribe<Json>(LEDGER_ENTRY_ADDED, { accountId, afterSequence: 0 }),
        });
      }
    }
    // The GRANT entry (sequence 1) reaches everyone: all are listening.
    for (const { live, on, accountId } of subscriptions) {
      await live.waitFor((values) => values.length >= 1, `${on}: the first entry of ${accountId}`);
    }

    // Mutations must not fail at all here: a client that needs a retry is a failure of this test.
    let stopping = false;
    const jobs: Job[] = [];
    const load = Promise.all(
      Array.from({ length: CLIENTS }, async () => {
        while (!stopping) {
          const job = randomJob(accounts);
          jobs.push(job);
          await runJob(target, job, figures);
        }
      }),
    );
    await sleep(1_500);
    const answersBefore = figures.answers;
    await redis.kill();
    await sleep(2_000);
    const answersDuring = figures.answers - answersBefore;
    await redis.start();
    await sleep(2_000);
    stopping = true;
    await load;

    // Nothing but a keep-alive socket closed under a client (retried, harmless) may have failed.
    const failures = Object.keys(figures.failuresByKind).filter(
      (kind) => kind !== "network UND_ERR_SOCKET" && kind !== "network ECONNRESET",
    );
    expect(failures).toEqual([]);
    expect(answersDuring).toBeGreaterThan(0);
    const report = await verifyJournal(db, jobs, accounts, CREDITS);
    expect(report.problems).toEqual([]);

    // Catch-up: each subscriber ends with exactly 1..N of its account, N its final sequence.
    const finals = new Map<string, number>();
    for (const accountId of accounts) {
      const [row] = await db.query<{ sequence: number }>("SELECT sequence FROM account WHERE id = $1", [
        localIdOf(accountId),
      ]);
      finals.set(accountId, row?.sequence ?? -1);
    }
    for (const { accountId, on, live } of subscriptions) {
      const final = finals.get(accountId) ?? -1;
      await live.waitFor(
        (values) => values.length >= final,
        `${on}: entries 1..${final} of ${accountId}`,
        20_000,
      );
      await sleep(200);
      expect(sequencesOf(live.values)).toEqual(range(1, final));
    }
    const delivered = subscriptions.reduce((sum, { live }) => sum + live.values.length, 0);
    console.log(
      `redis outage under load: ${jobs.length} jobs, ${figures.requests} requests (${answersDuring} answered while Redis was down), ` +
        `none failed (${figures.retriedAttempts} socket resets retried); ${subscriptions.length} subscribers caught up on ${delivered} entries, none lost or repeated; divergences 0`,
    );
  }, 180_000);
});
