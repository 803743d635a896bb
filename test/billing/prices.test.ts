import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dataOf, unique } from "../support/harness.ts";
import { onPglite } from "../support/test-database.ts";
import { Billing, closeSql, type Json, sql } from "./ops.ts";
import { QUOTE, setCap } from "./pricing.ts";

const SET_PRICE = `mutation SetPrice($input: SetPriceInput!) {
  setPrice(input: $input) {
    __typename
    ... on SetPriceSuccess { price { id feature model unitCost effectiveFrom } }
    ... on Error { code message }
    ... on InvalidInputError { field }
  }
}`;
const PRICES = `query Prices($feature: String) { prices(feature: $feature) { id feature model unitCost effectiveFrom } }`;

describe.concurrent("rate card and quotes", () => {
  let billing: Billing;
  const setPrice = async (input: Record<string, unknown>, token = billing.admin): Promise<Json> =>
    dataOf<Json>(await billing.call(token, SET_PRICE, { input })).setPrice;

  beforeAll(async () => {
    billing = await Billing.start({ reaperEnabled: false });
  });
  afterAll(async () => {
    await billing.close();
    await closeSql();
  });

  it("a reserve without unitCost pays the model's price, else the feature's, and keeps it after a change", async () => {
    const feature = unique("Video");
    const accountId = await billing.account(1_000);
    expect((await setPrice({ feature, unitCost: 5 })).__typename).toBe("SetPriceSuccess");
    expect((await setPrice({ feature, model: "veo-3", unitCost: 40 })).__typename).toBe("SetPriceSuccess");

    const onModel = await billing.reserveOk(accountId, {
      feature,
      model: "veo-3",
      unitCost: null,
      quantity: 2,
    });
    expect(onModel).toMatchObject({ unitCost: 40, reserved: 80 });
    const fallback = await billing.reserveOk(accountId, { feature, model: "other", unitCost: null });
    expect(fallback).toMatchObject({ unitCost: 5, reserved: 5 });
    const own = await billing.reserveOk(accountId, { feature, model: "veo-3", unitCost: 3 });
    expect(own).toMatchObject({ unitCost: 3 });

    expect((await setPrice({ feature, model: "veo-3", unitCost: 60 })).price.unitCost).toBe(60);
    expect((await billing.generation(onModel.id)).unitCost).toBe(40);
    const after = await billing.reserveOk(accountId, { feature, model: "veo-3", unitCost: null });
    expect(after.unitCost).toBe(60);
    const history = await sql().query<{ unit_cost: bigint; superseded_at: Date | null }>(
      "SELECT unit_cost, superseded_at FROM price WHERE feature = $1 AND model = 'veo-3' ORDER BY effective_from",
      [feature],
    );
    expect(history.map((row) => [Number(row.unit_cost), row.superseded_at === null])).toEqual([
      [40, false],
      [60, true],
    ]);
  });

  it("no price and no unitCost is InvalidInputError on unitCost, nothing written", async () => {
    const accountId = await billing.account(100);
    const result = await billing.reserve(accountId, { feature: unique("Unpriced"), unitCost: null });
    expect(result).toMatchObject({
      __typename: "InvalidInputError",
      code: "INVALID_INPUT",
      field: "unitCost",
    });
    expect((await billing.accountState(accountId)).balance).toMatchObject({ available: 100, held: 0 });
  });

  it("prices lists the current prices; setPrice is admin only, validated, and idempotent for the same cost", async () => {
    const feature = unique("Image");
    const first = await setPrice({ feature, unitCost: 2 });
    const again = await setPrice({ feature, unitCost: 2 });
    expect(again.price.id).toBe(first.price.id);
    await setPrice({ feature, model: "flux", unitCost: 9 });
    const listed = dataOf<Json>(await billing.call(billing.service, PRICES, { feature })).prices;
    expect(listed.map((p: Json) => [p.model, p.unitCost])).toEqual([
      [null, 2],
      ["flux", 9],
    ]);
    expect(await setPrice({ feature, unitCost: 3 }, billing.service)).toMatchObject({
      __typename: "ForbiddenError",
    });
    expect(await setPrice({ feature, unitCost: 0 })).toMatchObject({
      __typename: "InvalidInputError",
      field: "unitCost",
    });
    expect(await setPrice({ feature, model: " ", unitCost: 1 })).toMatchObject({
      __typename: "InvalidInputError",
      field: "model",
    });
  });

  it("concurrent setPrice of one key leaves exactly one current price", async () => {
    const feature = unique("Audio");
    const answers = await Promise.all(
      Array.from({ length: 12 }, (_, i) => setPrice({ feature, model: "m", unitCost: i + 1 })),
    );
    expect(answers.every((answer) => answer.__typename === "SetPriceSuccess")).toBe(true);
    const current = await sql().query("SELECT 1 FROM price WHERE feature = $1 AND superseded_at IS NULL", [
      feature,
    ]);
    expect(current).toHaveLength(1);
    const rows = await sql().query("SELECT 1 FROM price WHERE feature = $1", [feature]);
    expect(rows).toHaveLength(12);
  });

  it("a quote agrees with the reserve that follows it, on random inputs", async () => {
    const feature = unique("Quoted");
    await setPrice({ feature, unitCost: 7 });
    const runs = onPglite() ? 8 : 20;
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          credits: fc.integer({ min: 0, max: 200 }),
          quantity: fc.integer({ min: 1, max: 10 }),
          unitCost: fc.option(fc.integer({ min: 1, max: 40 }), { nil: null }),
          cap: fc.option(fc.integer({ min: 0, max: 150 }), { nil: null }),
          spentBefore: fc.integer({ min: 0, max: 3 }),
        }),
        async ({ credits, quantity, unitCost, cap, spentBefore }) => {
          const accountId = await billing.account(credits + spentBefore * 5);
          const member = unique("member");
          if (cap !== null) await setCap(billing, accountId, member, "DAY", cap);
          for (let i = 0; i < spentBefore; i += 1) {
            await billing.reserve(accountId, { feature, unitCost: 5, requestedBy: member });
          }
          const quote = dataOf<Json>(
            await billing.call(billing.service, QUOTE, {
              accountId,
              feature,
              quantity,
              unitCost,
              requestedBy: member,
            }),
          ).quoteGeneration;
          const reserved = await billing.reserve(accountId, {
            feature,
            quantity,
            unitCost,
            requestedBy: member,
          });
          expect(quote.total).toBe((unitCost ?? 7) * quantity);
          expect(quote.affordable).toBe(reserved.__typename === "ReserveGenerationSuccess");
          expect(quote.shortfall === 0).toBe(quote.affordable);
          if (reserved.__typename === "InsufficientCreditsError")
            expect(reserved.available).toBe(quote.available);
          if (reserved.__typename === "SpendCapExceededError")
            expect(reserved.cap.remaining).toBe(quote.capRemaining);
        },
      ),
      { numRuns: runs },
    );
  });
});
