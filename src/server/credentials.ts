/**
 * Who a bearer token is (SPEC §3, §8.6): an API key (`cb_…`), else a JWT.
 * Every way a request, a WebSocket or a stream authenticates goes through
 * `principalOf`, so they all accept and refuse the same credentials.
 */
import type { Sql } from "../db/database.ts";
import type { Principal } from "../domain/access.ts";
import { API_KEY_PREFIX, ApiKeys, apiKeyPepper } from "../domain/api-keys.ts";
import { InProcessRevocationTransport, Revocations } from "../domain/revocations.ts";
import { AuthenticationError, bearerToken, type TokenService } from "./auth.ts";
import type { Config } from "./config.ts";
import { JwksVerifier, JwtVerifiers } from "./jwks.ts";
import { RedisRevocationTransport } from "./revocations.ts";

/** Verifies one kind of JWT (HS256 with the shared secret, or an identity provider's). */
export interface JwtVerifier {
  /** @throws AuthenticationError when the token is not valid for this verifier. */
  verify(token: string): Promise<Principal>;
}

export class Credentials {
  constructor(
    private readonly apiKeys: ApiKeys,
    private readonly verifier: JwtVerifier,
  ) {}

  /**
   * The principal of an `Authorization` header value; null when there is none.
   * @throws AuthenticationError for a malformed header, a bad, expired or revoked credential
   */
  async principalOf(authorization: string | null | undefined): Promise<Principal | null> {
    const token = bearerToken(authorization);
    if (token === undefined) return null;
    if (token.startsWith(API_KEY_PREFIX)) {
      const principal = await this.apiKeys.authenticate(token);
      if (principal === null) throw new AuthenticationError("Invalid API key: unknown or revoked");
      return principal;
    }
    return this.verifier.verify(token);
  }
}

/**
 * Everything a server instance authenticates and revokes with: API keys, the
 * JWT verifiers the configuration asks for (HS256 with `secret`, an identity
 * provider's JWKS), and revocations over Redis or in process. A revoked key
 * is dropped from this instance's lookups as soon as its revocation arrives.
 */
export function credentialsOf(
  config: Config,
  db: Sql,
  secret: string | null,
  tokens: TokenService | null,
  warn: (message: string) => void,
): { apiKeys: ApiKeys; revocations: Revocations; credentials: Credentials } {
  const apiKeys = new ApiKeys(db, apiKeyPepper(config.apiKeyPepper, secret ?? ""), { warn });
  const revocations = new Revocations(
    config.redisUrl === undefined
      ? new InProcessRevocationTransport()
      : new RedisRevocationTransport(config.redisUrl, warn),
  );
  revocations.onRevocation((revocation) => {
    if (revocation.kind === "apiKey") apiKeys.revoked(revocation.apiKeyId);
  });
  const provider =
    config.authJwksUrl === undefined
      ? null
      : new JwksVerifier({
          url: config.authJwksUrl,
          issuer: config.authIssuer,
          audience: config.authAudience,
          roleClaim: config.authRoleClaim,
        });
  return { apiKeys, revocations, credentials: new Credentials(apiKeys, new JwtVerifiers(tokens, provider)) };
}
