/**
 * Dev-login and DNS rebinding: a page on `rebind.attacker.example` whose name
 * the attacker re-points at 127.0.0.1 reaches the embedded server from the
 * victim's own browser, so the socket address is loopback. The Host header
 * (and Origin, when sent) still name the attacker: dev-login must refuse them.
 */
import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TokenService } from "../../src/server/auth.ts";
import { handleDashboard } from "../../src/server/dashboard.ts";

const SECRET = "dashboard-host-test-secret-0123456789";

/** GETs `path` with exactly the given headers (fetch would not let a test set Host). */
function get(port: number, path: string, headers: Record<string, string>) {
  return new Promise<{ status: number; location: string; body: string }>((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path, headers, setHost: false }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        body += chunk;
      });
      res.on("end", () =>
        resolve({ status: res.statusCode ?? 0, location: String(res.headers.location ?? ""), body }),
      );
    });
    req.on("error", reject);
    req.end();
  });
}

describe("dev-login checks Host and Origin", () => {
  const tokens = new TokenService(SECRET);
  let server: Server;
  let port: number;

  beforeAll(async () => {
    server = createServer(async (req, res) => {
      if (!(await handleDashboard(req, res, { devLogin: tokens }))) res.writeHead(418).end();
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => new Promise((resolve) => server.close(resolve)));

  it("refuses a rebound Host, a wrong port, a missing Host and a foreign Origin", async () => {
    const refused: Record<string, string>[] = [
      { host: `rebind.attacker.example:${port}` },
      { host: "rebind.attacker.example" },
      { host: `localhost:${port + 1}` },
      { host: "localhost" },
      { host: `127.0.0.1.attacker.example:${port}` },
      { host: `localhost:${port}@attacker.example` },
      {},
      { host: `localhost:${port}`, origin: "http://rebind.attacker.example" },
      { host: `localhost:${port}`, origin: `http://rebind.attacker.example:${port}` },
      { host: `localhost:${port}`, origin: `http://localhost:${port + 1}` },
      { host: `localhost:${port}`, origin: "null" },
    ];
    for (const headers of refused) {
      const answer = await get(port, "/dashboard/dev-login?sub=bob", headers);
      // Node itself answers 400 to an HTTP/1.1 request without Host; the rest are dev-login's 404.
      expect(headers.host === undefined ? 400 : 404, JSON.stringify(headers)).toBe(answer.status);
      expect(answer.location, JSON.stringify(headers)).not.toContain("token=");
      if (headers.host === undefined) continue;
      const config = await get(port, "/dashboard/config.json", headers);
      expect(JSON.parse(config.body), JSON.stringify(headers)).toEqual({ devLogin: false });
    }
  });

  it("signs in for a loopback Host with the server's port, with or without a loopback Origin", async () => {
    const accepted: Record<string, string>[] = [
      { host: `localhost:${port}` },
      { host: `127.0.0.1:${port}` },
      { host: `[::1]:${port}` },
      { host: `LOCALHOST:${port}` },
      { host: `localhost:${port}`, origin: `http://localhost:${port}` },
      { host: `127.0.0.1:${port}`, origin: `http://127.0.0.1:${port}` },
      { host: `localhost:${port}`, origin: `http://[::1]:${port}` },
    ];
    for (const headers of accepted) {
      const answer = await get(port, "/dashboard/dev-login?sub=bob", headers);
      expect(answer.status, JSON.stringify(headers)).toBe(303);
      const token = /#token=(.+)$/.exec(answer.location)?.[1] ?? "";
      expect(await tokens.verify(token)).toMatchObject({ sub: "bob", role: "user" });
      const config = await get(port, "/dashboard/config.json", headers);
      expect(JSON.parse(config.body), JSON.stringify(headers)).toEqual({ devLogin: true });
    }
  });
});
