import { createHash } from "node:crypto";
import type { Sql } from "../db/database.ts";
import type { Credits } from "./credits.ts";
import { InvalidInputError } from "./errors.ts";
import type {
  EntryStatus,
  GenerationStatus,
  LedgerEntryRecord,
  LedgerEntryType,
  RefundReason,
} from "./model.ts";
import { UUID } from "./uuid.ts";
import { type Check, validate } from "./validate.ts";

/**
 * The read side of the ledger: pages of an account's ledger entries and
 * generations, newest first, and spending summaries. Pages are keyset
 * paginated (never OFFSET) so a page costs the same on the millionth entry as
 * on the first; every statement starts from an index on `account_id`. Nothing
 * here writes.
 */

/** Page size when `first` is omitted. */
export const PAGE_SIZE_DEFAULT = 20;
/** Largest page a caller may ask for (SPEC §4). */
export const PAGE_SIZE_MAX = 100;
/** Largest `sequence` a ledger entry can have (the column is a PostgreSQL INTEGER). */
const SEQUENCE_MAX = 2_147_483_647;

const ENTRY_TYPES: readonly LedgerEntryType[] = [
  "GRANT",
  "USAGE",
  "REFUND",
  "RELEASE",
  "EXPIRY",
  "ADJUSTMENT",
];
const ENTRY_STATUSES: readonly EntryStatus[] = ["PENDING", "COMPLETED", "FAILED"];
const GENERATION_STATUSES: readonly GenerationStatus[] = [
  "IN_PROGRESS",
  "SUCCEEDED",
  "PARTIALLY_SUCCEEDED",
  "FAILED",
  "TIMED_OUT",
  "CANCELLED",
];

/** Generation statuses whose USAGE entry has the given derived status (see `entryStatusOf`). */
const GENERATION_STATUSES_BY_ENTRY_STATUS: Readonly<Record<EntryStatus, readonly GenerationStatus[]>> = {
  PENDING: ["IN_PROGRESS"],
  COMPLETED: ["SUCCEEDED", "PARTIALLY_SUCCEEDED"],
  FAILED: ["FAILED", "TIMED_OUT", "CANCELLED"],
};

/** Generation statuses that count as a failed run in spending summaries. */
export const FAILED_GENERATION_STATUSES: readonly GenerationStatus[] =
  GENERATION_STATUSES_BY_ENTRY_STATUS.FAILED;

/** One SQL statement with its parameters, exactly as it is sent. */
export interface Statement {
  readonly text: string;
  readonly params: readonly unknown[];
}

// ---------------------------------------------------------------------------
// Arguments
// ---------------------------------------------------------------------------

/** Filters of `ledger` as they arrive (ids already decoded to uuids). */
export interface LedgerFilterInput {
  readonly types?: readonly LedgerEntryType[] | null;
  readonly statuses?: readonly EntryStatus[] | null;
  readonly feature?: string | null;
  readonly generationId?: string | null;
  readonly from?: Date | null;
  readonly to?: Date | null;
}

/** Filters of `generations` as they arrive. */
export interface GenerationFilterInput {
  readonly statuses?: readonly GenerationStatus[] | null;
  readonly feature?: string | null;
  readonly from?: Date | null;
  readonly to?: Date | null;
}

/** The paging arguments of a connection as they arrive. */
export interface PageInput {
  readonly first?: number | null;
  readonly after?: string | null;
}

/** A checked request for one page of an account's ledger. */
export interface LedgerQuery {
  /** Entry types to include, or null for all. Never empty. */
  readonly types: readonly LedgerEntryType[] | null;
  /** Derived statuses to include, or null for all. Never empty. */
  readonly statuses: readonly EntryStatus[] | null;
  readonly feature: string | null;
  readonly generationId: string | null;
  /** Inclusive lower bound on `createdAt`. */
  readonly from: Date | null;
  /** Exclusive upper bound on `createdAt`. */
  readonly to: Date | null;
  /** Only entries with a smaller sequence (the position of the `after` cursor). */
  readonly beforeSequence: number | null;
  readonly first: number;
}

/** A checked request for one page of an account's generations. */
export interface GenerationQuery {
  readonly statuses: readonly GenerationStatus[] | null;
  readonly feature: string | null;
  readonly from: Date | null;
  readonly to: Date | null;
  /** Only generations strictly older in (createdAt, id) order than this position. */
  readonly before: GenerationPosition | null;
  readonly first: number;
}

/** Where a generation sits in the newest-first order. */
export interface GenerationPosition {
  readonly createdAt: Date;
  readonly id: string;
}

const LEDGER_CURSOR = /^ledger:v1:([1-9][0-9]{0,9})$/;
const GENERATION_CURSOR = /^generation:v1:(-?[0-9]{1,16}):([0-9a-f-]{36})$/;
/**
 * The earliest instant PostgreSQL's timestamptz holds (4713-11-24 BC, in ms
 * since 1970); JavaScript's dates reach further back (−8.64e15 ms), and such
 * an instant sent as a parameter fails the statement. The latest JavaScript
 * date (8.64e15 ms, year 275760) is within PostgreSQL's range.
 */
const TIMESTAMP_MIN_MS = -210_866_803_200_000;

/** Whether a date is valid and within what PostgreSQL can store (a forged cursor's may not be). */
function isStorableTime(date: Date): boolean {
  const ms = date.getTime();
  return !Number.isNaN(ms) && ms >= TIMESTAMP_MIN_MS;
}

/** Longest cursor text worth decoding; real ones are under 100 characters. */
const CURSOR_LENGTH_MAX = 200;

/** The opaque cursor of a ledger entry: base64url, so clients do not build their own. */
export function ledgerCursor(sequence: number): string {
  return Buffer.from(`ledger:v1:${sequence}`, "utf8").toString("base64url");
}

/** The opaque cursor of a generation in the newest-first order. */
export function generationCursor(position: GenerationPosition): string {
  return Buffer.from(`generation:v1:${position.createdAt.getTime()}:${position.id}`, "utf8").toString(
    "base64url",
  );
}

function decodeCursor(text: string): string | null {
  if (text.length === 0 || text.length > CURSOR_LENGTH_MAX || !/^[A-Za-z0-9_-]+={0,2}$/.test(text))
    return null;
  return Buffer.from(text, "base64url").toString("utf8");
}

function describeValue(value: string): string {
  return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
}

function badCursor(field: string, connection: string, value: string): InvalidInputError {
  return new InvalidInputError(
    field,
    `must be a cursor returned by ${connection} (an edge cursor or pageInfo.endCursor), got ${describeValue(value)}`,
  );
}

function pageSize(c: Check, first: number | null | undefined): number {
  return first == null ? PAGE_SIZE_DEFAULT : c.integer("first", first, 1, PAGE_SIZE_MAX);
}

/** A non-empty list without duplicates; null when the filter is absent. */
function distinct<T>(field: string, values: readonly T[] | null | undefined, kind: string): T[] | null {
  if (values == null) return null;
  if (values.length === 0) {
    throw new InvalidInputError(
      field,
      `must list at least one ${kind}, or be omitted to include all, got []`,
    );
  }
  return [...new Set(values)];
}

function range(from: Date | null | undefined, to: Date | null | undefined, prefix: string) {
  if (from != null && to != null && from.getTime() > to.getTime()) {
    throw new InvalidInputError(
      `${prefix}to`,
      `must not be before ${prefix}from (${from.toISOString()}), got ${to.toISOString()}`,
    );
  }
  return { from: from ?? null, to: to ?? null };
}

function feature(c: Check, field: string, value: string | null | undefined): string | null {
  if (value == null) return null;
  return c.text(field, value);
}

/**
 * Checks the arguments of `ledger`. Errors name the argument (`first`,
 * `after`, `filter.types`, ...), the expectation and the value.
 */
export function parseLedgerQuery(
  page: PageInput,
  filter: LedgerFilterInput | null | undefined,
): LedgerQuery | InvalidInputError {
  return validate((c): LedgerQuery => {
    const first = pageSize(c, page.first);
    let beforeSequence: number | null = null;
    if (page.after != null) {
      const match = LEDGER_CURSOR.exec(decodeCursor(page.after) ?? "");
      const sequence = match?.[1] === undefined ? Number.NaN : Number(match[1]);
      if (!Number.isSafeInteger(sequence) || sequence > SEQUENCE_MAX)
        throw badCursor("after", "ledger", page.after);
      beforeSequence = sequence;
    }
    const types = distinct("filter.types", filter?.types, "LedgerEntryType");
    const statuses = distinct("filter.statuses", filter?.statuses, "EntryStatus");
    if (filter?.generationId != null && !UUID.test(filter.generationId)) {
      throw new InvalidInputError("filter.generationId", "must be the id of a Generation");
    }
    return {
      types: types !== null && types.length === ENTRY_TYPES.length ? null : types,
      statuses: statuses !== null && statuses.length === ENTRY_STATUSES.length ? null : statuses,
      feature: feature(c, "filter.feature", filter?.feature),
      generationId: filter?.generationId ?? null,
      ...range(filter?.from, filter?.to, "filter."),
      beforeSequence,
      first,
    };
  });
}

/** Checks the arguments of `generations`, like `parseLedgerQuery`. */
export function parseGenerationQuery(
  page: PageInput,
  filter: GenerationFilterInput | null | undefined,
): GenerationQuery | InvalidInputError {
  return validate((c): GenerationQuery => {
    const first = pageSize(c, page.first);
    let before: GenerationPosition | null = null;
    if (page.after != null) {
      const match = GENERATION_CURSOR.exec(decodeCursor(page.after) ?? "");
      const createdAt = new Date(Number(match?.[1]));
      const id = match?.[2];
      if (id === undefined || !UUID.test(id) || !isStorableTime(createdAt)) {
        throw badCursor("after", "generations", page.after);
      }
      before = { createdAt, id };
    }
    const statuses = distinct("filter.statuses", filter?.statuses, "GenerationStatus");
    return {
      statuses: statuses !== null && statuses.length === GENERATION_STATUSES.length ? null : statuses,
      feature: feature(c, "filter.feature", filter?.feature),
      ...range(filter?.from, filter?.to, "filter."),
      before,
      first,
    };
  });
}

/** Checks the arguments of `spending`. */
export function parseSpendingRange(
  from: Date | null | undefined,
  to: Date | null | undefined,
): { from: Date | null; to: Date | null } | InvalidInputError {
  return validate(() => range(from, to, ""));
}

// ---------------------------------------------------------------------------
// Statements
// ---------------------------------------------------------------------------

/** Collects positional parameters while a statement is written. */
class Params {
  readonly values: unknown[] = [];

  /** The placeholder of a new parameter, with a cast when PostgreSQL cannot infer the type. */
  add(value: unknown, cast = ""): string {
    this.values.push(value);
    return `$${this.values.length}${cast}`;
  }
}

/**
 * The entry types a page can contain: the filter's, narrowed to USAGE when
 * only PENDING and/or FAILED entries are asked for (every other type is
 * always COMPLETED). Null means every type; an empty list means nothing can
 * match.
 */
function effectiveTypes(query: LedgerQuery): readonly LedgerEntryType[] | null {
  const onlyUsage = query.statuses !== null && !query.statuses.includes("COMPLETED");
  if (!onlyUsage) return query.types;
  return query.types === null || query.types.includes("USAGE") ? ["USAGE"] : [];
}

/** The columns of a ledger page: the entry, then its generation's status (for the derived entry status). */
const ENTRY_COLUMNS = `e.id, e.account_id, e.sequence, e.type, e.amount, e.balance_before, e.balance_after, e.title,
       e.reason, e.message, e.generation_id, e.grant_id, e.transfer_id, e.created_at, e.actor`;

/**
 * How a branch reads the generation's status: from the join when it filters
 * on the generation; not at all for types other than USAGE (they are always
 * COMPLETED); else by primary key for the returned rows only, which keeps the
 * plan a plain index scan under the LIMIT whatever the planner thinks of the
 * generation table.
 */
function generationStatusColumn(type: LedgerEntryType | null, joined: boolean): string {
  if (joined) return "g.status AS generation_status";
  if (type !== null && type !== "USAGE") return `NULL::"GenerationStatus" AS generation_status`;
  return "(SELECT g.status FROM generation g WHERE g.id = e.generation_id) AS generation_status";
}

/**
 * The statement behind one page of `ledger`: up to `first + 1` entries with
 * their generation's status (the extra entry only tells whether there is a
 * next page).
 *
 * Why it is shaped this way: every branch is an index scan read backwards
 * from the cursor — `ledger_entry (account_id, sequence)`, or
 * `(account_id, type, sequence)` for a type, or `(account_id, title,
 * sequence)` for a feature — so it reads about one page of index entries
 * however long the ledger is. A filter on several types becomes one branch
 * per type joined by UNION ALL, which PostgreSQL merges in order (Merge
 * Append) instead of collecting and sorting every entry of those types. The
 * generation is joined only when status or feature needs it.
 *
 * Date bounds, a derived status and a generation id are conditions on that
 * scan (PostgreSQL may start from the generation instead when it expects few
 * matches). A page whose matches are sparse in a long ledger, such as one
 * day long ago, reads the entries in between: entry timestamps are taken
 * before the account lock, so they are not strictly in sequence order and
 * cannot be turned into a sequence range exactly.
 */
export function ledgerPageStatement(accountId: string, query: LedgerQuery): Statement {
  const params = new Params();
  const account = params.add(accountId, "::uuid");
  const limit = params.add(query.first + 1, "::int");
  const types = effectiveTypes(query);
  if (types !== null && types.length === 0) {
    return {
      text: `SELECT ${ENTRY_COLUMNS}, ${generationStatusColumn(null, false)} FROM ledger_entry e WHERE false`,
      params: [],
    };
  }
  const shared: string[] = [];
  if (query.beforeSequence !== null) shared.push(`e.sequence < ${params.add(query.beforeSequence, "::int")}`);
  if (query.from !== null) shared.push(`e.created_at >= ${params.add(query.from, "::timestamptz")}`);
  if (query.to !== null) shared.push(`e.created_at < ${params.add(query.to, "::timestamptz")}`);
  if (query.generationId !== null)
    shared.push(`e.generation_id = ${params.add(query.generationId, "::uuid")}`);
  if (query.feature !== null) {
    // An entry of a generation is titled with the generation's feature (SPEC §2),
    // so the partial index ledger_entry (account_id, title, sequence) WHERE
    // generation_id IS NOT NULL reads one feature's entries in order; the join
    // then checks the feature on the generation itself.
    const feature = params.add(query.feature, "::text");
    shared.push(`e.generation_id IS NOT NULL AND e.title = ${feature} AND g.feature = ${feature}`);
  }

  const branch = (type: LedgerEntryType | null): string => {
    const where = [`e.account_id = ${account}`];
    if (type !== null) where.push(`e.type = '${type}'`);
    where.push(...shared);
    const status = statusCondition(query.statuses, type, params);
    if (status !== null) where.push(status);
    // The generation is on the entry's account; saying so lets PostgreSQL start
    // from generation (account_id, status | feature, ...) when few match.
    const joined = status !== null || query.feature !== null;
    return `SELECT ${ENTRY_COLUMNS}, ${generationStatusColumn(type, joined)}
  FROM ledger_entry e${joined ? ` LEFT JOIN generation g ON g.id = e.generation_id AND g.account_id = ${account}` : ""}
 WHERE ${where.join(" AND ")}
 ORDER BY e.sequence DESC LIMIT ${limit}`;
  };

  const text =
    types === null || types.length === 1
      ? branch(types?.[0] ?? null)
      : `${types.map((type) => `(${branch(type)})`).join("\nUNION ALL\n")}\nORDER BY sequence DESC LIMIT ${limit}`;
  return { text, params: params.values };
}

/**
 * The SQL condition for the derived entry status (SPEC §2) in a branch of the
 * given type, or null when every entry of the branch qualifies. A USAGE entry
 * takes its status from its generation; any other entry is COMPLETED.
 */
function statusCondition(
  statuses: readonly EntryStatus[] | null,
  type: LedgerEntryType | null,
  params: Params,
): string | null {
  if (statuses === null) return null;
  if (type !== null && type !== "USAGE") return null; // effectiveTypes kept it only if COMPLETED is wanted
  const generationStatuses = statuses.flatMap((status) => GENERATION_STATUSES_BY_ENTRY_STATUS[status]);
  const usage = `g.status = ANY(${params.add(generationStatuses, '::text[]::"GenerationStatus"[]')})`;
  if (!statuses.includes("COMPLETED")) return usage;
  // A USAGE entry whose generation is gone reads as COMPLETED, like entryStatusOf(type, null).
  const completed = type === null ? "e.type <> 'USAGE' OR g.id IS NULL" : "g.id IS NULL";
  return `(${completed} OR ${usage})`;
}

/**
 * The statement behind one page of `generations`: up to `first + 1`
 * generations newest first, ordered by (created_at, id) so ties are stable.
 * Each branch reads `generation (account_id, [status | feature,] created_at
 * DESC, id DESC)` from the cursor on; several statuses become one ordered
 * branch each, merged like the ledger's types.
 */
export function generationPageStatement(accountId: string, query: GenerationQuery): Statement {
  const params = new Params();
  const account = params.add(accountId, "::uuid");
  const limit = params.add(query.first + 1, "::int");
  const shared: string[] = [];
  if (query.feature !== null) shared.push(`g.feature = ${params.add(query.feature, "::text")}`);
  if (query.from !== null) shared.push(`g.created_at >= ${params.add(query.from, "::timestamptz")}`);
  if (query.to !== null) shared.push(`g.created_at < ${params.add(query.to, "::timestamptz")}`);
  if (query.before !== null) {
    const createdAt = params.add(query.before.createdAt, "::timestamptz");
    shared.push(`(g.created_at, g.id) < (${createdAt}, ${params.add(query.before.id, "::uuid")})`);
  }
  const branch = (status: GenerationStatus | null): string => {
    const where = [`g.account_id = ${account}`];
    if (status !== null) where.push(`g.status = '${status}'`);
    where.push(...shared);
    return `SELECT g.id, g.created_at FROM generation g
 WHERE ${where.join(" AND ")}
 ORDER BY g.created_at DESC, g.id DESC LIMIT ${limit}`;
  };
  const { statuses } = query;
  const text =
    statuses === null || statuses.length === 1
      ? branch(statuses?.[0] ?? null)
      : `${statuses.map((status) => `(${branch(status)})`).join("\nUNION ALL\n")}\nORDER BY created_at DESC, id DESC LIMIT ${limit}`;
  return { text, params: params.values };
}

// ---------------------------------------------------------------------------
// Reads
// ---------------------------------------------------------------------------

/** One page of rows in order, and whether more follow. */
export interface Page<Row> {
  readonly rows: readonly Row[];
  readonly hasNextPage: boolean;
}

/** A ledger entry as a page shows it: the record and its generation's status. */
export type LedgerEntryView = LedgerEntryRecord & { readonly generationStatus: GenerationStatus | null };

interface EntryRow {
  id: string;
  account_id: string;
  sequence: number;
  type: LedgerEntryType;
  amount: bigint;
  balance_before: bigint;
  balance_after: bigint;
  title: string;
  reason: RefundReason | null;
  message: string | null;
  generation_id: string | null;
  grant_id: string | null;
  transfer_id: string;
  created_at: Date;
  actor: string;
  generation_status: GenerationStatus | null;
}

function entryView(row: EntryRow): LedgerEntryView {
  return {
    id: row.id,
    accountId: row.account_id,
    sequence: row.sequence,
    type: row.type,
    amount: row.amount,
    balanceBefore: row.balance_before,
    balanceAfter: row.balance_after,
    title: row.title,
    reason: row.reason,
    message: row.message,
    generationId: row.generation_id,
    grantId: row.grant_id,
    transferId: row.transfer_id,
    createdAt: row.created_at,
    actor: row.actor,
    generationStatus: row.generation_status,
  };
}

/**
 * Entries of an account with sequence in (after, upTo], oldest first, at most
 * `limit`; `upTo` null means "up to the newest". (`sequence` is a 32-bit
 * column, so "no bound" cannot be passed as a large number.) Used by live
 * feeds to replay and to fill gaps.
 */
export async function entriesAfter(
  sql: Sql,
  accountId: string,
  after: number,
  upTo: number | null,
  limit: number,
): Promise<LedgerEntryView[]> {
  const rows = await sql.query<EntryRow>(
    `SELECT e.*, g.status AS generation_status
       FROM ledger_entry e LEFT JOIN generation g ON g.id = e.generation_id
      WHERE e.account_id = $1 AND e.sequence > $2 AND ($3::int IS NULL OR e.sequence <= $3::int)
      ORDER BY e.sequence LIMIT $4`,
    [accountId, after, upTo, limit],
  );
  return rows.map(entryView);
}

/** Most page statement texts given a prepared-statement name; the rest are planned each time. */
const PREPARED_TEXTS_MAX = 512;
const preparedNames = new Map<string, string>();

/**
 * A prepared-statement name for a page statement's text (one per filter
 * combination), so PostgreSQL parses and plans it once per connection
 * instead of on every page (half a millisecond of a ledger page). Every
 * filter kind is written into the text itself (entry types as literals,
 * conditions present or not), so the parameters are values only and a
 * generic plan takes the same index paths as a custom one.
 */
function preparedName(text: string): string | undefined {
  let name = preparedNames.get(text);
  if (name === undefined && preparedNames.size < PREPARED_TEXTS_MAX) {
    name = `creditbook_page_${createHash("sha256").update(text).digest("hex").slice(0, 32)}`;
    preparedNames.set(text, name);
  }
  return name;
}

/** One page of an account's ledger, newest first, in one statement. */
export async function ledgerPage(
  sql: Sql,
  accountId: string,
  query: LedgerQuery,
): Promise<Page<LedgerEntryView>> {
  const statement = ledgerPageStatement(accountId, query);
  const rows = await sql.query<EntryRow>(statement.text, statement.params, preparedName(statement.text));
  return {
    rows: rows.slice(0, query.first).map(entryView),
    hasNextPage: rows.length > query.first,
  };
}

/** One page of an account's generations, newest first. */
export async function generationPage(
  sql: Sql,
  accountId: string,
  query: GenerationQuery,
): Promise<Page<{ id: string; createdAt: Date }>> {
  const statement = generationPageStatement(accountId, query);
  const rows = await sql.query<{ id: string; created_at: Date }>(
    statement.text,
    statement.params,
    preparedName(statement.text),
  );
  return {
    rows: rows.slice(0, query.first).map((row) => ({ id: row.id, createdAt: row.created_at })),
    hasNextPage: rows.length > query.first,
  };
}

/** What generations of one feature (or of all) cost over a period. */
export interface SpendingFigures {
  /** Σ charged: what delivered items were charged. */
  readonly charged: Credits;
  /** Σ refunded: refunds of failed items plus support refunds. */
  readonly refunded: Credits;
  /** charged − support refunds: what was actually paid. */
  readonly net: Credits;
  readonly generations: number;
  /** Generations that ended FAILED, TIMED_OUT or CANCELLED. */
  readonly failedGenerations: number;
}

/** A spending summary: the totals and the same figures per feature. */
export interface SpendingSummary extends SpendingFigures {
  /** Per feature, the largest charge first (ties by feature name). */
  readonly byFeature: readonly (SpendingFigures & { readonly feature: string })[];
}

/** The statement behind `spending`: one row per feature of the generations created in [from, to). */
export function spendingStatement(accountId: string, from: Date | null, to: Date | null): Statement {
  const params = new Params();
  const where = [`g.account_id = ${params.add(accountId, "::uuid")}`];
  if (from !== null) where.push(`g.created_at >= ${params.add(from, "::timestamptz")}`);
  if (to !== null) where.push(`g.created_at < ${params.add(to, "::timestamptz")}`);
  const failed = params.add(FAILED_GENERATION_STATUSES, '::text[]::"GenerationStatus"[]');
  return {
    text: `SELECT g.feature,
       sum(g.charged)::bigint AS charged,
       sum(g.refunded)::bigint AS refunded,
       sum(g.support_refunded)::bigint AS support_refunded,
       count(*)::int AS generations,
       (count(*) FILTER (WHERE g.status = ANY(${failed})))::int AS failed
  FROM generation g
 WHERE ${where.join(" AND ")}
 GROUP BY g.feature`,
    params: params.values,
  };
}

/**
 * What an account's generations created in [from, to) cost (SPEC §4
 * SpendingSummary): failed runs add to `generations` and `failedGenerations`
 * but nothing to `charged` or `net`, because they were refunded in full.
 */
export async function spendingSummary(
  sql: Sql,
  accountId: string,
  from: Date | null,
  to: Date | null,
): Promise<SpendingSummary> {
  const statement = spendingStatement(accountId, from, to);
  const rows = await sql.query<{
    feature: string;
    charged: bigint;
    refunded: bigint;
    support_refunded: bigint;
    generations: number;
    failed: number;
  }>(statement.text, statement.params);
  const byFeature = rows
    .map((row) => ({
      feature: row.feature,
      charged: row.charged,
      refunded: row.refunded,
      net: row.charged - row.support_refunded,
      generations: row.generations,
      failedGenerations: row.failed,
    }))
    .sort((a, b) =>
      a.charged === b.charged
        ? a.feature < b.feature
          ? -1
          : a.feature > b.feature
            ? 1
            : 0
        : a.charged > b.charged
          ? -1
          : 1,
    );
  const total = (pick: (figures: SpendingFigures) => Credits) =>
    byFeature.reduce((sum, figures) => sum + pick(figures), 0n);
  return {
    charged: total((f) => f.charged),
    refunded: total((f) => f.refunded),
    net: total((f) => f.net),
    generations: byFeature.reduce((sum, f) => sum + f.generations, 0),
    failedGenerations: byFeature.reduce((sum, f) => sum + f.failedGenerations, 0),
    byFeature,
  };
}
