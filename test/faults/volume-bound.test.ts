/**
 * No read may fail because of accumulated totals. Credits that are charged
 * can be granted again, and refunded ones reserved again, so an account's
 * summed charges and refunds grow past any balance; spending and a board's
 * cost are such sums, and the Credits scalar cannot send one beyond
 * 2^53 − 1. The ledger bounds what every one of them adds up: the credits an
 * account has ever reserved (each generation's charged and refunded are at
 * most its reserved). A reserve past the bound is refused, nothing written,
 * and every figure still answers.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Billing, type Json } from "../billing/ops.ts";
import { unique } from "../support/harness.ts";

const CREDITS_MAX = Number.MAX_SAFE_INTEGER;
/** A little over half the bound: two of them pass it. */
const HALF_PLUS = 2 ** 52 + 1;

let billing: Billing;

beforeAll(async () => {
  billing = await Billing.start({ reaperEnabled: false });
});

afterAll(async () => {
  await billing?.close();
});

const SPENDING = `query($id: ID!) {
  spending(accountId: $id) { charged refunded net generations byFeature { feature charged refunded net } }
  account(id: $id) { boards { cost } balance { available held total } }
}`;

async function chargeAll(accountId: string, unitCost: number, boardId: string): Promise<Json> {
  const reserved = await billing.call(
    billing.service,
    `mutation($input: ReserveGenerationInput!) {
      reserveGeneration(input: $input) {
        __typename
        ... on ReserveGenerationSuccess { generation { id } }
        ... on InvalidInputError { field message }
      }
    }`,
    { input: { idempotencyKey: unique("reserve"), accountId, feature: "Video", unitCost, boardId } },
  );
  const answer = reserved.data.reserveGeneration;
  if (answer.__typename === "ReserveGenerationSuccess") {
    expect((await billing.settle(answer.generation.id)).__typename).toBe("SettleGenerationSuccess");
  }
  return answer;
}

describe("accumulated totals", () => {
  it("refuses the reserve that would push what spending adds up past 2^53 − 1, and spending answers", async () => {
    const accountId = await billing.account();
    const created = await billing.call(
      billing.service,
      `mutation($input: CreateBoardInput!) { createBoard(input: $input) { ... on CreateBoardSuccess { board { id } } } }`,
      { input: { accountId, name: "All" } },
    );
    const boardId = created.data.createBoard.board.id;
    // Charged credits are gone from the balance, so they can be granted again: each round is a legal
    // balance, and the summed charges grow past it.
    await billing.grant(accountId, HALF_PLUS);
    expect((await chargeAll(accountId, HALF_PLUS, boardId)).__typename).toBe("ReserveGenerationSuccess");
    await billing.grant(accountId, HALF_PLUS);
    const refused = await chargeAll(accountId, HALF_PLUS, boardId);
    expect(refused.__typename).toBe("InvalidInputError");
    expect(refused.field).toBe("unitCost");
    expect(refused.message).toMatch(/2\^53 − 1/);

    // Nothing was written: the balance is the second grant, untouched, and one generation exists.
    const response = await billing.server.gql(billing.service, SPENDING, { id: accountId });
    expect(response.errors).toBeUndefined();
    expect(response.data?.spending).toMatchObject({ charged: HALF_PLUS, net: HALF_PLUS, generations: 1 });
    expect(response.data?.account.boards).toEqual([{ cost: HALF_PLUS }]);
    expect(response.data?.account.balance).toEqual({ available: HALF_PLUS, held: 0, total: HALF_PLUS });

    // What is left under the bound can still be reserved, exactly up to it.
    const rest = CREDITS_MAX - HALF_PLUS;
    expect((await chargeAll(accountId, rest, boardId)).__typename).toBe("ReserveGenerationSuccess");
    const full = await billing.server.gql(billing.service, SPENDING, { id: accountId });
    expect(full.errors).toBeUndefined();
    expect(full.data?.spending).toMatchObject({ charged: CREDITS_MAX, net: CREDITS_MAX, generations: 2 });
    expect(full.data?.account.boards).toEqual([{ cost: CREDITS_MAX }]);
    await billing.grant(accountId, 1);
    expect((await chargeAll(accountId, 1, boardId)).__typename).toBe("InvalidInputError");
  });
});
