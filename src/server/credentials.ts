/**
 * Who a bearer token is (SPEC §3, §8.6): an API key (`cb_…`), else a JWT.
 * Every way a request, a WebSocket or a stream authenticates goes through
 * `principalOf`, so they all accept and refuse the same credentials.
 */
import type { Principal } from "../domain/access.ts";
import { API_KEY_PREFIX, type ApiKeys } from "../domain/api-keys.ts";
import { AuthenticationError, bearerToken } from "./auth.ts";

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
