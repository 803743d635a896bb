import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REQUEST_BODY_BYTES_MAX } from "../../src/server/hardening.ts";
import { dataOf, unique } from "../support/harness.ts";
import { auditAccount, BALANCE_FIELDS, Billing, closeSql, type Json, localIdOf, sql, tally } from "./ops.ts";

/**
 * reserveGenerations / settleGenerations (SPEC §8.7) over real HTTP: each
 * item answers as its single mutation would, in input order, on its own.
 */

const ITEM_ERRORS = `... on Error { code message } ... on InvalidInputError { field }`;

const RESERVE_MANY = `mutation ReserveMany($input: ReserveGenerationsInput!) {
  reserveGenerations(input: $input) {
    __typename
    ... on ReserveGenerationsSuccess {
      results {
        __typename
        ... on ReserveGenerationSuccess { generation { id status reserved createdAt } balance { ${BALANCE_FIELDS} } replayed }
        ... on InsufficientCreditsError { available required }
        ${ITEM_ERRORS}
      }
    }
    ${ITEM_ERRORS}
  }
}`;

const SETTLE_MANY = `mutation SettleMany($input: SettleGenerationsInput!) {
  settleGenerations(input: $input) {
    __typename
    ... on SettleGenerationsSuccess {
      results {
        __typename
        ... on SettleGenerationSuccess { generation { id status charged released } balance { ${BALANCE_FIELDS} } replayed }
        ... on AlreadyFinalizedError { generation { id status } }
        ${ITEM_ERRORS}
      }
    }
    ${ITEM_ERRORS}
  }
}`;

/** A Relay global id of an Account that does not exist. */
const unknownAccount = () => Buffer.from(`Account:${randomUUID()}`).toString("base64");
const unknownGeneration = () => Buffer.from(`Generation:${randomUUID()}`).toString("base64");

describe("bulk reserve and settle", () => {
  let billing: Billing;
  beforeAll(async () => {
    billing = await Billing.start();
  });
  afterAll(async () => {
    await billing.close();
    await closeSql();
  });

  const reserveMany = async (items: readonly Json[], token = billing.service): Promise<Json> =>
    dataOf<Json>(await billing.call(token, RESERVE_MANY, { input: { items } })).reserveGenerations;
  const settleMany = async (items: readonly Json[]): Promise<Json> =>
    dataOf<Json>(await billing.call(billing.service, SETTLE_MANY, { input: { items } })).settleGenerations;
  const reserveItem = (accountId: string, extra: Json = {}) => ({
    idempotencyKey: unique("bulk-reserve"),
    accountId,
    feature: "Image",
    unitCost: 10,
    ...extra,
  });
  const typenames = (answer: Json) => answer.results.map((result: Json) => result.__typename);

  it("answers each item on its own, in input order: successes beside unknown accounts, insufficient credits and bad input", async () => {
    const accountId = await billing.account(100);
    const answer = await reserveMany([
      reserveItem(accountId),
      reserveItem(unknownAccount()),
      reserveItem(accountId, { unitCost: 1_000 }),
      reserveItem(accountId, { unitCost: 0 }),
      reserveItem("not-a-global-id"),
      reserveItem(accountId, { unitCost: 20, quantity: 2 }),
    ]);
    expect(answer.__typename).toBe("ReserveGenerationsSuccess");
    expect(typenames(answer)).toEqual([
      "ReserveGenerationSuccess",
      "NotFoundError",
      "InsufficientCreditsError",
      "InvalidInputError",
      "InvalidInputError",
      "ReserveGenerationSuccess",
    ]);
    const [first, , insufficient, badCost, badId, last] = answer.results;
    expect(first.generation.reserved).toBe(10);
    expect(last.generation.reserved).toBe(40);
    expect(insufficient).toMatchObject({ code: "INSUFFICIENT_CREDITS", required: 1_000 });
    expect(badCost).toMatchObject({ code: "INVALID_INPUT", field: "items[3].unitCost" });
    expect(badCost.message).toMatch(/^items\[3\]\.unitCost /);
    expect(badId).toMatchObject({ field: "items[4].accountId" });
    expect(await billing.balance(accountId)).toMatchObject({ available: 50, held: 50 });

    const settled = await settleMany([
      { idempotencyKey: unique("bulk-settle"), generationId: first.generation.id },
      { idempotencyKey: unique("bulk-settle"), generationId: unknownGeneration() },
      {
        idempotencyKey: unique("bulk-settle"),
        generationId: last.generation.id,
        items: [{ index: 5, succeeded: true }],
      },
      {
        idempotencyKey: unique("bulk-settle"),
        generationId: last.generation.id,
        items: [
          { index: 0, succeeded: true, cost: 15 },
          { index: 1, succeeded: false, reason: "PROVIDER_ERROR" },
        ],
      },
    ]);
    expect(typenames(settled)).toEqual([
      "SettleGenerationSuccess",
      "NotFoundError",
      "InvalidInputError",
      "SettleGenerationSuccess",
    ]);
    expect(settled.results[2].field).toBe("items[2].items[0].index");
    expect(settled.results[0].generation).toMatchObject({ status: "SUCCEEDED", charged: 10 });
    expect(settled.results[3].generation).toMatchObject({
      status: "PARTIALLY_SUCCEEDED",
      charged: 15,
      released: 5,
    });
    expect(await billing.balance(accountId)).toMatchObject({ available: 75, held: 0 });
    // A settle of a finished generation is that item's AlreadyFinalizedError.
    const again = await settleMany([
      {
        idempotencyKey: unique("bulk-settle"),
        generationId: last.generation.id,
        items: [{ index: 1, succeeded: true }],
      },
    ]);
    expect(typenames(again)).toEqual(["AlreadyFinalizedError"]);
    expect(await auditAccount(accountId)).toEqual([]);
  });

  it("puts an item on its board, and answers NotFoundError for a board of another account", async () => {
    const [accountId, otherId] = await Promise.all([billing.account(100), billing.account(100)]);
    const createBoard = `mutation($input: CreateBoardInput!) { createBoard(input: $input) { ... on CreateBoardSuccess { board { id } } } }`;
    const boardOf = async (id: string) =>
      dataOf<Json>(
        await billing.call(billing.service, createBoard, { input: { accountId: id, name: "Bulk" } }),
      ).createBoard.board.id;
    const [board, otherBoard] = await Promise.all([boardOf(accountId), boardOf(otherId)]);
    const answer = await reserveMany([
      reserveItem(accountId, { boardId: board }),
      reserveItem(accountId, { boardId: otherBoard }),
    ]);
    expect(typenames(answer)).toEqual(["ReserveGenerationSuccess", "NotFoundError"]);
    expect(answer.results[1].message).toBe("Board not found");
    const rows = await sql().query<{ n: number }>(
      "SELECT count(*)::int AS n FROM board_item WHERE board_id = $1",
      [localIdOf(board)],
    );
    expect(rows[0]?.n).toBe(1);
    expect(await billing.balance(accountId)).toMatchObject({ available: 90, held: 10 });
  });

  it("an item without unitCost pays the rate card's price; with no price it is that item's InvalidInputError", async () => {
    const accountId = await billing.account(100);
    const feature = unique("Bulk priced");
    const setPrice = `mutation($input: SetPriceInput!) { setPrice(input: $input) { __typename } }`;
    const priced = dataOf<Json>(
      await billing.call(billing.admin, setPrice, { input: { feature, unitCost: 7 } }),
    );
    expect(priced.setPrice.__typename).toBe("SetPriceSuccess");
    const answer = await reserveMany([
      reserveItem(accountId, { feature, unitCost: undefined }),
      reserveItem(accountId, { feature: unique("Unpriced"), unitCost: undefined }),
    ]);
    expect(typenames(answer)).toEqual(["ReserveGenerationSuccess", "InvalidInputError"]);
    expect(answer.results[0].generation.reserved).toBe(7);
    expect(answer.results[1].field).toBe("items[1].unitCost");
    expect(await billing.balance(accountId)).toMatchObject({ available: 93, held: 7 });
  });

  it("items of one call on several accounts share one transaction (one moment for all)", async () => {
    const accounts = await Promise.all(Array.from({ length: 8 }, () => billing.account(100)));
    const answer = await reserveMany(accounts.map((accountId) => reserveItem(accountId)));
    expect(tally(typenames(answer))).toEqual({ ReserveGenerationSuccess: 8 });
    const moments = new Set(answer.results.map((result: Json) => result.generation.createdAt));
    expect(moments.size).toBe(1);
  });

  it("a key twice in one call is answered once for both items; with other input it is IdempotencyKeyReusedError", async () => {
    const accountId = await billing.account(100);
    const item = reserveItem(accountId);
    const answer = await reserveMany([item, reserveItem(accountId), item, { ...item, unitCost: 11 }]);
    expect(typenames(answer)).toEqual([
      "ReserveGenerationSuccess",
      "ReserveGenerationSuccess",
      "ReserveGenerationSuccess",
      "IdempotencyKeyReusedError",
    ]);
    const [first, other, duplicate] = answer.results;
    expect(duplicate.generation.id).toBe(first.generation.id);
    expect(other.generation.id).not.toBe(first.generation.id);
    expect([first.replayed, duplicate.replayed]).toEqual([false, true]);
    expect(await billing.balance(accountId)).toMatchObject({ available: 80, held: 20 });

    const settle = { idempotencyKey: unique("bulk-settle"), generationId: first.generation.id };
    const settled = await settleMany([settle, settle]);
    expect(typenames(settled)).toEqual(["SettleGenerationSuccess", "SettleGenerationSuccess"]);
    expect(settled.results.map((result: Json) => result.replayed)).toEqual([false, true]);
    expect(await billing.balance(accountId)).toMatchObject({ available: 80, held: 10 });
    const rows = await sql().query<{ n: number }>(
      "SELECT count(*)::int AS n FROM ledger_entry WHERE account_id = $1 AND type = 'USAGE'",
      [localIdOf(accountId)],
    );
    expect(rows[0]?.n).toBe(2);
  });

  it("a replayed call answers every item as before and writes nothing", async () => {
    const accountId = await billing.account(100);
    const items = [reserveItem(accountId), reserveItem(accountId, { unitCost: 500 }), reserveItem(accountId)];
    const first = await reserveMany(items);
    const replay = await reserveMany(items);
    expect(typenames(replay)).toEqual(typenames(first));
    expect(typenames(first)).toEqual([
      "ReserveGenerationSuccess",
      "InsufficientCreditsError",
      "ReserveGenerationSuccess",
    ]);
    expect(replay.results[0].generation.id).toBe(first.results[0].generation.id);
    expect(replay.results[2].generation.id).toBe(first.results[2].generation.id);
    expect([replay.results[0].replayed, replay.results[2].replayed]).toEqual([true, true]);
    expect(await billing.balance(accountId)).toMatchObject({ available: 80, held: 20 });

    const settles = first.results
      .filter((result: Json) => result.__typename === "ReserveGenerationSuccess")
      .map((result: Json) => ({ idempotencyKey: unique("bulk-settle"), generationId: result.generation.id }));
    const settled = await settleMany(settles);
    const resettled = await settleMany(settles);
    expect(settled.results.map((result: Json) => result.replayed)).toEqual([false, false]);
    expect(resettled.results.map((result: Json) => result.replayed)).toEqual([true, true]);
    expect(await billing.balance(accountId)).toMatchObject({ available: 80, held: 0 });
  });

  it("concurrent bulk calls on one account never overdraw it", async () => {
    const accountId = await billing.account(1_000);
    const calls = await Promise.all(
      Array.from({ length: 8 }, () =>
        reserveMany(Array.from({ length: 25 }, () => reserveItem(accountId, { unitCost: 10 }))),
      ),
    );
    const answers = calls.flatMap((call) => call.results);
    expect(tally(answers.map((result: Json) => result.__typename))).toEqual({
      ReserveGenerationSuccess: 100,
      InsufficientCreditsError: 100,
    });
    for (const result of answers) {
      if (result.__typename === "ReserveGenerationSuccess") {
        expect(result.balance.available).toBeGreaterThanOrEqual(0);
      }
    }
    expect(await billing.balance(accountId)).toMatchObject({ available: 0, held: 1_000 });
    expect(await auditAccount(accountId)).toEqual([]);
  });

  it("refuses no items or 1,001 items as a whole, writing nothing; 1,000 are taken", async () => {
    const accountId = await billing.account(100_000);
    // Items on the account every tenth, the others with a short malformed id: 1,001 real
    // account ids would not fit in one request body (about 130 bytes an item).
    const items = Array.from({ length: 1_001 }, (_, i) => ({
      idempotencyKey: `k${i}`,
      accountId: i % 10 === 0 ? accountId : "x",
      feature: "f",
      unitCost: 1,
    }));
    // The request stays within the body limit, so the refusal is the mutation's own.
    expect(JSON.stringify({ query: RESERVE_MANY, variables: { input: { items } } }).length).toBeLessThan(
      REQUEST_BODY_BYTES_MAX,
    );
    const tooMany = await reserveMany(items);
    expect(tooMany).toMatchObject({ __typename: "InvalidInputError", field: "items" });
    expect(tooMany.message).toBe("items must list at most 1000 items, got 1001");
    expect(await reserveMany([])).toMatchObject({ __typename: "InvalidInputError", field: "items" });
    expect(await settleMany([])).toMatchObject({ __typename: "InvalidInputError", field: "items" });
    expect(await billing.balance(accountId)).toMatchObject({ available: 100_000, held: 0, sequence: 1 });
    const rows = await sql().query<{ n: number }>(
      "SELECT count(*)::int AS n FROM generation WHERE account_id = $1",
      [localIdOf(accountId)],
    );
    expect(rows[0]?.n).toBe(0);
    const most = await reserveMany(items.slice(0, 1_000));
    expect(tally(typenames(most))).toEqual({ ReserveGenerationSuccess: 100, InvalidInputError: 900 });
    expect(most.results[1]).toMatchObject({ field: "items[1].accountId" });
    expect(await billing.balance(accountId)).toMatchObject({ available: 99_900, held: 100 });
  });

  it("an API key limited to one account sees other accounts and their generations as missing, item by item", async () => {
    const [mine, other] = await Promise.all([billing.account(100), billing.account(100)]);
    const createKey = `mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { ... on CreateApiKeySuccess { secret } } }`;
    const key = dataOf<Json>(
      await billing.call(billing.admin, createKey, { input: { name: unique("bulk-key"), accountId: mine } }),
    ).createApiKey.secret;
    const reserved = await reserveMany([reserveItem(mine), reserveItem(other)], key);
    expect(typenames(reserved)).toEqual(["ReserveGenerationSuccess", "NotFoundError"]);
    expect(await billing.balance(other)).toMatchObject({ available: 100, held: 0 });
    const elsewhere = (await reserveMany([reserveItem(other)])).results[0].generation.id;
    const settled = dataOf<Json>(
      await billing.call(key, SETTLE_MANY, {
        input: {
          items: [
            { idempotencyKey: unique("bulk-settle"), generationId: reserved.results[0].generation.id },
            { idempotencyKey: unique("bulk-settle"), generationId: elsewhere },
          ],
        },
      }),
    ).settleGenerations;
    expect(typenames(settled)).toEqual(["SettleGenerationSuccess", "NotFoundError"]);
    expect(settled.results[1].message).toBe("Generation not found");
    expect(await billing.balance(other)).toMatchObject({ available: 90, held: 10 });
  });

  it("a user token may not reserve in bulk: ForbiddenError for the whole call", async () => {
    const accountId = await billing.account(100);
    const user = await billing.server.token(unique("user"), "user");
    expect(await reserveMany([reserveItem(accountId)], user)).toMatchObject({
      __typename: "ForbiddenError",
      code: "FORBIDDEN",
    });
    expect(await billing.balance(accountId)).toMatchObject({ available: 100, held: 0 });
  });
});

describe("bulk calls and the rate limit", () => {
  let billing: Billing;
  beforeAll(async () => {
    billing = await Billing.start({ rateLimitServicePerSecond: 5, reaperEnabled: false });
  });
  afterAll(async () => {
    await billing.close();
    await closeSql();
  });

  it("counts a bulk call as one mutation per item: 11 items exceed a burst of 10 and write nothing", async () => {
    const accountId = await billing.account(1_000);
    const token = await billing.server.token(unique("bulk-limited"), "service");
    const items = (n: number) =>
      Array.from({ length: n }, () => ({
        idempotencyKey: unique("bulk-limit"),
        accountId,
        feature: "Image",
        unitCost: 1,
      }));
    const refused = await billing.server.post(token, {
      query: RESERVE_MANY,
      variables: { input: { items: items(11) } },
    });
    expect(refused.status).toBe(429);
    const body = (await refused.json()) as Json;
    expect(body.errors?.[0]?.extensions?.code).toBe("RATE_LIMITED");
    expect(body.errors?.[0]?.message).toMatch(/11 mutations.*at most 10/);
    expect(await billing.balance(accountId)).toMatchObject({ available: 1_000, held: 0 });
    const taken = dataOf<Json>(await billing.call(token, RESERVE_MANY, { input: { items: items(10) } }));
    expect(tally(taken.reserveGenerations.results.map((r: Json) => r.__typename))).toEqual({
      ReserveGenerationSuccess: 10,
    });
  });
});
