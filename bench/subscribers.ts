/**
 * WebSocket subscriber process, run by bench/run.ts for B3/B3b:
 *
 *   node --import tsx bench/subscribers.ts <config.json>     (with an IPC channel)
 *
 * Opens one WebSocket per subscriber (as a dashboard would) speaking the raw
 * `graphql-transport-ws` protocol, subscribes each to
 * `ledgerEntryAdded(accountId, afterSequence)`, and records every entry it
 * receives: sequence, the entry's createdAt and the receive time. With
 * afterSequence the server replays anything older first, so every
 * subscriber must see every sequence after it exactly once: the
 * orchestrator checks that from the recorded sequences.
 *
 * IPC: sends { type: "status", … } every 250 ms; on { type: "finish" } writes
 * the recordings to config.resultPath, closes its sockets and exits.
 */
import { readFileSync, writeFileSync } from "node:fs";
import WebSocket from "ws";
import { nowMs } from "./lib/stats.ts";

export interface SubscribersConfig {
  readonly wsUrl: string;
  readonly token: string;
  readonly subscriptions: readonly {
    /** Account global id. */
    readonly accountId: string;
    /** Index of the account in the orchestrator's list (echoed in results). */
    readonly accountIndex: number;
    readonly afterSequence: number;
    /** This subscriber's bearer token. @default config.token */
    readonly token?: string;
  }[];
  /** Sockets opening at once. @default 100 */
  readonly connectConcurrency?: number;
  readonly resultPath: string;
}

export interface SubscriberStatus {
  readonly type: "status";
  readonly total: number;
  readonly connected: number;
  readonly subscribed: number;
  /** Subscribers that have received at least one entry. */
  readonly live: number;
  readonly received: number;
  readonly errors: number;
  readonly closedUnexpectedly: number;
  /** Subscribers whose subscription ended (error, complete, socket closed) before the run finished. */
  readonly dead: number;
  /** A few error messages, for the report. */
  readonly samples: string[];
}

export interface SubscriberRecording {
  /** Account index. */
  readonly a: number;
  readonly afterSequence: number;
  /** Sequences in arrival order. */
  readonly s: number[];
  /** Receive times (wall-clock ms, sub-ms resolution). */
  readonly r: number[];
  /** The entries' createdAt (ms). */
  readonly c: number[];
}

export interface SubscribersResult {
  readonly recordings: SubscriberRecording[];
  readonly errors: number;
  readonly dead: number;
  readonly closedUnexpectedly: number;
  readonly samples: string[];
}

const QUERY = `subscription BenchEntries($accountId: ID!, $afterSequence: Int) {
  ledgerEntryAdded(accountId: $accountId, afterSequence: $afterSequence) { sequence createdAt }
}`;

interface Message {
  type: string;
  id?: string;
  payload?: {
    data?: { ledgerEntryAdded?: { sequence: number; createdAt: string } } | null;
    errors?: { message: string }[];
  } & { message?: string };
}

async function main(): Promise<void> {
  const path = process.argv[2];
  if (path === undefined || process.send === undefined) {
    throw new Error("usage: subscribers.ts <config.json> (started with an IPC channel)");
  }
  const config = JSON.parse(readFileSync(path, "utf8")) as SubscribersConfig;
  const recordings: SubscriberRecording[] = config.subscriptions.map((sub) => ({
    a: sub.accountIndex,
    afterSequence: sub.afterSequence,
    s: [],
    r: [],
    c: [],
  }));
  const sockets: WebSocket[] = [];
  const samples: string[] = [];
  let connected = 0;
  let subscribed = 0;
  let live = 0;
  let received = 0;
  let errors = 0;
  let closedUnexpectedly = 0;
  let dead = 0;
  let finishing = false;
  const note = (text: string) => {
    if (samples.length < 10) samples.push(text.slice(0, 300));
  };

  const open = (index: number): Promise<void> =>
    new Promise((resolve) => {
      const sub = config.subscriptions[index];
      const recording = recordings[index];
      if (sub === undefined || recording === undefined) return resolve();
      const socket = new WebSocket(config.wsUrl, "graphql-transport-ws", { perMessageDeflate: false });
      sockets.push(socket);
      let settled = false;
      let ended = false;
      const end = () => {
        if (!ended && !finishing) {
          ended = true;
          dead += 1;
        }
      };
      const done = () => {
        if (!settled) {
          settled = true;
          resolve();
        }
      };
      socket.on("open", () => {
        socket.send(
          JSON.stringify({
            type: "connection_init",
            payload: { authorization: `Bearer ${sub.token ?? config.token}` },
          }),
        );
      });
      socket.on("message", (raw: Buffer) => {
        const message = JSON.parse(raw.toString()) as Message;
        switch (message.type) {
          case "next": {
            const entry = message.payload?.data?.ledgerEntryAdded;
            if (entry == null) {
              errors += 1;
              note(`next without data: ${JSON.stringify(message.payload?.errors ?? message.payload)}`);
              return;
            }
            const at = nowMs();
            if (recording.s.length === 0) live += 1;
            recording.s.push(entry.sequence);
            recording.r.push(at);
            recording.c.push(Date.parse(entry.createdAt));
            received += 1;
            return;
          }
          case "connection_ack":
            connected += 1;
            socket.send(
              JSON.stringify({
                id: "1",
                type: "subscribe",
                payload: {
                  query: QUERY,
                  variables: { accountId: sub.accountId, afterSequence: sub.afterSequence },
                },
              }),
            );
            subscribed += 1;
            done();
            return;
          case "ping":
            socket.send(JSON.stringify({ type: "pong" }));
            return;
          case "error":
            errors += 1;
            end();
            note(`error: ${JSON.stringify(message.payload)}`);
            return;
          case "complete":
            errors += 1;
            end();
            note("the server completed a subscription");
            return;
          default:
            return;
        }
      });
      socket.on("error", (error) => {
        errors += 1;
        end();
        note(`socket error: ${error.message}`);
        done();
      });
      socket.on("close", (code, reason) => {
        if (!finishing) {
          closedUnexpectedly += 1;
          end();
          note(`closed ${code} ${reason.toString()}`);
        }
        done();
      });
    });

  const report = () =>
    process.send?.({
      type: "status",
      total: config.subscriptions.length,
      connected,
      subscribed,
      live,
      received,
      errors,
      closedUnexpectedly,
      dead,
      samples,
    } satisfies SubscriberStatus);
  const timer = setInterval(report, 250);

  process.on("message", (message: { type?: string }) => {
    if (message.type !== "finish") return;
    finishing = true;
    clearInterval(timer);
    const result: SubscribersResult = { recordings, errors, dead, closedUnexpectedly, samples };
    writeFileSync(config.resultPath, JSON.stringify(result));
    for (const socket of sockets) socket.terminate();
    process.exit(0);
  });
  // The orchestrator going away must not leave sockets open.
  process.on("disconnect", () => process.exit(0));

  const concurrency = config.connectConcurrency ?? 100;
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, config.subscriptions.length) }, async () => {
      while (next < config.subscriptions.length) {
        const index = next;
        next += 1;
        await open(index);
      }
    }),
  );
  report();
}

main().catch((error: unknown) => {
  process.stderr.write(`subscribers: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
