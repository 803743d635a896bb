/**
 * The rate card's statements (SPEC §8.1). Prices are rows that are only ever
 * superseded, never updated otherwise: the history of a (feature, model) key
 * is its rows by effective_from.
 */
import type { Database, Sql } from "./database.ts";

export interface PriceRow {
  readonly id: string;
  readonly feature: string;
  readonly model: string | null;
  readonly unitCost: bigint;
  readonly effectiveFrom: Date;
  readonly supersededAt: Date | null;
  readonly setBy: string;
}

const COLUMNS = `id, feature, model, unit_cost AS "unitCost", effective_from AS "effectiveFrom",
  superseded_at AS "supersededAt", set_by AS "setBy"`;

/**
 * The unit cost a reserve without one pays: the current price of (feature,
 * model), else of (feature, no model); null when neither is set. Two probes
 * of the partial unique index price_current, in one statement; no lock.
 */
export async function currentUnitCost(
  sql: Sql,
  feature: string,
  model: string | null,
): Promise<bigint | null> {
  const rows = await sql.query<{ unit_cost: bigint }>(
    `SELECT unit_cost FROM price
      WHERE superseded_at IS NULL AND feature = $1 AND coalesce(model, '') IN (coalesce($2::text, ''), '')
      ORDER BY model IS NULL LIMIT 1`,
    [feature, model],
    "creditbook_current_price",
  );
  return rows[0]?.unit_cost ?? null;
}

/** The current prices, of one feature or of all, by feature then model (the feature's own price first). */
export function currentPrices(sql: Sql, feature: string | null): Promise<PriceRow[]> {
  return sql.query<PriceRow>(
    `SELECT ${COLUMNS} FROM price WHERE superseded_at IS NULL AND ($1::text IS NULL OR feature = $1)
      ORDER BY feature, model NULLS FIRST`,
    [feature],
  );
}

/**
 * Makes `unitCost` the current price of (feature, model): the current row, if
 * any, is superseded at the same instant the new one takes effect. Setting the
 * price a key already has writes nothing and answers the current row. Two
 * admins setting one key at once are serialised by a transaction-scoped
 * advisory lock on the key (the partial unique index would otherwise refuse
 * the second insert).
 */
export function replacePrice(
  db: Database,
  input: { feature: string; model: string | null; unitCost: bigint; setBy: string },
): Promise<PriceRow> {
  return db.transaction({ isolation: "READ COMMITTED", timeoutMs: 10_000 }, async (tx) => {
    const key = JSON.stringify([input.feature, input.model]);
    await tx.query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", [`price:${key}`]);
    const [current] = await tx.query<PriceRow>(
      `SELECT ${COLUMNS} FROM price
        WHERE superseded_at IS NULL AND feature = $1 AND coalesce(model, '') = coalesce($2::text, '')`,
      [input.feature, input.model],
    );
    if (current !== undefined && current.unitCost === input.unitCost) return current;
    const [now] = await tx.query<{ now: Date }>("SELECT clock_timestamp()::timestamptz(3) AS now");
    if (current !== undefined) {
      await tx.query("UPDATE price SET superseded_at = $2 WHERE id = $1", [current.id, now?.now]);
    }
    const [created] = await tx.query<PriceRow>(
      `INSERT INTO price (feature, model, unit_cost, effective_from, set_by) VALUES ($1, $2, $3, $4, $5)
       RETURNING ${COLUMNS}`,
      [input.feature, input.model, input.unitCost, now?.now, input.setBy],
    );
    if (created === undefined) throw new Error("INSERT … RETURNING answers the row it inserted");
    return created;
  });
}

/**
 * What a quote needs of an account, read without a lock: its reserved volume
 * and the credits it could draw now (open grants not yet due to expire, the
 * reserve's `drawable`). Null when the account does not exist.
 */
export async function readHoldState(
  sql: Sql,
  accountId: string,
  now: Date,
): Promise<{ reservedVolume: bigint; available: bigint } | null> {
  const rows = await sql.query<{ reserved_volume: bigint; drawable: string }>(
    `SELECT a.reserved_volume,
       (SELECT coalesce(sum(g.remaining), 0)::text FROM credit_grant g
         WHERE g.account_id = a.id AND g.remaining > 0 AND g.expired_at IS NULL
           AND (g.expires_at IS NULL OR g.expires_at > $2)) AS drawable
     FROM account a WHERE a.id = $1`,
    [accountId, now],
  );
  const row = rows[0];
  return row === undefined ? null : { reservedVolume: row.reserved_volume, available: BigInt(row.drawable) };
}
