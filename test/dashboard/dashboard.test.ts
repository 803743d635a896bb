/**
 * The dashboard end to end, in a real headless Chromium against the real
 * server on the test database: a failed generation's refund lands live as a
 * green "+" entry with its reason and the balance comes back, without a
 * reload; after the server drops every WebSocket and refuses new ones for a
 * while, entries written meanwhile appear once each when the page resumes.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import type { Socket } from "node:net";
import { tmpdir } from "node:os";
import { fileURLToPath } from "node:url";
import { type BrowserContext, chromium, type Locator, type Page } from "playwright-core";
import { build } from "vite";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAccount, grant } from "../support/fixtures.ts";
import { dataOf, startServer, type TestServer, unique } from "../support/harness.ts";

const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const SCREENSHOT_PATH = `${ROOT}test-artifacts/dashboard.png`;
/** How long the page may take to show a change. @default 10_000 // 10 seconds */
const SHOW_TIMEOUT_MS = 10_000;

const RESERVE = `mutation($input: ReserveGenerationInput!) {
  reserveGeneration(input: $input) {
    __typename
    ... on ReserveGenerationSuccess { generation { id reserved } balance { available held sequence } }
    ... on Error { code message }
  }
}`;
const REFUND = `mutation($input: RefundGenerationInput!) {
  refundGeneration(input: $input) {
    __typename
    ... on RefundGenerationSuccess { generation { status refunded } balance { available held sequence } }
    ... on Error { code message }
  }
}`;
const SETTLE = `mutation($input: SettleGenerationInput!) {
  settleGeneration(input: $input) {
    __typename
    ... on SettleGenerationSuccess { generation { status charged refunded } balance { available held sequence } }
    ... on Error { code message }
  }
}`;
const BALANCE = `query($accountId: ID!) { balance(accountId: $accountId) { available held sequence } }`;

interface Subscribed {
  readonly operationName?: string;
  readonly afterSequence?: number;
}

describe("the usage dashboard in a browser", () => {
  let server: TestServer;
  let context: BrowserContext;
  let profileDir: string;
  let serviceToken: string;
  const pageErrors: string[] = [];
  /** graphql-ws `subscribe` messages the page sent, in order. */
  const subscribed: Subscribed[] = [];
  /** Upgraded sockets, so the test can cut them like a failing network would. */
  const sockets = new Set<Socket>();
  let refuseUpgrades = false;

  beforeAll(async () => {
    if (!existsSync(CHROMIUM_PATH)) {
      throw new Error(
        `Chromium is not installed at ${CHROMIUM_PATH}: these tests drive a real browser. ` +
          "Install it with `apt-get install -y chromium` (as .ci/run does), or set CHROMIUM_PATH.",
      );
    }
    // Serve what the source says now, not whatever an earlier build left.
    await build({ configFile: `${ROOT}dashboard/vite.config.ts`, logLevel: "warn" });
    server = await startServer();
    serviceToken = await server.token("dashboard-test-platform", "service");
    server.app.server.prependListener("upgrade", (_request, socket: Socket) => {
      if (refuseUpgrades) {
        socket.destroy();
        return;
      }
      sockets.add(socket);
      socket.once("close", () => sockets.delete(socket));
    });
    profileDir = mkdtempSync(`${tmpdir()}/creditbook-chromium-`);
    context = await chromium.launchPersistentContext(profileDir, {
      executablePath: CHROMIUM_PATH,
      viewport: { width: 1280, height: 1000 },
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
  });

  afterAll(async () => {
    await context?.close();
    await server?.close();
    if (profileDir !== undefined) rmSync(profileDir, { recursive: true, force: true });
  });

  const origin = () => new URL(server.url).origin;

  async function openPage(): Promise<Page> {
    const page = await context.newPage();
    page.on("pageerror", (error) => pageErrors.push(error.message));
    page.on("websocket", (socket) =>
      socket.on("framesent", ({ payload }) => {
        const message = JSON.parse(String(payload)) as {
          type: string;
          payload?: { operationName?: string; variables?: { afterSequence?: number } };
        };
        if (message.type !== "subscribe") return;
        subscribed.push({
          operationName: message.payload?.operationName,
          afterSequence: message.payload?.variables?.afterSequence,
        });
      }),
    );
    return page;
  }

  async function balanceOf(accountId: string) {
    return dataOf(
      await server.gql<{ balance: { available: number; held: number; sequence: number } }>(
        serviceToken,
        BALANCE,
        { accountId },
      ),
    ).balance;
  }

  async function reserve(accountId: string, feature: string, unitCost: number, quantity = 1) {
    const data = dataOf(
      await server.gql(serviceToken, RESERVE, {
        input: {
          idempotencyKey: unique("reserve"),
          accountId,
          feature,
          unitCost,
          quantity,
          requestedBy: "ui",
        },
      }),
    );
    expect(data.reserveGeneration.__typename).toBe("ReserveGenerationSuccess");
    return data.reserveGeneration.generation.id as string;
  }

  /** How many feed rows show this sequence. */
  async function rowCount(page: Page, sequence: number): Promise<number> {
    return page.locator(`#feed li[data-sequence="${sequence}"]`).count();
  }

  it("serves the page and its redirects, with no dev-login outside embedded mode", async () => {
    const root = await fetch(`${origin()}/`, { redirect: "manual" });
    expect(root.status).toBe(302);
    expect(root.headers.get("location")).toBe("/dashboard/");
    const bare = await fetch(`${origin()}/dashboard?account=x`, { redirect: "manual" });
    expect(bare.headers.get("location")).toBe("/dashboard/?account=x");
    const page = await fetch(`${origin()}/dashboard/`);
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toContain("text/html");
    expect(page.headers.get("content-security-policy")).toContain("script-src 'self'");
    expect(await page.text()).toContain("/dashboard/assets/");
    expect(await (await fetch(`${origin()}/dashboard/config.json`)).json()).toEqual({ devLogin: false });
    expect((await fetch(`${origin()}/dashboard/dev-login?sub=alice`, { redirect: "manual" })).status).toBe(
      404,
    );
    expect((await fetch(`${origin()}/dashboard/assets/%2e%2e%2f%2e%2e%2fpackage.json`)).status).toBe(404);
    expect((await fetch(`${origin()}/dashboard/`, { method: "POST" })).status).toBe(405);
    // /graphql is untouched.
    expect((await fetch(`${origin()}/healthz`)).status).toBe(200);
  });

  it("signs in with a pasted token, refuses a bad one, and signs out", async () => {
    const { id: accountId, ownerId } = await createAccount(server, serviceToken, { name: "Pasted" });
    const page = await openPage();
    await page.goto(`${origin()}/dashboard/`);
    await page.locator("#sign-in").waitFor({ timeout: SHOW_TIMEOUT_MS });
    expect(await page.locator("#dev-login-form").isHidden()).toBe(true);

    await page.getByLabel(/Paste an access token/).fill("not-a-jwt");
    await page.getByRole("button", { name: "Sign in" }).click();
    await showsText(
      page.locator("#sign-in-message"),
      "That token was refused: it is malformed, badly signed or expired.",
    );

    await page
      .getByLabel(/Paste an access token/)
      .fill(`Bearer ${await server.token(ownerId, "user", "1h")}`);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.locator('#connection[data-state="live"]').waitFor({ timeout: SHOW_TIMEOUT_MS });
    expect(await page.locator("#whoami").textContent()).toBe(`${ownerId} (user)`);
    expect(await page.getByLabel("Account", { exact: true }).inputValue()).toBe(accountId);
    expect(new URL(page.url()).searchParams.get("account")).toBe(accountId);

    await page.getByRole("button", { name: "Sign out" }).click();
    await page.locator("#sign-in").waitFor({ timeout: SHOW_TIMEOUT_MS });
    expect(await page.evaluate(() => (globalThis as unknown as StorageWindow).sessionStorage.length)).toBe(0);
    await page.close();
    expect(pageErrors).toEqual([]);
  });

  it("shows a refund live and resumes after the connection drops, each entry once", async () => {
    const { id: accountId, ownerId } = await createAccount(server, serviceToken, {
      kind: "WORKSPACE",
      name: "Dashboard Studio",
    });
    const periodEnd = new Date(Date.now() + 30 * 24 * 3600 * 1000).toISOString();
    await grant(server, serviceToken, accountId, 100, { source: "SUBSCRIPTION", expiresAt: periodEnd });
    await grant(server, serviceToken, accountId, 500, { source: "WALLET" });
    const userToken = await server.token(ownerId, "user", "1h");

    const page = await openPage();
    await page.goto(`${origin()}/dashboard/?account=${encodeURIComponent(accountId)}#token=${userToken}`);
    await page.locator('#connection[data-state="live"]').waitFor({ timeout: SHOW_TIMEOUT_MS });
    await showsText(page.locator("#available"), "600");
    expect(await page.locator("#subscription").textContent()).toBe("100");
    expect(await page.locator("#wallet").textContent()).toBe("500");
    await page.locator('#feed li[data-type="GRANT"]').nth(1).waitFor({ timeout: SHOW_TIMEOUT_MS });
    // The token left the address bar as soon as the page took it.
    expect(page.url()).not.toContain("token=");
    // A reload would clear this; it must survive every live update below.
    await page.evaluate(() => {
      (globalThis as { dashboardTestMarker?: number }).dashboardTestMarker = 1;
    });

    // A generation starts: pending usage, credits held, listed in progress with its deadline.
    const generationId = await reserve(accountId, "Quick Video", 12);
    const usage = page.locator('#feed li[data-type="USAGE"]');
    await usage.first().waitFor({ timeout: SHOW_TIMEOUT_MS });
    expect(await usage.first().getAttribute("data-status")).toBe("PENDING");
    await page
      .locator(`#in-progress li[data-generation="${generationId}"]`)
      .waitFor({ timeout: SHOW_TIMEOUT_MS });
    // The default timeout is 150 minutes.
    expect(await page.locator("#in-progress").textContent()).toMatch(/Quick Video.*times out in 2h (29|30)m/);
    await showsText(page.locator("#held"), "12");

    // The provider fails: the platform refunds, and the page shows it without a reload.
    const refunded = dataOf(
      await server.gql(serviceToken, REFUND, {
        input: {
          idempotencyKey: unique("refund"),
          generationId,
          reason: "PROVIDER_ERROR",
          message: "upstream returned HTTP 502",
        },
      }),
    );
    expect(refunded.refundGeneration.__typename).toBe("RefundGenerationSuccess");
    const refund = page.locator('#feed li[data-type="REFUND"]');
    await refund.waitFor({ timeout: SHOW_TIMEOUT_MS });
    expect(await refund.locator(".amount").textContent()).toBe("+12 credits");
    expect(await refund.locator(".entry__name").textContent()).toBe("Quick Video");
    expect(await refund.locator(".entry__action").textContent()).toContain(
      "Refunded 12 credits · Provider error",
    );
    expect(await refund.locator(".entry__message").textContent()).toContain("upstream returned HTTP 502");
    expect(await refund.locator(".entry__balance").textContent()).toBe("Balance 588 → 600");
    expect(await refund.getAttribute("data-status")).toBe("COMPLETED");
    const color = await refund
      .locator(".amount")
      .evaluate((node) => (globalThis as unknown as CssWindow).getComputedStyle(node).color);
    expect(isGreen(color), `refund amount color ${color} should be green`).toBe(true);
    await showsText(page.locator("#available"), "600");
    await shows(() => usage.first().getAttribute("data-status"), "FAILED", "the usage entry's status");
    expect(await page.locator("#held").textContent()).toBe("0");
    await page.locator(`#in-progress li[data-generation="${generationId}"]`).waitFor({
      state: "detached",
      timeout: SHOW_TIMEOUT_MS,
    });
    expect(
      await page.evaluate(() => (globalThis as { dashboardTestMarker?: number }).dashboardTestMarker),
    ).toBe(1);

    // The network fails: every socket is cut and new ones are refused for a while.
    const lastSeenSequence = (await balanceOf(accountId)).sequence;
    expect(await rowCount(page, lastSeenSequence)).toBe(1);
    refuseUpgrades = true;
    for (const socket of sockets) socket.destroy();
    await page.locator('#connection[data-state="reconnecting"]').waitFor({ timeout: SHOW_TIMEOUT_MS });

    // Meanwhile a batch runs (3 of 4 delivered, 1 rejected) and the wallet is topped up.
    const batchId = await reserve(accountId, "Image Pack", 5, 4);
    const settled = dataOf(
      await server.gql(serviceToken, SETTLE, {
        input: {
          idempotencyKey: unique("settle"),
          generationId: batchId,
          items: [
            { index: 0, succeeded: true },
            { index: 1, succeeded: false, reason: "CONTENT_REJECTED", message: "safety filter" },
            { index: 2, succeeded: true },
            { index: 3, succeeded: true },
          ],
        },
      }),
    );
    expect(settled.settleGeneration.generation.status).toBe("PARTIALLY_SUCCEEDED");
    await grant(server, serviceToken, accountId, 50, { source: "WALLET" });
    const final = await balanceOf(accountId);
    expect(final.sequence).toBe(lastSeenSequence + 3);
    // Nothing can have arrived: the page has no connection.
    for (let sequence = lastSeenSequence + 1; sequence <= final.sequence; sequence += 1) {
      expect(await rowCount(page, sequence)).toBe(0);
    }
    expect(await page.locator("#connection").getAttribute("data-state")).not.toBe("live");

    // The network returns: the page reconnects by itself and resumes after what it had.
    const subscribedBefore = subscribed.length;
    refuseUpgrades = false;
    await page.locator('#connection[data-state="live"]').waitFor({ timeout: 20_000 });
    await page.locator(`#feed li[data-sequence="${final.sequence}"]`).waitFor({ timeout: SHOW_TIMEOUT_MS });
    const resumed = subscribed.slice(subscribedBefore).filter((s) => s.operationName === "LedgerEntryAdded");
    expect(resumed.map((s) => s.afterSequence)).toEqual([lastSeenSequence]);
    for (let sequence = 1; sequence <= final.sequence; sequence += 1) {
      expect(await rowCount(page, sequence), `rows with sequence ${sequence}`).toBe(1);
    }
    expect(await page.locator("#feed li").count()).toBe(final.sequence);
    const batchRefund = page.locator(`#feed li[data-sequence="${lastSeenSequence + 2}"]`);
    expect(await batchRefund.getAttribute("data-type")).toBe("REFUND");
    expect(await batchRefund.locator(".amount").textContent()).toBe("+5 credits");
    expect(await batchRefund.locator(".entry__action").textContent()).toContain("Content rejected");
    expect(
      await page.locator(`#feed li[data-sequence="${lastSeenSequence + 1}"]`).getAttribute("data-status"),
    ).toBe("COMPLETED");
    await showsText(page.locator("#available"), String(final.available));
    expect(final.available).toBe(600 - 20 + 5 + 50);
    expect(
      await page.evaluate(() => (globalThis as { dashboardTestMarker?: number }).dashboardTestMarker),
    ).toBe(1);

    // The per-feature chart knows both features (it refreshes shortly after entries arrive).
    await page.locator('#spending li[data-feature="Image Pack"]').waitFor({ timeout: SHOW_TIMEOUT_MS });
    expect(await page.locator('#spending li[data-feature="Quick Video"]').textContent()).toContain(
      "12 refunded",
    );

    mkdirSync(`${ROOT}test-artifacts`, { recursive: true });
    await page.screenshot({ path: SCREENSHOT_PATH, fullPage: true });
    expect(pageErrors).toEqual([]);
  });
});

/** Waits until `read()` gives `expected`; fails naming `what` and the last value seen. */
async function shows(read: () => Promise<string | null>, expected: string, what: string): Promise<void> {
  const deadline = Date.now() + SHOW_TIMEOUT_MS;
  let last = await read();
  while (last !== expected) {
    if (Date.now() > deadline) throw new Error(`${what}: expected "${expected}", still "${last}"`);
    await new Promise((resolve) => setTimeout(resolve, 50));
    last = await read();
  }
}

function showsText(locator: Locator, expected: string): Promise<void> {
  return shows(() => locator.textContent(), expected, `text of ${locator}`);
}

/** What the test calls inside the page (the test's own types have no DOM). */
interface CssWindow {
  getComputedStyle(node: unknown): { color: string };
}

interface StorageWindow {
  sessionStorage: { length: number };
}

/** Whether a CSS `rgb(r, g, b)` color is clearly green. */
function isGreen(color: string): boolean {
  const [r = 0, g = 0, b = 0] = (color.match(/\d+/g) ?? []).map(Number);
  return g > r + 40 && g > b + 40;
}
