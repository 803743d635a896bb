/**
 * /metrics is not public (src/server/metrics-endpoint.ts): with METRICS_TOKEN
 * it needs the bearer token, with METRICS_PORT it is served only on a
 * loopback port, and with neither it is served to this machine in embedded
 * mode and to nobody with DATABASE_URL.
 */

import { mkdtempSync, rmSync } from "node:fs";
import { request } from "node:http";
import { networkInterfaces, tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { type Config, loadConfig } from "../../src/server/config.ts";
import { testDatabaseUrl } from "../support/env.ts";
import { startServer, type TestServer } from "../support/harness.ts";
import { METRICS_TEST_TOKEN } from "../support/metrics.ts";

interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
}

/** A GET with exactly these headers (fetch would not send a Host of our choosing). */
function get(url: string, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers }, (res) => {
      let body = "";
      res.setEncoding("utf8").on("data", (chunk: string) => {
        body += chunk;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

/** This machine's first non-loopback IPv4 address, if it has one. */
const externalAddress = Object.values(networkInterfaces())
  .flat()
  .find((address) => address !== undefined && !address.internal && address.family === "IPv4")?.address;

const servers: TestServer[] = [];
const dirs: string[] = [];
async function serve(overrides: Partial<Config>): Promise<TestServer> {
  const server = await startServer({ reaperEnabled: false, ...overrides });
  servers.push(server);
  return server;
}
afterAll(async () => {
  await Promise.all(servers.map((server) => server.close()));
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

const metricsUrlOf = (server: TestServer) => new URL("/metrics", server.url).toString();
const isPrometheus = (answer: Answer) => answer.status === 200 && answer.body.includes("# TYPE creditbook_");

describe("/metrics with METRICS_TOKEN", () => {
  it("answers 401 without the token, with a wrong one or a malformed header, and 200 with the right one", async () => {
    const server = await serve({ metricsToken: METRICS_TEST_TOKEN });
    const url = metricsUrlOf(server);
    const refused: Record<string, string>[] = [
      {},
      { authorization: "Bearer wrong-token-of-some-length" },
      { authorization: `Bearer ${METRICS_TEST_TOKEN}x` },
      { authorization: `Basic ${Buffer.from(`x:${METRICS_TEST_TOKEN}`).toString("base64")}` },
      { authorization: "Bearer" },
    ];
    for (const headers of refused) {
      const answer = await get(url, headers);
      expect(answer.status, JSON.stringify(headers)).toBe(401);
      expect(answer.headers["www-authenticate"]).toMatch(/^Bearer/);
      expect(answer.body).not.toContain("creditbook_");
    }
    expect(isPrometheus(await get(url, { authorization: `Bearer ${METRICS_TEST_TOKEN}` }))).toBe(true);
    // The rest of the service is not behind the token.
    expect((await get(new URL("/healthz", server.url).toString())).status).toBe(200);
  });
});

describe("/metrics with METRICS_PORT", () => {
  it("serves on a loopback-only port, and the main port does not serve it", async () => {
    const server = await serve({ metricsPort: 0 });
    const url = server.app.metricsUrl();
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    expect(isPrometheus(await get(url ?? ""))).toBe(true);
    expect((await get(url?.replace("/metrics", "/graphql") ?? "")).status).toBe(404);
    const main = await get(metricsUrlOf(server));
    expect(main.status).toBe(404);
    expect(main.body).not.toContain("creditbook_");
    if (externalAddress !== undefined) {
      // Bound to 127.0.0.1: the machine's other address does not reach it.
      const port = new URL(url ?? "").port;
      await expect(get(`http://${externalAddress}:${port}/metrics`)).rejects.toThrow(/ECONNREFUSED/);
    }
  });

  it("requires the token there too when METRICS_TOKEN is set", async () => {
    const server = await serve({ metricsPort: 0, metricsToken: METRICS_TEST_TOKEN });
    const url = server.app.metricsUrl() ?? "";
    expect((await get(url)).status).toBe(401);
    expect(isPrometheus(await get(url, { authorization: `Bearer ${METRICS_TEST_TOKEN}` }))).toBe(true);
    expect((await get(metricsUrlOf(server), { authorization: `Bearer ${METRICS_TEST_TOKEN}` })).status).toBe(
      404,
    );
  });
});

describe("/metrics with neither", () => {
  it("serves nothing with DATABASE_URL (a deployment)", async () => {
    const server = await serve({ databaseUrl: testDatabaseUrl() });
    expect(server.app.metricsUrl()).toBeNull();
    const answer = await get(metricsUrlOf(server));
    expect(answer.status).toBe(404);
    expect(answer.body).toContain("METRICS_TOKEN");
    expect(answer.body).not.toContain("creditbook_");
  });

  it("serves this machine only in embedded mode: loopback peer and loopback Host", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "creditbook-metrics-"));
    dirs.push(dataDir);
    const server = await serve({ databaseUrl: undefined, dataDir, host: "0.0.0.0" });
    const url = metricsUrlOf(server);
    const { port } = new URL(url);
    expect(isPrometheus(await get(url))).toBe(true);
    expect(isPrometheus(await get(url, { host: `localhost:${port}` }))).toBe(true);
    // A page whose domain was rebound to 127.0.0.1 sends its own name as Host.
    const rebound = await get(url, { host: `rebind.attacker.example:${port}` });
    expect(rebound.status).toBe(403);
    expect(rebound.body).not.toContain("creditbook_");
    if (externalAddress !== undefined) {
      const remote = await get(`http://${externalAddress}:${port}/metrics`, { host: `127.0.0.1:${port}` });
      expect(remote.status).toBe(403);
      expect(remote.body).not.toContain("creditbook_");
    }
    // PGlite's WebAssembly start and migrations: seconds alone, a minute or more on a loaded machine.
  }, 180_000);
});

describe("METRICS_TOKEN and METRICS_PORT in the configuration", () => {
  it("reads them and refuses a short token or a bad port, naming the variable", () => {
    expect(loadConfig({})).toMatchObject({ metricsToken: undefined, metricsPort: undefined });
    expect(loadConfig({ METRICS_TOKEN: METRICS_TEST_TOKEN, METRICS_PORT: "9464" })).toMatchObject({
      metricsToken: METRICS_TEST_TOKEN,
      metricsPort: 9464,
    });
    expect(() => loadConfig({ METRICS_TOKEN: "short" })).toThrow(
      "METRICS_TOKEN must be at least 16 characters, got 5",
    );
    expect(() => loadConfig({ METRICS_PORT: "metrics" })).toThrow(
      'METRICS_PORT must be an integer from 0 to 65535, got "metrics"',
    );
  });
});
