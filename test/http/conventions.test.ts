/**
 * HTTP conventions browser and partner clients expect: persisted operations
 * over GET with cache headers (mutations refused there), CORS by
 * CORS_ORIGINS without credentials, field suggestions outside production
 * only, and a GraphiQL page that needs no CDN.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  BalanceDocument,
  GrantCreditsDocument,
  ViewerDocument,
} from "../../src/generated/graphql/graphql.ts";
import { loadConfig } from "../../src/server/config.ts";
import { GET_CACHE_CONTROL } from "../../src/server/http-cache.ts";
import { hashOf, operationNameOf } from "../support/documents.ts";
import { createAccount, grant } from "../support/fixtures.ts";
import { type GraphQLResponse, startServer, type TestServer, unique } from "../support/harness.ts";

/** `GET /graphql?documentId=…&operationName=…&variables=…` with a token. */
function getPersisted(
  server: TestServer,
  token: string,
  document: Parameters<typeof hashOf>[0],
  variables: Record<string, unknown>,
): Promise<Response> {
  const search = new URLSearchParams({
    documentId: hashOf(document),
    operationName: operationNameOf(document) ?? "",
    variables: JSON.stringify(variables),
  });
  return fetch(`${server.url}?${search}`, {
    headers: { authorization: `Bearer ${token}`, accept: "application/graphql-response+json" },
  });
}

describe("HTTP conventions", () => {
  let server: TestServer;
  let service: string;
  let accountId: string;

  beforeAll(async () => {
    server = await startServer();
    service = await server.token(unique("platform"), "service");
    accountId = (await createAccount(server, service)).id;
    await grant(server, service, accountId, 250);
  });
  afterAll(async () => {
    await server?.close();
  });

  it("runs a persisted query over GET by documentId, with variables, and tells caches not to store it", async () => {
    const response = await getPersisted(server, service, BalanceDocument, { accountId });
    const body = (await response.json()) as GraphQLResponse;
    expect(response.status, JSON.stringify(body)).toBe(200);
    expect(body.errors).toBeUndefined();
    expect(body.data?.balance).toMatchObject({ accountId, available: 250 });
    expect(response.headers.get("cache-control")).toBe(GET_CACHE_CONTROL);
    // The bare hash works too, and a query without variables.
    const viewer = await fetch(`${server.url}?documentId=${hashOf(ViewerDocument).slice(7)}`, {
      headers: { authorization: `Bearer ${service}` },
    });
    expect(((await viewer.json()) as GraphQLResponse).data?.viewer?.role).toBe("service");
    expect(viewer.headers.get("cache-control")).toBe(GET_CACHE_CONTROL);
  });

  it("refuses a persisted mutation over GET with 405 and writes nothing", async () => {
    const response = await getPersisted(server, service, GrantCreditsDocument, {
      input: { idempotencyKey: unique("grant"), accountId, source: "WALLET", amount: 5 },
    });
    expect(response.status).toBe(405);
    expect(response.headers.get("allow")).toContain("POST");
    const after = await getPersisted(server, service, BalanceDocument, { accountId });
    expect(((await after.json()) as GraphQLResponse).data?.balance?.available).toBe(250);
  });

  it("answers an unknown documentId over GET with PERSISTED_QUERY_NOT_FOUND", async () => {
    const response = await fetch(`${server.url}?documentId=sha256:${"0".repeat(64)}`, {
      headers: { authorization: `Bearer ${service}` },
    });
    expect(response.status).toBe(400);
    expect(((await response.json()) as GraphQLResponse).errors?.[0]?.extensions?.code).toBe(
      "PERSISTED_QUERY_NOT_FOUND",
    );
  });

  it("lets any origin call without CORS_ORIGINS, never with credentials", async () => {
    const preflight = await fetch(server.url, {
      method: "OPTIONS",
      headers: {
        origin: "https://anywhere.example",
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type",
      },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get("access-control-allow-origin")).toMatch(
      /^(\*|https:\/\/anywhere\.example)$/,
    );
    expect(headerList(preflight, "access-control-allow-headers")).toEqual(
      expect.arrayContaining(["authorization", "content-type"]),
    );
    expect(headerList(preflight, "access-control-allow-methods")).toEqual(
      expect.arrayContaining(["GET", "POST"]),
    );
    expect(preflight.headers.get("access-control-allow-credentials")).toBeNull();
    const call = await fetch(server.url, {
      method: "POST",
      headers: { origin: "https://anywhere.example", "content-type": "application/json" },
      body: JSON.stringify({ query: "{ __typename }" }),
    });
    expect(call.headers.get("access-control-allow-origin")).toMatch(/^(\*|https:\/\/anywhere\.example)$/);
    expect(call.headers.get("access-control-allow-credentials")).toBeNull();
  });

  it("suggests field names outside production", async () => {
    const response = await server.post(service, { query: "{ viewr { id } }" });
    const message = ((await response.json()) as GraphQLResponse).errors?.[0]?.message;
    expect(message).toContain('Did you mean "viewer"?');
  });

  it("serves a GraphiQL page that loads nothing from another host", async () => {
    const response = await fetch(server.url, { headers: { accept: "text/html" } });
    expect(response.status).toBe(200);
    const html = await response.text();
    expect(html).toContain("renderYogaGraphiQL");
    // Every place a page loads something from: src/href attributes, CSS url() and @import, JS imports.
    const references = [
      ...html.matchAll(/\b(?:src|href)\s*=\s*["']?([^"'\s>]+)/gi),
      ...html.matchAll(/url\(\s*["']?([^"')\s]+)/gi),
      ...html.matchAll(/@import\s+["']([^"']+)/gi),
      ...html.matchAll(/\bimport\s*\(\s*["']([^"']+)/gi),
    ].map((match) => match[1] as string);
    expect(references.length).toBeGreaterThan(0);
    const external = references.filter((reference) => /^(https?:)?\/\//i.test(reference));
    expect(external).toEqual([]);
    expect(html).not.toMatch(/unpkg\.com|jsdelivr|raw\.githubusercontent/);
  });
});

describe("CORS_ORIGINS and production", () => {
  let server: TestServer;
  const allowed = "https://app.example.com";

  beforeAll(async () => {
    const production = loadConfig({
      NODE_ENV: "production",
      CORS_ORIGINS: `${allowed}, https://admin.example.com`,
    });
    expect(production.corsOrigins).toEqual([allowed, "https://admin.example.com"]);
    expect(production.fieldSuggestions).toBe(false);
    server = await startServer({ corsOrigins: production.corsOrigins, fieldSuggestions: false });
  });
  afterAll(async () => {
    await server?.close();
  });

  const preflight = (origin: string) =>
    fetch(server.url, {
      method: "OPTIONS",
      headers: {
        origin,
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization,content-type",
      },
    });

  it("answers the preflight of a listed origin with Authorization and Content-Type, without credentials", async () => {
    const response = await preflight(allowed);
    expect(response.status).toBe(204);
    expect(response.headers.get("access-control-allow-origin")).toBe(allowed);
    expect(headerList(response, "access-control-allow-headers")).toEqual(
      expect.arrayContaining(["authorization", "content-type"]),
    );
    expect(response.headers.get("access-control-allow-credentials")).toBeNull();
    expect(response.headers.get("vary")).toMatch(/origin/i);
  });

  it("gives an unlisted origin no CORS headers at all", async () => {
    const response = await preflight("https://evil.example");
    expect(response.headers.get("access-control-allow-origin")).toBeNull();
    expect(response.headers.get("access-control-allow-headers")).toBeNull();
    const call = await fetch(server.url, {
      method: "POST",
      headers: { origin: "https://evil.example", "content-type": "application/json" },
      body: JSON.stringify({ query: "{ __typename }" }),
    });
    expect(call.headers.get("access-control-allow-origin")).toBeNull();
    expect(call.headers.get("access-control-allow-credentials")).toBeNull();
  });

  it("hides field suggestions in production", async () => {
    const token = await server.token(unique("platform"), "service");
    const response = await server.post(token, { query: "{ viewr { id } }" });
    const message = ((await response.json()) as GraphQLResponse).errors?.[0]?.message ?? "";
    expect(message).toContain('Cannot query field "viewr"');
    expect(message).not.toContain("Did you mean");
  });

  it("refuses a CORS_ORIGINS entry that is not an origin, naming the variable", () => {
    expect(() => loadConfig({ CORS_ORIGINS: "https://app.example.com/path, app.example.com" })).toThrow(
      /CORS_ORIGINS must be a comma list of origins/,
    );
  });
});

/** A comma-separated header as a list of trimmed, lower-cased (for header names) items. */
function headerList(response: Response, name: string): string[] {
  const value = response.headers.get(name) ?? "";
  return value
    .split(",")
    .map((item) => item.trim())
    .map((item) => (name === "access-control-allow-headers" ? item.toLowerCase() : item));
}
