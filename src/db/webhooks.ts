import type { Sql } from "./database.ts";

/**
 * SQL of webhook endpoints and deliveries (SPEC §8.4). Deliveries are written
 * by the ledger's own write statement (domain/store.ts); here they are
 * claimed, settled, redelivered, counted and pruned.
 */

export type DeliveryStatus = "PENDING" | "SUCCEEDED" | "FAILED";

export interface EndpointRow {
  readonly id: string;
  readonly url: string;
  readonly accountId: string | null;
  readonly description: string | null;
  readonly eventTypes: string[];
  readonly enabled: boolean;
  readonly createdAt: Date;
}

/** A delivery a worker has claimed, with what it needs to send it. */
export interface ClaimedDelivery {
  readonly id: string;
  readonly eventId: string;
  readonly payload: unknown;
  readonly attempts: number;
  readonly url: string;
  readonly secret: string;
  readonly leaseUntil: Date;
}

const ENDPOINT_COLUMNS = `id, url, account_id AS "accountId", description, event_types AS "eventTypes",
  enabled, created_at AS "createdAt"`;

export async function insertEndpoint(
  sql: Sql,
  endpoint: {
    url: string;
    accountId: string | null;
    description: string | null;
    eventTypes: readonly string[];
    secret: string;
    createdBy: string;
  },
): Promise<EndpointRow> {
  const rows = await sql.query<EndpointRow>(
    `INSERT INTO webhook_endpoint (url, account_id, description, event_types, secret, created_by)
     VALUES ($1, $2, $3, $4::text[], $5, $6) RETURNING ${ENDPOINT_COLUMNS}`,
    [
      endpoint.url,
      endpoint.accountId,
      endpoint.description,
      endpoint.eventTypes,
      endpoint.secret,
      endpoint.createdBy,
    ],
  );
  const row = rows[0];
  if (row === undefined) throw new Error("INSERT … RETURNING returned no row");
  return row;
}

/** The endpoint's account (null: every account), or undefined when there is no such endpoint. */
export async function endpointAccount(sql: Sql, id: string): Promise<string | null | undefined> {
  const rows = await sql.query<{ accountId: string | null }>(
    `SELECT account_id AS "accountId" FROM webhook_endpoint WHERE id = $1`,
    [id],
  );
  return rows[0]?.accountId;
}

/** Deletes an endpoint and its deliveries (cascade). @returns whether it existed */
export async function deleteEndpoint(sql: Sql, id: string): Promise<boolean> {
  const rows = await sql.query(`DELETE FROM webhook_endpoint WHERE id = $1 RETURNING 1`, [id]);
  return rows.length > 0;
}

/** Endpoints of one account (not the all-accounts ones), or every endpoint when `accountId` is null. */
export async function listEndpoints(sql: Sql, accountId: string | null): Promise<EndpointRow[]> {
  return sql.query<EndpointRow>(
    `SELECT ${ENDPOINT_COLUMNS} FROM webhook_endpoint
      WHERE $1::uuid IS NULL OR account_id = $1::uuid ORDER BY created_at, id`,
    [accountId],
  );
}

/** The account of a delivery's event and its endpoint, or undefined when there is no such delivery. */
export async function deliveryAccount(
  sql: Sql,
  id: string,
): Promise<{ accountId: string; endpointId: string } | undefined> {
  const rows = await sql.query<{ accountId: string; endpointId: string }>(
    `SELECT account_id AS "accountId", endpoint_id AS "endpointId" FROM webhook_delivery WHERE id = $1`,
    [id],
  );
  return rows[0];
}

/**
 * Queues a fresh delivery of the same event to the same endpoint (same
 * `webhook-id`, new attempt count), due now. @returns the new delivery's id
 */
export async function redeliver(sql: Sql, id: string, now: Date): Promise<string | undefined> {
  const rows = await sql.query<{ id: string }>(
    `INSERT INTO webhook_delivery (endpoint_id, account_id, event_id, event_type, payload, next_attempt_at, created_at)
     SELECT endpoint_id, account_id, event_id, event_type, payload, $2, $2 FROM webhook_delivery WHERE id = $1
     RETURNING id`,
    [id, now],
  );
  return rows[0]?.id;
}

/**
 * Claims up to `limit` due deliveries of enabled endpoints for this worker
 * until `leaseUntil`: rows another worker is claiming are skipped (SKIP
 * LOCKED), and a claimed row is not due again before its lease ends, so one
 * worker at a time attempts each delivery; a worker that dies leaves it due
 * again when the lease ends.
 */
export async function claimDue(
  sql: Sql,
  now: Date,
  leaseUntil: Date,
  limit: number,
): Promise<ClaimedDelivery[]> {
  return sql.query<ClaimedDelivery>(
    `WITH due AS (
       SELECT d.id FROM webhook_delivery d
        WHERE d.status = 'PENDING' AND d.next_attempt_at <= $1 AND (d.lease_until IS NULL OR d.lease_until <= $1)
        ORDER BY d.next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED)
     UPDATE webhook_delivery d SET lease_until = $2
       FROM due, webhook_endpoint e
      WHERE d.id = due.id AND e.id = d.endpoint_id AND e.enabled
     RETURNING d.id, d.event_id AS "eventId", d.payload, d.attempts, e.url, e.secret, d.lease_until AS "leaseUntil"`,
    [now, leaseUntil, limit],
  );
}

/**
 * Records one attempt: SUCCEEDED, or PENDING again at `nextAttemptAt`, or
 * FAILED when `nextAttemptAt` is null (every retry spent). Only while this
 * worker's lease holds: a worker that overran its lease leaves the row to
 * whoever claimed it next.
 */
export async function recordAttempt(
  sql: Sql,
  delivery: ClaimedDelivery,
  attempt: {
    readonly at: Date;
    readonly succeeded: boolean;
    readonly responseStatus: number | null;
    readonly nextAttemptAt: Date | null;
  },
): Promise<void> {
  const status: DeliveryStatus = attempt.succeeded
    ? "SUCCEEDED"
    : attempt.nextAttemptAt === null
      ? "FAILED"
      : "PENDING";
  await sql.query(
    `UPDATE webhook_delivery SET status = $3, attempts = attempts + 1, last_attempt_at = $4,
            response_status = $5, next_attempt_at = $6, lease_until = NULL
      WHERE id = $1 AND lease_until = $2`,
    [
      delivery.id,
      delivery.leaseUntil,
      status,
      attempt.at,
      attempt.responseStatus,
      attempt.succeeded ? null : attempt.nextAttemptAt,
    ],
  );
}

export interface QueueStats {
  readonly pending: number;
  /** Seconds since the oldest pending delivery was created; 0 when none. */
  readonly oldestPendingAgeSeconds: number;
}

export async function queueStats(sql: Sql, now: Date): Promise<QueueStats> {
  const rows = await sql.query<{ pending: number; oldest: Date | null }>(
    `SELECT count(*)::int AS pending, min(created_at) AS oldest FROM webhook_delivery WHERE status = 'PENDING'`,
  );
  const row = rows[0];
  const oldest = row?.oldest == null ? null : new Date(row.oldest);
  return {
    pending: row?.pending ?? 0,
    oldestPendingAgeSeconds: oldest === null ? 0 : Math.max(0, (now.getTime() - oldest.getTime()) / 1000),
  };
}

/** Deletes up to `limit` deliveries created before `before`. @returns how many */
export async function pruneDeliveries(sql: Sql, before: Date, limit: number): Promise<number> {
  const rows = await sql.query<{ n: number }>(
    `WITH gone AS (
       DELETE FROM webhook_delivery WHERE id IN (
         SELECT id FROM webhook_delivery WHERE created_at < $1 ORDER BY created_at LIMIT $2)
       RETURNING 1)
     SELECT count(*)::int AS n FROM gone`,
    [before, limit],
  );
  return rows[0]?.n ?? 0;
}
