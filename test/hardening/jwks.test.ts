/**
 * Identity-provider tokens (SPEC §8.6): with AUTH_JWKS_URL the server accepts
 * RS256 and ES256 tokens signed by keys it fetches from the JWKS, checks
 * AUTH_ISSUER and AUTH_AUDIENCE, reads the role from AUTH_ROLE_CLAIM, and
 * keeps accepting its own HS256 tokens beside them. The JWKS is served by
 * this test over a real HTTP server, so rotation is a real refetch.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { exportJWK, generateKeyPair, type JWK, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { JWKS_COOLDOWN_MS } from "../../src/server/jwks.ts";
import type { Json } from "../billing/ops.ts";
import { startServer, type TestServer } from "../support/harness.ts";

const ISSUER = "https://id.example.test/";
const AUDIENCE = "creditbook-api";
const ROLE_CLAIM = "https://creditbook.example/role";

type Signer = { kid: string; alg: "RS256" | "ES256"; key: CryptoKey; jwk: JWK };

async function signer(kid: string, alg: "RS256" | "ES256"): Promise<Signer> {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  return { kid, alg, key: privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg, use: "sig" } };
}

/** The keys the JWKS endpoint serves now; the test changes it to rotate. */
let published: JWK[] = [];
let fetches = 0;
let jwksServer: Server;
let server: TestServer;
let rsa: Signer;
let ec: Signer;

beforeAll(async () => {
  [rsa, ec] = await Promise.all([signer("rsa-1", "RS256"), signer("ec-1", "ES256")]);
  published = [rsa.jwk, ec.jwk];
  jwksServer = createServer((_req, res) => {
    fetches += 1;
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ keys: published }));
  });
  await new Promise<void>((resolve) => jwksServer.listen(0, "127.0.0.1", resolve));
  const { port } = jwksServer.address() as AddressInfo;
  server = await startServer({
    authJwksUrl: `http://127.0.0.1:${port}/.well-known/jwks.json`,
    authIssuer: ISSUER,
    authAudience: AUDIENCE,
    authRoleClaim: ROLE_CLAIM,
    reaperEnabled: false,
  });
});

afterAll(async () => {
  await server?.close();
  await new Promise((resolve) => jwksServer?.close(resolve));
});

function token(
  by: Signer,
  claims: { sub?: string; role?: string; iss?: string; aud?: string; expiresIn?: string } = {},
): Promise<string> {
  return new SignJWT({ [ROLE_CLAIM]: claims.role ?? "user" })
    .setProtectedHeader({ alg: by.alg, kid: by.kid })
    .setSubject(claims.sub ?? "idp-user")
    .setIssuer(claims.iss ?? ISSUER)
    .setAudience(claims.aud ?? AUDIENCE)
    .setIssuedAt()
    .setExpirationTime(claims.expiresIn ?? "5m")
    .sign(by.key);
}

async function viewer(bearer: string): Promise<{ status: number; body: Json }> {
  const response = await server.post(bearer, { query: "{ viewer { id role } }" });
  return { status: response.status, body: await response.json() };
}

describe("identity-provider tokens (AUTH_JWKS_URL)", () => {
  it("accepts RS256 and ES256 tokens signed by the JWKS's keys, with the role from AUTH_ROLE_CLAIM", async () => {
    expect(await viewer(await token(rsa, { sub: "alice", role: "user" }))).toEqual({
      status: 200,
      body: { data: { viewer: { id: "alice", role: "user" } } },
    });
    expect(await viewer(await token(ec, { sub: "backend", role: "service" }))).toEqual({
      status: 200,
      body: { data: { viewer: { id: "backend", role: "service" } } },
    });
  });

  it("keeps accepting the server's own HS256 tokens beside them", async () => {
    const shared = await server.token("carol", "admin");
    expect((await viewer(shared)).body.data.viewer).toEqual({ id: "carol", role: "admin" });
  });

  it("refuses a wrong audience, a wrong issuer, a missing role, an unknown key and an expired token with 401", async () => {
    const stranger = await signer("rsa-1", "RS256"); // the right kid, another key
    const refused = [
      await token(rsa, { aud: "someone-else" }),
      await token(ec, { iss: "https://evil.example.test/" }),
      await token(rsa, { role: "root" }),
      await token(stranger),
      await token(rsa, { expiresIn: "-1m" }),
    ];
    for (const bearer of refused) {
      const answer = await viewer(bearer);
      expect(answer.status).toBe(401);
      expect(answer.body.errors[0].extensions.code).toBe("UNAUTHENTICATED");
    }
  });

  it("picks up a rotated key: a token with a new kid is accepted once the JWKS lists it", async () => {
    const next = await signer("ec-2", "ES256");
    const before = fetches;
    // Not published yet: refused (and the set refetched, finding no such key).
    expect((await viewer(await token(next, { sub: "rotated" }))).status).toBe(401);
    published = [rsa.jwk, ec.jwk, next.jwk];
    // A refetch for an unknown kid waits out the cooldown since the last fetch.
    await new Promise((resolve) => setTimeout(resolve, JWKS_COOLDOWN_MS + 200));
    expect(await viewer(await token(next, { sub: "rotated" }))).toEqual({
      status: 200,
      body: { data: { viewer: { id: "rotated", role: "user" } } },
    });
    expect(fetches).toBeGreaterThan(before);
    // The old keys still work after the rotation.
    expect((await viewer(await token(rsa, { sub: "alice" }))).status).toBe(200);
  });
});
