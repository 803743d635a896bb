import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { errors as joseErrors, jwtVerify, SignJWT } from "jose";
import { type Principal, ROLES, type Role } from "../domain/access.ts";

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

/**
 * Verified tokens by their text, until they expire. A platform backend sends
 * the same token on every request; checking its signature each time was
 * 10–15% of a reserve's CPU. Bounded; a token is dropped once expired.
 */
export class VerifiedTokens {
  private readonly byText = new Map<string, Principal>();

  /** The cached principal of `token`, else `verifyUncached(token)`'s, remembered. */
  async verify(token: string, verifyUncached: (token: string) => Promise<Principal>): Promise<Principal> {
    const cached = this.byText.get(token);
    if (cached !== undefined) {
      if (cached.exp !== null && cached.exp * 1000 > Date.now()) return cached;
      this.byText.delete(token);
    }
    const principal = await verifyUncached(token);
    if (this.byText.size >= VERIFIED_TOKENS_MAX) this.byText.clear();
    this.byText.set(token, principal);
    return principal;
  }
}

/** Verifies and signs HS256 tokens. */
export class TokenService {
  private readonly key: Uint8Array;

  constructor(secret: string) {
    this.key = new TextEncoder().encode(secret);
  }

  private readonly verified = new VerifiedTokens();

  /** @throws AuthenticationError for a malformed, badly signed or expired token, or bad claims. */
  verify(token: string): Promise<Principal> {
    return this.verified.verify(token, (text) => this.verifyUncached(text));
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
