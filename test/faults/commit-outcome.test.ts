/**
 * A connection that dies while COMMIT is in flight leaves the outcome
 * unknown. The test makes that happen for real: it watches the ledger's
 * transactions (Database.transaction) and, once the work of the chosen
 * transaction has run and before COMMIT goes out, terminates its backend
 * with pg_terminate_backend from another connection, so COMMIT meets a dead
 * socket. The answer must say OUTCOME_UNKNOWN (not "nothing was written"),
 * and a retry with the same key must perform the change exactly once.
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../../src/db/database.ts";
import { Billing, type Json, localIdOf } from "../billing/ops.ts";
import { testDatabaseUrl } from "../support/env.ts";
import { unique } from "../support/harness.ts";

let billing: Billing;
let psql: pg.Client;

beforeAll(async () => {
  // No reaper: the only ledger transactions are the test's own.
  billing = await Billing.start({ reaperEnabled: false });
  psql = new pg.Client({ connectionString: testDatabaseUrl(), application_name: "test-psql" });
  await psql.connect();
});

afterAll(async () => {
  await psql?.end();
  await billing?.close();
});

/**
 * Arms a one-shot fault: the next ledger transaction that locks `accountId`
 * runs its work, then its backend is terminated (and seen gone) before the
 * transaction's COMMIT is sent. `hold` keeps the transactions of another
 * account open for a while before they commit.
 */
function cutBeforeCommit(
  db: Database,
  accountId: string,
  hold?: { accountId: string; ms: number; started: () => void },
): { fired: () => number; disarm: () => void } {
  const original = db.transaction.bind(db);
  let fired = 0;
  (db as { transaction: Database["transaction"] }).transaction = (options, work) =>
    original(options, async (tx, preludeRows) => {
      const result = await work(tx, preludeRows);
      // Holding a transaction open keeps the only lane busy, so what queues meanwhile is batched.
      if (hold !== undefined && options.prelude?.includes(hold.accountId) === true) {
        hold.started();
        await new Promise((resolve) => setTimeout(resolve, hold.ms));
      }
      if (fired === 0 && options.prelude?.includes(accountId) === true) {
        fired += 1;
        const [row] = await tx.query<{ pid: number }>("SELECT pg_backend_pid() AS pid");
        const pid = row?.pid;
        await psql.query("SELECT pg_terminate_backend($1)", [pid]);
        // COMMIT must find the socket dead, not race the termination.
        for (let seen = 1; seen > 0; ) {
          await new Promise((resolve) => setTimeout(resolve, 10));
          const { rows } = await psql.query("SELECT 1 FROM pg_stat_activity WHERE pid = $1", [pid]);
          seen = rows.length;
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      return result;
    });
  return {
    fired: () => fired,
    disarm: () => {
      (db as { transaction: Database["transaction"] }).transaction = original;
    },
  };
}

async function postSettle(key: string, generationId: string): Promise<{ status: number; body: Json }> {
  const response = await billing.server.post(billing.service, {
    query: `mutation($input: SettleGenerationInput!) {
      settleGeneration(input: $input) {
        __typename
        ... on SettleGenerationSuccess { replayed generation { id status charged } balance { available } }
      }
    }`,
    variables: { input: { idempotencyKey: key, generationId } },
  });
  return { status: response.status, body: await response.json() };
}

describe("a connection lost during COMMIT", () => {
  it("answers 503 OUTCOME_UNKNOWN, and a retry with the same key settles once", async () => {
    const accountId = await billing.account(100);
    const generation = await billing.reserveOk(accountId, { unitCost: 30 });
    const fault = cutBeforeCommit(billing.server.app.db, localIdOf(accountId));
    const key = unique("settle");
    let first: { status: number; body: Json };
    try {
      first = await postSettle(key, generation.id);
    } finally {
      fault.disarm();
    }
    expect(fault.fired()).toBe(1);
    expect(first.status).toBe(503);
    expect(first.body.errors).toHaveLength(1);
    const [error] = first.body.errors;
    expect(error.extensions.code).toBe("OUTCOME_UNKNOWN");
    expect(error.message).toMatch(/outcome is unknown/);
    expect(error.message).toMatch(/same idempotency key/);
    expect(error.message).not.toMatch(/nothing was written/);

    // The retry performs the settle (this COMMIT never reached the server) or replays it; either
    // way the generation is charged once, and a further retry replays the same answer.
    const retried = await postSettle(key, generation.id);
    expect(retried.status).toBe(200);
    const settled = retried.body.data.settleGeneration;
    expect(settled).toMatchObject({
      __typename: "SettleGenerationSuccess",
      generation: { status: "SUCCEEDED", charged: 30 },
    });
    const replayed = (await postSettle(key, generation.id)).body.data.settleGeneration;
    expect(replayed).toMatchObject({ replayed: true, generation: settled.generation });
    expect((await billing.accountState(accountId)).balance).toMatchObject({ available: 70, held: 0 });
  });

  it("hands the error to every operation of a batch instead of running it again", async () => {
    const lane = await Billing.start({ reaperEnabled: false, ledgerLanes: 1 });
    try {
      const [holder, first, second] = await Promise.all([
        lane.account(100),
        lane.account(100),
        lane.account(100),
      ]);
      const generations = await Promise.all(
        [holder, first, second].map((id) => lane.reserveOk(id, { unitCost: 30 })),
      );
      let holding = () => {};
      const held = new Promise<void>((resolve) => {
        holding = resolve;
      });
      // Long enough for two requests to reach the executor on a loaded machine.
      const fault = cutBeforeCommit(lane.server.app.db, localIdOf(first), {
        accountId: localIdOf(holder),
        ms: 2_000,
        started: () => holding(),
      });
      const keys = generations.map(() => unique("settle"));
      let answers: Json[];
      try {
        const holderAnswer = lane.settle(generations[0].id, undefined, keys[0]);
        await held;
        // Queued behind the held transaction: one batch locks both accounts.
        const batched = await Promise.all(
          [1, 2].map((i) =>
            lane.server
              .post(lane.service, {
                query: `mutation($input: SettleGenerationInput!) { settleGeneration(input: $input) { __typename } }`,
                variables: { input: { idempotencyKey: keys[i], generationId: generations[i].id } },
              })
              .then((response) => response.json()),
          ),
        );
        answers = [await holderAnswer, ...batched];
      } finally {
        fault.disarm();
      }
      expect(fault.fired()).toBe(1);
      expect(answers[0].__typename).toBe("SettleGenerationSuccess");
      expect(answers.slice(1).map((answer) => answer.errors?.[0]?.extensions?.code)).toEqual([
        "OUTCOME_UNKNOWN",
        "OUTCOME_UNKNOWN",
      ]);
      for (const i of [1, 2]) {
        expect((await lane.settle(generations[i].id, undefined, keys[i])).generation.status).toBe(
          "SUCCEEDED",
        );
      }
    } finally {
      await lane.close();
    }
  });
});
