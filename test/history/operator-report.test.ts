import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { localId } from "../../src/schema/ids.ts";
import { createAccount, grant } from "../support/fixtures.ts";
import { dataOf, startServer, type TestServer, unique } from "../support/harness.ts";
import { firstError, refund, settle } from "./helpers.ts";

/** operatorReport (SPEC §8.3): every account's generations, for admins. The database is shared, so
 * the assertions are on groups whose keys only this file uses, and on the range around its own work. */

const REPORT = `query($from: DateTime, $to: DateTime) {
  operatorReport(from: $from, to: $to) {
    generations failedGenerations refundRate overdueInProgress
    byReason { reason generations refunded }
    byFeature { key charged refunded net generations failedGenerations }
    byModel { key charged refunded net generations failedGenerations }
  }
}`;

const RESERVE = `mutation($input: ReserveGenerationInput!) {
  reserveGeneration(input: $input) { __typename ... on ReserveGenerationSuccess { generation { id } } }
}`;

interface Group {
  key: string | null;
  charged: number;
  refunded: number;
  net: number;
  generations: number;
  failedGenerations: number;
}

describe("operatorReport", () => {
  let server: TestServer;
  let admin: string;
  const featureA = unique("report-a");
  const featureB = unique("report-b");
  /** The overdue generation's own feature: another process's reaper on the shared database may time it out. */
  const featureC = unique("report-c");
  const model = unique("report-model");
  let overdueId = "";

  beforeAll(async () => {
    server = await startServer({ reaperEnabled: false });
    const service = await server.token("platform", "service");
    admin = await server.token("operator", "admin");
    // Two accounts: the report spans both.
    const accounts = [(await createAccount(server, service)).id, (await createAccount(server, service)).id];
    for (const accountId of accounts) await grant(server, service, accountId, 1_000);
    const reserve = async (accountId: string, feature: string, unitCost: number, withModel = true) => {
      const data = dataOf(
        await server.gql(service, RESERVE, {
          input: {
            idempotencyKey: unique("reserve"),
            accountId,
            feature,
            unitCost,
            model: withModel ? model : undefined,
          },
        }),
      );
      return data.reserveGeneration.generation.id as string;
    };
    const [first, second] = accounts as [string, string];
    await settle(server, service, await reserve(first, featureA, 10));
    await settle(server, service, await reserve(second, featureA, 20));
    await refund(server, service, await reserve(first, featureA, 5), "PROVIDER_ERROR");
    await refund(server, service, await reserve(second, featureB, 7), "CONTENT_REJECTED");
    await refund(server, service, await reserve(first, featureB, 3, false), "PROVIDER_ERROR");
    overdueId = await reserve(second, featureC, 4, false);
    // Past its deadline without the reaper (disabled here) having timed it out.
    await server.app.db.query(
      "UPDATE generation SET deadline = now() - interval '1 minute' WHERE id = $1::uuid",
      [localId(overdueId, "Generation")],
    );
  });
  afterAll(() => server.close());

  const stillOverdue = async () => {
    const rows = await server.app.db.query<{ status: string }>(
      "SELECT status FROM generation WHERE id = $1::uuid",
      [localId(overdueId, "Generation")],
    );
    return rows[0]?.status === "IN_PROGRESS";
  };

  const report = async (token: string, range: { from?: string; to?: string } = {}) =>
    dataOf(await server.gql(token, REPORT, range)).operatorReport as {
      generations: number;
      failedGenerations: number;
      refundRate: number;
      overdueInProgress: number;
      byReason: { reason: string; generations: number; refunded: number }[];
      byFeature: Group[];
      byModel: Group[];
    };

  it("groups every account's generations by feature and model", async () => {
    const all = await report(admin);
    expect(all.byFeature.find((group) => group.key === featureA)).toEqual({
      key: featureA,
      charged: 30,
      refunded: 5,
      net: 30,
      generations: 3,
      failedGenerations: 1,
    });
    expect(all.byFeature.find((group) => group.key === featureB)).toEqual({
      key: featureB,
      charged: 0,
      refunded: 10,
      net: 0,
      generations: 2,
      failedGenerations: 2,
    });
    expect(all.byModel.find((group) => group.key === model)).toEqual({
      key: model,
      charged: 30,
      refunded: 12,
      net: 30,
      generations: 4,
      failedGenerations: 2,
    });
    for (const groups of [all.byFeature, all.byModel]) {
      expect(groups.reduce((sum, group) => sum + group.generations, 0)).toBe(all.generations);
      expect(groups.reduce((sum, group) => sum + group.failedGenerations, 0)).toBe(all.failedGenerations);
    }
    expect(all.refundRate).toBeCloseTo(all.failedGenerations / all.generations, 10);
    expect(all.byFeature.find((group) => group.key === featureC)?.generations).toBe(1);
    if (await stillOverdue()) expect(all.overdueInProgress).toBeGreaterThanOrEqual(1);
  });

  it("counts refunds by reason, the overdue generation and the rate over a range of its own", async () => {
    // A range that holds only this file's generations: from the first to just after the last.
    const created = await server.app.db.query<{ first: Date; last: Date }>(
      "SELECT min(created_at) AS first, max(created_at) AS last FROM generation WHERE feature = ANY($1::text[])",
      [[featureA, featureB, featureC]],
    );
    const from = created[0]?.first.toISOString();
    const to = new Date((created[0]?.last.getTime() ?? 0) + 1).toISOString();
    const own = await report(admin, { from, to });
    // Other files may create generations in the same instants; at least ours are counted.
    expect(own.generations).toBeGreaterThanOrEqual(6);
    const reason = (name: string) => own.byReason.find((row) => row.reason === name);
    expect(reason("PROVIDER_ERROR")?.generations).toBeGreaterThanOrEqual(2);
    expect(reason("PROVIDER_ERROR")?.refunded).toBeGreaterThanOrEqual(8);
    expect(reason("CONTENT_REJECTED")?.refunded).toBeGreaterThanOrEqual(7);
    if (await stillOverdue()) expect(own.overdueInProgress).toBeGreaterThanOrEqual(1);
    expect(own.refundRate).toBeCloseTo(own.failedGenerations / own.generations, 10);
    // An empty range: nothing, and a rate of 0 rather than NaN.
    const empty = await report(admin, { from: to, to });
    expect(empty).toEqual({
      generations: 0,
      failedGenerations: 0,
      refundRate: 0,
      overdueInProgress: 0,
      byReason: [],
      byFeature: [],
      byModel: [],
    });
  });

  it("is for admins only and checks its range", async () => {
    const service = await server.token("platform", "service");
    expect(firstError(await server.gql(service, REPORT, {})).extensions?.code).toBe("FORBIDDEN");
    const user = await server.token("someone", "user");
    expect(firstError(await server.gql(user, REPORT, {})).extensions?.code).toBe("FORBIDDEN");
    expect(firstError(await server.gql(null, REPORT, {})).extensions?.code).toBe("UNAUTHENTICATED");
    const reversed = firstError(
      await server.gql(admin, REPORT, { from: "2026-05-01T00:00:00Z", to: "2026-04-01T00:00:00Z" }),
    );
    expect(reversed.extensions).toMatchObject({ code: "BAD_USER_INPUT", argument: "to" });
  });
});
