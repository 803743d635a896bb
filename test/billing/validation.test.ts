import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Ledger } from "../../src/domain/ledger.ts";
import { unique } from "../support/harness.ts";
import { Billing, closeSql, type Json, localIdOf, RESERVE, type ReserveOptions, sql } from "./ops.ts";

/** Rows the account has in every table a money operation writes. */
async function footprint(accountGlobalId: string) {
  const [row] = await sql().query<Record<string, number>>(
    `SELECT (SELECT count(*)::int FROM ledger_entry WHERE account_id = $1) AS entries,
            (SELECT count(*)::int FROM posting WHERE account_id = $1) AS postings,
            (SELECT count(*)::int FROM generation WHERE account_id = $1) AS generations,
            (SELECT count(*)::int FROM generation_item WHERE account_id = $1 AND status <> 'IN_PROGRESS') AS ended,
            (SELECT count(*)::int FROM idempotency_record WHERE account_id = $1) AS keys`,
    [localIdOf(accountGlobalId)],
  );
  return row;
}

describe.concurrent("invalid input is rejected before anything is written, naming the field", () => {
  let billing: Billing;
  beforeAll(async () => {
    billing = await Billing.start({ reaperEnabled: false });
  });
  afterAll(async () => {
    await billing.close();
    await closeSql();
  });

  const reserveCases: [string, ReserveOptions, string][] = [
    ["quantity 0", { quantity: 0 }, "quantity"],
    ["quantity 101", { quantity: 101 }, "quantity"],
    ["unitCost 0", { unitCost: 0 }, "unitCost"],
    ["unitCost negative", { unitCost: -5 }, "unitCost"],
    ["timeoutSeconds 0", { timeoutSeconds: 0 }, "timeoutSeconds"],
    ["timeoutSeconds 86401", { timeoutSeconds: 86_401 }, "timeoutSeconds"],
    ["an idempotency key of 201 characters", { key: "k".repeat(201) }, "idempotencyKey"],
    ["an empty idempotency key", { key: "" }, "idempotencyKey"],
    ["a feature of 201 characters", { feature: "f".repeat(201) }, "feature"],
    ["an empty feature", { feature: "   " }, "feature"],
    ["a model of 201 characters", { model: "m".repeat(201) }, "model"],
    ["metadata over 8 KB", { metadata: { prompt: "p".repeat(8 * 1024) } }, "metadata"],
  ];
  for (const [what, options, field] of reserveCases) {
    it(`reserve with ${what} → InvalidInputError on ${field}`, async () => {
      const accountId = await billing.account(1_000);
      const before = await footprint(accountId);
      const result = await billing.reserve(accountId, { unitCost: 10, ...options });
      expect(result).toMatchObject({ __typename: "InvalidInputError", code: "INVALID_INPUT", field });
      expect(result.message).toContain(field);
      expect(await footprint(accountId)).toEqual(before);
      expect(await billing.balance(accountId)).toMatchObject({ available: 1_000, held: 0, sequence: 1 });
    });
  }

  const unstorable: [string, unknown][] = [
    ["a NUL character in a value", { prompt: "a\u0000b" }],
    ["a NUL character in a key", { "\u0000": 1 }],
    ["an unpaired surrogate", { prompt: ["ok", "\ud800"] }],
  ];
  for (const [what, metadata] of unstorable) {
    it(`reserve with metadata holding ${what} is refused, writing nothing`, async () => {
      const accountId = await billing.account(100);
      const before = await footprint(accountId);
      // Over GraphQL: refused by the JSON scalar (a GraphQL error) or by the ledger
      // (InvalidInputError on metadata), never an internal error.
      const http = await billing.server.post(billing.service, {
        query: RESERVE,
        variables: {
          input: { idempotencyKey: unique("k"), accountId, feature: "Image", unitCost: 1, metadata },
        },
      });
      expect(http.status).toBeLessThan(500);
      const body = (await http.json()) as Json;
      if (body.data == null) expect(body.errors?.length).toBeGreaterThan(0);
      else
        expect(body.data.reserveGeneration).toMatchObject({
          __typename: "InvalidInputError",
          field: "metadata",
        });
      // ...and the ledger itself, called directly, with InvalidInputError on metadata.
      const direct = await new Ledger(sql()).reserveGeneration("billing-test", {
        idempotencyKey: unique("k"),
        accountId: localIdOf(accountId),
        feature: "Image",
        unitCost: 1,
        metadata,
      });
      expect(direct).toMatchObject({ ok: false, error: { code: "INVALID_INPUT", field: "metadata" } });
      expect(await footprint(accountId)).toEqual(before);
    });
  }

  it("accepts the limits themselves: quantity 100, timeoutSeconds 86400, a 200-character key and feature", async () => {
    const accountId = await billing.account(1_000);
    const result = await billing.reserve(accountId, {
      unitCost: 1,
      quantity: 100,
      timeoutSeconds: 86_400,
      key: "k".repeat(200),
      feature: "f".repeat(200),
      metadata: { prompt: "p".repeat(8 * 1024 - 20) },
    });
    expect(result.__typename).toBe("ReserveGenerationSuccess");
    expect(result.generation.items).toHaveLength(100);
  });

  it("reserve whose unitCost × quantity is beyond 2^53 − 1 → InvalidInputError on unitCost", async () => {
    const accountId = await billing.account(100);
    const before = await footprint(accountId);
    const result = await billing.reserve(accountId, { unitCost: Number.MAX_SAFE_INTEGER, quantity: 2 });
    expect(result).toMatchObject({ __typename: "InvalidInputError", field: "unitCost" });
    expect(await footprint(accountId)).toEqual(before);
  });

  it("a grant or adjustment that would take the account's total beyond 2^53 − 1 → InvalidInputError on amount", async () => {
    const accountId = await billing.account(Number.MAX_SAFE_INTEGER - 10);
    await billing.reserveOk(accountId, { unitCost: 4 });
    const before = await footprint(accountId);
    const grant = await billing.server.gql(
      billing.service,
      `mutation($input: GrantCreditsInput!) { grantCredits(input: $input) { __typename ... on InvalidInputError { field } } }`,
      { input: { idempotencyKey: unique("grant"), accountId, source: "WALLET", amount: 11 } },
    );
    expect(grant.data?.grantCredits).toEqual({ __typename: "InvalidInputError", field: "amount" });
    expect(await billing.adjust(accountId, 11)).toMatchObject({
      __typename: "InvalidInputError",
      field: "amount",
    });
    expect(await footprint(accountId)).toEqual(before);
    // Up to the limit is fine, and the balance stays readable.
    expect((await billing.adjust(accountId, 10)).__typename).toBe("AdjustBalanceSuccess");
    expect(await billing.balance(accountId)).toMatchObject({
      available: Number.MAX_SAFE_INTEGER - 4,
      held: 4,
      total: Number.MAX_SAFE_INTEGER,
    });
  });

  it("checks input before credits: an invalid reserve on an empty account is InvalidInputError", async () => {
    const accountId = await billing.account(0);
    const result = await billing.reserve(accountId, { unitCost: 10, quantity: 0 });
    expect(result).toMatchObject({ __typename: "InvalidInputError", field: "quantity" });
  });

  it("rejects a fractional or string unitCost in GraphQL coercion (never a 5xx), writing nothing", async () => {
    const accountId = await billing.account(100);
    for (const unitCost of [1.5, "10"]) {
      const http = await billing.server.post(billing.service, {
        query: RESERVE,
        variables: { input: { idempotencyKey: unique("k"), accountId, feature: "Image", unitCost } },
      });
      expect(http.status).toBeLessThan(500);
      const response = (await http.json()) as { data?: unknown; errors?: { message: string }[] };
      expect(response.data ?? null).toBeNull();
      expect(response.errors?.[0]?.message).toMatch(/Credits/);
    }
    expect(await billing.balance(accountId)).toMatchObject({ available: 100, sequence: 1 });
  });

  describe("settle", () => {
    const settleCases: [string, Record<string, unknown>[], string][] = [
      ["an item index past the generation's last item", [{ index: 2, succeeded: true }], "items[0].index"],
      ["a negative item index", [{ index: -1, succeeded: true }], "items[0].index"],
      ["an item index of 100", [{ index: 100, succeeded: true }], "items[0].index"],
      [
        "a failure without reason",
        [
          { index: 0, succeeded: true },
          { index: 1, succeeded: false },
        ],
        "items[1].reason",
      ],
      ["a cost above unitCost", [{ index: 1, succeeded: true, cost: 11 }], "items[0].cost"],
      ["a cost of 0", [{ index: 0, succeeded: true, cost: 0 }], "items[0].cost"],
      [
        "a cost on a failed item",
        [{ index: 0, succeeded: false, reason: "SYSTEM_ERROR", cost: 3 }],
        "items[0].cost",
      ],
      [
        "a reason on a succeeded item",
        [{ index: 0, succeeded: true, reason: "SYSTEM_ERROR" }],
        "items[0].reason",
      ],
      [
        "the same item twice",
        [
          { index: 0, succeeded: true },
          { index: 0, succeeded: true },
        ],
        "items[1].index",
      ],
      ["an empty list of items", [], "items"],
      [
        "a message of 201 characters",
        [{ index: 0, succeeded: false, reason: "SYSTEM_ERROR", message: "m".repeat(201) }],
        "items[0].message",
      ],
    ];
    for (const [what, items, field] of settleCases) {
      it(`settle with ${what} → InvalidInputError on ${field}`, async () => {
        const accountId = await billing.account(100);
        const { id } = await billing.reserveOk(accountId, { unitCost: 10, quantity: 2 });
        const before = await footprint(accountId);
        const result = await billing.settle(id, items as never);
        expect(result).toMatchObject({ __typename: "InvalidInputError", code: "INVALID_INPUT", field });
        expect(await footprint(accountId)).toEqual(before);
        const generation = await billing.generation(id);
        expect(generation).toMatchObject({ status: "IN_PROGRESS", charged: 0, refunded: 0 });
      });
    }

    it("settle with an idempotency key of 201 characters → InvalidInputError on idempotencyKey", async () => {
      const accountId = await billing.account(100);
      const { id } = await billing.reserveOk(accountId, { unitCost: 10 });
      const result = await billing.settle(id, undefined, "k".repeat(201));
      expect(result).toMatchObject({ __typename: "InvalidInputError", field: "idempotencyKey" });
      expect((await billing.generation(id)).status).toBe("IN_PROGRESS");
    });

    it("settle with a malformed generation id → InvalidInputError on generationId", async () => {
      const result = await billing.settle("not-a-global-id");
      expect(result).toMatchObject({ __typename: "InvalidInputError", field: "generationId" });
    });
  });

  it("refund with a message of 201 characters → InvalidInputError on message", async () => {
    const accountId = await billing.account(100);
    const { id } = await billing.reserveOk(accountId, { unitCost: 10 });
    const before = await footprint(accountId);
    const result = await billing.refund(id, "SYSTEM_ERROR", { message: "m".repeat(201) });
    expect(result).toMatchObject({ __typename: "InvalidInputError", field: "message" });
    expect(await footprint(accountId)).toEqual(before);
  });

  it("supportRefund with amount 0 or a note of 201 characters → InvalidInputError", async () => {
    const accountId = await billing.account(100);
    const { id } = await billing.reserveOk(accountId, { unitCost: 10 });
    await billing.settle(id);
    const before = await footprint(accountId);
    expect(await billing.supportRefund(id, 0)).toMatchObject({
      __typename: "InvalidInputError",
      field: "amount",
    });
    expect(await billing.supportRefund(id, -3)).toMatchObject({
      __typename: "InvalidInputError",
      field: "amount",
    });
    expect(await billing.supportRefund(id, 5, { note: "n".repeat(201) })).toMatchObject({
      __typename: "InvalidInputError",
      field: "note",
    });
    expect(await footprint(accountId)).toEqual(before);
  });

  it("adjustBalance with amount 0 or an empty note → InvalidInputError", async () => {
    const accountId = await billing.account(100);
    const before = await footprint(accountId);
    expect(await billing.adjust(accountId, 0)).toMatchObject({
      __typename: "InvalidInputError",
      field: "amount",
    });
    expect(await billing.adjust(accountId, 5, " ")).toMatchObject({
      __typename: "InvalidInputError",
      field: "note",
    });
    expect(await footprint(accountId)).toEqual(before);
  });
});
