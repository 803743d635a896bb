import { print } from "graphql";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GrantCreditsDocument } from "../../src/generated/graphql/graphql.ts";
import { TokenService } from "../../src/server/auth.ts";
import { TEST_SECRET } from "../support/env.ts";
import { createAccount } from "../support/fixtures.ts";
import { startServer, type TestServer, unique } from "../support/harness.ts";
import { type ServerProcess, startServerProcess } from "../support/process.ts";
import { type Receiver, startReceiver } from "./receiver.ts";
import { createEndpoint, deliveriesOf, eventually } from "./support.ts";

/**
 * The outbox survives a SIGKILL (SPEC §8.4: "a crash loses none"): an event
 * committed by a server process that is killed before it delivers it, or
 * while its attempt is in flight, is delivered after a restart by another
 * process, with the same webhook-id. PostgreSQL only: it runs server
 * processes on one database.
 */
describe("webhooks across a SIGKILL", () => {
  let api: TestServer;
  let service: string;
  const processes: ServerProcess[] = [];
  const receivers: Receiver[] = [];
  const endpoints: string[] = [];
  const env = { WEBHOOK_ALLOW_PRIVATE: "true", WEBHOOK_RETRY_BASE_MS: "50" };

  beforeAll(async () => {
    // The in-process server only makes accounts and endpoints; the ledger change goes through a process.
    api = await startServer({ webhookAllowPrivate: true });
    service = await api.token("platform", "service");
  });
  afterAll(async () => {
    await stopAll();
    for (const receiver of receivers) await receiver.close();
    for (const id of endpoints) await api.app.db.query("DELETE FROM webhook_endpoint WHERE id = $1", [id]);
    await api?.close();
  });

  /** Kills every process still running (a killed one has a signalCode and is left alone). */
  const stopAll = async () => {
    for (const child of processes.splice(0)) {
      if (child.child.exitCode === null && child.child.signalCode === null) await child.stop("SIGKILL");
    }
  };

  const setUp = async (script: number[]) => {
    const receiver = await startReceiver(script);
    receivers.push(receiver);
    const account = await createAccount(api, service);
    const { endpoint } = await createEndpoint(api, service, {
      url: receiver.url,
      accountId: account.id,
      eventTypes: ["LEDGER_ENTRY_ADDED"],
    });
    const [, localId] = Buffer.from(endpoint.id, "base64").toString().split(":");
    endpoints.push(localId ?? "");
    return { receiver, account, endpoint };
  };
  const start = async (extra: Record<string, string>) => {
    const child = await startServerProcess({ ...env, ...extra });
    processes.push(child);
    return child;
  };
  /** Grants credits through a server process: the commit happens there. */
  const grantThrough = async (child: ServerProcess, accountId: string) => {
    const token = await new TokenService(TEST_SECRET).sign("platform", "service");
    const response = await fetch(child.url, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body: JSON.stringify({
        query: print(GrantCreditsDocument),
        variables: { input: { idempotencyKey: unique("grant"), accountId, source: "WALLET", amount: 10 } },
      }),
    });
    const body = (await response.json()) as { data?: { grantCredits?: { __typename?: string } } };
    expect(body.data?.grantCredits?.__typename).toBe("GrantCreditsSuccess");
  };

  it("delivers after a restart what a killed process committed but never sent", async () => {
    const { receiver, account, endpoint } = await setUp([]);
    const first = await start({ WEBHOOK_WORKER_ENABLED: "false" });
    await grantThrough(first, account.id);
    // Committed with the grant, before the kill.
    const [committed] = await deliveriesOf(api, service, endpoint.id);
    expect(committed?.eventId).toMatch(/^msg_/);
    await first.stop("SIGKILL");
    await start({ WEBHOOK_WORKER_ENABLED: "true" });
    const [request] = await receiver.waitFor(1, 30_000);
    expect(request?.headers["webhook-id"]).toBe(committed?.eventId);
    await eventually(
      () => deliveriesOf(api, service, endpoint.id),
      (rows) => rows.length === 1 && rows[0]?.status === "SUCCEEDED",
    );
    await stopAll();
    // Two server processes start in this test: on a busy machine that alone can take most of a minute.
  }, 180_000);

  it("delivers again, with the same webhook-id, an attempt cut off by a kill", async () => {
    // The first request is held unanswered: the process is killed with its attempt in flight.
    // No other worker runs: only the killed one can have claimed the delivery.
    await stopAll();
    const { receiver, account, endpoint } = await setUp([0]);
    const first = await start({ WEBHOOK_WORKER_ENABLED: "true" });
    await grantThrough(first, account.id);
    const [cut] = await receiver.waitFor(1, 30_000);
    await first.stop("SIGKILL");
    await start({ WEBHOOK_WORKER_ENABLED: "true" });
    // The claim's lease (30 s) has to end before another worker may take the delivery.
    const [, again] = await receiver.waitFor(2, 60_000);
    expect(again?.headers["webhook-id"]).toBe(cut?.headers["webhook-id"]);
    expect(again?.body).toBe(cut?.body);
    const [delivery] = await eventually(
      () => deliveriesOf(api, service, endpoint.id),
      (rows) => rows[0]?.status === "SUCCEEDED",
    );
    // The cut attempt was never recorded: the one that succeeded is the first on record. (2 when a
    // worker of another test file running meanwhile claimed it first, timed out and retried.)
    expect([1, 2]).toContain(delivery?.attempts);
  }, 180_000);
});
