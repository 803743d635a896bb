/**
 * The mutation rate limit (here RATE_LIMIT_SERVICE_PER_SECOND, since the
 * burster is a service token; windows of 2 s admitting twice the rate): a
 * burst from one principal gets some mutations through and the rest refused
 * with RATE_LIMITED (HTTP 429, Retry-After) before any resolver runs — so
 * exactly the successful ones were written. Other principals and queries are
 * not affected, and the next window admits again.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  BalanceDocument,
  GenerationsPageDocument,
  LedgerPageDocument,
  ReserveGenerationDocument,
  type ReserveGenerationMutation,
} from "../../src/generated/graphql/graphql.ts";
import { expectTypename, gqlData, requestOf } from "../support/documents.ts";
import { createAccount, grant } from "../support/fixtures.ts";
import { type GraphQLResponse, startServer, type TestServer, unique } from "../support/harness.ts";
import { METRICS_TEST_TOKEN, scrapeText } from "../support/metrics.ts";

const RATE_PER_SECOND = 5;
const BURST = 2 * RATE_PER_SECOND;
const REQUESTS = 30;

describe("rate limit per principal for mutations", () => {
  let server: TestServer;
  let admin: string;
  let burster: string;
  let accountId: string;

  beforeAll(async () => {
    server = await startServer({
      rateLimitServicePerSecond: RATE_PER_SECOND,
      reaperEnabled: false,
      metricsToken: METRICS_TEST_TOKEN,
    });
    // The fixtures come from the admin (limited like a service token): its window is its own.
    admin = await server.token(unique("rate-admin"), "admin");
    burster = await server.token(unique("rate-burster"), "service");
    accountId = (await createAccount(server, admin)).id;
    await grant(server, admin, accountId, 1_000);
  });
  afterAll(() => server?.close());

  const reserveInput = (idempotencyKey: string) => ({
    input: { idempotencyKey, accountId, feature: "Burst", unitCost: 1 },
  });

  it(`lets a burst of ${REQUESTS} through up to the window, refuses the rest with RATE_LIMITED, and writes exactly the successes`, async () => {
    const keys = Array.from({ length: REQUESTS }, () => unique("burst"));
    const started = performance.now();
    const answers = await Promise.all(
      keys.map(async (key) => {
        const response = await server.post(burster, requestOf(ReserveGenerationDocument, reserveInput(key)));
        return {
          key,
          status: response.status,
          retryAfter: response.headers.get("retry-after"),
          body: (await response.json()) as GraphQLResponse<ReserveGenerationMutation>,
        };
      }),
    );
    const elapsedSeconds = (performance.now() - started) / 1000;

    const succeeded = answers.filter(
      (answer) => answer.body.data?.reserveGeneration.__typename === "ReserveGenerationSuccess",
    );
    const limited = answers.filter((answer) => answer.body.errors?.[0]?.extensions?.code === "RATE_LIMITED");
    expect(succeeded.length + limited.length, JSON.stringify(answers.slice(0, 3))).toBe(REQUESTS);
    // A full window, plus (if the burst straddled two windows) what the next one admitted.
    expect(succeeded.length).toBeGreaterThanOrEqual(BURST);
    expect(succeeded.length).toBeLessThanOrEqual(BURST + Math.ceil(elapsedSeconds * RATE_PER_SECOND));
    expect(limited.length).toBeGreaterThan(0);
    for (const answer of limited) {
      expect(answer.status).toBe(429);
      // Whole seconds until the 2 s window reopens.
      expect(answer.retryAfter).toMatch(/^[12]$/);
      expect(answer.body.data ?? null).toBeNull();
      expect(answer.body.errors).toEqual([
        {
          message: "Too many mutations: slow down and retry shortly (nothing was written)",
          extensions: {
            code: "RATE_LIMITED",
            http: { status: 429, headers: { "Retry-After": answer.retryAfter } },
          },
        },
      ]);
    }

    // Exactly the successful reserves were written: holds, USAGE entries, generations.
    const { balance } = await gqlData(server, admin, BalanceDocument, { accountId });
    expect(balance).toMatchObject({ available: 1_000 - succeeded.length, held: succeeded.length });
    const usage = await gqlData(server, admin, LedgerPageDocument, {
      accountId,
      filter: { types: ["USAGE"] },
      first: 100,
    });
    expect(usage.ledger.edges).toHaveLength(succeeded.length);
    const generations = await gqlData(server, admin, GenerationsPageDocument, { accountId, first: 100 });
    expect(generations.generations.edges).toHaveLength(succeeded.length);
    expect(new Set(generations.generations.edges.map((edge) => edge.node.id))).toEqual(
      new Set(
        succeeded.map((answer) =>
          answer.body.data?.reserveGeneration.__typename === "ReserveGenerationSuccess"
            ? answer.body.data.reserveGeneration.generation.id
            : "",
        ),
      ),
    );

    // Refused requests stored nothing: retried once the window reopens, each runs fresh (not a replay).
    await new Promise((resolve) => setTimeout(resolve, 1_000 * (BURST / RATE_PER_SECOND) + 100));
    const retried = await Promise.all(
      limited
        .slice(0, BURST)
        .map((answer) => gqlData(server, burster, ReserveGenerationDocument, reserveInput(answer.key))),
    );
    for (const data of retried) {
      expect(expectTypename(data.reserveGeneration, "ReserveGenerationSuccess").replayed).toBe(false);
    }

    // The refusals are visible in the metrics.
    const metrics = await scrapeText(new URL("/metrics", server.url));
    expect(metrics).toContain(`creditbook_rate_limited_total ${limited.length}`);
    expect(metrics).toContain(
      `creditbook_graphql_operations_total{field="reserveGeneration",outcome="RATE_LIMITED"} ${limited.length}`,
    );
  });

  it("limits each principal separately and never limits queries", async () => {
    const principal = await server.token(unique("rate-one"), "service");
    const other = await server.token(unique("rate-two"), "service");
    const burst = await Promise.all(
      Array.from({ length: BURST + 5 }, () =>
        server.post(principal, requestOf(ReserveGenerationDocument, reserveInput(unique("one")))),
      ),
    );
    expect(burst.filter((response) => response.status === 429).length).toBeGreaterThan(0);
    // Right after, another principal's mutation goes through…
    const fromOther = await gqlData(server, other, ReserveGenerationDocument, reserveInput(unique("two")));
    expectTypename(fromOther.reserveGeneration, "ReserveGenerationSuccess");
    // …and the limited principal's queries all do.
    const queries = await Promise.all(
      Array.from({ length: 3 * BURST }, () => gqlData(server, principal, BalanceDocument, { accountId })),
    );
    for (const data of queries) expect(data.balance?.accountId).toBe(accountId);
  });
});
