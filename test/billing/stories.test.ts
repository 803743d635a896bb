/**
 * The seed stories (user research in /work/shared/seeds) end to end over HTTP,
 * read back the way a user reads them: the generation and its ledger entries.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { unique } from "../support/harness.ts";
import { Billing, closeSql, entriesOf, type Json, waitFor } from "./ops.ts";

const entryView = (entry: Json) => ({
  type: entry.type,
  title: entry.title,
  amount: entry.amount,
  status: entry.status,
  reason: entry.reason,
  balanceBefore: entry.balanceBefore,
  balanceAfter: entry.balanceAfter,
});

describe.concurrent("seed stories", () => {
  let billing: Billing;
  beforeAll(async () => {
    billing = await Billing.start({ reaperIntervalMs: 150 });
  });
  afterAll(async () => {
    await billing.close();
    await closeSql();
  });

  it('"Quick Video" of 12 credits fails: Usage −12 (Failed) and Refund +12 (Completed) with reason and balances', async () => {
    const workspace = await billing.account(100, { kind: "WORKSPACE" });
    const { id } = await billing.reserveOk(workspace, { feature: "Quick Video", unitCost: 12 });
    const refunded = await billing.refund(id, "GENERATION_FAILED", {
      message: "AI model failed to generate content",
    });
    expect(refunded.generation.status).toBe("FAILED");
    expect(refunded.generation.ledgerEntries.map(entryView)).toEqual([
      {
        type: "USAGE",
        title: "Quick Video",
        amount: -12,
        status: "FAILED",
        reason: null,
        balanceBefore: 100,
        balanceAfter: 88,
      },
      {
        type: "REFUND",
        title: "Quick Video",
        amount: 12,
        status: "COMPLETED",
        reason: "GENERATION_FAILED",
        balanceBefore: 88,
        balanceAfter: 100,
      },
    ]);
    expect(refunded.generation.ledgerEntries[1].message).toBe("AI model failed to generate content");
    // The full amount is back on the workspace, and the balance is the sum of its entries.
    const entries = await entriesOf(workspace);
    expect(entries.reduce((sum, entry) => sum + entry.amount, 0)).toBe(100);
    expect(await billing.balance(workspace)).toMatchObject({ available: 100, held: 0 });
  });

  it("a 4-image batch with 1 failed image: charged for 3, refunded for 1", async () => {
    const accountId = await billing.account(100);
    const { id } = await billing.reserveOk(accountId, { feature: "Image x4", unitCost: 4, quantity: 4 });
    expect(await billing.balance(accountId)).toMatchObject({ available: 84, held: 16 });
    const settled = await billing.settle(id, [
      { index: 0, succeeded: true },
      { index: 1, succeeded: false, reason: "CONTENT_REJECTED", message: "Safety filter" },
      { index: 2, succeeded: true },
      { index: 3, succeeded: true },
    ]);
    expect(settled.generation).toMatchObject({ status: "PARTIALLY_SUCCEEDED", charged: 12, refunded: 4 });
    expect(settled.generation.ledgerEntries.map(entryView)).toEqual([
      {
        type: "USAGE",
        title: "Image x4",
        amount: -16,
        status: "COMPLETED",
        reason: null,
        balanceBefore: 100,
        balanceAfter: 84,
      },
      {
        type: "REFUND",
        title: "Image x4",
        amount: 4,
        status: "COMPLETED",
        reason: "CONTENT_REJECTED",
        balanceBefore: 84,
        balanceAfter: 88,
      },
    ]);
    expect(settled.balance).toMatchObject({ available: 88, held: 0 });
  });

  it("the default timeout is 150 minutes: deadline = createdAt + 9000 s", async () => {
    const accountId = await billing.account(100);
    const generation = await billing.reserveOk(accountId, { feature: "Veo video", unitCost: 30 });
    const createdAt = new Date(generation.createdAt).getTime();
    expect(new Date(generation.deadline).getTime()).toBe(createdAt + 9_000 * 1_000);
    await billing.cancel(generation.id);
  });

  it("a short timeout is refunded by the reaper with reason TIMEOUT, without anyone reporting", async () => {
    const accountId = await billing.account(100);
    const { id } = await billing.reserveOk(accountId, {
      feature: "Veo video",
      unitCost: 30,
      timeoutSeconds: 1,
    });
    const generation = await waitFor(
      async () => {
        const current = await billing.generation(id);
        return current.status === "TIMED_OUT" ? current : undefined;
      },
      15_000,
      "the reaper's refund",
    );
    expect(new Date(generation.finishedAt).getTime() - new Date(generation.deadline).getTime()).toBeLessThan(
      5_000,
    );
    expect(generation.ledgerEntries.map(entryView)).toEqual([
      {
        type: "USAGE",
        title: "Veo video",
        amount: -30,
        status: "FAILED",
        reason: null,
        balanceBefore: 100,
        balanceAfter: 70,
      },
      {
        type: "REFUND",
        title: "Veo video",
        amount: 30,
        status: "COMPLETED",
        reason: "TIMEOUT",
        balanceBefore: 70,
        balanceAfter: 100,
      },
    ]);
  });

  it("a late success after a timeout is charged nothing", async () => {
    const accountId = await billing.account(100);
    const { id } = await billing.reserveOk(accountId, {
      feature: "Quick Video",
      unitCost: 12,
      timeoutSeconds: 1,
    });
    await waitFor(
      async () => ((await billing.generation(id)).status === "TIMED_OUT" ? true : undefined),
      15_000,
      "the timeout",
    );
    const late = await billing.settle(id, [{ index: 0, succeeded: true }]);
    expect(late).toMatchObject({ __typename: "AlreadyFinalizedError", generation: { status: "TIMED_OUT" } });
    expect(await billing.generation(id)).toMatchObject({ charged: 0, refunded: 12 });
    expect(await billing.balance(accountId)).toMatchObject({ available: 100, held: 0 });
  });

  it("fail, then succeed on an automatic retry inside one generation: charged once", async () => {
    const accountId = await billing.account(100);
    // The platform retries the failed attempt itself and reports only the final outcome, twice over
    // a flaky network (the same report under the same key, then under a new key).
    const { id } = await billing.reserveOk(accountId, { feature: "Email draft", unitCost: 5 });
    const key = unique("settle");
    const delivered = await billing.settle(id, [{ index: 0, succeeded: true }], key);
    const resent = await billing.settle(id, [{ index: 0, succeeded: true }], key);
    const again = await billing.settle(id, [{ index: 0, succeeded: true }]);
    expect([delivered.replayed, resent.replayed, again.replayed]).toEqual([false, true, false]);
    // A failure of the first attempt reported late changes nothing.
    const lateFailure = await billing.settle(id, [{ index: 0, succeeded: false, reason: "PROVIDER_ERROR" }]);
    expect(lateFailure.__typename).toBe("AlreadyFinalizedError");
    expect(await billing.generation(id)).toMatchObject({ status: "SUCCEEDED", charged: 5, refunded: 0 });
    expect(await billing.balance(accountId)).toMatchObject({ available: 95, held: 0 });
  });

  it("fail, then succeed as a new generation: the failed one refunded, the retry charged, once in total", async () => {
    const accountId = await billing.account(100);
    const failed = await billing.reserveOk(accountId, { feature: "Email draft", unitCost: 5 });
    await billing.settle(failed.id, [{ index: 0, succeeded: false, reason: "SERVICE_UNAVAILABLE" }]);
    const retry = await billing.reserveOk(accountId, { feature: "Email draft", unitCost: 5 });
    await billing.settle(retry.id);
    // A success for the refunded attempt, reported late, changes nothing.
    expect((await billing.settle(failed.id)).__typename).toBe("AlreadyFinalizedError");
    const entries = await entriesOf(accountId);
    expect(entries.map((entry) => [entry.type, entry.amount])).toEqual([
      ["GRANT", 100],
      ["USAGE", -5],
      ["REFUND", 5],
      ["USAGE", -5],
    ]);
    expect(await billing.balance(accountId)).toMatchObject({ available: 95, held: 0 });
  });

  it("output removed from a board stays charged", async () => {
    const accountId = await billing.account(100);
    const board = await billing.server.gql(
      billing.service,
      `mutation($input: CreateBoardInput!) { createBoard(input: $input) { __typename ... on CreateBoardSuccess { board { id } } } }`,
      { input: { accountId, name: "Moodboard" } },
    );
    const boardId = board.data?.createBoard.board?.id;
    if (boardId === undefined) throw new Error(JSON.stringify(board));
    const { id } = await billing.reserveOk(accountId, { feature: "Image", unitCost: 8 });
    await billing.settle(id);
    const added = await billing.server.gql(
      billing.service,
      `mutation($input: BoardItemInput!) { addToBoard(input: $input) { __typename } }`,
      { input: { boardId, generationId: id } },
    );
    expect(added.data?.addToBoard.__typename).toBe("AddToBoardSuccess");
    const removed = await billing.server.gql(
      billing.service,
      `mutation($input: BoardItemInput!) { removeFromBoard(input: $input) { __typename } }`,
      { input: { boardId, generationId: id } },
    );
    expect(removed.data?.removeFromBoard.__typename).toBe("RemoveFromBoardSuccess");
    expect(await billing.generation(id)).toMatchObject({ charged: 8, refunded: 0 });
    expect(await billing.balance(accountId)).toMatchObject({ available: 92, held: 0, sequence: 2 });
  });
});
