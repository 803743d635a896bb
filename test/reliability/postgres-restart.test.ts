/**
 * PostgreSQL goes away mid-load. A dedicated cluster (its own port and data
 * directory, so no other test is disturbed) serves one server process while
 * clients run generations; it is stopped cleanly (`-m fast`) and later
 * crashed (`-m immediate`, recovery from WAL), each time for a second or
 * more. While it is down clients get errors, never a wrong or partial
 * answer; `/readyz` says 503; when it is back the service recovers by itself
 * (no restart), `/readyz` says 200, every request replays to the answer its
 * client got, and the ledger matches the journal and passes the audit.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectPostgres, type Database } from "../../src/db/database.ts";
import { auditLedger } from "../../src/domain/audit.ts";
import { type ServerProcess, startServerProcess } from "../support/process.ts";
import {
  createAccounts,
  type Job,
  type LoadFigures,
  newLoadFigures,
  replayJournal,
  runClients,
  serviceTarget,
  verifyJournal,
} from "./load.ts";
import { type PostgresCluster, sleep, startPostgresCluster } from "./processes.ts";

const CLIENTS = 8;
const ACCOUNTS = 4;
const CREDITS = 1_000_000;
/** How long each outage lasts: long enough for /readyz to be seen failing. */
const OUTAGE_MS = 1_500;

interface Probe {
  readonly sentMs: number;
  readonly atMs: number;
  /** The HTTP status, or 0 when no answer came within 5 s. */
  readonly status: number;
}

describe("PostgreSQL restart mid-load", () => {
  let cluster: PostgresCluster | undefined;
  let server: ServerProcess | undefined;
  let db: Database | undefined;

  beforeAll(async () => {
    cluster = await startPostgresCluster();
  }, 120_000);

  afterAll(async () => {
    await server?.stop("SIGKILL");
    await db?.close();
    await cluster?.destroy();
  }, 60_000);

  it("answers with errors while it is down, recovers by itself, and loses nothing", async () => {
    if (cluster === undefined) throw new Error("no cluster");
    const pgCluster = cluster;
    server = await startServerProcess({ DATABASE_URL: pgCluster.url, LOG_LEVEL: "info" });
    const url = server.url;
    const readyz = url.replace("/graphql", "/readyz");
    const target = await serviceTarget(() => url);
    const figures = newLoadFigures();
    const accounts = await createAccounts(target, ACCOUNTS, CREDITS, figures);

    // /readyz every 100 ms for the whole test.
    const probes: Probe[] = [];
    let probing = true;
    const prober = (async () => {
      while (probing) {
        const sentMs = Date.now();
        const status = await fetch(readyz, { signal: AbortSignal.timeout(5_000) })
          .then((response) => response.status)
          .catch(() => 0);
        probes.push({ sentMs, atMs: Date.now(), status });
        await sleep(100);
      }
    })();

    let stopping = false;
    const load = runClients(target, accounts, CLIENTS, () => stopping, figures);
    /** Each outage: from the moment PostgreSQL is down (stop returned) to the moment it is started again. */
    const outages: { mode: string; downMs: number; upMs: number; duringFailures: number }[] = [];
    const alive = () => {
      // An exited process cannot recover by itself: fail at once, with how it died.
      if (server?.child.exitCode !== null) {
        stopping = true;
        throw new Error(
          `the server process exited (${server?.child.exitCode}) when PostgreSQL went away ` +
            "(docs/RELIABILITY.md, findings: a checked-out pg client has no 'error' listener):\n" +
            `${server?.logs
              .filter((line) => !line.includes('"msg":"operation"'))
              .slice(-25)
              .join("\n")}`,
        );
      }
    };
    for (const mode of ["fast", "immediate"] as const) {
      await untilMoreAnswers(figures, 30, alive);
      const failuresBefore = figures.retriedAttempts;
      await pgCluster.stop(mode);
      const downMs = Date.now();
      await sleep(OUTAGE_MS);
      const upMs = Date.now();
      await pgCluster.start();
      outages.push({ mode, downMs, upMs, duringFailures: figures.retriedAttempts - failuresBefore });
      // The service comes back by itself: answers flow again with no restart of the process.
      await untilMoreAnswers(figures, 30, alive);
    }
    stopping = true;
    const jobs: Job[] = await load;
    // Ready again, and it stays ready.
    await untilReady(readyz);
    probing = false;
    await prober;

    db = connectPostgres({ url: pgCluster.url, poolSizeMax: 2 });
    const report = await verifyJournal(db, jobs, accounts, CREDITS);
    expect(report.problems).toEqual([]);
    const whole = await auditLedger(db, null);
    expect(whole.problems).toEqual([]);
    expect(await replayJournal(target, jobs, newLoadFigures())).toEqual([]);

    for (const outage of outages) {
      // Clients saw the outage as errors (then retried), and /readyz said so while it lasted.
      expect(outage.duringFailures).toBeGreaterThan(0);
      const during = probes.filter((probe) => probe.sentMs >= outage.downMs && probe.atMs <= outage.upMs);
      expect(during.some((probe) => probe.status === 503)).toBe(true);
      expect(during.filter((probe) => probe.status === 200)).toEqual([]);
    }
    expect(probes.at(-1)?.status).toBe(200);
    expect(server.child.exitCode).toBeNull();
    // An outage reads as one: "retry with the same key" (503, SERVICE_UNAVAILABLE), never as a bug.
    const kinds = Object.keys(figures.failuresByKind);
    expect(kinds).toContain("HTTP 503 GraphQL error SERVICE_UNAVAILABLE");
    expect(kinds.filter((kind) => kind.includes("INTERNAL_SERVER_ERROR"))).toEqual([]);
    console.log(
      `postgres restart: ${outages.map((o) => `${o.mode} stop, down ${o.upMs - o.downMs} ms (${o.duringFailures} failed attempts)`).join("; ")}; ` +
        `${jobs.length} jobs, ${report.generations} generations, ${figures.requests} requests, ` +
        `failures ${JSON.stringify(figures.failuresByKind)}, ${figures.replayedAfterRetry} answers replayed after a failed attempt, ` +
        `/readyz: ${probes.filter((p) => p.status === 503).length} × 503, ${probes.filter((p) => p.status === 200).length} × 200; divergences 0`,
    );
  }, 240_000);
});

async function untilMoreAnswers(figures: LoadFigures, more: number, alive: () => void): Promise<void> {
  const target = figures.answers + more;
  const deadline = Date.now() + 60_000;
  while (figures.answers < target) {
    alive();
    if (Date.now() > deadline)
      throw new Error(`no ${more} more answers within 60 s: ${JSON.stringify(figures)}`);
    await sleep(20);
  }
}

async function untilReady(readyz: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const status = await fetch(readyz)
      .then((response) => response.status)
      .catch(() => 0);
    if (status === 200) return;
    if (Date.now() > deadline) throw new Error(`/readyz still ${status} 30 s after PostgreSQL came back`);
    await sleep(100);
  }
}
