/**
 * Crash test: a real server process under load from many concurrent clients
 * is killed with SIGKILL at random moments, several times, and started again
 * on the same port. Clients retry every request with its idempotency key
 * until they get an answer. At the end every generation is in exactly the
 * state its clients were told, each has one USAGE entry, nothing was charged
 * twice or lost, every request replays to the answer the client got, and the
 * audit is clean.
 */
import { afterAll, describe, expect, it } from "vitest";
import { connectPostgres } from "../../src/db/database.ts";
import { testDatabaseUrl } from "../support/env.ts";
import { type ServerProcess, startServerProcess } from "../support/process.ts";
import { freePort } from "../support/services.ts";
import {
  createAccounts,
  type Job,
  newLoadFigures,
  replayJournal,
  runClients,
  serviceTarget,
  verifyJournal,
} from "./load.ts";
import { sleep } from "./processes.ts";

const KILLS = Number(process.env.KILLS ?? 4);
const CLIENTS = 12;
const ACCOUNTS = 6;
const CREDITS = 1_000_000;

describe("SIGKILL under load", () => {
  let server: ServerProcess | undefined;
  const db = connectPostgres({ url: testDatabaseUrl(), poolSizeMax: 2 });

  afterAll(async () => {
    await server?.stop("SIGKILL");
    await db.close();
  });

  it(`loses and doubles nothing across ${KILLS} kills`, async () => {
    const port = await freePort();
    const env = { PORT: String(port) };
    server = await startServerProcess(env);
    const url = server.url;
    const target = await serviceTarget(() => url);
    const figures = newLoadFigures();
    const accounts = await createAccounts(target, ACCOUNTS, CREDITS, figures);

    let stopping = false;
    const load = runClients(target, accounts, CLIENTS, () => stopping, figures);
    const kills: { afterMs: number; answersBefore: number; downMs: number }[] = [];
    const started = Date.now();
    for (let kill = 0; kill < KILLS; kill += 1) {
      // Let the clients get going again, then kill at a random moment of the load.
      const answersAtRestart = figures.answers;
      const waitUntil = Date.now() + 30_000;
      while (figures.answers < answersAtRestart + 20 && Date.now() < waitUntil) await sleep(20);
      await sleep(100 + Math.random() * 900);
      const down = Date.now();
      await server.stop("SIGKILL");
      kills.push({ afterMs: down - started, answersBefore: figures.answers, downMs: 0 });
      await sleep(Math.random() * 300);
      server = await startServerProcess(env);
      expect(server.url).toBe(url);
      const last = kills.at(-1);
      if (last !== undefined) last.downMs = Date.now() - down;
    }
    // Some load on the last incarnation, then every client finishes the job it is on.
    const answersAtEnd = figures.answers;
    const endBy = Date.now() + 60_000;
    while (figures.answers < answersAtEnd + 50 && Date.now() < endBy) await sleep(20);
    stopping = true;
    const jobs: Job[] = await load;

    const report = await verifyJournal(db, jobs, accounts, CREDITS);
    expect(report.problems).toEqual([]);
    const replayProblems = await replayJournal(target, jobs, newLoadFigures());
    expect(replayProblems).toEqual([]);
    // Every kill cost the clients answers they had to retry for.
    expect(figures.retriedAttempts).toBeGreaterThanOrEqual(KILLS);
    console.log(
      `crash test: ${KILLS} SIGKILLs (${kills.map((k) => `at ${k.afterMs} ms, down ${k.downMs} ms`).join("; ")}), ` +
        `${jobs.length} jobs, ${report.generations} generations, ${figures.requests} requests, ` +
        `${figures.retriedAttempts} retried attempts ${JSON.stringify(figures.failuresByKind)}, ` +
        `${figures.replayedAfterRetry} answers replayed after a lost answer, divergences 0`,
    );
  }, 240_000);
});
