/**
 * Every SQL statement on `api_key` (SPEC §8.6). None of them reads the hash
 * back: a key is found by the hash of the secret presented, and nothing else
 * ever needs it.
 */
import type { Sql } from "./database.ts";

/** An API key as stored, without its hash. */
export interface ApiKeyRow {
  readonly id: string;
  readonly name: string;
  readonly prefix: string;
  readonly accountId: string | null;
  readonly rateLimitPerSecond: number | null;
  readonly createdAt: Date;
  readonly lastUsedAt: Date | null;
  readonly revokedAt: Date | null;
}

interface Row {
  id: string;
  name: string;
  prefix: string;
  account_id: string | null;
  rate_limit_per_second: number | null;
  created_at: Date;
  last_used_at: Date | null;
  revoked_at: Date | null;
}

const COLUMNS = "id, name, prefix, account_id, rate_limit_per_second, created_at, last_used_at, revoked_at";

function rowOf(row: Row): ApiKeyRow {
  return {
    id: row.id,
    name: row.name,
    prefix: row.prefix,
    accountId: row.account_id,
    rateLimitPerSecond: row.rate_limit_per_second,
    createdAt: row.created_at,
    lastUsedAt: row.last_used_at,
    revokedAt: row.revoked_at,
  };
}

export interface NewApiKey {
  readonly id: string;
  readonly name: string;
  readonly prefix: string;
  readonly hash: Uint8Array;
  readonly accountId: string | null;
  readonly rateLimitPerSecond: number | null;
}

/**
 * Stores a new key; null when its account does not exist. The account is
 * checked in the same statement, so a key never names a missing account.
 */
export async function insertApiKey(sql: Sql, key: NewApiKey): Promise<ApiKeyRow | null> {
  const rows = await sql.query<Row>(
    `INSERT INTO api_key (id, name, prefix, hash, account_id, rate_limit_per_second)
     SELECT $1, $2, $3, $4, $5::uuid, $6
      WHERE $5::uuid IS NULL OR EXISTS (SELECT 1 FROM account WHERE id = $5::uuid)
     RETURNING ${COLUMNS}`,
    [key.id, key.name, key.prefix, key.hash, key.accountId, key.rateLimitPerSecond],
  );
  const row = rows[0];
  return row === undefined ? null : rowOf(row);
}

/** The key whose secret hashes to `hash`, revoked or not; null when none does. */
export async function apiKeyByHash(sql: Sql, hash: Uint8Array): Promise<ApiKeyRow | null> {
  const rows = await sql.query<Row>(
    `SELECT ${COLUMNS} FROM api_key WHERE hash = $1`,
    [hash],
    "creditbook_api_key_by_hash",
  );
  const row = rows[0];
  return row === undefined ? null : rowOf(row);
}

/** Every key, newest first. */
export async function listApiKeys(sql: Sql): Promise<ApiKeyRow[]> {
  const rows = await sql.query<Row>(`SELECT ${COLUMNS} FROM api_key ORDER BY created_at DESC, id`);
  return rows.map(rowOf);
}

/**
 * Revokes a key (a revoked key keeps its first revocation time); null when
 * no key has the id.
 */
export async function revokeApiKeyRow(sql: Sql, id: string): Promise<ApiKeyRow | null> {
  const rows = await sql.query<Row>(
    `UPDATE api_key SET revoked_at = COALESCE(revoked_at, now()) WHERE id = $1 RETURNING ${COLUMNS}`,
    [id],
  );
  const row = rows[0];
  return row === undefined ? null : rowOf(row);
}

/** Records that a key was used now (callers write it at most once a minute per key). */
export async function touchApiKey(sql: Sql, id: string): Promise<void> {
  await sql.query("UPDATE api_key SET last_used_at = now() WHERE id = $1", [id], "creditbook_api_key_touch");
}
