/**
 * Tokens from an identity provider (SPEC §8.6): RS256 or ES256 JWTs whose
 * keys are published at AUTH_JWKS_URL, fetched and cached by jose. A key
 * rotation (a new `kid` on the JWKS) is picked up by refetching the set when
 * a token names a key it does not hold, at most once per JWKS_COOLDOWN_MS.
 */
import { createRemoteJWKSet, decodeProtectedHeader, errors as joseErrors, jwtVerify } from "jose";
import { type Principal, ROLES, type Role } from "../domain/access.ts";
import { AuthenticationError, type TokenService, VerifiedTokens } from "./auth.ts";
import type { JwtVerifier } from "./credentials.ts";

/** The algorithms an identity provider's tokens may use. */
export const JWKS_ALGORITHMS = ["RS256", "ES256"] as const;
/** Shortest time between two fetches of the JWKS for an unknown `kid`. @default 1_000 // 1 second */
export const JWKS_COOLDOWN_MS = 1_000;
/** Longest a fetched JWKS is used before it is fetched again. @default 600_000 // 10 minutes */
export const JWKS_CACHE_MAX_AGE_MS = 600_000;
/** Longest one JWKS fetch may take. @default 5_000 // 5 seconds */
export const JWKS_TIMEOUT_MS = 5_000;

export interface JwksOptions {
  /** AUTH_JWKS_URL */
  readonly url: string;
  /** AUTH_ISSUER: the `iss` every token must have; unset → not checked. */
  readonly issuer: string | undefined;
  /** AUTH_AUDIENCE: a value `aud` must hold; unset → not checked. */
  readonly audience: string | undefined;
  /** AUTH_ROLE_CLAIM: the claim that holds the role. @default "role" */
  readonly roleClaim: string;
}

/** Verifies identity-provider tokens against the JWKS. */
export class JwksVerifier implements JwtVerifier {
  private readonly keys: ReturnType<typeof createRemoteJWKSet>;
  private readonly verified = new VerifiedTokens();

  constructor(private readonly options: JwksOptions) {
    this.keys = createRemoteJWKSet(new URL(options.url), {
      cooldownDuration: JWKS_COOLDOWN_MS,
      cacheMaxAge: JWKS_CACHE_MAX_AGE_MS,
      timeoutDuration: JWKS_TIMEOUT_MS,
    });
  }

  /** @throws AuthenticationError for a bad signature, issuer, audience, expiry or claims */
  verify(token: string): Promise<Principal> {
    return this.verified.verify(token, (text) => this.verifyUncached(text));
  }

  private async verifyUncached(token: string): Promise<Principal> {
    let payload: Record<string, unknown>;
    try {
      ({ payload } = await jwtVerify(token, this.keys, {
        algorithms: [...JWKS_ALGORITHMS],
        issuer: this.options.issuer,
        audience: this.options.audience,
        requiredClaims: ["exp"],
      }));
    } catch (error) {
      if (error instanceof joseErrors.JWTExpired) throw new AuthenticationError("Token expired");
      if (error instanceof joseErrors.JWTClaimValidationFailed) {
        throw new AuthenticationError(`Invalid token: the ${error.claim} claim is not accepted`);
      }
      throw new AuthenticationError("Invalid token");
    }
    const { sub, exp } = payload;
    const role = payload[this.options.roleClaim];
    if (typeof sub !== "string" || sub.length === 0 || sub.length > 200) {
      throw new AuthenticationError("Invalid token: sub must be a non-empty string");
    }
    if (typeof role !== "string" || !(ROLES as readonly string[]).includes(role)) {
      throw new AuthenticationError(
        `Invalid token: the ${this.options.roleClaim} claim must be one of ${ROLES.join(", ")}`,
      );
    }
    return { sub, role: role as Role, exp: typeof exp === "number" ? exp : null };
  }
}

/**
 * HS256 tokens with the shared secret beside identity-provider tokens: the
 * token's `alg` header says which verifier checks it. Either may be absent
 * (AUTH_JWKS_URL instead of AUTH_JWT_SECRET, or only the secret).
 */
export class JwtVerifiers implements JwtVerifier {
  constructor(
    private readonly shared: TokenService | null,
    private readonly provider: JwksVerifier | null,
  ) {}

  verify(token: string): Promise<Principal> {
    let alg: unknown;
    try {
      alg = decodeProtectedHeader(token).alg;
    } catch {
      return Promise.reject(new AuthenticationError("Invalid token"));
    }
    if (alg === "HS256" && this.shared !== null) return this.shared.verify(token);
    if (this.provider !== null && (JWKS_ALGORITHMS as readonly unknown[]).includes(alg)) {
      return this.provider.verify(token);
    }
    return Promise.reject(new AuthenticationError("Invalid token"));
  }
}
