import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAccount, grant } from "../support/fixtures.ts";
import { dataOf, startServer, type TestServer } from "../support/harness.ts";
import { firstError, readLedger, refund, reserve, settle, supportRefund } from "./helpers.ts";

/** `spending`: what generations cost over a period (SPEC §4 SpendingSummary). */

const SPENDING = `query($accountId: ID!, $from: DateTime, $to: DateTime) {
  spending(accountId: $accountId, from: $from, to: $to) {
    charged refunded net generations failedGenerations
    byFeature { feature charged refunded net generations failedGenerations }
  }
}`;

const GENERATIONS = `query($accountId: ID!) {
  generations(accountId: $accountId, first: 100) { edges { node { id createdAt } } }
}`;

describe("spending", () => {
  let server: TestServer;
  let service: string;
  let owner: string;
  let accountId: string;
  /** Generation ids in the order they were reserved, one transaction each. */
  const made: string[] = [];

  beforeAll(async () => {
    server = await startServer();
    service = await server.token("platform", "service");
    const admin = await server.token("support-agent", "admin");
    const account = await createAccount(server, service);
    accountId = account.id;
    owner = await server.token(account.ownerId, "user");
    await grant(server, service, accountId, 1_000);
    // One at a time, so each generation has its own createdAt for the range checks.
    const make = async (feature: string, unitCost: number, quantity = 1) => {
      const id = await reserve(server, service, accountId, { feature, unitCost, quantity });
      made.push(id);
      return id;
    };
    await settle(server, service, await make("Quick Video", 12)); // charged 12
    await refund(server, service, await make("Quick Video", 12), "PROVIDER_ERROR"); // failed: refunded 12
    await settle(server, service, await make("Image", 5, 4), [
      { index: 0, succeeded: true },
      { index: 1, succeeded: true },
      { index: 2, succeeded: true },
      { index: 3, succeeded: false, reason: "GENERATION_FAILED" },
    ]); // partial: charged 15, refunded 5, not a failed generation
    await settle(server, service, await make("Image", 5), [{ index: 0, succeeded: true, cost: 3 }]); // charged 3
    await make("Audio", 7); // in progress: charged nothing yet
    const supported = await make("Audio", 7);
    await settle(server, service, supported);
    await supportRefund(server, admin, supported, 4); // charged 7, refunded 4, net 3
    await refund(server, service, await make("Audio", 7), "TIMEOUT"); // timed out
    await refund(server, service, await make("Audio", 7), "CANCELLED"); // cancelled
  });
  afterAll(() => server.close());

  const spending = async (from?: string, to?: string) =>
    dataOf(await server.gql(owner, SPENDING, { accountId, from, to })).spending;

  it("charges delivered items only, counts a partial batch right and excludes failures", async () => {
    expect(await spending()).toEqual({
      charged: 12 + 15 + 3 + 7,
      refunded: 12 + 5 + 4 + 7 + 7,
      net: 12 + 15 + 3 + 7 - 4,
      generations: 8,
      failedGenerations: 3,
      byFeature: [
        { feature: "Image", charged: 18, refunded: 5, net: 18, generations: 2, failedGenerations: 0 },
        { feature: "Quick Video", charged: 12, refunded: 12, net: 12, generations: 2, failedGenerations: 1 },
        { feature: "Audio", charged: 7, refunded: 18, net: 3, generations: 4, failedGenerations: 2 },
      ],
    });
  });

  it("agrees with the ledger: net + held = what the generations' entries took", async () => {
    const entries = await readLedger(server, owner, accountId, { types: ["USAGE", "REFUND", "RELEASE"] });
    const taken = -entries.reduce((sum, entry) => sum + entry.amount, 0);
    const { held } = dataOf(
      await server.gql(owner, "query($id: ID!) { balance(accountId: $id) { held } }", { id: accountId }),
    ).balance;
    expect(held).toBe(7);
    expect((await spending()).net + held).toBe(taken);
  });

  it("covers generations created in [from, to)", async () => {
    const nodes: { id: string; createdAt: string }[] = dataOf(
      await server.gql(owner, GENERATIONS, { accountId }),
    ).generations.edges.map((edge: { node: { id: string; createdAt: string } }) => edge.node);
    const createdAt = (id: string | undefined) => nodes.find((node) => node.id === id)?.createdAt ?? "";
    // Generations 2..3 (the failed Quick Video and the Image batch).
    const from = createdAt(made[1]);
    const to = createdAt(made[3]);
    expect(Date.parse(from)).toBeLessThan(Date.parse(createdAt(made[2])));
    expect(await spending(from, to)).toEqual({
      charged: 15,
      refunded: 12 + 5,
      net: 15,
      generations: 2,
      failedGenerations: 1,
      byFeature: [
        { feature: "Image", charged: 15, refunded: 5, net: 15, generations: 1, failedGenerations: 0 },
        { feature: "Quick Video", charged: 0, refunded: 12, net: 0, generations: 1, failedGenerations: 1 },
      ],
    });
    // to alone excludes the generation created exactly at `to`; from alone includes it.
    expect((await spending(undefined, to)).generations).toBe(3);
    expect((await spending(to)).generations).toBe(5);
    expect(await spending(to, to)).toEqual({
      charged: 0,
      refunded: 0,
      net: 0,
      generations: 0,
      failedGenerations: 0,
      byFeature: [],
    });
  });

  it("rejects a reversed range and hides other accounts", async () => {
    const reversed = firstError(
      await server.gql(owner, SPENDING, {
        accountId,
        from: "2026-05-01T00:00:00Z",
        to: "2026-04-01T00:00:00Z",
      }),
    );
    expect(reversed.extensions).toMatchObject({ code: "BAD_USER_INPUT", argument: "to" });
    expect(reversed.message).toMatch(/to must not be before from \(2026-05-01T00:00:00.000Z\)/);
    const stranger = await server.token("not-a-member", "user");
    expect(firstError(await server.gql(stranger, SPENDING, { accountId })).extensions?.code).toBe(
      "NOT_FOUND",
    );
  });
});
