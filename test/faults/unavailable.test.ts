/**
 * A connection cut under a read answers 503 SERVICE_UNAVAILABLE, whichever
 * layer made the read (Prisma under a query field, an error member, a
 * replayed answer). Reproduced as an outage does it: a table is locked from
 * another session, the service's backend waits for it, and that backend is
 * terminated with pg_terminate_backend. The database is the test's own, so
 * the lock stalls no other test file.
 */
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Billing, type Json } from "../billing/ops.ts";
import { unique } from "../support/harness.ts";
import { createOwnDatabase, type OwnDatabase, terminateLockWaiters } from "../support/own-database.ts";

let own: OwnDatabase;
let billing: Billing;
let psql: pg.Client;

beforeAll(async () => {
  own = await createOwnDatabase("creditbook_faults_read");
  billing = await Billing.start({ databaseUrl: own.url });
  psql = await own.client();
});

afterAll(async () => {
  await billing?.close();
  if (own !== undefined) {
    expect(await own.auditProblems()).toEqual([]);
    await own.drop();
  }
});

/**
 * Sends a request while `table` is locked ACCESS EXCLUSIVE, terminates the
 * service's backend waiting for it, and returns the HTTP status and body.
 */
async function answerWhenCut(
  table: string,
  query: string,
  variables: Record<string, unknown>,
): Promise<{ status: number; body: Json }> {
  const locker = await own.client();
  await locker.query("BEGIN");
  await locker.query(`LOCK TABLE ${table} IN ACCESS EXCLUSIVE MODE`);
  try {
    const answer = billing.server.post(billing.service, { query, variables });
    expect(await terminateLockWaiters(psql, own.name)).toBeGreaterThan(0);
    const response = await answer;
    return { status: response.status, body: await response.json() };
  } finally {
    await locker.query("ROLLBACK");
  }
}

function expectUnavailable(answer: { status: number; body: Json }): void {
  expect(answer.body.errors?.map((error: Json) => error.extensions?.code)).toEqual(["SERVICE_UNAVAILABLE"]);
  expect(answer.status).toBe(503);
}

const SETTLE_WITH_BOARD = `mutation($input: SettleGenerationInput!) {
  settleGeneration(input: $input) {
    __typename
    ... on SettleGenerationSuccess { replayed generation { id status board { id } } }
    ... on AlreadyFinalizedError { generation { id status board { id } } }
  }
}`;

const REFUND_WITH_BOARD = `mutation($input: RefundGenerationInput!) {
  refundGeneration(input: $input) {
    __typename
    ... on AlreadyFinalizedError { generation { id status board { id } } }
  }
}`;

/** A settled generation on a board; returns its id. */
async function settledOnBoard(settleKey: string): Promise<string> {
  const accountId = await billing.account(1_000);
  const created = await billing.call(
    billing.service,
    `mutation($input: CreateBoardInput!) { createBoard(input: $input) { ... on CreateBoardSuccess { board { id } } } }`,
    { input: { accountId, name: "Faults" } },
  );
  const boardId = created.data.createBoard.board.id;
  const reserved = await billing.call(
    billing.service,
    `mutation($input: ReserveGenerationInput!) {
      reserveGeneration(input: $input) { ... on ReserveGenerationSuccess { generation { id } } }
    }`,
    { input: { idempotencyKey: unique("reserve"), accountId, feature: "Image", unitCost: 10, boardId } },
  );
  const generationId = reserved.data.reserveGeneration.generation.id;
  const settled = await billing.call(billing.service, SETTLE_WITH_BOARD, {
    input: { idempotencyKey: settleKey, generationId },
  });
  expect(settled.data.settleGeneration.__typename).toBe("SettleGenerationSuccess");
  return generationId;
}

describe("a connection cut under a read", () => {
  it("answers 503 SERVICE_UNAVAILABLE for a query field read through Prisma", async () => {
    const generationId = (await billing.reserveOk(await billing.account(100))).id;
    const answer = await answerWhenCut(
      "generation",
      "query($id: ID!) { generation(id: $id) { id status } }",
      {
        id: generationId,
      },
    );
    expectUnavailable(answer);
    // The service recovers at once: the pool replaced the terminated connection.
    expect((await billing.generation(generationId)).status).toBe("IN_PROGRESS");
  });

  it("answers 503 for AlreadyFinalizedError.generation", async () => {
    const generationId = await settledOnBoard(unique("settle"));
    // A refund after the settle: an item's first terminal outcome wins.
    const answer = await answerWhenCut("board_item", REFUND_WITH_BOARD, {
      input: { idempotencyKey: unique("refund"), generationId, reason: "GENERATION_FAILED" },
    });
    expectUnavailable(answer);
  });

  it("answers 503 for a replayed answer's generation", async () => {
    const key = unique("settle");
    const generationId = await settledOnBoard(key);
    const answer = await answerWhenCut("board_item", SETTLE_WITH_BOARD, {
      input: { idempotencyKey: key, generationId },
    });
    expectUnavailable(answer);
    const replayed = await billing.call(billing.service, SETTLE_WITH_BOARD, {
      input: { idempotencyKey: key, generationId },
    });
    expect(replayed.data.settleGeneration).toMatchObject({
      replayed: true,
      generation: { status: "SUCCEEDED" },
    });
  });
});
