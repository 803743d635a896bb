/**
 * /metrics (Prometheus text, src/server/metrics.ts) moves when operations
 * happen: operations by root field and outcome, refunds and refunded credits
 * by reason, ledger entries by type, events published, subscribers
 * connected; and it reports the reaper's lag and the database pool.
 */
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  LedgerEntryAddedDocument,
  type LedgerEntryAddedSubscription,
  RefundGenerationDocument,
  ReserveGenerationDocument,
} from "../../src/generated/graphql/graphql.ts";
import { expectTypename, gqlData, sourceOf } from "../support/documents.ts";
import { createAccount, grant } from "../support/fixtures.ts";
import { startServer, type TestServer, unique } from "../support/harness.ts";
import {
  METRICS_TEST_TOKEN,
  metricTypes,
  parseMetrics,
  type Scrape,
  scrapeText,
  seriesKey,
} from "../support/metrics.ts";
import { connect } from "../support/ws.ts";

describe("/metrics", () => {
  let server: TestServer;
  let service: string;
  let accountId: string;

  beforeAll(async () => {
    // The reaper is off: it would count other test files' timeouts into this instance's counters.
    server = await startServer({ reaperEnabled: false, metricsToken: METRICS_TEST_TOKEN });
    service = await server.token(unique("metrics"), "service");
    const account = await createAccount(server, service);
    accountId = account.id;
    await grant(server, service, accountId, 100);
  });
  afterAll(() => server?.close());

  async function scrape(): Promise<Scrape> {
    return parseMetrics(await scrapeText(new URL("/metrics", server.url)));
  }

  /** How much a series moved between two scrapes (a series not there yet counts as 0). */
  const delta = (before: Scrape, after: Scrape, name: string, labels?: Record<string, string>) =>
    (after.get(seriesKey(name, labels)) ?? 0) - (before.get(seriesKey(name, labels)) ?? 0);

  it("counts a reserve and its refund: operations, refunds by reason, ledger entries by type, events", async () => {
    const before = await scrape();

    const reserved = await gqlData(server, service, ReserveGenerationDocument, {
      input: {
        idempotencyKey: unique("reserve"),
        accountId,
        feature: "Quick Video",
        unitCost: 15,
        quantity: 2,
      },
    });
    const generation = expectTypename(reserved.reserveGeneration, "ReserveGenerationSuccess").generation;
    const refunded = await gqlData(server, service, RefundGenerationDocument, {
      input: { idempotencyKey: unique("refund"), generationId: generation.id, reason: "PROVIDER_ERROR" },
    });
    expectTypename(refunded.refundGeneration, "RefundGenerationSuccess");
    // An operating error is counted under its code, and writes nothing.
    const refused = await gqlData(server, service, ReserveGenerationDocument, {
      input: { idempotencyKey: unique("reserve"), accountId, feature: "Quick Video", unitCost: 1_000 },
    });
    expectTypename(refused.reserveGeneration, "InsufficientCreditsError");

    const after = await scrape();
    const operations = "creditbook_graphql_operations_total";
    expect(delta(before, after, operations, { field: "reserveGeneration", outcome: "ok" })).toBe(1);
    expect(delta(before, after, operations, { field: "refundGeneration", outcome: "ok" })).toBe(1);
    expect(
      delta(before, after, operations, { field: "reserveGeneration", outcome: "INSUFFICIENT_CREDITS" }),
    ).toBe(1);
    expect(delta(before, after, "creditbook_refunds_total", { reason: "PROVIDER_ERROR" })).toBe(1);
    expect(delta(before, after, "creditbook_refunded_credits_total", { reason: "PROVIDER_ERROR" })).toBe(30);
    expect(delta(before, after, "creditbook_refunds_total", { reason: "TIMEOUT" })).toBe(0);
    const entries = "creditbook_ledger_entries_total";
    expect(delta(before, after, entries, { type: "USAGE" })).toBe(1);
    expect(delta(before, after, entries, { type: "REFUND" })).toBe(1);
    expect(delta(before, after, entries, { type: "RELEASE" })).toBe(0);
    // Each committed change publishes its entries, the balance and the generation.
    expect(delta(before, after, "creditbook_events_published_total")).toBeGreaterThanOrEqual(2);
    expect(after.get("creditbook_events_publish_failed_total")).toBe(0);
  });

  it("counts subscribers while they are connected", async () => {
    const gauge = async () => (await scrape()).get("creditbook_subscribers");
    /** Polls the gauge until it reads `expected` (a stopped subscription ends asynchronously). */
    const gaugeReaches = async (expected: number) => {
      const deadline = Date.now() + 5_000;
      for (let value = await gauge(); value !== expected; value = await gauge()) {
        if (Date.now() > deadline) expect(value, "creditbook_subscribers").toBe(expected);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    };
    const start = await gauge();
    expect(start).toBeDefined();
    const live = connect(server.url, { token: service });
    try {
      const entries = live.subscribe<LedgerEntryAddedSubscription>(sourceOf(LedgerEntryAddedDocument), {
        accountId,
        afterSequence: 0,
      });
      await entries.waitFor((values) => values.length > 0, "the replayed entries");
      await gaugeReaches((start ?? 0) + 1);
      entries.stop();
      await gaugeReaches(start ?? 0);
    } finally {
      await live.dispose();
    }
  });

  it("reports the reaper's lag, the database pool and process metrics", async () => {
    const metrics = await scrape();
    expect(metrics.get("creditbook_reaper_lag_seconds")).toBeGreaterThanOrEqual(0);
    expect(metrics.get("creditbook_reaper_generations_timed_out_total")).toBe(0);
    expect(metrics.get("creditbook_db_pool_connections")).toBeGreaterThanOrEqual(1);
    expect(metrics.get("creditbook_db_pool_connections")).toBeLessThanOrEqual(5);
    expect(metrics.get("creditbook_db_pool_idle")).toBeGreaterThanOrEqual(0);
    expect(metrics.get("creditbook_db_pool_waiting")).toBe(0);
    expect(metrics.get("creditbook_rate_limited_total")).toBe(0);
    expect(metrics.get("creditbook_process_resident_memory_bytes")).toBeGreaterThan(0);
  });

  it("names every metric the Prometheus way and documents each in docs/METRICS.md", async () => {
    // A few mutations first, so both duration histograms have observations.
    const reserved = await gqlData(server, service, ReserveGenerationDocument, {
      input: { idempotencyKey: unique("reserve"), accountId, feature: "Quick Video", unitCost: 1 },
    });
    const generation = expectTypename(reserved.reserveGeneration, "ReserveGenerationSuccess").generation;
    await gqlData(server, service, RefundGenerationDocument, {
      input: { idempotencyKey: unique("refund"), generationId: generation.id, reason: "PROVIDER_ERROR" },
    });
    const text = await scrapeText(new URL("/metrics", server.url));
    const types = metricTypes(text);
    const samples = parseMetrics(text);

    // docs/METRICS.md: one table row per metric, `| `name` | type | labels | meaning |`.
    const docs = readFileSync(new URL("../../docs/METRICS.md", import.meta.url), "utf8");
    const documented = new Map(
      [...docs.matchAll(/^\| `(creditbook_[a-z0-9_]+)` \| (counter|gauge|histogram) \|/gm)].map((m) => [
        m[1] ?? "",
        m[2] ?? "",
      ]),
    );
    expect([...types.keys()].sort()).toEqual([...documented.keys()].sort());
    for (const [name, type] of types) {
      expect(documented.get(name), `the type docs/METRICS.md gives ${name}`).toBe(type);
      if (type === "counter") expect(name, "a counter's name").toMatch(/_total$/);
      else expect(name, `a ${type}'s name`).not.toMatch(/_total$/);
      if (type === "histogram") expect(name, "a histogram's unit").toMatch(/_seconds$/);
    }

    const count = (name: string, labels: Record<string, string>) =>
      samples.get(seriesKey(`${name}_count`, labels));
    expect(
      count("creditbook_operation_duration_seconds", { operation: "reserveGeneration" }),
    ).toBeGreaterThanOrEqual(1);
    expect(
      count("creditbook_operation_duration_seconds", { operation: "refundGeneration" }),
    ).toBeGreaterThanOrEqual(1);
    expect(count("creditbook_db_transaction_duration_seconds", { outcome: "commit" })).toBeGreaterThanOrEqual(
      2,
    );
    expect(samples.get('creditbook_db_transaction_duration_seconds_sum{outcome="commit"}')).toBeGreaterThan(
      0,
    );
  });

  it("labels operations by known root field only", async () => {
    const before = await scrape();
    await server.gql(service, "{ __typename }");
    await server.gql(service, `query Custom { viewer { id } }`);
    await server.gql(service, `{ viewer { id } __typename }`);
    const after = await scrape();
    const histogram = "creditbook_operation_duration_seconds_count";
    expect(delta(before, after, histogram, { operation: "viewer" })).toBe(1);
    expect(delta(before, after, histogram, { operation: "other" })).toBe(2);
    expect([...after.keys()].some((key) => key.includes('operation="Custom"'))).toBe(false);
  });
});
