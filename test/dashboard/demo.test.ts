/**
 * `npm run demo` against a real server: its first round plays every scenario
 * once (success, partial batch, failure, retry, timeout, cancel, late report),
 * prints a line for each and a dashboard link whose token signs in as the
 * workspace owner, and leaves a ledger that passes the audit.
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TokenService } from "../../src/server/auth.ts";
import { TEST_SECRET } from "../support/env.ts";
import { dataOf, startServer, type TestServer } from "../support/harness.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const SCENARIO_COUNT = 7;

describe("npm run demo", () => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startServer();
  });

  afterAll(async () => {
    await server?.close();
  });

  it("plays every scenario once and links the dashboard", async () => {
    const child = spawn(
      process.execPath,
      [
        "--import",
        "tsx",
        "scripts/demo.ts",
        "--url",
        server.url,
        "--generations",
        String(SCENARIO_COUNT),
        "--interval-ms",
        "150",
      ],
      { cwd: ROOT, env: { ...process.env, AUTH_JWT_SECRET: TEST_SECRET }, stdio: ["ignore", "pipe", "pipe"] },
    );
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.stderr.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    const [code] = (await once(child, "exit")) as [number | null];
    expect(code, output).toBe(0);

    for (const expected of [
      /grant +\+600 subscription/,
      /grant +\+1500 wallet/,
      /delivered: charged \d+/,
      /3 of 4 delivered: charged \d+, refunded \d+ \([A-Z_]+\)/,
      /failed \([A-Z_]+: .+\): \+\d+ refunded/,
      /settle and reserve sent twice with the same keys: replayed, charged once/,
      /timed out \(TIMEOUT\): \+\d+ refunded by the reaper/,
      /cancelled by the user: \+\d+ refunded/,
      /then a late "success" arrived: ignored, nothing charged/,
      /Done: .*1 timed out/,
    ]) {
      expect(output).toMatch(expected);
    }
    expect(output).not.toContain("unexpected");

    // The link signs in as the workspace's owner on this server.
    const link = /(http:\/\/\S+\/dashboard\/\?account=(\S+)#token=(\S+))/.exec(output);
    expect(link, output).not.toBeNull();
    const accountId = decodeURIComponent(link?.[2] ?? "");
    const principal = await new TokenService(TEST_SECRET).verify(link?.[3] ?? "");
    expect(principal.role).toBe("user");
    const viewer = dataOf(
      await server.gql<{ viewer: { accounts: { id: string; kind: string }[] } }>(
        link?.[3] ?? "",
        "{ viewer { accounts { id kind } } }",
      ),
    );
    expect(viewer.viewer.accounts).toEqual([{ id: accountId, kind: "WORKSPACE" }]);
    // Nothing is left held, and the ledger explains the balance.
    const admin = await server.token("demo-test-admin", "admin");
    const checked = dataOf(
      await server.gql<{ balance: { held: number }; ledgerAudit: { ok: boolean; problems: string[] } }>(
        admin,
        "query($id: ID!) { balance(accountId: $id) { held } ledgerAudit(accountId: $id) { ok problems } }",
        { id: accountId },
      ),
    );
    expect(checked.balance.held).toBe(0);
    expect(checked.ledgerAudit).toEqual({ ok: true, problems: [] });
  });
});
