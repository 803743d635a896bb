/**
 * Every history read answers without errors, whatever the filter: `spending`,
 * `ledger` with each filter field (each type, each status, all of them, and
 * the extreme instants DateTime accepts) and `generations` with each filter
 * field. In the pglite project the server is started as the embedded default
 * is, with no DATABASE_URL; there these reads once answered
 * INTERNAL_SERVER_ERROR (enum-array parameters, year 0 and year 10000
 * instants). Each read must also find what the account holds, so a filter
 * that silently matched nothing would fail too.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { timestamptzText } from "../../src/db/database.ts";
import { createAccount, grant } from "../support/fixtures.ts";
import { dataOf, startServer, type TestServer } from "../support/harness.ts";
import { openTestDatabase } from "../support/test-database.ts";
import { refund, reserve, settle, supportRefund } from "./helpers.ts";

const TYPES = ["ADJUSTMENT", "EXPIRY", "GRANT", "REFUND", "RELEASE", "USAGE"] as const;
const ENTRY_STATUSES = ["COMPLETED", "FAILED", "PENDING"] as const;
const GENERATION_STATUSES = [
  "CANCELLED",
  "FAILED",
  "IN_PROGRESS",
  "PARTIALLY_SUCCEEDED",
  "SUCCEEDED",
  "TIMED_OUT",
] as const;
/** The far ends of DateTime: year 0 (1 BC) and, through an offset, year 10000 UTC. */
const EARLIEST = "0000-01-01T00:00:00Z";
const LATEST = "9999-12-31T23:59:59-23:59";

const LEDGER = `query($accountId: ID!, $filter: LedgerFilter) {
  ledger(accountId: $accountId, filter: $filter, first: 100) { edges { node { sequence type status } } }
}`;
const GENERATIONS = `query($accountId: ID!, $filter: GenerationFilter) {
  generations(accountId: $accountId, filter: $filter, first: 100) { edges { node { id status feature } } }
}`;
const SPENDING = `query($accountId: ID!, $from: DateTime, $to: DateTime) {
  spending(accountId: $accountId, from: $from, to: $to) {
    generations failedGenerations charged refunded net byFeature { feature charged }
  }
}`;

describe("history reads with every filter", () => {
  let server: TestServer;
  let owner: string;
  let accountId: string;
  let generationId: string;

  beforeAll(async () => {
    server = await startServer();
    const service = await server.token("every-filter-platform", "service");
    const admin = await server.token("every-filter-support", "admin");
    const account = await createAccount(server, service);
    accountId = account.id;
    owner = await server.token(account.ownerId, "user");
    await grant(server, service, accountId, 1_000);
    const succeeded = await reserve(server, service, accountId, { feature: "Image", quantity: 2 });
    await settle(server, service, succeeded, [
      { index: 0, succeeded: true },
      { index: 1, succeeded: false, reason: "PROVIDER_ERROR" },
    ]);
    await supportRefund(server, admin, succeeded, 1);
    await refund(server, service, await reserve(server, service, accountId, { feature: "Voice" }));
    await reserve(server, service, accountId, { feature: "Quick Video" });
    generationId = succeeded;
  });
  afterAll(() => server?.close());

  const ledger = async (filter: Record<string, unknown> | null) =>
    dataOf(await server.gql(owner, LEDGER, { accountId, filter })).ledger.edges as {
      node: { sequence: number; type: string; status: string };
    }[];
  const generations = async (filter: Record<string, unknown> | null) =>
    dataOf(await server.gql(owner, GENERATIONS, { accountId, filter })).generations.edges as {
      node: { status: string; feature: string };
    }[];

  it("answers spending with and without bounds, at the extreme instants too", async () => {
    for (const bounds of [{}, { from: EARLIEST }, { to: LATEST }, { from: EARLIEST, to: LATEST }]) {
      const { spending } = dataOf(await server.gql(owner, SPENDING, { accountId, ...bounds }));
      expect(spending.generations, JSON.stringify(bounds)).toBe(3);
      expect(spending.failedGenerations).toBe(1);
    }
    const empty = dataOf(await server.gql(owner, SPENDING, { accountId, from: LATEST })).spending;
    expect(empty.generations).toBe(0);
  });

  it("answers ledger with each type, each status, all of them, and each other field", async () => {
    const all = await ledger(null);
    expect(all.length).toBeGreaterThan(5);
    for (const type of TYPES) {
      const expected = all.filter((edge) => edge.node.type === type).map((edge) => edge.node.sequence);
      expect(
        (await ledger({ types: [type] })).map((edge) => edge.node.sequence),
        type,
      ).toEqual(expected);
    }
    for (const status of ENTRY_STATUSES) {
      const expected = all.filter((edge) => edge.node.status === status).map((edge) => edge.node.sequence);
      expect(
        (await ledger({ statuses: [status] })).map((edge) => edge.node.sequence),
        status,
      ).toEqual(expected);
    }
    expect(await ledger({ types: [...TYPES], statuses: [...ENTRY_STATUSES] })).toEqual(all);
    expect((await ledger({ feature: "Image" })).length).toBeGreaterThan(0);
    expect((await ledger({ generationId })).length).toBeGreaterThan(0);
    expect(await ledger({ from: EARLIEST, to: LATEST })).toEqual(all);
    expect(await ledger({ from: LATEST })).toEqual([]);
    const combined = await ledger({
      types: ["USAGE", "REFUND"],
      statuses: ["COMPLETED", "FAILED"],
      feature: "Image",
      generationId,
      from: EARLIEST,
      to: LATEST,
    });
    expect(combined.length).toBeGreaterThan(0);
  });

  it("answers generations with each status, all of them, and each other field", async () => {
    const all = await generations(null);
    expect(all).toHaveLength(3);
    for (const status of GENERATION_STATUSES) {
      const expected = all.filter((edge) => edge.node.status === status);
      expect(await generations({ statuses: [status] }), status).toEqual(expected);
    }
    expect(await generations({ statuses: [...GENERATION_STATUSES] })).toEqual(all);
    expect(await generations({ feature: "Voice" })).toHaveLength(1);
    expect(await generations({ from: EARLIEST, to: LATEST })).toEqual(all);
    expect(await generations({ to: EARLIEST })).toEqual([]);
    expect(
      await generations({ statuses: ["PARTIALLY_SUCCEEDED", "FAILED"], feature: "Image", from: EARLIEST }),
    ).toHaveLength(1);
  });

  it("binds Date parameters at every year PostgreSQL and DateTime share", async () => {
    const db = await openTestDatabase(1);
    try {
      for (const iso of [
        "0000-01-01T00:00:00.000Z",
        "2026-06-01T12:34:56.789Z",
        "+010000-01-01T23:58:00.000Z",
      ]) {
        const date = new Date(iso);
        const [row] = await db.query<{ at: Date }>("SELECT $1::timestamptz AS at", [date]);
        expect(row?.at.getTime(), iso).toBe(date.getTime());
      }
    } finally {
      await db.close();
    }
    expect(timestamptzText(new Date("0000-01-01T00:00:00Z"))).toBe("0001-01-01T00:00:00.000+00:00 BC");
    expect(timestamptzText(new Date("+010000-01-01T00:00:00Z"))).toBe("10000-01-01T00:00:00.000+00:00");
  });
});
