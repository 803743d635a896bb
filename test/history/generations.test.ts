import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAccount, grant } from "../support/fixtures.ts";
import { dataOf, startServer, type TestServer } from "../support/harness.ts";
import { onPglite, openTestDatabase } from "../support/test-database.ts";
import {
  firstError,
  inBatches,
  PAGE_INFO,
  readAll,
  refund,
  reserve,
  settle,
  supportRefund,
} from "./helpers.ts";

/** `generations` and `generation`: history with per-item outcomes, newest first. */

const GENERATIONS_PAGE = `query($accountId: ID!, $filter: GenerationFilter, $first: Int, $after: String) {
  generations(accountId: $accountId, filter: $filter, first: $first, after: $after) {
    edges { cursor node { id feature status createdAt quantity unitCost reserved charged refunded released
      failureReason failureMessage finishedAt
      items { index status reserved charged refunded reason message }
      ledgerEntries { sequence type amount status reason } } }
    ${PAGE_INFO}
  }
}`;

interface GenerationNode {
  id: string;
  feature: string;
  status: string;
  createdAt: string;
  quantity: number;
  reserved: number;
  charged: number;
  refunded: number;
  released: number;
  failureReason: string | null;
  failureMessage: string | null;
  finishedAt: string | null;
  items: {
    index: number;
    status: string;
    reserved: number;
    charged: number;
    refunded: number;
    reason: string | null;
  }[];
  ledgerEntries: { sequence: number; type: string; amount: number; status: string; reason: string | null }[];
}

/** The uuid inside a Relay global id, which orders ties in the newest-first order. */
const uuidOf = (globalId: string) => Buffer.from(globalId, "base64").toString("utf8").split(":")[1] ?? "";

/**
 * Gives generations one creation instant. On PostgreSQL, parallel reserves share a transaction
 * and so a timestamp; on PGlite the server's reads and transactions take turns on the one
 * connection, reserves rarely meet in a transaction, and the tie-break needs ties made for it.
 */
async function tieCreatedAt(ids: readonly string[]): Promise<void> {
  const db = await openTestDatabase(1);
  try {
    await db.query(
      `UPDATE generation SET created_at = (SELECT max(created_at) FROM generation WHERE id = ANY($1::uuid[]))
        WHERE id = ANY($1::uuid[])`,
      [ids.map(uuidOf)],
    );
  } finally {
    await db.close();
  }
}

describe("generations", () => {
  let server: TestServer;
  let service: string;
  let admin: string;
  let owner: string;
  let accountId: string;
  let all: GenerationNode[];
  const read = (filter: Record<string, unknown> | null, first = 7) =>
    readAll<GenerationNode>(
      (after) => server.gql(owner, GENERATIONS_PAGE, { accountId, filter, first, after }),
      "generations",
      first,
    );

  beforeAll(async () => {
    server = await startServer();
    service = await server.token("platform", "service");
    admin = await server.token("support-agent", "admin");
    const account = await createAccount(server, service);
    accountId = account.id;
    owner = await server.token(account.ownerId, "user");
    await grant(server, service, accountId, 10_000);
    // Reserved in parallel, so several share one transaction and one createdAt: ties are ordered by id.
    const ids = await inBatches([...Array(40).keys()], 20, (i) =>
      reserve(server, service, accountId, {
        feature: ["Quick Video", "Image", "Audio", "Voice"][i % 4],
        unitCost: 5 + (i % 3),
        quantity: i % 5 === 0 ? 4 : 1,
      }),
    );
    await inBatches(
      ids.map((id, i) => ({ id, i })),
      20,
      async ({ id, i }) => {
        if (i % 5 === 0) {
          await settle(server, service, id, [
            { index: 0, succeeded: true },
            { index: 1, succeeded: false, reason: "CONTENT_REJECTED", message: "unsafe" },
            { index: 2, succeeded: true, cost: 1 },
            { index: 3, succeeded: true },
          ]);
        } else if (i % 7 === 1) await refund(server, service, id, "TIMEOUT");
        else if (i % 7 === 2) await refund(server, service, id, "CANCELLED");
        else if (i % 7 === 3) await refund(server, service, id, "PROVIDER_ERROR", "503 from upstream");
        else if (i % 7 !== 4) await settle(server, service, id);
        // i % 7 === 4 (and not a batch) stays in progress.
      },
    );
    await supportRefund(server, admin, ids[6] ?? "", 2);
    if (onPglite()) await tieCreatedAt(ids.slice(0, 4));
    all = await read(null, 100);
  });
  afterAll(() => server.close());

  it("pages newest first by (createdAt, id), each generation exactly once", async () => {
    const generations = await read(null, 3);
    expect(generations).toHaveLength(40);
    expect(new Set(generations.map((g) => g.id)).size).toBe(40);
    for (let i = 1; i < generations.length; i += 1) {
      const [newer, older] = [generations[i - 1], generations[i]];
      if (newer === undefined || older === undefined) throw new Error("gap");
      const order = Date.parse(newer.createdAt) - Date.parse(older.createdAt);
      expect(order >= 0).toBe(true);
      if (order === 0) expect(uuidOf(newer.id) > uuidOf(older.id)).toBe(true);
    }
    // Some generations share a timestamp, so the tie-break was exercised.
    expect(new Set(generations.map((g) => g.createdAt)).size).toBeLessThan(40);
    expect(generations).toEqual(all);
  });

  it("shows per-item outcomes and the money of each generation", () => {
    const batch = all.find((g) => g.quantity === 4 && g.status === "PARTIALLY_SUCCEEDED");
    expect(batch).toBeDefined();
    const unit = (batch?.reserved ?? 0) / 4;
    expect(batch).toMatchObject({ charged: unit * 2 + 1, refunded: unit, released: unit - 1 });
    expect(
      batch?.items.map((item) => [item.index, item.status, item.charged, item.refunded, item.reason]),
    ).toEqual([
      [0, "SUCCEEDED", unit, 0, null],
      [1, "FAILED", 0, unit, "CONTENT_REJECTED"],
      [2, "SUCCEEDED", 1, 0, null],
      [3, "SUCCEEDED", unit, 0, null],
    ]);
    expect(batch?.ledgerEntries.map((e) => [e.type, e.amount, e.status])).toEqual([
      ["USAGE", -unit * 4, "COMPLETED"],
      ["REFUND", unit, "COMPLETED"],
      ["RELEASE", unit - 1, "COMPLETED"],
    ]);
    const failed = all.find((g) => g.status === "FAILED");
    expect(failed).toMatchObject({
      charged: 0,
      failureReason: "PROVIDER_ERROR",
      failureMessage: "503 from upstream",
    });
    expect(failed?.refunded).toBe(failed?.reserved);
    expect(failed?.ledgerEntries.map((e) => [e.type, e.status, e.reason])).toEqual([
      ["USAGE", "FAILED", null],
      ["REFUND", "COMPLETED", "PROVIDER_ERROR"],
    ]);
    const supported = all.find((g) => g.status === "SUCCEEDED" && g.refunded === 2);
    expect(supported?.charged).toBe(supported?.reserved);
    expect(all.filter((g) => g.status === "IN_PROGRESS").every((g) => g.finishedAt === null)).toBe(true);
  });

  const filters: [string, Record<string, unknown>, (g: GenerationNode) => boolean][] = [
    ["in progress", { statuses: ["IN_PROGRESS"] }, (g) => g.status === "IN_PROGRESS"],
    [
      "timed out or cancelled",
      { statuses: ["TIMED_OUT", "CANCELLED"] },
      (g) => g.status === "TIMED_OUT" || g.status === "CANCELLED",
    ],
    [
      "every status listed",
      { statuses: ["IN_PROGRESS", "SUCCEEDED", "PARTIALLY_SUCCEEDED", "FAILED", "TIMED_OUT", "CANCELLED"] },
      () => true,
    ],
    ["one feature", { feature: "Image" }, (g) => g.feature === "Image"],
    [
      "succeeded Voice",
      { feature: "Voice", statuses: ["SUCCEEDED", "PARTIALLY_SUCCEEDED"] },
      (g) => g.feature === "Voice" && (g.status === "SUCCEEDED" || g.status === "PARTIALLY_SUCCEEDED"),
    ],
  ];

  it.each(filters)("filters: %s", async (_name, filter, predicate) => {
    const expected = all.filter(predicate).map((g) => g.id);
    expect(expected.length).toBeGreaterThan(0);
    expect((await read(filter, 3)).map((g) => g.id)).toEqual(expected);
  });

  it("filters by creation time: from inclusive, to exclusive", async () => {
    const at = all[Math.floor(all.length / 2)]?.createdAt ?? "";
    const atMs = Date.parse(at);
    const ids = (predicate: (ms: number) => boolean) =>
      all.filter((g) => predicate(Date.parse(g.createdAt))).map((g) => g.id);
    expect((await read({ from: at }, 3)).map((g) => g.id)).toEqual(ids((ms) => ms >= atMs));
    expect((await read({ to: at }, 3)).map((g) => g.id)).toEqual(ids((ms) => ms < atMs));
    expect((await read({ from: at, to: new Date(atMs + 1).toISOString() })).map((g) => g.id)).toEqual(
      ids((ms) => ms === atMs),
    );
  });

  it("loads one generation by id, and only for its account's members", async () => {
    const query = "query($id: ID!) { generation(id: $id) { id status items { index status } } }";
    const target = all[0]?.id;
    expect(dataOf(await server.gql(owner, query, { id: target })).generation.id).toBe(target);
    const stranger = await server.token("someone-else", "user");
    expect(dataOf(await server.gql(stranger, query, { id: target })).generation).toBeNull();
  });

  it("rejects bad arguments with BAD_USER_INPUT naming the argument", async () => {
    const cases: [Record<string, unknown>, string, RegExp][] = [
      [{ first: 101 }, "first", /first must be an integer from 1 to 100, got 101/],
      [{ after: "zzz" }, "after", /cursor returned by generations/],
      [{ after: Buffer.from("ledger:v1:5").toString("base64url") }, "after", /cursor/],
      [{ filter: { statuses: [] } }, "filter.statuses", /at least one GenerationStatus/],
      [
        { filter: { from: "2026-03-01T00:00:00Z", to: "2026-01-01T00:00:00Z" } },
        "filter.to",
        /must not be before/,
      ],
    ];
    for (const [args, argument, message] of cases) {
      const error = firstError(await server.gql(owner, GENERATIONS_PAGE, { accountId, ...args }));
      expect(error.extensions?.code).toBe("BAD_USER_INPUT");
      expect(error.extensions?.argument).toBe(argument);
      expect(error.message).toMatch(message);
    }
  });
});
