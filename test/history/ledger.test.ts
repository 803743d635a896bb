import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAccount, grant } from "../support/fixtures.ts";
import { dataOf, startServer, type TestServer } from "../support/harness.ts";
import { REFUND_REASONS } from "../support/refund-reasons.ts";
import {
  type EntryNode,
  firstError,
  inBatches,
  LEDGER_PAGE,
  readLedger,
  refund,
  reserve,
  settle,
} from "./helpers.ts";

/**
 * `ledger` over an account of exactly 1,000 entries made through the API in
 * 235 calls: 45 grants, 100 reserves of 10 items (one USAGE each), and 90
 * settles with per-item outcomes. A settle writes one REFUND per distinct
 * failure reason and one RELEASE for all surplus (SPEC §2), so an all-failed
 * settle over 9 reasons writes 9 entries (generation FAILED) and one with a
 * cheaper success besides writes 10 (PARTIALLY_SUCCEEDED). Ten generations
 * stay in progress (PENDING).
 */
const FEATURES = ["Quick Video", "Image", "Audio"] as const;
/** The nine reasons before BILLING_ERROR, in the enum's order. */
const REASONS = REFUND_REASONS.slice(0, 9);
const GRANTS = 45;
const GENERATIONS = 100;
const ITEMS = 10;
const UNIT_COST = 10;
const LEFT_IN_PROGRESS = 10;
const SETTLED = GENERATIONS - LEFT_IN_PROGRESS;
const ENTRIES = GRANTS + GENERATIONS + (SETTLED / 2) * REASONS.length + (SETTLED / 2) * (REASONS.length + 1);
const PARALLEL = 50;

/** The message of the refund for `reason`: the first failed item's message of that reason. */
const messageOf = (reason: string) => `${reason.toLowerCase()} reported by the provider`;

/**
 * Outcomes of generation `i`: odd ones fail every item (item 9 shares item
 * 0's reason); even ones deliver item 0 for 4 credits (6 released) and fail
 * the other 9, each with its own reason.
 */
function outcomes(i: number) {
  return Array.from({ length: ITEMS }, (_, index) => {
    if (i % 2 === 0 && index === 0) return { index, succeeded: true, cost: 4 };
    const reason = REASONS[(i % 2 === 0 ? index - 1 : index) % REASONS.length] ?? "GENERATION_FAILED";
    return { index, succeeded: false, reason, message: messageOf(reason) };
  });
}

describe("ledger", () => {
  let server: TestServer;
  let service: string;
  let owner: string;
  let accountId: string;
  let all: EntryNode[];
  let failedGenerationId: string;

  beforeAll(async () => {
    server = await startServer();
    service = await server.token("platform", "service");
    const account = await createAccount(server, service, { name: "Thousand entries" });
    accountId = account.id;
    owner = await server.token(account.ownerId, "user");
    await inBatches([...Array(GRANTS).keys()], PARALLEL, (i) =>
      grant(server, service, accountId, 300, { source: i % 2 === 0 ? "WALLET" : "SUBSCRIPTION" }),
    );
    const generations = await inBatches([...Array(GENERATIONS).keys()], PARALLEL, async (i) => ({
      i,
      id: await reserve(server, service, accountId, {
        feature: FEATURES[i % FEATURES.length],
        unitCost: UNIT_COST,
        quantity: ITEMS,
      }),
    }));
    await inBatches(generations.slice(LEFT_IN_PROGRESS), PARALLEL, ({ i, id }) =>
      settle(server, service, id, outcomes(i)),
    );
    failedGenerationId = generations.find(({ i }) => i >= LEFT_IN_PROGRESS && i % 2 === 1)?.id ?? "";
    all = await readLedger(server, owner, accountId, null, 100);
  });
  afterAll(() => server.close());

  it("pages through 1,000 entries with first: 37, each exactly once, newest first, summing to available", async () => {
    const entries = await readLedger(server, owner, accountId, null, 37);
    expect(entries).toHaveLength(ENTRIES);
    expect(entries.map((entry) => entry.sequence)).toEqual(
      Array.from({ length: ENTRIES }, (_, i) => ENTRIES - i),
    );
    expect(new Set(entries.map((entry) => entry.id)).size).toBe(ENTRIES);
    const balance = dataOf(
      await server.gql(owner, "query($id: ID!) { balance(accountId: $id) { available sequence } }", {
        id: accountId,
      }),
    ).balance;
    expect(balance.sequence).toBe(ENTRIES);
    expect(entries.reduce((sum, entry) => sum + entry.amount, 0)).toBe(balance.available);
    // Every entry says the balance before and after, and they chain.
    entries.forEach((entry, i) => {
      expect(entry.balanceAfter).toBe(entry.balanceBefore + entry.amount);
      const older = entries[i + 1];
      if (older !== undefined) expect(entry.balanceBefore).toBe(older.balanceAfter);
    });
    expect(entries.at(-1)?.balanceBefore).toBe(0);
    expect(entries[0]?.balanceAfter).toBe(balance.available);
    // Same entries as the 100-per-page read the other tests compare against.
    expect(entries).toEqual(all);
  });

  it("shows each entry's type, signed amount, derived status, title, reason and message", () => {
    const count = (predicate: (entry: EntryNode) => boolean) => all.filter(predicate).length;
    expect(count((e) => e.type === "GRANT")).toBe(GRANTS);
    expect(count((e) => e.type === "USAGE")).toBe(GENERATIONS);
    expect(count((e) => e.type === "REFUND")).toBe(SETTLED * REASONS.length);
    expect(count((e) => e.type === "RELEASE")).toBe(SETTLED / 2);
    for (const entry of all) {
      if (entry.type === "USAGE" || entry.type === "EXPIRY") expect(entry.amount).toBeLessThan(0);
      else expect(entry.amount).toBeGreaterThan(0);
      if (entry.type === "GRANT") {
        expect(["Credit purchase", "Subscription credits"]).toContain(entry.title);
        expect(entry.generation).toBeNull();
      } else {
        expect(entry.title).toBe(entry.generation?.feature);
      }
      const generationStatus = entry.generation?.status;
      const expected =
        entry.type !== "USAGE"
          ? "COMPLETED"
          : generationStatus === "IN_PROGRESS"
            ? "PENDING"
            : generationStatus === "SUCCEEDED" || generationStatus === "PARTIALLY_SUCCEEDED"
              ? "COMPLETED"
              : "FAILED";
      expect(entry.status, `${entry.type} of a ${generationStatus} generation`).toBe(expected);
      if (entry.type === "REFUND") {
        expect(REASONS).toContain(entry.reason);
        expect(entry.message).toBe(messageOf(entry.reason ?? ""));
      } else {
        expect(entry.reason).toBeNull();
      }
      if (entry.type === "RELEASE") expect(entry.amount).toBe(UNIT_COST - 4);
    }
    expect(count((e) => e.status === "PENDING")).toBe(LEFT_IN_PROGRESS);
    expect(count((e) => e.status === "FAILED")).toBe(SETTLED / 2);
    expect(count((e) => e.generation?.status === "PARTIALLY_SUCCEEDED" && e.type === "USAGE")).toBe(
      SETTLED / 2,
    );
  });

  const filters: [string, Record<string, unknown>, (entry: EntryNode) => boolean][] = [
    ["my refunds", { types: ["REFUND"] }, (e) => e.type === "REFUND"],
    ["several types", { types: ["USAGE", "RELEASE"] }, (e) => e.type === "USAGE" || e.type === "RELEASE"],
    ["grants", { types: ["GRANT"] }, (e) => e.type === "GRANT"],
    ["pending", { statuses: ["PENDING"] }, (e) => e.status === "PENDING"],
    ["failed", { statuses: ["FAILED"] }, (e) => e.status === "FAILED"],
    ["completed", { statuses: ["COMPLETED"] }, (e) => e.status === "COMPLETED"],
    ["pending or failed", { statuses: ["PENDING", "FAILED"] }, (e) => e.status !== "COMPLETED"],
    ["completed or failed", { statuses: ["COMPLETED", "FAILED"] }, (e) => e.status !== "PENDING"],
    ["one feature", { feature: "Audio" }, (e) => e.generation?.feature === "Audio"],
    [
      "Image refunds",
      { feature: "Image", types: ["REFUND"] },
      (e) => e.type === "REFUND" && e.generation?.feature === "Image",
    ],
    ["an unknown feature", { feature: "Nothing" }, () => false],
    [
      "failed Image usage",
      { types: ["USAGE"], statuses: ["FAILED"], feature: "Image" },
      (e) => e.type === "USAGE" && e.status === "FAILED" && e.generation?.feature === "Image",
    ],
    [
      "refunds and releases of Quick Video",
      { types: ["REFUND", "RELEASE"], feature: "Quick Video" },
      (e) => (e.type === "REFUND" || e.type === "RELEASE") && e.generation?.feature === "Quick Video",
    ],
    [
      "completed usage and grants",
      { types: ["USAGE", "GRANT"], statuses: ["COMPLETED"] },
      (e) => (e.type === "USAGE" || e.type === "GRANT") && e.status === "COMPLETED",
    ],
    ["pending refunds (none can be)", { types: ["REFUND"], statuses: ["PENDING"] }, () => false],
    [
      "every type listed",
      { types: ["GRANT", "USAGE", "REFUND", "RELEASE", "EXPIRY", "ADJUSTMENT"] },
      () => true,
    ],
  ];

  it.each(filters)("filters: %s", async (_name, filter, predicate) => {
    const expected = all.filter(predicate);
    // first: 37 pages across the merge of several types too.
    const entries = await readLedger(server, owner, accountId, filter, 37);
    expect(entries.map((e) => e.sequence)).toEqual(expected.map((e) => e.sequence));
  });

  it("filters by generation, alone and with a type", async () => {
    const ofGeneration = await readLedger(server, owner, accountId, { generationId: failedGenerationId });
    // Newest first: the settle's refunds, then the reserve's usage.
    expect(ofGeneration.map((e) => e.type)).toEqual([...REASONS.map(() => "REFUND"), "USAGE"]);
    expect(ofGeneration.every((e) => e.generation?.id === failedGenerationId)).toBe(true);
    const refunds = await readLedger(
      server,
      owner,
      accountId,
      { generationId: failedGenerationId, types: ["REFUND"] },
      4,
    );
    // One refund per reason; the first reason covers items 0 and 9.
    expect(refunds.map((e) => [e.reason, e.amount, e.status])).toEqual(
      [...REASONS]
        .reverse()
        .map((reason) => [reason, reason === REASONS[0] ? 2 * UNIT_COST : UNIT_COST, "COMPLETED"]),
    );
  });

  it("filters by date: from is inclusive, to is exclusive", async () => {
    // Entries written in one transaction share a timestamp; pick one inside the ledger.
    const middle = all[Math.floor(all.length / 2)];
    if (middle === undefined) throw new Error("empty ledger");
    const at = middle.createdAt;
    const atMs = Date.parse(at);
    const sameInstant = all.filter((e) => e.createdAt === at);
    expect(sameInstant.length).toBeGreaterThan(0);
    const read = (filter: Record<string, unknown>) =>
      readLedger(server, owner, accountId, filter, 37).then((entries) => entries.map((e) => e.sequence));
    const sequences = (predicate: (ms: number) => boolean) =>
      all.filter((e) => predicate(Date.parse(e.createdAt))).map((e) => e.sequence);

    expect(await read({ from: at })).toEqual(sequences((ms) => ms >= atMs));
    expect(await read({ to: at })).toEqual(sequences((ms) => ms < atMs));
    const justAfter = new Date(atMs + 1).toISOString();
    expect(await read({ from: at, to: justAfter })).toEqual(sameInstant.map((e) => e.sequence));
    expect(await read({ from: at, to: at })).toEqual([]);
    // Together with other filters.
    expect(await read({ from: at, types: ["USAGE"], statuses: ["FAILED"] })).toEqual(
      all
        .filter((e) => Date.parse(e.createdAt) >= atMs && e.type === "USAGE" && e.status === "FAILED")
        .map((e) => e.sequence),
    );
    // The far ends of what DateTime accepts (an offset can carry the last instant of 9999 into 10000 UTC).
    const everything = all.map((e) => e.sequence);
    expect(await read({ from: "0000-01-01T00:00:00Z" })).toEqual(everything);
    expect(await read({ to: "9999-12-31T23:59:59-23:59" })).toEqual(everything);
    expect(await read({ from: "9999-12-31T23:59:59-23:59" })).toEqual([]);
  });

  it("rejects bad arguments with BAD_USER_INPUT naming the argument and the value", async () => {
    const cases: [Record<string, unknown>, string, RegExp][] = [
      [{ first: 0 }, "first", /first must be an integer from 1 to 100, got 0/],
      [{ first: 101 }, "first", /got 101/],
      [{ first: -5 }, "first", /got -5/],
      [{ after: "not a cursor!" }, "after", /after must be a cursor returned by ledger.*"not a cursor!"/],
      [{ after: Buffer.from("ledger:v1:abc").toString("base64url") }, "after", /cursor/],
      [{ after: Buffer.from("generation:v1:1:x").toString("base64url") }, "after", /cursor/],
      [{ filter: { types: [] } }, "filter.types", /at least one LedgerEntryType.*\[\]/],
      [{ filter: { statuses: [] } }, "filter.statuses", /at least one EntryStatus/],
      [{ filter: { generationId: "nope" } }, "filter.generationId", /Generation.*"nope"/],
      [{ filter: { generationId: accountId } }, "filter.generationId", /must be the id of a Generation/],
      [{ filter: { feature: "x".repeat(201) } }, "filter.feature", /at most 200 characters, got 201/],
      [
        { filter: { from: "2026-02-01T00:00:00Z", to: "2026-01-01T00:00:00Z" } },
        "filter.to",
        /filter.to must not be before filter.from \(2026-02-01T00:00:00.000Z\), got 2026-01-01T00:00:00.000Z/,
      ],
    ];
    for (const [args, argument, message] of cases) {
      const error = firstError(await server.gql(owner, LEDGER_PAGE, { accountId, ...args }));
      expect(error.extensions?.code, JSON.stringify(args)).toBe("BAD_USER_INPUT");
      expect(error.extensions?.argument).toBe(argument);
      expect(error.message).toMatch(message);
    }
    // Wrong GraphQL types fail validation before the resolver runs.
    const typed = firstError(await server.gql(owner, LEDGER_PAGE, { accountId, first: "ten" }));
    expect(typed.message).toMatch(/Int/);
  });

  it("uses a default page of 20 and tells an empty page apart", async () => {
    const page = dataOf(await server.gql(owner, LEDGER_PAGE, { accountId })).ledger;
    expect(page.edges).toHaveLength(20);
    expect(page.pageInfo).toMatchObject({ hasNextPage: true, hasPreviousPage: false });
    const empty = dataOf(
      await server.gql(owner, LEDGER_PAGE, { accountId, filter: { feature: "Nothing" } }),
    ).ledger;
    expect(empty).toEqual({
      edges: [],
      pageInfo: { hasNextPage: false, hasPreviousPage: false, startCursor: null, endCursor: null },
    });
  });

  it("shows a timeout refund on top, and timed-out and cancelled usage as FAILED", async () => {
    const account = await createAccount(server, service);
    await grant(server, service, account.id, 50);
    const generation = await reserve(server, service, account.id, { unitCost: 12, feature: "Quick Video" });
    await refund(server, service, generation, "TIMEOUT", "took 160 minutes");
    const token = await server.token(account.ownerId, "user");
    const entries = await readLedger(server, token, account.id);
    expect(
      entries.map((e) => [e.type, e.amount, e.status, e.title, e.balanceBefore, e.balanceAfter]),
    ).toEqual([
      ["REFUND", 12, "COMPLETED", "Quick Video", 38, 50],
      ["USAGE", -12, "FAILED", "Quick Video", 50, 38],
      ["GRANT", 50, "COMPLETED", "Credit purchase", 0, 50],
    ]);
    expect(entries[0]).toMatchObject({ reason: "TIMEOUT", message: "took 160 minutes" });

    // Timed out and cancelled generations make their USAGE entries FAILED too.
    const cancelled = await reserve(server, service, account.id, { unitCost: 5, feature: "Image" });
    await refund(server, service, cancelled, "CANCELLED");
    const running = await reserve(server, service, account.id, { unitCost: 5, feature: "Image" });
    const failed = await readLedger(server, token, account.id, { statuses: ["FAILED"] });
    expect(failed.map((e) => [e.type, e.generation?.id, e.generation?.status])).toEqual([
      ["USAGE", cancelled, "CANCELLED"],
      ["USAGE", generation, "TIMED_OUT"],
    ]);
    const pending = await readLedger(server, token, account.id, { statuses: ["PENDING"] });
    expect(pending.map((e) => [e.type, e.generation?.id])).toEqual([["USAGE", running]]);
  });
});
