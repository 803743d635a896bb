/**
 * API keys (SPEC §8.6): `cb_<43 base64url characters>` (32 random bytes),
 * shown once at creation. Only HMAC-SHA256(pepper, secret) is stored, so a
 * copy of the table is no credential; the pepper is API_KEY_PEPPER, or a key
 * derived from the JWT secret when that is unset (see `apiKeyPepper`).
 */
import { createHmac, randomBytes, randomUUID } from "node:crypto";
import {
  type ApiKeyRow,
  apiKeyByHash,
  insertApiKey,
  listApiKeys,
  revokeApiKeyRow,
  touchApiKey,
} from "../db/api-keys.ts";
import type { Sql } from "../db/database.ts";
import type { Principal } from "./access.ts";
import { type DomainError, InvalidInputError, NotFoundError } from "./errors.ts";
import { validate } from "./validate.ts";

export type { ApiKeyRow };

/** What every API key secret starts with; a bearer token so prefixed is looked up as a key. */
export const API_KEY_PREFIX = "cb_";
/** Random bytes in a secret: 256 bits. */
const SECRET_BYTES = 32;
/** A well-formed secret: the prefix and 43 base64url characters (32 bytes, unpadded). */
const SECRET_PATTERN = /^cb_[A-Za-z0-9_-]{43}$/;
/** Characters of the secret kept as its `prefix`, to tell keys apart: "cb_" and 8 more. */
const PREFIX_LENGTH = 11;
/** Highest `rateLimitPerSecond` a key may have (the same bound as RATE_LIMIT_SERVICE_PER_SECOND). */
export const API_KEY_RATE_LIMIT_MAX = 1_000_000;
/** How long one instance trusts a key it looked up. @default 500 // ms */
export const API_KEY_CACHE_MS = 500;
/** Shortest time between two `lastUsedAt` writes of one key by one instance. @default 60_000 // 1 minute */
export const API_KEY_TOUCH_INTERVAL_MS = 60_000;
/** Most keys one instance remembers lookups of (cleared when full). */
const CACHE_ENTRIES_MAX = 10_000;
/** What the pepper is derived from the JWT secret with, when API_KEY_PEPPER is unset. */
const PEPPER_LABEL = "creditbook api key pepper v1";

/**
 * The HMAC key of stored hashes: API_KEY_PEPPER when set, else
 * HMAC-SHA256(jwtSecret, "creditbook api key pepper v1"). Changing either
 * (whichever is in use) makes every existing key unknown.
 */
export function apiKeyPepper(configured: string | undefined, jwtSecret: string): Buffer {
  if (configured !== undefined) return Buffer.from(configured, "utf8");
  // Config refuses a server with neither (DATABASE_URL, AUTH_JWKS_URL and no secret): never empty here.
  if (jwtSecret === "") throw new Error("API key hashes need API_KEY_PEPPER or a JWT secret");
  return createHmac("sha256", jwtSecret).update(PEPPER_LABEL).digest();
}

export interface CreateApiKeyRequest {
  readonly name: string;
  readonly accountId: string | null;
  readonly rateLimitPerSecond: number | null;
}

export interface ApiKeysOptions {
  /** @default API_KEY_CACHE_MS */
  readonly cacheMs?: number;
  /** @default API_KEY_TOUCH_INTERVAL_MS */
  readonly touchIntervalMs?: number;
  /** Told when a `lastUsedAt` write fails (it is retried on a later use). */
  readonly warn?: (message: string) => void;
}

interface Cached {
  /** null: no key has this secret. */
  readonly row: ApiKeyRow | null;
  readonly fetchedAtMs: number;
}

/** Creates, lists, revokes and authenticates API keys; one per server instance. */
export class ApiKeys {
  private readonly cacheMs: number;
  private readonly touchIntervalMs: number;
  /** Lookups by the secret's hash (hex). Bounded; an entry older than cacheMs is looked up again. */
  private readonly cache = new Map<string, Cached>();
  /** When this instance last wrote each key's lastUsedAt (ms). */
  private readonly touchedAtMs = new Map<string, number>();

  constructor(
    private readonly sql: Sql,
    private readonly pepper: Uint8Array,
    private readonly options: ApiKeysOptions = {},
  ) {
    this.cacheMs = options.cacheMs ?? API_KEY_CACHE_MS;
    this.touchIntervalMs = options.touchIntervalMs ?? API_KEY_TOUCH_INTERVAL_MS;
  }

  private hashOf(secret: string): Buffer {
    return createHmac("sha256", this.pepper).update(secret).digest();
  }

  /** Creates a key; the secret is in the answer and nowhere else. */
  async create(request: CreateApiKeyRequest): Promise<{ apiKey: ApiKeyRow; secret: string } | DomainError> {
    const checked = validate((c) => ({
      name: c.requiredText("name", request.name),
      rateLimitPerSecond:
        request.rateLimitPerSecond === null
          ? null
          : c.integer("rateLimitPerSecond", request.rateLimitPerSecond, 1, API_KEY_RATE_LIMIT_MAX),
    }));
    if (checked instanceof InvalidInputError) return checked;
    const secret = `${API_KEY_PREFIX}${randomBytes(SECRET_BYTES).toString("base64url")}`;
    const apiKey = await insertApiKey(this.sql, {
      id: randomUUID(),
      name: checked.name,
      prefix: secret.slice(0, PREFIX_LENGTH),
      hash: this.hashOf(secret),
      accountId: request.accountId,
      rateLimitPerSecond: checked.rateLimitPerSecond,
    });
    if (apiKey === null) return new NotFoundError("Account");
    return { apiKey, secret };
  }

  list(): Promise<ApiKeyRow[]> {
    return listApiKeys(this.sql);
  }

  /**
   * Revokes a key: refused at once on this instance, and within
   * API_KEY_CACHE_MS on the others even if the announcement of it
   * (revocations.ts) were lost.
   */
  async revoke(id: string): Promise<ApiKeyRow | NotFoundError> {
    const row = await revokeApiKeyRow(this.sql, id);
    if (row === null) return new NotFoundError("API key");
    this.revoked(id);
    return row;
  }

  /** Forgets what this instance knew of a revoked key, so its next use reads the revocation. */
  revoked(id: string): void {
    for (const [hash, cached] of this.cache) {
      if (cached.row?.id === id) this.cache.delete(hash);
    }
  }

  /**
   * The principal a secret acts as, or null for a malformed, unknown or
   * revoked one. A lookup is trusted for `cacheMs`, so the hot path reads
   * the database at most once per key per `cacheMs`.
   */
  async authenticate(secret: string): Promise<Principal | null> {
    if (!SECRET_PATTERN.test(secret)) return null;
    const hash = this.hashOf(secret);
    const cacheKey = hash.toString("hex");
    const nowMs = Date.now();
    let cached = this.cache.get(cacheKey);
    if (cached === undefined || nowMs - cached.fetchedAtMs > this.cacheMs) {
      cached = { row: await apiKeyByHash(this.sql, hash), fetchedAtMs: nowMs };
      if (this.cache.size >= CACHE_ENTRIES_MAX) this.cache.clear();
      this.cache.set(cacheKey, cached);
    }
    const { row } = cached;
    if (row === null || row.revokedAt !== null) return null;
    this.touch(row.id, nowMs);
    return {
      sub: `apikey:${row.id}`,
      role: "service",
      exp: null,
      apiKeyId: row.id,
      accountId: row.accountId,
      rateLimitPerSecond: row.rateLimitPerSecond,
    };
  }

  /** Writes lastUsedAt in the background, at most once per touchIntervalMs per key. */
  private touch(id: string, nowMs: number): void {
    const last = this.touchedAtMs.get(id);
    if (last !== undefined && nowMs - last < this.touchIntervalMs) return;
    if (this.touchedAtMs.size >= CACHE_ENTRIES_MAX) this.touchedAtMs.clear();
    this.touchedAtMs.set(id, nowMs);
    touchApiKey(this.sql, id).catch((error: unknown) => {
      // A lost write only leaves lastUsedAt older; the next use after the interval writes it.
      this.touchedAtMs.delete(id);
      this.options.warn?.(`recording the use of API key ${id} failed: ${(error as Error).message}`);
    });
  }
}
