/**
 * /metrics (Prometheus text, src/server/metrics.ts) moves when operations
 * happen: operations by root field and outcome, refunds and refunded credits
 * by reason, ledger entries by type, events published, subscribers
 * connected; and it reports the reaper's lag and the database pool.
 */
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
import { connect } from "../support/ws.ts";

/** One scrape: `name{label="value",…}` (labels sorted) → value. */
type Scrape = ReadonlyMap<string, number>;

function seriesKey(name: string, labels: Record<string, string> = {}): string {
  const pairs = Object.entries(labels)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([label, value]) => `${label}="${value}"`);
  return pairs.length === 0 ? name : `${name}{${pairs.join(",")}}`;
}

/** Parses the Prometheus text format (the subset prom-client writes). */
function parseMetrics(text: string): Scrape {
  const series = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (match === null) throw new Error(`not a Prometheus sample line: ${line}`);
    const [, name = "", labelText = "", value = ""] = match;
    const labels = Object.fromEntries(
      [...labelText.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], m[2]]),
    );
    series.set(seriesKey(name, labels), Number(value));
  }
  return series;
}

describe("/metrics", () => {
  let server: TestServer;
  let service: string;
  let accountId: string;

  beforeAll(async () => {
    // The reaper is off: it would count other test files' timeouts into this instance's counters.
    server = await startServer({ reaperEnabled: false });
    service = await server.token(unique("metrics"), "service");
    const account = await createAccount(server, service);
    accountId = account.id;
    await grant(server, service, accountId, 100);
  });
  afterAll(() => server?.close());

  async function scrape(): Promise<Scrape> {
    const response = await fetch(new URL("/metrics", server.url));
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/^text\/plain/);
    return parseMetrics(await response.text());
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
});
