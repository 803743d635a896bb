import type { Sql } from "../db/database.ts";
import { capsWithSpentQuery, parseSpendCap, type SpendCapRow } from "../db/spend-caps.ts";
import { assert } from "./assert.ts";
import type { Book } from "./book.ts";
import type {
  AccountState,
  DrawState,
  GenerationState,
  GrantState,
  ItemState,
  LedgerEntryRecord,
  PostingRecord,
} from "./model.ts";
import { outboxEvents } from "./outbox.ts";
import { periodStart, type SpendCapState } from "./spend-caps.ts";
import { UUID } from "./uuid.ts";

/**
 * SQL for the ledger's transactions: lock an account, load what a batch of
 * operations needs in one statement, and write everything they changed in one
 * statement. Rows travel as one JSON parameter with amounts as decimal strings,
 * so every amount is exact and the statement text depends only on which kinds
 * of rows changed (PostgreSQL can cache its plan).
 */

export interface StoredIdempotency {
  readonly principal: string;
  readonly operation: string;
  readonly key: string;
  readonly requestHash: string;
  readonly accountId: string | null;
  readonly result: unknown;
}

export interface IdempotencyLookup {
  readonly principal: string;
  readonly operation: string;
  readonly key: string;
}

interface AccountRow {
  id: string;
  kind: AccountState["kind"];
  available: bigint;
  held: bigint;
  subscription: bigint;
  wallet: bigint;
  sequence: number;
  updated_at: Date;
  reserved_volume: bigint;
  alert_threshold: bigint | null;
  alert_triggered: boolean;
}

type Json<T> = {
  [K in keyof T]: T[K] extends bigint
    ? string
    : T[K] extends Date
      ? string
      : T[K] extends Date | null
        ? string | null
        : T[K];
};

interface LoadedRow {
  grants: Json<GrantState>[];
  generations: (Json<Omit<GenerationState, "items" | "draws">> & {
    items: Json<ItemState>[];
    draws: Json<DrawState>[];
  })[];
  records: StoredIdempotency[];
  caps: SpendCapRow[];
}

/**
 * The statement that locks account rows for the rest of the transaction, in
 * id order (so two transactions locking overlapping sets never deadlock).
 * It has no parameters so it can travel with BEGIN in one round trip (see
 * TransactionOptions.prelude): every id is checked to be a lowercase uuid
 * before it is written into the text. With `skipLocked`, rows another
 * transaction holds are skipped (background work).
 */
export function lockAccountsStatement(accountIds: readonly string[], skipLocked = false): string {
  assert(accountIds.length > 0, "a transaction locks at least one account");
  for (const id of accountIds) {
    assert(UUID.test(id), `account id ${JSON.stringify(id)} is a lowercase uuid before it is locked`);
  }
  const ids = [...accountIds]
    .sort()
    .map((id) => `'${id}'`)
    .join(", ");
  // `listened`: whether a webhook endpoint takes the account's events (its own or one for every
  // account); only then does the write statement fill the outbox, so nobody listening costs nothing more.
  return `SELECT id, kind, available, held, subscription, wallet, sequence, updated_at, reserved_volume,
            alert_threshold, alert_triggered,
            EXISTS (SELECT 1 FROM webhook_endpoint e
                     WHERE e.enabled AND (e.account_id = account.id OR e.account_id IS NULL)) AS listened
       FROM account WHERE id IN (${ids}) ORDER BY id FOR UPDATE${skipLocked ? " SKIP LOCKED" : ""}`;
}

/** The locked accounts from the rows of `lockAccountsStatement`, by id (missing or skipped ones are absent). */
export function lockedAccounts(rows: readonly unknown[]): Map<string, AccountState> {
  const accounts = new Map<string, AccountState>();
  for (const row of rows as AccountRow[]) {
    accounts.set(row.id, {
      id: row.id,
      kind: row.kind,
      available: row.available,
      held: row.held,
      subscription: row.subscription,
      wallet: row.wallet,
      sequence: row.sequence,
      updatedAt: row.updated_at,
      reservedVolume: row.reserved_volume,
      alertThreshold: row.alert_threshold,
      alertTriggered: row.alert_triggered,
    });
  }
  return accounts;
}

/** The ids among `lockAccountsStatement`'s rows that a webhook endpoint listens to. */
export function listenedAccounts(rows: readonly unknown[]): Set<string> {
  return new Set((rows as (AccountRow & { listened: boolean })[]).filter((r) => r.listened).map((r) => r.id));
}

/**
 * Loads, after the lock (so in a fresh READ COMMITTED snapshot), the locked
 * accounts' open grants (credits remaining or held, due to expire, or drawn
 * by the requested generations), the requested generations with items and
 * draws, the stored idempotency records for the batch's keys, and the spend
 * caps of `capMembers` (the members the batch's reserves are for) with what
 * each spent in its period. Grants, generations and caps carry their
 * `accountId`: a caller hands each account only its own (a generation of
 * another account is not found).
 */
export async function loadForBatch(
  tx: Sql,
  accountIds: readonly string[],
  generationIds: readonly string[],
  keys: readonly IdempotencyLookup[],
  now: Date,
  capMembers: readonly string[] = [],
): Promise<{
  grants: GrantState[];
  generations: GenerationState[];
  records: StoredIdempotency[];
  caps: SpendCapState[];
}> {
  const rows = await tx.query<LoadedRow>(
    `SELECT
      (SELECT coalesce(json_agg(g ORDER BY g."createdAt", g.id), '[]'::json) FROM (
         SELECT id, account_id AS "accountId", source, amount::text, remaining::text, held::text,
                expires_at AS "expiresAt", expired_at AS "expiredAt",
                expiry_noticed_at AS "expiryNoticedAt", reference, title, created_at AS "createdAt"
           FROM credit_grant WHERE account_id = ANY($1::uuid[])
            AND (remaining > 0 OR held > 0 OR (expired_at IS NULL AND expires_at <= $6)
                 OR id IN (SELECT grant_id FROM generation_draw WHERE generation_id = ANY($2::uuid[])))) g) AS grants,
      (SELECT coalesce(json_agg(x), '[]'::json) FROM (
         SELECT g.id, g.account_id AS "accountId", g.requested_by AS "requestedBy", g.feature, g.model, g.quantity,
                g.unit_cost::text AS "unitCost", g.reserved::text, g.charged::text, g.refunded::text, g.released::text,
                g.support_refunded::text AS "supportRefunded", g.status, g.failure_reason AS "failureReason",
                g.failure_message AS "failureMessage", g.metadata, g.deadline, g.created_at AS "createdAt",
                g.finished_at AS "finishedAt",
                (SELECT json_agg(json_build_object('index', i.index, 'status', i.status, 'reserved', i.reserved::text,
                        'charged', i.charged::text, 'refunded', i.refunded::text, 'released', i.released::text,
                        'reason', i.reason, 'message', i.message, 'finishedAt', i.finished_at) ORDER BY i.index)
                   FROM generation_item i WHERE i.generation_id = g.id) AS items,
                (SELECT json_agg(json_build_object('drawIndex', d.draw_index, 'grantId', d.grant_id, 'amount', d.amount::text,
                        'held', d.held::text, 'charged', d.charged::text, 'returned', d.returned::text,
                        'supportRefunded', d.support_refunded::text) ORDER BY d.draw_index)
                   FROM generation_draw d WHERE d.generation_id = g.id) AS draws
           FROM generation g WHERE g.account_id = ANY($1::uuid[]) AND g.id = ANY($2::uuid[])) x) AS generations,
      (SELECT coalesce(json_agg(json_build_object('principal', r.principal, 'operation', r.operation, 'key', r.key,
              'requestHash', r.request_hash, 'accountId', r.account_id, 'result', r.result)), '[]'::json)
         FROM idempotency_record r
         JOIN unnest($3::text[], $4::text[], $5::text[]) AS k(principal, operation, key)
           ON r.principal = k.principal AND r.operation = k.operation AND r.key = k.key) AS records,
      (SELECT coalesce(json_agg(c), '[]'::json) FROM (${capsWithSpentQuery("$1::uuid[]", "$7", "$8", "$9")}) c) AS caps`,
    [
      accountIds,
      generationIds,
      keys.map((k) => k.principal),
      keys.map((k) => k.operation),
      keys.map((k) => k.key),
      now,
      capMembers,
      periodStart("DAY", now),
      periodStart("MONTH", now),
    ],
    // Prepared: this statement was re-planned on every batch (0.4 ms of planning each).
    "creditbook_load_accounts",
  );
  const row = rows[0];
  assert(row !== undefined, "the batch load returns one row");
  return {
    grants: row.grants.map(parseGrant),
    generations: row.generations.map(parseGeneration),
    records: row.records,
    caps: row.caps.map(parseSpendCap),
  };
}

const date = (value: string): Date => new Date(value);
const dateOrNull = (value: string | null): Date | null => (value === null ? null : new Date(value));

function parseGrant(row: Json<GrantState>): GrantState {
  return {
    ...row,
    amount: BigInt(row.amount),
    remaining: BigInt(row.remaining),
    held: BigInt(row.held),
    expiresAt: dateOrNull(row.expiresAt),
    expiredAt: dateOrNull(row.expiredAt),
    expiryNoticedAt: dateOrNull(row.expiryNoticedAt),
    createdAt: date(row.createdAt),
  };
}

function parseGeneration(row: LoadedRow["generations"][number]): GenerationState {
  return {
    ...row,
    unitCost: BigInt(row.unitCost),
    reserved: BigInt(row.reserved),
    charged: BigInt(row.charged),
    refunded: BigInt(row.refunded),
    released: BigInt(row.released),
    supportRefunded: BigInt(row.supportRefunded),
    deadline: date(row.deadline),
    createdAt: date(row.createdAt),
    finishedAt: dateOrNull(row.finishedAt),
    items: (row.items ?? []).map((item) => ({
      ...item,
      reserved: BigInt(item.reserved),
      charged: BigInt(item.charged),
      refunded: BigInt(item.refunded),
      released: BigInt(item.released),
      finishedAt: dateOrNull(item.finishedAt),
    })),
    draws: (row.draws ?? []).map((draw) => ({
      ...draw,
      amount: BigInt(draw.amount),
      held: BigInt(draw.held),
      charged: BigInt(draw.charged),
      returned: BigInt(draw.returned),
      supportRefunded: BigInt(draw.supportRefunded),
    })),
  };
}

/** A table's columns as jsonb_to_recordset wants them: [column, SQL type, JSON key]. */
type Columns = readonly (readonly [string, string, string])[];

const GRANT_INSERT: Columns = [
  ["id", "uuid", "id"],
  ["account_id", "uuid", "accountId"],
  ["source", `"GrantSource"`, "source"],
  ["amount", "bigint", "amount"],
  ["remaining", "bigint", "remaining"],
  ["held", "bigint", "held"],
  ["expires_at", "timestamptz", "expiresAt"],
  ["expired_at", "timestamptz", "expiredAt"],
  ["expiry_noticed_at", "timestamptz", "expiryNoticedAt"],
  ["reference", "text", "reference"],
  ["title", "text", "title"],
  ["created_at", "timestamptz", "createdAt"],
];
const GRANT_UPDATE: Columns = [
  ["id", "uuid", "id"],
  ["remaining", "bigint", "remaining"],
  ["held", "bigint", "held"],
  ["expired_at", "timestamptz", "expiredAt"],
  ["expiry_noticed_at", "timestamptz", "expiryNoticedAt"],
];
const GENERATION_INSERT: Columns = [
  ["id", "uuid", "id"],
  ["account_id", "uuid", "accountId"],
  ["requested_by", "text", "requestedBy"],
  ["feature", "text", "feature"],
  ["model", "text", "model"],
  ["quantity", "integer", "quantity"],
  ["unit_cost", "bigint", "unitCost"],
  ["reserved", "bigint", "reserved"],
  ["charged", "bigint", "charged"],
  ["refunded", "bigint", "refunded"],
  ["released", "bigint", "released"],
  ["support_refunded", "bigint", "supportRefunded"],
  ["status", `"GenerationStatus"`, "status"],
  ["failure_reason", `"RefundReason"`, "failureReason"],
  ["failure_message", "text", "failureMessage"],
  ["metadata", "jsonb", "metadata"],
  ["deadline", "timestamptz", "deadline"],
  ["created_at", "timestamptz", "createdAt"],
  ["finished_at", "timestamptz", "finishedAt"],
];
const GENERATION_UPDATE: Columns = [
  ["id", "uuid", "id"],
  ["charged", "bigint", "charged"],
  ["refunded", "bigint", "refunded"],
  ["released", "bigint", "released"],
  ["support_refunded", "bigint", "supportRefunded"],
  ["status", `"GenerationStatus"`, "status"],
  ["failure_reason", `"RefundReason"`, "failureReason"],
  ["failure_message", "text", "failureMessage"],
  ["finished_at", "timestamptz", "finishedAt"],
];
const ITEM_INSERT: Columns = [
  ["generation_id", "uuid", "generationId"],
  ["index", "integer", "index"],
  ["account_id", "uuid", "accountId"],
  ["status", `"ItemStatus"`, "status"],
  ["reserved", "bigint", "reserved"],
  ["charged", "bigint", "charged"],
  ["refunded", "bigint", "refunded"],
  ["released", "bigint", "released"],
  ["reason", `"RefundReason"`, "reason"],
  ["message", "text", "message"],
  ["finished_at", "timestamptz", "finishedAt"],
];
const ITEM_UPDATE: Columns = ITEM_INSERT.filter(([column]) => !["account_id", "reserved"].includes(column));
const DRAW_INSERT: Columns = [
  ["generation_id", "uuid", "generationId"],
  ["draw_index", "integer", "drawIndex"],
  ["account_id", "uuid", "accountId"],
  ["grant_id", "uuid", "grantId"],
  ["amount", "bigint", "amount"],
  ["held", "bigint", "held"],
  ["charged", "bigint", "charged"],
  ["returned", "bigint", "returned"],
  ["support_refunded", "bigint", "supportRefunded"],
];
const DRAW_UPDATE: Columns = DRAW_INSERT.filter(
  ([column]) => !["account_id", "grant_id", "amount"].includes(column),
);
const ENTRY_INSERT: Columns = [
  ["id", "uuid", "id"],
  ["account_id", "uuid", "accountId"],
  ["sequence", "integer", "sequence"],
  ["type", `"LedgerEntryType"`, "type"],
  ["amount", "bigint", "amount"],
  ["balance_before", "bigint", "balanceBefore"],
  ["balance_after", "bigint", "balanceAfter"],
  ["title", "text", "title"],
  ["reason", `"RefundReason"`, "reason"],
  ["message", "text", "message"],
  ["generation_id", "uuid", "generationId"],
  ["grant_id", "uuid", "grantId"],
  ["transfer_id", "uuid", "transferId"],
  ["created_at", "timestamptz", "createdAt"],
  ["actor", "text", "actor"],
];
const POSTING_INSERT: Columns = [
  ["account_id", "uuid", "accountId"],
  ["transfer_id", "uuid", "transferId"],
  ["book", `"PostingBook"`, "book"],
  ["grant_id", "uuid", "grantId"],
  ["generation_id", "uuid", "generationId"],
  ["amount", "bigint", "amount"],
  ["created_at", "timestamptz", "createdAt"],
];
const IDEMPOTENCY_INSERT: Columns = [
  ["principal", "text", "principal"],
  ["operation", "text", "operation"],
  ["key", "text", "key"],
  ["request_hash", "text", "requestHash"],
  ["account_id", "uuid", "accountId"],
  ["result", "jsonb", "result"],
  ["created_at", "timestamptz", "createdAt"],
  ["expires_at", "timestamptz", "expiresAt"],
];
const BOARD_ITEM_INSERT: Columns = [
  ["board_id", "uuid", "boardId"],
  ["generation_id", "uuid", "generationId"],
  ["account_id", "uuid", "accountId"],
  ["added_at", "timestamptz", "addedAt"],
];
const WEBHOOK_EVENT: Columns = [
  ["event_id", "text", "eventId"],
  ["account_id", "uuid", "accountId"],
  ["event_type", "text", "type"],
  ["payload", "jsonb", "payload"],
  ["created_at", "timestamptz", "createdAt"],
];
const ACCOUNT_UPDATE: Columns = [
  ["id", "uuid", "id"],
  ["available", "bigint", "available"],
  ["held", "bigint", "held"],
  ["subscription", "bigint", "subscription"],
  ["wallet", "bigint", "wallet"],
  ["sequence", "integer", "sequence"],
  ["updated_at", "timestamptz", "updatedAt"],
  ["reserved_volume", "bigint", "reservedVolume"],
  ["alert_threshold", "bigint", "alertThreshold"],
  ["alert_triggered", "boolean", "alertTriggered"],
];

function recordset(key: string, columns: Columns): string {
  return `jsonb_to_recordset($1::jsonb -> '${key}') AS x(${columns.map(([, type, json]) => `"${json}" ${type}`).join(", ")})`;
}

function insertSql(table: string, key: string, columns: Columns, suffix = ""): string {
  return `INSERT INTO ${table} (${columns.map(([column]) => `"${column}"`).join(", ")})
    SELECT ${columns.map(([, , json]) => `x."${json}"`).join(", ")} FROM ${recordset(key, columns)} ${suffix}`;
}

function updateSql(table: string, key: string, columns: Columns, keyColumns: readonly string[]): string {
  const set = columns.filter(([column]) => !keyColumns.includes(column));
  const where = columns.filter(([column]) => keyColumns.includes(column));
  return `UPDATE ${table} t SET ${set.map(([column, , json]) => `"${column}" = x."${json}"`).join(", ")}
    FROM ${recordset(key, columns)} WHERE ${where.map(([column, , json]) => `t."${column}" = x."${json}"`).join(" AND ")}`;
}

const STATEMENTS: Record<string, string> = {
  account: updateSql("account", "account", ACCOUNT_UPDATE, ["id"]),
  newGrants: insertSql("credit_grant", "newGrants", GRANT_INSERT),
  grants: updateSql("credit_grant", "grants", GRANT_UPDATE, ["id"]),
  newGenerations: insertSql("generation", "newGenerations", GENERATION_INSERT),
  generations: updateSql("generation", "generations", GENERATION_UPDATE, ["id"]),
  newItems: insertSql("generation_item", "newItems", ITEM_INSERT),
  items: updateSql("generation_item", "items", ITEM_UPDATE, ["generation_id", "index"]),
  newDraws: insertSql("generation_draw", "newDraws", DRAW_INSERT),
  draws: updateSql("generation_draw", "draws", DRAW_UPDATE, ["generation_id", "draw_index"]),
  entries: insertSql("ledger_entry", "entries", ENTRY_INSERT),
  postings: insertSql("posting", "postings", POSTING_INSERT),
  idempotency: insertSql("idempotency_record", "idempotency", IDEMPOTENCY_INSERT),
  boardItems: insertSql("board_item", "boardItems", BOARD_ITEM_INSERT, "ON CONFLICT DO NOTHING"),
  // The outbox (outbox.ts): one delivery per event and enabled endpoint that takes the event's type,
  // for its account or for every account; due at once.
  webhookEvents: `INSERT INTO webhook_delivery (endpoint_id, account_id, event_id, event_type, payload, next_attempt_at, created_at)
    SELECT e.id, x."accountId", x."eventId", x."type", x."payload", x."createdAt", x."createdAt"
      FROM ${recordset("webhookEvents", WEBHOOK_EVENT)}
      JOIN webhook_endpoint e ON e.enabled AND (e.account_id = x."accountId" OR e.account_id IS NULL)
                             AND x."type" = ANY (e.event_types)`,
};

const statementCache = new Map<string, { name: string; sql: string }>();
const STATEMENT_KEYS = Object.keys(STATEMENTS);

/**
 * One statement for any combination of changed row kinds, built once per
 * combination and prepared under a name derived from the combination.
 */
function writeStatement(keys: readonly string[]): { name: string; sql: string } {
  const cacheKey = keys.join(",");
  let statement = statementCache.get(cacheKey);
  if (statement === undefined) {
    const ctes = keys.map((key) => `w_${key} AS (${STATEMENTS[key]} RETURNING 1)`);
    const sql = `WITH ${ctes.join(",\n")}\nSELECT ${keys.map((key) => `(SELECT count(*) FROM w_${key})::int AS "${key}"`).join(", ")}`;
    const name = `creditbook_write_${keys.map((key) => STATEMENT_KEYS.indexOf(key).toString(36)).join("")}`;
    statement = { name, sql };
    statementCache.set(cacheKey, statement);
  }
  return statement;
}

/** A nested JSON value (metadata, a stored result) with any bigint as a decimal string. */
function plainValue(value: unknown): unknown {
  if (typeof value === "bigint") return value.toString();
  if (Array.isArray(value)) return value.map(plainValue);
  if (typeof value !== "object" || value === null || value instanceof Date) return value;
  const out: Record<string, unknown> = {};
  for (const [key, inner] of Object.entries(value)) out[key] = plainValue(inner);
  return out;
}

/**
 * A row as the write statement reads it: amounts as decimal strings, and
 * null columns left out (jsonb_to_recordset reads a missing key as NULL), so
 * the payload is smaller and JSON.stringify runs without a replacer, on its
 * fast path: the payload's serialization and transfer were the largest share
 * of the server's CPU under bulk load.
 */
function plainRow(row: object): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key in row) {
    const value = (row as Record<string, unknown>)[key];
    if (value === null || value === undefined) continue;
    out[key] =
      typeof value === "bigint"
        ? value.toString()
        : typeof value === "object" && !(value instanceof Date)
          ? plainValue(value)
          : value;
  }
  return out;
}

/**
 * Writes the changes of every book (one per locked account) in one statement
 * and checks every row landed.
 */
export async function flush(tx: Sql, books: readonly Book[]): Promise<void> {
  const dirty = books.filter((book) => book.isDirty);
  if (dirty.length === 0) return;
  const payload: Record<string, unknown[]> = {};
  const add = (key: string, rows: object[]) => {
    if (rows.length === 0) return;
    const plain = rows.map(plainRow);
    const list = payload[key];
    if (list === undefined) payload[key] = plain;
    else list.push(...plain);
  };
  for (const book of dirty) addBookRows(book, add);
  const keys = Object.keys(payload);
  const statement = writeStatement(keys);
  const rows = await tx.query<Record<string, number>>(
    statement.sql,
    [JSON.stringify(payload)],
    statement.name,
  );
  const counts = rows[0];
  assert(counts !== undefined, "the write statement returns its counts");
  for (const key of keys) {
    // Board items may already be there; an event has as many deliveries as endpoints take it.
    if (key === "boardItems" || key === "webhookEvents") continue;
    assert(
      counts[key] === payload[key]?.length,
      `every ${key} row was written (${counts[key]} of ${payload[key]?.length})`,
    );
  }
}

/** Hands `add` the rows `book` changed, by kind. */
function addBookRows(book: Book, add: (key: string, rows: object[]) => void): void {
  book.assertConsistent();
  const accountId = book.account.id;
  add("account", [book.account]);
  add(
    "newGrants",
    [...book.newGrants].map((id) => book.grant(id)),
  );
  add(
    "grants",
    [...book.dirtyGrants].filter((id) => !book.newGrants.has(id)).map((id) => book.grant(id)),
  );
  const generation = (id: string) => {
    const found = book.generation(id);
    assert(found !== undefined, `changed generation ${id} is loaded`);
    return found;
  };
  const newGenerations = [...book.newGenerations].map(generation);
  add(
    "newGenerations",
    newGenerations.map(({ items: _items, draws: _draws, ...row }) => ({
      ...row,
      metadata: row.metadata ?? null,
    })),
  );
  add(
    "newItems",
    newGenerations.flatMap((g) => g.items.map((item) => ({ ...item, generationId: g.id, accountId }))),
  );
  add(
    "newDraws",
    newGenerations.flatMap((g) => g.draws.map((draw) => ({ ...draw, generationId: g.id, accountId }))),
  );
  const changed = [...book.dirtyGenerations].map(generation);
  add(
    "generations",
    changed.map(({ items: _items, draws: _draws, ...row }) => row),
  );
  add(
    "items",
    changed.flatMap((g) =>
      [...(book.dirtyItems.get(g.id) ?? [])].map((index) => ({ ...g.items[index], generationId: g.id })),
    ),
  );
  add(
    "draws",
    changed.flatMap((g) =>
      [...(book.dirtyDraws.get(g.id) ?? [])].map((index) => ({ ...g.draws[index], generationId: g.id })),
    ),
  );
  add("entries", book.entries as LedgerEntryRecord[]);
  add("postings", book.postings as PostingRecord[]);
  add(
    "idempotency",
    book.idempotency.map((record) => ({ ...record, createdAt: book.now })),
  );
  add(
    "boardItems",
    book.boardItems.map((item) => ({ ...item, addedAt: book.now })),
  );
  if (book.listened) add("webhookEvents", outboxEvents(book));
}
