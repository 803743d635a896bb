import { mkdirSync } from "node:fs";
import { PGlite } from "@electric-sql/pglite";
import { PrismaPg } from "@prisma/adapter-pg";
import pg from "pg";
import { PrismaPGlite } from "pglite-prisma-adapter";
import { PrismaClient } from "./generated/client.ts";
import { isDatabaseUnavailable, OutcomeUnknownError } from "./unavailable.ts";

/** One SQL statement executor: a pool, a session or a transaction. */
export interface Sql {
  /**
   * Runs one parameterised statement and returns its rows. BIGINT columns arrive as `bigint`.
   * A `name` makes it a prepared statement, planned once per connection: for the
   * hot path's fixed statements only (each name must always have the same text).
   */
  query<Row>(text: string, params?: readonly unknown[], name?: string): Promise<Row[]>;
}

/** A connection held for several statements (migrations, advisory locks). */
export interface Session extends Sql {
  /** Runs a script of several statements without parameters. */
  exec(script: string): Promise<void>;
}

export type IsolationLevel = "READ COMMITTED" | "REPEATABLE READ" | "SERIALIZABLE";

export interface TransactionOptions {
  readonly isolation: IsolationLevel;
  /** Upper bound for every statement of the transaction, waits for locks included. */
  readonly timeoutMs: number;
  /**
   * Every statement of the transaction reads or writes rows by key (the
   * ledger's hot path). The planner cannot see how many rows a JSON parameter
   * holds (it assumes 100), and for that many it prefers hashing whole tables
   * to probing their primary keys; this turns hash and merge joins off so
   * every join probes an index, and the cost stays flat as tables grow.
   */
  readonly keyedAccessOnly?: boolean;
  /**
   * A statement without parameters run first in the transaction, sent with
   * BEGIN in the same round trip where the driver allows it (the hot path
   * locks its account row this way); its rows are handed to the work.
   */
  readonly prelude?: string;
}

/** The statement that opens a transaction with its options, in one round trip. */
function beginStatement(options: TransactionOptions, begin: string): string {
  return [
    begin,
    `SET LOCAL statement_timeout = ${Math.trunc(options.timeoutMs)}`,
    ...(options.keyedAccessOnly === true
      ? ["SET LOCAL enable_hashjoin = off", "SET LOCAL enable_mergejoin = off"]
      : []),
  ].join("; ");
}

export interface PoolStats {
  readonly total: number;
  readonly idle: number;
  readonly waiting: number;
}

/**
 * The database seen by the rest of the service: Prisma for reads shaped by
 * GraphQL, and plain SQL for the ledger's transactions. The domain talks SQL
 * directly (not through Prisma's interactive transactions) because its hot
 * paths must be a few statements per transaction with an explicit isolation
 * level and timeout, and every round trip is spent while an account row is
 * locked.
 */
export interface Database extends Sql {
  readonly kind: "postgres" | "embedded";
  readonly prisma: PrismaClient;
  transaction<T>(
    options: TransactionOptions,
    work: (tx: Sql, preludeRows: unknown[]) => Promise<T>,
  ): Promise<T>;
  withSession<T>(work: (session: Session) => Promise<T>): Promise<T>;
  poolStats(): PoolStats;
  close(): Promise<void>;
}

const INT8_OID = 20;
const pgTypes = {
  getTypeParser(oid: number, format?: string) {
    if (oid === INT8_OID) return (value: string) => BigInt(value);
    return (pg.types.getTypeParser as (oid: number, format?: string) => (value: string) => unknown)(
      oid,
      format,
    );
  },
};

/** Query parameters: bigint is sent as its decimal text (exact), everything else as is. */
function encodeParams(params: readonly unknown[] | undefined): unknown[] {
  return (params ?? []).map((value) => (typeof value === "bigint" ? value.toString() : value));
}

/**
 * Sends COMMIT. A connection that fails now leaves the outcome unknown (the
 * server may have committed before the socket died): that is an
 * OutcomeUnknownError, never "nothing was written". An error the server
 * answers (a deferred constraint, a serialization failure) means it rolled
 * back, and passes as it is.
 */
async function commit(client: pg.PoolClient): Promise<void> {
  try {
    await client.query("COMMIT");
  } catch (error) {
    if (isDatabaseUnavailable(error)) throw new OutcomeUnknownError(error);
    throw error;
  }
}

/**
 * A Date as PostgreSQL timestamptz text, in UTC. `toISOString` (what PGlite
 * sends for a Date) writes year 0 as "0000" and years past 9999 as "+010000",
 * both refused by PostgreSQL; its own form is "0001-01-01 … BC" and plain
 * five-digit years, which is also how node-pg sends them.
 */
export function timestamptzText(date: Date): string {
  const year = date.getUTCFullYear();
  if (year >= 1 && year <= 9999) return date.toISOString();
  const pad = (value: number, width = 2) => String(value).padStart(width, "0");
  const text =
    `${pad(year > 0 ? year : 1 - year, 4)}-${pad(date.getUTCMonth() + 1)}-${pad(date.getUTCDate())}` +
    `T${pad(date.getUTCHours())}:${pad(date.getUTCMinutes())}:${pad(date.getUTCSeconds())}` +
    `.${pad(date.getUTCMilliseconds(), 3)}+00:00`;
  return year > 0 ? text : `${text} BC`;
}

/** Parameters for PGlite: as for node-pg, and Dates as PostgreSQL reads them at every year. */
function encodeEmbeddedParams(params: readonly unknown[] | undefined): unknown[] {
  return encodeParams(params).map((value) => (value instanceof Date ? timestamptzText(value) : value));
}

export interface PostgresOptions {
  readonly url: string;
  readonly poolSizeMax: number;
  readonly applicationName?: string;
}

/** Connects to PostgreSQL through one pg pool shared by Prisma (driver adapter) and the domain. */
export function connectPostgres(options: PostgresOptions): Database {
  const pool = new pg.Pool({
    connectionString: options.url,
    max: options.poolSizeMax,
    application_name: options.applicationName ?? "creditbook",
    idleTimeoutMillis: 30_000,
    connectionTimeoutMillis: 10_000,
  });
  // A broken idle connection must not crash the process; the pool replaces it.
  pool.on("error", (error) => {
    process.emitWarning(`PostgreSQL idle connection error: ${error.message}`);
  });
  // A connection that breaks while checked out (PostgreSQL restarted mid-transaction) emits
  // 'error' on the client itself: without a listener that is an uncaught exception that ends
  // the process. The query in flight fails on its own and the transaction is released broken.
  pool.on("connect", (client) => {
    client.on("error", (error) => {
      process.emitWarning(`PostgreSQL connection error: ${error.message}`);
    });
  });
  const prisma = new PrismaClient({ adapter: new PrismaPg(pool) });

  const run = async <Row>(
    client: pg.Pool | pg.PoolClient,
    text: string,
    params?: readonly unknown[],
    name?: string,
  ) => {
    const result = await client.query({ name, text, values: encodeParams(params), types: pgTypes });
    return result.rows as Row[];
  };

  return {
    kind: "postgres",
    prisma,
    query: (text, params, name) => run(pool, text, params, name),
    async transaction(txOptions, work) {
      const client = await pool.connect();
      let broken = false;
      try {
        const begin = beginStatement(txOptions, `BEGIN ISOLATION LEVEL ${txOptions.isolation}`);
        let preludeRows: unknown[] = [];
        if (txOptions.prelude === undefined) await client.query(begin);
        else {
          // One simple-protocol message with several statements: one result per statement.
          const results = (await client.query({
            text: `${begin}; ${txOptions.prelude}`,
            types: pgTypes,
          })) as unknown as pg.QueryResult[];
          preludeRows = results.at(-1)?.rows ?? [];
        }
        const result = await work(
          { query: (text, params, name) => run(client, text, params, name) },
          preludeRows,
        );
        await commit(client);
        return result;
      } catch (error) {
        try {
          await client.query("ROLLBACK");
        } catch {
          // The connection is unusable (the server went away): drop it from the pool.
          broken = true;
        }
        throw error;
      } finally {
        client.release(broken);
      }
    },
    async withSession(work) {
      const client = await pool.connect();
      try {
        return await work({
          query: (text, params) => run(client, text, params),
          exec: async (script) => {
            await client.query(script);
          },
        });
      } finally {
        client.release();
      }
    },
    poolStats: () => ({ total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount }),
    async close() {
      await prisma.$disconnect();
      await pool.end();
    },
  };
}

const TIMESTAMPTZ_OID = 1184;
/**
 * How embedded rows are read, as node-pg reads them: BIGINT as bigint, and
 * timestamptz through node-pg's own parser (PGlite's reads "… BC" as NaN).
 */
const pgliteParsers = {
  [INT8_OID]: (value: string) => BigInt(value),
  [TIMESTAMPTZ_OID]: pg.types.getTypeParser(TIMESTAMPTZ_OID) as (value: string) => Date,
};

/**
 * Opens the embedded PostgreSQL (PGlite) kept in `dataDir`, or in memory when
 * `dataDir` is undefined. PGlite is one connection: transactions queue behind
 * each other, which is correct, just not parallel.
 */
export async function openEmbedded(dataDir: string | undefined): Promise<Database> {
  if (dataDir !== undefined) mkdirSync(dataDir, { recursive: true });
  const pglite = await PGlite.create(
    dataDir === undefined ? undefined : `${dataDir.replace(/\/$/, "")}/pgdata`,
  );
  return embeddedDatabase(pglite);
}

/** The Database over an already-created PGlite instance (closing it closes the instance). */
export function embeddedDatabase(pglite: PGlite): Database {
  const prisma = new PrismaClient({ adapter: new PrismaPGlite(pglite) });
  const run = async <Row>(
    target: Pick<PGlite, "query">,
    text: string,
    params?: readonly unknown[],
  ): Promise<Row[]> => {
    // PGlite returns small BIGINT values as numbers and large ones as bigint; the
    // domain wants bigint always (as from the pg driver). Per query, so Prisma's
    // adapter on the same instance keeps its own parsing.
    const result = await target.query<Row>(text, encodeEmbeddedParams(params), { parsers: pgliteParsers });
    return result.rows;
  };
  let waiting = 0;
  return {
    kind: "embedded",
    prisma,
    query: (text, params) => run(pglite, text, params),
    async transaction(txOptions, work) {
      waiting += 1;
      return pglite
        .transaction(async (tx) => {
          waiting -= 1;
          await tx.exec(beginStatement(txOptions, `SET TRANSACTION ISOLATION LEVEL ${txOptions.isolation}`));
          const sql: Sql = { query: (text, params) => run(tx, text, params) };
          const preludeRows = txOptions.prelude === undefined ? [] : await sql.query(txOptions.prelude);
          return work(sql, preludeRows);
        })
        .finally(() => {
          waiting = Math.max(0, waiting);
        });
    },
    async withSession(work) {
      return work({
        query: (text, params) => run(pglite, text, params),
        exec: async (script) => {
          await pglite.exec(script);
        },
      });
    },
    poolStats: () => ({ total: 1, idle: waiting === 0 ? 1 : 0, waiting }),
    async close() {
      await prisma.$disconnect();
      await pglite.close();
    },
  };
}
