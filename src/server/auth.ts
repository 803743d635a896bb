import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { errors as joseErrors, jwtVerify, SignJWT } from "jose";
import type { Sql } from "../db/database.ts";
import type { MemberRole } from "../domain/model.ts";

export type Role = "user" | "service" | "admin";
export const ROLES: readonly Role[] = ["user", "service", "admin"];

/** Who a request acts for, from a verified token. */
export interface Principal {
  readonly sub: string;
  readonly role: Role;
  /** Token expiry, seconds since the epoch (subscriptions close at it). */
  readonly exp: number | null;
}

/** A token that is present but cannot be trusted: HTTP 401. */
export class AuthenticationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "AuthenticationError";
  }
}

/** The secret file of the embedded mode, created once. */
export function embeddedSecretPath(dataDir: string): string {
  return join(dataDir, "auth-secret");
}

/**
 * The HS256 secret: AUTH_JWT_SECRET when set; in embedded mode a random one
 * generated once into DATA_DIR/auth-secret (mode 0600) and reused.
 */
export function resolveSecret(configured: string | undefined, dataDir: string, create: boolean): string {
  if (configured !== undefined) return configured;
  const path = embeddedSecretPath(dataDir);
  if (existsSync(path)) return readFileSync(path, "utf8").trim();
  if (!create)
    throw new Error(`no AUTH_JWT_SECRET and no ${path}: start the server once, or set AUTH_JWT_SECRET`);
  mkdirSync(dataDir, { recursive: true });
  const secret = randomBytes(32).toString("base64url");
  writeFileSync(path, `${secret}\n`, { mode: 0o600, flag: "wx" });
  return secret;
}

/** Most verified tokens remembered per process. */
const VERIFIED_TOKENS_MAX = 10_000;

/** Verifies and signs HS256 tokens. */
export class TokenService {
  private readonly key: Uint8Array;

  constructor(secret: string) {
    this.key = new TextEncoder().encode(secret);
  }

  /** @throws AuthenticationError for a malformed, badly signed or expired token, or bad claims. */
  /**
   * Verified tokens by their text, until they expire. A platform backend sends
   * the same token on every request; checking its HMAC each time was 10–15%
   * of a reserve's CPU. Bounded; a token is dropped from it once expired.
   */
  private readonly verified = new Map<string, Principal>();

  async verify(token: string): Promise<Principal> {
    const cached = this.verified.get(token);
    if (cached !== undefined) {
      if (cached.exp !== null && cached.exp * 1000 > Date.now()) return cached;
      this.verified.delete(token);
    }
    const principal = await this.verifyUncached(token);
    if (this.verified.size >= VERIFIED_TOKENS_MAX) this.verified.clear();
    this.verified.set(token, principal);
    return principal;
  }

  private async verifyUncached(token: string): Promise<Principal> {
    let payload: Record<string, unknown>;
    try {
      // A token without exp would never expire: refused (SPEC §3 lists exp among the claims).
      ({ payload } = await jwtVerify(token, this.key, { algorithms: ["HS256"], requiredClaims: ["exp"] }));
    } catch (error) {
      if (error instanceof joseErrors.JWTExpired) throw new AuthenticationError("Token expired");
      throw new AuthenticationError("Invalid token");
    }
    const { sub, role, exp } = payload;
    if (typeof sub !== "string" || sub.length === 0 || sub.length > 200) {
      throw new AuthenticationError("Invalid token: sub must be a non-empty string");
    }
    if (typeof role !== "string" || !(ROLES as readonly string[]).includes(role)) {
      throw new AuthenticationError(`Invalid token: role must be one of ${ROLES.join(", ")}`);
    }
    return { sub, role: role as Role, exp: typeof exp === "number" ? exp : null };
  }

  /** Signs a token; `expiresIn` like "1h", "30d". */
  sign(sub: string, role: Role, expiresIn = "30d"): Promise<string> {
    return new SignJWT({ role })
      .setProtectedHeader({ alg: "HS256" })
      .setSubject(sub)
      .setIssuedAt()
      .setExpirationTime(expiresIn)
      .sign(this.key);
  }
}

/** Reads `Authorization: Bearer <token>`; undefined when absent. */
export function bearerToken(header: string | null | undefined): string | undefined {
  if (header == null || header.trim() === "") return undefined;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (match === null) throw new AuthenticationError("Authorization header must be 'Bearer <token>'");
  return match[1];
}

/**
 * What one request may see. Users see the accounts they are members of
 * (loaded once per request); services and admins see every account.
 */
export class Access {
  private memberships: Promise<Map<string, MemberRole>> | null = null;

  constructor(
    readonly principal: Principal | null,
    private readonly sql: Sql,
  ) {}

  get isPlatform(): boolean {
    return this.principal?.role === "service" || this.principal?.role === "admin";
  }

  get isAdmin(): boolean {
    return this.principal?.role === "admin";
  }

  /** The user's accounts and roles (empty for services and admins, who have no memberships). */
  userMemberships(): Promise<Map<string, MemberRole>> {
    const sub = this.principal?.sub;
    if (sub === undefined) return Promise.resolve(new Map());
    this.memberships ??= this.sql
      .query<{ account_id: string; role: MemberRole }>(
        "SELECT account_id, role FROM account_member WHERE user_id = $1 ORDER BY created_at, account_id",
        [sub],
      )
      .then((rows) => new Map(rows.map((row) => [row.account_id, row.role])));
    return this.memberships;
  }

  /** Whether the principal may read the account (existence is checked by the caller). */
  async canRead(accountId: string): Promise<boolean> {
    if (this.principal === null) return false;
    if (this.isPlatform) return true;
    return (await this.userMemberships()).has(accountId);
  }

  /** The user's role in the account, or null. */
  async memberRole(accountId: string): Promise<MemberRole | null> {
    return (await this.userMemberships()).get(accountId) ?? null;
  }

  /** A Prisma `where` fragment limiting rows to visible accounts. */
  visibleAccountsWhere(): { accountId?: { in: string[] } } | Promise<{ accountId?: { in: string[] } }> {
    if (this.isPlatform) return {};
    return this.userMemberships().then((m) => ({ accountId: { in: [...m.keys()] } }));
  }
}
