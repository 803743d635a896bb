/**
 * A subscriber that stops reading on a busy account: the server stays
 * healthy, other subscribers keep receiving promptly, the slow one is closed
 * with 1013 (Try Again Later) once its bounded queue is full, and it resumes with
 * afterSequence without losing an entry.
 */

import type { Socket } from "node:net";
import { performance } from "node:perf_hooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { REDIS_URL } from "../support/env.ts";
import { type ServerProcess, startServerProcess } from "../support/process.ts";
import { connect, type LiveClient, type LiveSubscription, until, wsUrl } from "../support/ws.ts";
import {
  Api,
  accountWithOwner,
  type Json,
  LEDGER_ENTRY_ADDED,
  latencyStats,
  range,
  reportServerErrors,
  sequencesOf,
  sleep,
  tokens,
} from "./helpers.ts";

/** The server's per-subscriber queue bound for this test (SUBSCRIBER_QUEUE_MAX), small so it fills fast. */
const QUEUE_MAX = 20;
/** Concurrent writers keeping the account busy. */
const WRITERS = 4;
/**
 * Subscriptions the slow client holds on its one socket. Each entry is sent
 * once per subscription, so the kernel's socket buffers (megabytes on
 * loopback) fill after a few dozen entries rather than thousands.
 */
const SLOW_SUBSCRIPTIONS = 10;
/** The longest title a grant may have (SPEC §5: strings ≤ 200 characters): it makes every message big. */
const TITLE = "T".repeat(200);
/** Aliases of `title` per message (the documents stay under the server's alias limit of 30). */
const TITLE_ALIASES = 25;
/** 1013 Try Again Later: a close graphql-ws clients retry (4429 would be fatal to them). */
const CLOSE_TOO_SLOW = 1013;

const SLOW_QUERY = `subscription($accountId: ID!, $afterSequence: Int) {
  ledgerEntryAdded(accountId: $accountId, afterSequence: $afterSequence) {
    sequence ${Array.from({ length: TITLE_ALIASES }, (_, index) => `t${index}: title`).join(" ")}
  }
}`;

/**
 * A graphql-transport-ws client written by hand on a raw `ws` socket, so the
 * test can stop reading from the TCP connection (as a stalled phone would).
 */
class RawSubscriber {
  readonly socket: WebSocket;
  /** Sequences received per subscription id. */
  readonly received = new Map<string, number[]>();
  closed: { code: number; reason: string } | null = null;
  private acknowledged = false;

  constructor(url: string, token: string) {
    this.socket = new WebSocket(wsUrl(url), "graphql-transport-ws");
    this.socket.on("open", () =>
      this.socket.send(
        JSON.stringify({ type: "connection_init", payload: { authorization: `Bearer ${token}` } }),
      ),
    );
    this.socket.on("message", (data) => {
      const message = JSON.parse(String(data)) as Json;
      if (message.type === "connection_ack") this.acknowledged = true;
      if (message.type === "ping") this.socket.send(JSON.stringify({ type: "pong" }));
      if (message.type === "next") {
        this.received.get(message.id)?.push(message.payload.data.ledgerEntryAdded.sequence);
      }
    });
    this.socket.on("close", (code, reason) => {
      this.closed = { code, reason: reason.toString() };
    });
  }

  async ready(): Promise<void> {
    await until(
      () => this.acknowledged,
      () => "connection_ack",
    );
  }

  subscribe(id: string, variables: Record<string, unknown>): void {
    this.received.set(id, []);
    this.socket.send(JSON.stringify({ id, type: "subscribe", payload: { query: SLOW_QUERY, variables } }));
  }

  /** Stops (or restarts) reading the TCP connection: the kernel buffers fill, then the server's writes wait. */
  private get tcp(): Socket {
    return (this.socket as unknown as { _socket: Socket })._socket;
  }

  pause(): void {
    this.tcp.pause();
  }

  resume(): void {
    this.tcp.resume();
  }
}

describe("slow consumer", () => {
  let server: ServerProcess;
  const clients: LiveClient[] = [];
  const raw: RawSubscriber[] = [];

  beforeAll(async () => {
    server = await startServerProcess({ REDIS_URL, SUBSCRIBER_QUEUE_MAX: String(QUEUE_MAX) });
  });

  afterAll(async () => {
    for (const subscriber of raw) subscriber.socket.terminate();
    await Promise.all(clients.map((client) => client.dispose()));
    await server?.stop();
    reportServerErrors({ server });
  });

  it("closes a stalled subscriber with 1013 while the server and other subscribers carry on", async () => {
    const { ownerToken, accountId } = await accountWithOwner(server.url, 0);
    // Separate service principals, so no per-principal limit slows the writers down.
    const writers = await Promise.all(
      Array.from(
        { length: WRITERS },
        async (_, index) => new Api(server.url, await tokens.sign(`writer-${index}`, "service")),
      ),
    );

    const slow = new RawSubscriber(server.url, ownerToken);
    raw.push(slow);
    await slow.ready();
    for (let index = 0; index < SLOW_SUBSCRIPTIONS; index += 1)
      slow.subscribe(String(index), { accountId, afterSequence: 0 });
    const healthy = connect(server.url, { token: ownerToken });
    clients.push(healthy);
    const prompt = healthy.subscribe<Json>(LEDGER_ENTRY_ADDED, { accountId, afterSequence: 0 });

    // Busy account: every write is timed, so the healthy subscriber's delay can be measured.
    const committedAtMs = new Map<number, number>();
    let writing = true;
    const loops = writers.map(async (api) => {
      while (writing) {
        const result = await api.grant(accountId, 1, TITLE);
        committedAtMs.set(result.balance.sequence, performance.now());
      }
    });
    const healthChecksMs: number[] = [];
    const healthLoop = (async () => {
      while (writing) {
        const startedMs = performance.now();
        const response = await fetch(server.url.replace("/graphql", "/healthz"));
        expect(response.status).toBe(200);
        healthChecksMs.push(performance.now() - startedMs);
        await sleep(100);
      }
    })();

    let got: number[] = [];
    let resumeAfter = Number.NaN;
    let rest: LiveSubscription<Json> | null = null;
    let resumed: LiveClient | null = null;
    try {
      // Read a little, then stop reading, as a client whose app froze.
      await until(
        () => (slow.received.get("0")?.length ?? 0) >= 3,
        () => "the slow client's first entries",
      );
      slow.pause();
      await until(
        () => server.logs.some((line) => line.includes("subscriber closed: too slow")),
        () => `the server to close the slow subscriber (log); ${committedAtMs.size} entries written`,
        30_000,
      );
      // Keep the account busy a little longer: the others must not notice.
      await sleep(500);

      // The slow client reads again: what was already on the wire arrives, then the close with 1013.
      slow.resume();
      await until(
        () => slow.closed !== null,
        () => "the slow client's close frame",
      );
      expect(slow.closed?.code).toBe(CLOSE_TOO_SLOW);
      resumeAfter = Number(/afterSequence: (\d+)/.exec(slow.closed?.reason ?? "")?.[1]);
      got = slow.received.get("0") ?? [];
      expect(got).toEqual(range(1, got.length));

      // It resumes from the last entry it has while writes go on: the replay must not be mistaken
      // for slowness (it leaves room in the queue for the live entries that follow it).
      resumed = connect(server.url, { token: ownerToken });
      clients.push(resumed);
      const resumedFrom = got.length;
      const headAtResume = Math.max(...committedAtMs.keys());
      const subscription = resumed.subscribe<Json>(SLOW_QUERY, { accountId, afterSequence: resumedFrom });
      rest = subscription;
      await subscription.waitFor(
        (values) => values.length >= headAtResume - resumedFrom + 20,
        "the resumed client past its replay and 20 live entries",
        20_000,
      );
    } finally {
      writing = false;
      await Promise.all([...loops, healthLoop]);
    }

    const final = Math.max(...committedAtMs.keys());
    await prompt.waitFor((values) => values.length >= final, `the healthy subscriber at ${final}`);
    expect(sequencesOf(prompt.values)).toEqual(range(1, final));
    const delays = prompt.received
      .map((r) => {
        const committed = committedAtMs.get(r.data.ledgerEntryAdded.sequence);
        return committed === undefined ? null : r.atMs - committed;
      })
      .filter((delay): delay is number => delay !== null);
    const stats = {
      healthyDelayMs: latencyStats(delays),
      healthzMs: latencyStats(healthChecksMs),
      entries: final,
      slowClientHad: got.length,
    };
    console.log(`while a subscriber stalled: ${JSON.stringify(stats)}`);
    // Generous bounds: the machine running the suite is shared and busy, so single samples can be slow;
    // a server stuck behind the stalled socket would miss these by seconds (or not answer at all).
    expect(stats.healthzMs.p50).toBeLessThan(500);
    expect(stats.healthzMs.max).toBeLessThan(3_000);
    expect(stats.healthyDelayMs.p50).toBeLessThan(500);
    expect(stats.healthyDelayMs.max).toBeLessThan(3_000);

    // Nothing is lost across the close: what the slow client had plus what it resumed with is 1..final.
    if (rest === null || resumed === null) throw new Error("unreachable");
    const resumedSubscription = rest;
    await resumedSubscription.waitFor(
      (values) => values.length >= final - got.length,
      `entries ${got.length + 1}..${final}`,
    );
    expect([...got, ...sequencesOf(resumedSubscription.values)]).toEqual(range(1, final));
    expect(resumed.closes).toEqual([]);
    // The close reason names a resume point no later than what the client really has (it only
    // counts what the server saw the socket finish sending, never what was still queued).
    expect(resumeAfter).toBeGreaterThanOrEqual(1);
    const lastOfAny = Math.max(...[...slow.received.values()].map((sequences) => sequences.length));
    expect(resumeAfter).toBeLessThanOrEqual(lastOfAny);
  });
});
