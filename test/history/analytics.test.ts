import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { localId } from "../../src/schema/ids.ts";
import { createAccount, grant } from "../support/fixtures.ts";
import { dataOf, startServer, type TestServer, unique } from "../support/harness.ts";
import { firstError, readLedger, refund, settle, supportRefund } from "./helpers.ts";

/** SpendingSummary.breakdown and balanceAt (SPEC §8.3). */

const BREAKDOWN = `query($accountId: ID!, $from: DateTime, $to: DateTime, $by: SpendingDimension!) {
  spending(accountId: $accountId, from: $from, to: $to) {
    charged refunded net generations failedGenerations
    breakdown(by: $by) { key charged refunded net generations failedGenerations }
  }
}`;

const RESERVE = `mutation($input: ReserveGenerationInput!) {
  reserveGeneration(input: $input) { __typename ... on ReserveGenerationSuccess { generation { id } } }
}`;

const BALANCE_AT = `query($accountId: ID!, $at: DateTime!) {
  balanceAt(accountId: $accountId, at: $at) { accountId at balance sequence }
}`;

const FIGURES = ["charged", "refunded", "net", "generations", "failedGenerations"] as const;
type Figures = Record<(typeof FIGURES)[number], number>;
type Group = Figures & { key: string | null };

interface Made {
  readonly feature: string;
  readonly model?: string;
  readonly requestedBy?: string;
  /** The token that reserves it: its sub is the USAGE entry's actor. */
  readonly token: "service" | "apiKeyA" | "apiKeyB";
  readonly unitCost: number;
  /** How it ends. */
  readonly outcome: "settle" | "refund" | "open" | "support";
  /** Days its createdAt is moved back, for the DAY dimension. */
  readonly daysAgo: number;
}

const PLAN: readonly Made[] = [
  {
    feature: "Video",
    model: "v1",
    requestedBy: "ann",
    token: "service",
    unitCost: 10,
    outcome: "settle",
    daysAgo: 0,
  },
  {
    feature: "Video",
    model: "v2",
    requestedBy: "ann",
    token: "apiKeyA",
    unitCost: 7,
    outcome: "refund",
    daysAgo: 0,
  },
  {
    feature: "Image",
    model: "v1",
    requestedBy: "bob",
    token: "apiKeyA",
    unitCost: 5,
    outcome: "support",
    daysAgo: 1,
  },
  { feature: "Image", token: "apiKeyB", unitCost: 3, outcome: "settle", daysAgo: 1 },
  {
    feature: "Audio",
    model: "v2",
    requestedBy: "bob",
    token: "service",
    unitCost: 4,
    outcome: "open",
    daysAgo: 2,
  },
  { feature: "Audio", requestedBy: "cy", token: "apiKeyB", unitCost: 6, outcome: "settle", daysAgo: 2 },
];

const utcDate = (daysAgo: number) => new Date(Date.now() - daysAgo * 86_400_000).toISOString().slice(0, 10);

describe("spending breakdown", () => {
  let server: TestServer;
  let owner: string;
  let accountId: string;

  beforeAll(async () => {
    server = await startServer();
    const tokens = {
      service: await server.token("platform", "service"),
      apiKeyA: await server.token("apikey:key-a", "service"),
      apiKeyB: await server.token("apikey:key-b", "service"),
    };
    const admin = await server.token("support-agent", "admin");
    const account = await createAccount(server, tokens.service);
    accountId = account.id;
    owner = await server.token(account.ownerId, "user");
    await grant(server, tokens.service, accountId, 1_000);
    for (const made of PLAN) {
      const data = dataOf(
        await server.gql(tokens[made.token], RESERVE, {
          input: {
            idempotencyKey: unique("reserve"),
            accountId,
            feature: made.feature,
            model: made.model,
            requestedBy: made.requestedBy,
            unitCost: made.unitCost,
          },
        }),
      );
      const id: string = data.reserveGeneration.generation.id;
      if (made.outcome === "settle" || made.outcome === "support") await settle(server, tokens.service, id);
      if (made.outcome === "support") await supportRefund(server, admin, id, 2);
      if (made.outcome === "refund") await refund(server, tokens.service, id, "PROVIDER_ERROR");
      // Only the generation's createdAt moves (ledger entries are append-only); spending reads generations.
      await server.app.db.query(
        "UPDATE generation SET created_at = created_at - make_interval(days => $2) WHERE id = $1::uuid",
        [localId(id, "Generation"), made.daysAgo],
      );
    }
  });
  afterAll(() => server.close());

  const breakdown = async (by: string, range: { from?: string; to?: string } = {}) =>
    dataOf(await server.gql(owner, BREAKDOWN, { accountId, by, ...range })).spending as Figures & {
      breakdown: Group[];
    };

  it("groups by every dimension, and every breakdown adds up to the summary", async () => {
    for (const by of ["FEATURE", "MODEL", "MEMBER", "API_KEY", "DAY"]) {
      const summary = await breakdown(by);
      expect(summary.generations).toBe(PLAN.length);
      for (const figure of FIGURES) {
        const sum = summary.breakdown.reduce((total, group) => total + group[figure], 0);
        expect(sum, `${by} ${figure}`).toBe(summary[figure]);
      }
      expect(new Set(summary.breakdown.map((group) => group.key)).size, by).toBe(summary.breakdown.length);
    }
  });

  it("keys MODEL, MEMBER and API_KEY by the generation's value, null when there is none", async () => {
    expect((await breakdown("MODEL")).breakdown).toEqual([
      { key: "v1", charged: 15, refunded: 2, net: 13, generations: 2, failedGenerations: 0 },
      { key: null, charged: 9, refunded: 0, net: 9, generations: 2, failedGenerations: 0 },
      { key: "v2", charged: 0, refunded: 7, net: 0, generations: 2, failedGenerations: 1 },
    ]);
    expect((await breakdown("MEMBER")).breakdown).toEqual([
      { key: "ann", charged: 10, refunded: 7, net: 10, generations: 2, failedGenerations: 1 },
      { key: "cy", charged: 6, refunded: 0, net: 6, generations: 1, failedGenerations: 0 },
      { key: "bob", charged: 5, refunded: 2, net: 3, generations: 2, failedGenerations: 0 },
      { key: null, charged: 3, refunded: 0, net: 3, generations: 1, failedGenerations: 0 },
    ]);
    // The key is the API key's id from the actor "apikey:<id>"; the service's own token has none.
    expect((await breakdown("API_KEY")).breakdown).toEqual([
      { key: null, charged: 10, refunded: 0, net: 10, generations: 2, failedGenerations: 0 },
      { key: "key-b", charged: 9, refunded: 0, net: 9, generations: 2, failedGenerations: 0 },
      { key: "key-a", charged: 5, refunded: 9, net: 3, generations: 2, failedGenerations: 1 },
    ]);
  });

  it("keys DAY by the UTC date of createdAt, oldest first, and honours the range", async () => {
    expect((await breakdown("DAY")).breakdown).toEqual([
      { key: utcDate(2), charged: 6, refunded: 0, net: 6, generations: 2, failedGenerations: 0 },
      { key: utcDate(1), charged: 8, refunded: 2, net: 6, generations: 2, failedGenerations: 0 },
      { key: utcDate(0), charged: 10, refunded: 7, net: 10, generations: 2, failedGenerations: 1 },
    ]);
    const from = new Date(Date.now() - 1.5 * 86_400_000).toISOString();
    const recent = await breakdown("FEATURE", { from });
    expect(recent.generations).toBe(4);
    expect(recent.breakdown.map((group) => [group.key, group.generations])).toEqual([
      ["Video", 2],
      ["Image", 2],
    ]);
  });

  it("hides other accounts and checks its argument", async () => {
    const stranger = await server.token("not-a-member", "user");
    const hidden = await server.gql(stranger, BREAKDOWN, { accountId, by: "DAY" });
    expect(firstError(hidden).extensions?.code).toBe("NOT_FOUND");
    const bad = await server.gql(owner, BREAKDOWN, { accountId, by: "WEEK" });
    expect(firstError(bad).message).toMatch(/SpendingDimension/);
  });
});

describe("balanceAt", () => {
  let server: TestServer;
  let owner: string;
  let accountId: string;

  beforeAll(async () => {
    server = await startServer();
    const service = await server.token("platform", "service");
    const account = await createAccount(server, service);
    accountId = account.id;
    owner = await server.token(account.ownerId, "user");
    const pause = () => new Promise((resolve) => setTimeout(resolve, 3));
    await grant(server, service, accountId, 500);
    for (let i = 0; i < 8; i += 1) {
      await pause();
      const data = dataOf(
        await server.gql(service, RESERVE, {
          input: { idempotencyKey: unique("reserve"), accountId, feature: "Replay", unitCost: 10 + i },
        }),
      );
      await pause();
      const id: string = data.reserveGeneration.generation.id;
      if (i % 3 === 0) await refund(server, service, id, "TIMEOUT");
      else await settle(server, service, id);
    }
  });
  afterAll(() => server.close());

  const balanceAt = async (at: string) =>
    dataOf(await server.gql(owner, BALANCE_AT, { accountId, at })).balanceAt as {
      accountId: string;
      at: string;
      balance: number;
      sequence: number;
    };

  it("matches a replay of the ledger at random instants, entry instants and before the first", async () => {
    const entries = (await readLedger(server, owner, accountId)).reverse();
    expect(entries.length).toBeGreaterThan(10);
    const replay = (at: number) => {
      let last: { balanceAfter: number; sequence: number; createdAt: string } | undefined;
      for (const entry of entries) {
        const created = Date.parse(entry.createdAt);
        if (created > at) continue;
        // Latest createdAt wins; entries are read in sequence order, so a tie goes to the later one.
        if (last === undefined || created >= Date.parse(last.createdAt)) last = entry;
      }
      return { balance: last?.balanceAfter ?? 0, sequence: last?.sequence ?? 0 };
    };
    const first = Date.parse(entries[0]?.createdAt ?? "");
    const lastAt = Date.parse(entries.at(-1)?.createdAt ?? "");
    const instants = [
      first - 1,
      first,
      lastAt,
      lastAt + 60_000,
      ...entries.map((entry) => Date.parse(entry.createdAt)),
      ...Array.from({ length: 25 }, () => first + Math.floor(Math.random() * (lastAt - first + 1))),
    ];
    for (const at of instants) {
      const iso = new Date(at).toISOString();
      const answer = await balanceAt(iso);
      expect({ balance: answer.balance, sequence: answer.sequence }, iso).toEqual(replay(at));
      expect(answer).toMatchObject({ accountId, at: iso });
    }
    expect((await balanceAt(new Date(first - 1).toISOString())).sequence).toBe(0);
    expect((await balanceAt(new Date(lastAt).toISOString())).sequence).toBe(entries.length);
  });

  it("hides other accounts", async () => {
    const stranger = await server.token("not-a-member", "user");
    const hidden = await server.gql(stranger, BALANCE_AT, { accountId, at: new Date().toISOString() });
    expect(firstError(hidden).extensions?.code).toBe("NOT_FOUND");
  });
});
