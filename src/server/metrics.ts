import type { GraphQLSchema } from "graphql";
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { Database } from "../db/database.ts";
import type { EventBus } from "../domain/events.ts";
import type { CommittedBatch, TransactionObserver } from "../domain/executor.ts";
import type { Reaper } from "../jobs/reaper.ts";
import type { WebhookWorker } from "../jobs/webhook-delivery.ts";
import type { Realtime } from "../schema/live/realtime.ts";

/** Histogram buckets for request-path durations, in seconds: 1 ms to 10 s. */
const DURATION_BUCKETS_SECONDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * prom-client's default metrics include three gauges whose names end in
 * `_total` (counts of live handles, requests and resources), which
 * Prometheus reserves for counters. The same figures by type stay, under
 * the names without `_total`.
 */
const DEFAULT_GAUGES_NAMED_LIKE_COUNTERS = [
  "creditbook_nodejs_active_handles_total",
  "creditbook_nodejs_active_requests_total",
  "creditbook_nodejs_active_resources_total",
];

const rootFieldsBySchema = new WeakMap<GraphQLSchema, ReadonlySet<string>>();

/**
 * The `operation` label of an operation: its root field when it has exactly
 * one and the schema defines it, else `other`. Labels come only from the
 * schema, never from what a client sends (an operation name, a misspelt
 * field), so the number of series stays bounded.
 */
export function operationLabel(schema: GraphQLSchema, fields: readonly string[]): string {
  let known = rootFieldsBySchema.get(schema);
  if (known === undefined) {
    const roots = [schema.getQueryType(), schema.getMutationType(), schema.getSubscriptionType()];
    known = new Set(
      roots.flatMap((type) => (type === null || type === undefined ? [] : Object.keys(type.getFields()))),
    );
    rootFieldsBySchema.set(schema, known);
  }
  const [only] = fields;
  return fields.length === 1 && only !== undefined && known.has(only) ? only : "other";
}

/**
 * Prometheus metrics for /metrics, every one listed in docs/METRICS.md.
 * Counters (names ending in `_total`) are incremented where things happen or
 * read from a component's running count when scraped; gauges read live
 * state when scraped; durations are histograms in seconds.
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
  readonly operationDuration = new Histogram({
    name: "creditbook_operation_duration_seconds",
    help: "GraphQL operations' execution time, by root field (`other` for several root fields or an unknown one).",
    labelNames: ["operation"] as const,
    buckets: DURATION_BUCKETS_SECONDS,
    registers: [this.registry],
  });
  readonly transactionDuration = new Histogram({
    name: "creditbook_db_transaction_duration_seconds",
    help: "Ledger transactions from asking for a connection to commit or rollback, by outcome.",
    labelNames: ["outcome"] as const,
    buckets: DURATION_BUCKETS_SECONDS,
    registers: [this.registry],
  });

  constructor(parts: {
    db: Database;
    events: EventBus;
    realtime: Realtime;
    reaper: Reaper;
    webhooks: WebhookWorker;
  }) {
    collectDefaultMetrics({ register: this.registry, prefix: "creditbook_" });
    for (const name of DEFAULT_GAUGES_NAMED_LIKE_COUNTERS) this.registry.removeSingleMetric(name);
    const { db, events, realtime, reaper, webhooks } = parts;
    const gauge = (name: string, help: string, read: () => number) =>
      new Gauge({
        name,
        help,
        registers: [this.registry],
        collect() {
          this.set(read());
        },
      });
    // A count kept by a component since it started: a counter that takes the running total when scraped.
    const counter = (name: string, help: string, read: () => number) =>
      new Counter({
        name,
        help,
        registers: [this.registry],
        collect() {
          this.reset();
          this.inc(read());
        },
      });
    counter(
      "creditbook_events_published_total",
      "Events published to the bus.",
      () => events.stats.published,
    );
    counter(
      "creditbook_events_publish_failed_total",
      "Event publishes that failed (Redis down).",
      () => events.stats.publishFailed,
    );
    counter("creditbook_events_received_total", "Events received from the bus.", () => events.stats.received);
    gauge(
      "creditbook_subscribers",
      "Subscriptions connected to this instance.",
      () => realtime.stats.subscribers,
    );
    gauge("creditbook_live_feeds", "Accounts followed live by this instance.", () => realtime.stats.feeds);
    counter(
      "creditbook_subscribers_closed_too_slow_total",
      "Subscribers closed for falling behind.",
      () => realtime.stats.closedTooSlow,
    );
    gauge(
      "creditbook_reaper_lag_seconds",
      "Now minus the oldest overdue deadline at the reaper's last round.",
      () => reaper.stats.lagSeconds,
    );
    counter(
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
    this.webhookMetrics(webhooks);
  }

  /** The webhook worker's attempts (this instance's) and the outbox's queue (every instance's). */
  private webhookMetrics(webhooks: WebhookWorker): void {
    new Counter({
      name: "creditbook_webhook_deliveries_total",
      help: "Webhook delivery attempts by this instance, by outcome: succeeded (2xx), retrying (failed, retried later), failed (every attempt spent).",
      labelNames: ["outcome"] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [outcome, count] of Object.entries(webhooks.stats.deliveries))
          this.inc({ outcome }, count);
      },
    });
    // One query per scrape serves both gauges.
    let stats: ReturnType<WebhookWorker["queueStats"]> | null = null;
    const read = () => {
      stats ??= webhooks.queueStats().finally(() => setTimeout(() => (stats = null), 1_000).unref());
      return stats;
    };
    new Gauge({
      name: "creditbook_webhook_queue_depth",
      help: "Webhook deliveries pending (due now or waiting for a retry), over every instance.",
      registers: [this.registry],
      async collect() {
        this.set((await read()).pending);
      },
    });
    new Gauge({
      name: "creditbook_webhook_oldest_pending_age_seconds",
      help: "Seconds since the oldest pending webhook delivery's event happened; 0 when none is pending.",
      registers: [this.registry],
      async collect() {
        this.set((await read()).oldestPendingAgeSeconds);
      },
    });
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

  /** Times every ledger transaction into `creditbook_db_transaction_duration_seconds`. */
  readonly timeTransaction: TransactionObserver = async (transaction) => {
    const stop = this.transactionDuration.startTimer();
    try {
      const value = await transaction();
      stop({ outcome: "commit" });
      return value;
    } catch (error) {
      stop({ outcome: "rollback" });
      throw error;
    }
  };

  /** The registry in the Prometheus text format. */
  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
