/**
 * Every field of every mutation's success payload resolves, on a fresh
 * answer and on its replay (the same request again, with the same
 * idempotency key where the mutation takes one), with the same shape both
 * times. The selections are built from the served schema by introspection,
 * recursively to a bounded depth, so a field added later is covered without
 * touching this test; the scenario must name every mutation the schema has.
 */
import {
  buildClientSchema,
  type GraphQLNamedType,
  type GraphQLSchema,
  getIntrospectionQuery,
  getNamedType,
  type IntrospectionQuery,
  isUnionType,
} from "graphql";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Billing, type Json } from "../billing/ops.ts";
import { dataOf, unique } from "../support/harness.ts";
import { selectionOf } from "../support/selection.ts";

/** Levels of object fields selected below a payload (leaves of the last level included). */
const DEPTH_MAX = 4;

let billing: Billing;
let schema: GraphQLSchema;

beforeAll(async () => {
  billing = await Billing.start({ reaperEnabled: false });
  const introspection = dataOf<IntrospectionQuery>(
    await billing.server.gql(billing.admin, getIntrospectionQuery()),
  );
  schema = buildClientSchema(introspection);
});

afterAll(async () => {
  await billing?.close();
});

/** The mutation document selecting everything of its Success member and naming any error. */
function documentOf(mutation: string): string {
  const field = schema.getMutationType()?.getFields()[mutation];
  if (field === undefined) throw new Error(`no mutation ${mutation}`);
  const result = getNamedType(field.type);
  if (!isUnionType(result)) throw new Error(`${mutation} does not return a union`);
  const success = result.getTypes().filter((member) => member.name.endsWith("Success"));
  expect(success).toHaveLength(1);
  const inputType = field.args.find((arg) => arg.name === "input")?.type.toString();
  return `mutation Everything($input: ${inputType}) {
    ${mutation}(input: $input) {
      __typename
      ... on ${success[0]?.name} { ${selectionOf(success[0] as GraphQLNamedType, DEPTH_MAX, [])} }
      ... on Error { code message }
    }
  }`;
}

/** Which keys hold null, an array of n, an object or a leaf, all the way down. */
function shapeOf(value: Json): Json {
  if (value === null || typeof value !== "object") return value === null ? null : typeof value;
  if (Array.isArray(value)) return value.map(shapeOf);
  return Object.fromEntries(Object.entries(value).map(([key, inner]) => [key, shapeOf(inner)]));
}

/** Sends a mutation twice with the same input; both must succeed with the same shape. */
async function freshAndReplayed(mutation: string, input: Record<string, unknown>, token = billing.admin) {
  const document = documentOf(mutation);
  const answers: Json[] = [];
  for (let i = 0; i < 2; i += 1) {
    const response = await billing.server.gql(token, document, { input });
    expect(response.errors, `${mutation} answer ${i + 1}`).toBeUndefined();
    const payload = response.data?.[mutation];
    expect(payload.__typename, `${mutation}: ${JSON.stringify(payload)}`).toMatch(/Success$/);
    answers.push(payload);
  }
  const [fresh, replay] = answers;
  if ("replayed" in fresh) {
    expect([fresh.replayed, replay.replayed]).toEqual([false, true]);
  }
  expect(shapeOf(replay), mutation).toEqual(shapeOf(fresh));
  return fresh;
}

describe("every field of every success payload", () => {
  it("resolves on fresh and replayed answers alike", async () => {
    const covered = new Set<string>();
    const run = async (mutation: string, input: Record<string, unknown>, token?: string) => {
      covered.add(mutation);
      return freshAndReplayed(mutation, input, token);
    };
    const ownerId = unique("owner");
    const account = await run("createAccount", {
      idempotencyKey: unique("acct"),
      kind: "WORKSPACE",
      name: "Every field",
      ownerId,
    });
    const accountId = account.account.id;
    await run("addAccountMember", { accountId, userId: unique("member"), role: "MEMBER" });
    await run("grantCredits", {
      idempotencyKey: unique("grant"),
      accountId,
      source: "WALLET",
      amount: 1_000,
    });
    const board = await run("createBoard", { accountId, name: "Board" });
    const boardId = board.board.id;
    const reserve = (boardOf: string | undefined) =>
      run("reserveGeneration", {
        idempotencyKey: unique("reserve"),
        accountId,
        feature: "Image",
        unitCost: 10,
        quantity: 2,
        requestedBy: ownerId,
        boardId: boardOf,
      });
    const settled = (await reserve(boardId)).generation.id;
    const refunded = (await reserve(boardId)).generation.id;
    const cancelled = (await reserve(undefined)).generation.id;
    await run("addToBoard", { boardId, generationId: cancelled });
    await run("removeFromBoard", { boardId, generationId: cancelled });
    await run("settleGeneration", { idempotencyKey: unique("settle"), generationId: settled });
    await run("refundGeneration", {
      idempotencyKey: unique("refund"),
      generationId: refunded,
      reason: "GENERATION_FAILED",
    });
    await run("cancelGeneration", { idempotencyKey: unique("cancel"), generationId: cancelled });
    await run("supportRefund", {
      idempotencyKey: unique("support"),
      generationId: settled,
      amount: 5,
      reason: "BILLING_ERROR",
    });
    // A TEST-NET address: public by the SSRF rules, and no test's worker runs here to send to it.
    const endpoint = await run("createWebhookEndpoint", {
      url: "https://198.51.100.7/hooks",
      accountId,
      eventTypes: ["LEDGER_ENTRY_ADDED"],
      description: "Every field",
    });
    await run("adjustBalance", { idempotencyKey: unique("adjust"), accountId, amount: 7, note: "Goodwill" });
    const deliveries = await billing.call(
      billing.admin,
      `query($id: ID!) { node(id: $id) { ... on WebhookEndpoint { deliveries(first: 1) { edges { node { id } } } } } }`,
      { id: endpoint.endpoint.id },
    );
    await run("redeliverWebhook", { deliveryId: deliveries.data.node.deliveries.edges[0].node.id });
    // Both endpoints the fresh and the replayed create made go, with their deliveries.
    const endpoints = await billing.call(
      billing.admin,
      "query($a: ID) { webhookEndpoints(accountId: $a) { id } }",
      {
        a: accountId,
      },
    );
    expect(endpoints.data.webhookEndpoints).toHaveLength(2);
    for (const { id } of endpoints.data.webhookEndpoints) await run("deleteWebhookEndpoint", { id });
    const bulk = await run("reserveGenerations", {
      items: [{ idempotencyKey: unique("bulk"), accountId, feature: "Image", unitCost: 10, boardId }],
    });
    expect(bulk.results[0].__typename).toBe("ReserveGenerationSuccess");
    await run("settleGenerations", {
      items: [{ idempotencyKey: unique("bulk-settle"), generationId: bulk.results[0].generation.id }],
    });
    await run("setPrice", { feature: unique("Priced"), model: "m", unitCost: 3 });
    await run("setSpendCap", { accountId, memberId: ownerId, period: "DAY", amount: 500 });
    await run("setBalanceAlert", { accountId, threshold: 100 });
    await run("clearBalanceAlert", { accountId });
    const leaving = unique("member");
    await run("addAccountMember", { accountId, userId: leaving, role: "MEMBER" });
    await run("removeAccountMember", { accountId, userId: leaving });
    // Two keys (each call creates one), the same shape; revoking twice answers the same.
    const key = await run("createApiKey", { name: "Every field", accountId, rateLimitPerSecond: 5 });
    await run("revokeApiKey", { id: key.apiKey.id });

    const mutations = Object.keys(schema.getMutationType()?.getFields() ?? {});
    expect([...covered].sort()).toEqual([...mutations].sort());
  });

  it("selects the board of a generation on a fresh reserve answer", async () => {
    // The bug that prompted the test, spelled out: the committed state lacked boardItems.
    const accountId = await billing.account(100);
    const created = await billing.call(
      billing.admin,
      "mutation($input: CreateBoardInput!) { createBoard(input: $input) { ... on CreateBoardSuccess { board { id } } } }",
      { input: { accountId, name: "B" } },
    );
    const boardId = created.data.createBoard.board.id;
    const answer = await billing.call(
      billing.admin,
      `mutation($input: ReserveGenerationInput!) {
        reserveGeneration(input: $input) { ... on ReserveGenerationSuccess { replayed generation { board { id } } } }
      }`,
      { input: { idempotencyKey: unique("reserve"), accountId, feature: "Image", unitCost: 10, boardId } },
    );
    expect(answer.errors).toBeUndefined();
    expect(answer.data.reserveGeneration).toEqual({
      replayed: false,
      generation: { board: { id: boardId } },
    });
  });
});
