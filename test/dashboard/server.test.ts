/**
 * src/server/dashboard.ts on its own HTTP server: the embedded-mode
 * dev-login, and what a server says when the dashboard was never built.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TokenService } from "../../src/server/auth.ts";
import { type DashboardOptions, handleDashboard } from "../../src/server/dashboard.ts";

const SECRET = "dashboard-unit-test-secret-0123456789";

describe("handleDashboard", () => {
  const tokens = new TokenService(SECRET);
  const servers: Server[] = [];
  let distDir: string;

  beforeAll(() => {
    distDir = mkdtempSync(`${tmpdir()}/creditbook-dashboard-`);
    mkdirSync(`${distDir}/assets`);
    writeFileSync(`${distDir}/index.html`, "<!doctype html><title>t</title>");
    writeFileSync(`${distDir}/assets/app-abc123.js`, "export {};");
  });

  afterAll(async () => {
    await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
    rmSync(distDir, { recursive: true, force: true });
  });

  /** Serves `handleDashboard` with `options`; other paths answer 418 so a fall-through shows. */
  async function serve(options: DashboardOptions): Promise<string> {
    const server = createServer(async (req, res) => {
      if (!(await handleDashboard(req, res, options))) res.writeHead(418).end();
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  it("signs a short-lived user token into the fragment in embedded mode", async () => {
    const base = await serve({ distDir, devLogin: tokens });
    expect(await (await fetch(`${base}/dashboard/config.json`)).json()).toEqual({ devLogin: true });
    const response = await fetch(`${base}/dashboard/dev-login?sub=alice&account=QWNj%3D`, {
      redirect: "manual",
    });
    expect(response.status).toBe(303);
    const location = response.headers.get("location") ?? "";
    const match = /^\/dashboard\/\?account=QWNj%3D#token=(.+)$/.exec(location);
    expect(match, location).not.toBeNull();
    const principal = await tokens.verify(match?.[1] ?? "");
    expect(principal).toMatchObject({ sub: "alice", role: "user" });
    const lifetimeSeconds = (principal.exp ?? 0) - Date.now() / 1000;
    expect(lifetimeSeconds).toBeGreaterThan(3_500);
    expect(lifetimeSeconds).toBeLessThanOrEqual(3_600);
    const bad = await fetch(`${base}/dashboard/dev-login?sub=${encodeURIComponent("has space")}`, {
      redirect: "manual",
    });
    expect(bad.status).toBe(400);
    expect(await bad.text()).toContain("sub must be 1 to 200 printable characters");
  });

  it("has no dev-login without a token service", async () => {
    const base = await serve({ distDir, devLogin: null });
    expect(await (await fetch(`${base}/dashboard/config.json`)).json()).toEqual({ devLogin: false });
    expect((await fetch(`${base}/dashboard/dev-login?sub=alice`, { redirect: "manual" })).status).toBe(404);
  });

  it("serves hashed assets as immutable and leaves other paths alone", async () => {
    const base = await serve({ distDir });
    const asset = await fetch(`${base}/dashboard/assets/app-abc123.js`);
    expect(asset.status).toBe(200);
    expect(asset.headers.get("content-type")).toContain("text/javascript");
    expect(asset.headers.get("cache-control")).toContain("immutable");
    expect((await fetch(`${base}/dashboard/`)).headers.get("cache-control")).toBe("no-cache");
    expect((await fetch(`${base}/dashboard/missing.js`)).status).toBe(404);
    expect((await fetch(`${base}/graphql`)).status).toBe(418);
    expect((await fetch(`${base}/dashboards`)).status).toBe(418);
  });

  it("says how to build the dashboard when it was not built", async () => {
    const base = await serve({ distDir: `${distDir}/nothing-here` });
    const response = await fetch(`${base}/dashboard/`);
    expect(response.status).toBe(503);
    expect(await response.text()).toContain("npm run build:dashboard");
  });
});
