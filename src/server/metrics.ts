import { Counter, collectDefaultMetrics, Gauge, Registry } from "prom-client";
import type { Database } from "../db/database.ts";
import type { CommittedBatch } from "../domain/executor.ts";
import type { Reaper } from "../jobs/reaper.ts";
import type { EventBus } from "./events.ts";
import type { Realtime } from "./realtime.ts";

/**
 * Prometheus metrics for /metrics. Counters are incremented where things
 * happen; gauges read live state when scraped.
 */
export class Metrics {
  readonly registry = new Registry();
  readonly operations = new Counter({
    name: "creditbook_graphql_operations_total",
    help: "GraphQL operations by root field and outcome (ok, error, or the operating error's code).",
    labelNames: ["field", "outcome"] as const,
    registers: [this.registry],
  });
  readonly refunds = new Counter({
    name: "creditbook_refunds_total",
    help: "Refund entries written, by reason.",
    labelNames: ["reason"] as const,
    registers: [this.registry],
  });
  readonly refundedCredits = new Counter({
    name: "creditbook_refunded_credits_total",
    help: "Credits refunded, by reason.",
    labelNames: ["reason"] as const,
    registers: [this.registry],
  });
  readonly entries = new Counter({
    name: "creditbook_ledger_entries_total",
    help: "Ledger entries written by this instance, by type.",
    labelNames: ["type"] as const,
    registers: [this.registry],
  });
  readonly databaseUnavailable = new Counter({
    name: "creditbook_database_unavailable_total",
    help: "Requests answered SERVICE_UNAVAILABLE because the database could not be reached.",
    registers: [this.registry],
  });
  readonly rateLimited = new Counter({
    name: "creditbook_rate_limited_total",
    help: "Mutations refused by the per-principal rate limit.",
    registers: [this.registry],
  });

  constructor(parts: { db: Database; events: EventBus; realtime: Realtime; reaper: Reaper }) {
    collectDefaultMetrics({ register: this.registry, prefix: "creditbook_" });
    const { db, events, realtime, reaper } = parts;
    const gauge = (name: string, help: string, read: () => number) =>
      new Gauge({
        name,
        help,
        registers: [this.registry],
        collect() {
          this.set(read());
        },
      });
    gauge("creditbook_events_published_total", "Events published to the bus.", () => events.stats.published);
    gauge(
      "creditbook_events_publish_failed_total",
      "Event publishes that failed (Redis down).",
      () => events.stats.publishFailed,
    );
    gauge("creditbook_events_received_total", "Events received from the bus.", () => events.stats.received);
    gauge(
      "creditbook_subscribers",
      "Subscriptions connected to this instance.",
      () => realtime.stats.subscribers,
    );
    gauge("creditbook_live_feeds", "Accounts followed live by this instance.", () => realtime.stats.feeds);
    gauge(
      "creditbook_subscribers_closed_too_slow_total",
      "Subscribers closed for falling behind.",
      () => realtime.stats.closedTooSlow,
    );
    gauge(
      "creditbook_reaper_lag_seconds",
      "Now minus the oldest overdue deadline at the reaper's last round.",
      () => reaper.stats.lagSeconds,
    );
    gauge(
      "creditbook_reaper_generations_timed_out_total",
      "Generations the reaper timed out.",
      () => reaper.stats.generationsTimedOut,
    );
    gauge("creditbook_db_pool_connections", "Database connections open.", () => db.poolStats().total);
    gauge("creditbook_db_pool_idle", "Database connections idle.", () => db.poolStats().idle);
    gauge(
      "creditbook_db_pool_waiting",
      "Requests waiting for a database connection.",
      () => db.poolStats().waiting,
    );
  }

  /** Counts what a committed batch wrote. */
  committed(batch: CommittedBatch): void {
    for (const change of batch.changes) {
      for (const entry of change.entries) {
        this.entries.inc({ type: entry.type });
        if (entry.type === "REFUND" && entry.reason !== null) {
          this.refunds.inc({ reason: entry.reason });
          this.refundedCredits.inc({ reason: entry.reason }, Number(entry.amount));
        }
      }
    }
  }

  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
