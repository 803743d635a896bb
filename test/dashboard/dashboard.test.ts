/**
 * The dashboard end to end, in a real headless Chromium against the real
 * server on the test database: a failed generation's refund lands live as a
 * green "+" entry with its reason and the balance comes back, without a
 * reload; after the server drops every WebSocket and refuses new ones for a
 * while, entries written meanwhile appear once each when the page resumes.
 * On the embedded default (PGlite, no DATABASE_URL) the dev-login signs in
 * and the spending card shows with no error.
 */
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import type { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { BrowserContext, Locator, Page } from "playwright-core";
import { build } from "vite";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchBrowser, type TestBrowser } from "../support/browser.ts";
import { createAccount, grant } from "../support/fixtures.ts";
import { dataOf, startServer, type TestServer, unique } from "../support/harness.ts";
import { exerciseInsights } from "./insights.ts";

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

// Serve what the source says now, not whatever an earlier build left. Both
// suites below share this build: building while a page loads would break it.
beforeAll(async () => {
  await build({ configFile: `${ROOT}dashboard/vite.config.ts`, logLevel: "warn" });
});

describe("the usage dashboard in a browser", () => {
  let server: TestServer;
  let browser: TestBrowser;
  let context: BrowserContext;
  let serviceToken: string;
  const pageErrors: string[] = [];
  /** graphql-ws `subscribe` messages the page sent, in order. */
  const subscribed: Subscribed[] = [];
  /** Upgraded sockets, so the test can cut them like a failing network would. */
  const sockets = new Set<Socket>();
  let refuseUpgrades = false;

  beforeAll(async () => {
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
    browser = await launchBrowser();
    context = browser.context;
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
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

  it("shows caps, the alert setting, older pages, the date range and a live refund, also at phone width", async () => {
    await exerciseInsights(server, context, "postgres", `${ROOT}test-artifacts`);
  });
});

describe("the dashboard on the embedded default (no DATABASE_URL)", () => {
  let server: TestServer;
  let browser: TestBrowser;
  let dataDir: string;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), "creditbook-embedded-dashboard-"));
    server = await startServer({ databaseUrl: undefined, dataDir });
    browser = await launchBrowser();
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    if (dataDir !== undefined) rmSync(dataDir, { recursive: true, force: true });
  });

  it("signs in with dev-login and shows the spending card with no error", async () => {
    // The browser is the one npm installed, not a system Chromium.
    expect(browser.executablePath.startsWith(tmpdir())).toBe(true);
    const serviceToken = await server.token("embedded-dashboard-platform", "service");
    const { id: accountId, ownerId } = await createAccount(server, serviceToken, { name: "Embedded" });
    await grant(server, serviceToken, accountId, 100, { source: "WALLET" });
    const call = async (query: string, input: Record<string, unknown>) =>
      dataOf(await server.gql(serviceToken, query, { input: { idempotencyKey: unique("op"), ...input } }));
    const failed = await call(RESERVE, { accountId, feature: "Quick Video", unitCost: 12 });
    const refunded = await call(REFUND, {
      generationId: failed.reserveGeneration.generation.id,
      reason: "PROVIDER_ERROR",
    });
    expect(refunded.refundGeneration.__typename).toBe("RefundGenerationSuccess");
    const delivered = await call(RESERVE, { accountId, feature: "Image Pack", unitCost: 5 });
    const settled = await call(SETTLE, {
      generationId: delivered.reserveGeneration.generation.id,
      items: [{ index: 0, succeeded: true }],
    });
    expect(settled.settleGeneration.__typename).toBe("SettleGenerationSuccess");

    const page = await browser.context.newPage();
    page.on("pageerror", (error) => pageErrors.push(error.message));
    await page.goto(`${new URL(server.url).origin}/dashboard/`);
    await page.locator("#dev-login-form").waitFor({ timeout: SHOW_TIMEOUT_MS });
    await page.locator("#dev-sub").fill(ownerId);
    await page.getByRole("button", { name: "Sign in as this user" }).click();
    await page.locator('#connection[data-state="live"]').waitFor({ timeout: SHOW_TIMEOUT_MS });
    await showsText(page.locator("#available"), "95");

    const quickVideo = page.locator('#spending li[data-feature="Quick Video"]');
    await quickVideo.waitFor({ timeout: SHOW_TIMEOUT_MS });
    expect(await quickVideo.textContent()).toContain("12 refunded");
    expect(await page.locator('#spending li[data-feature="Image Pack"]').textContent()).toContain(
      "5 charged",
    );
    expect(await page.locator("#spending .spending__totals").textContent()).toBe(
      "Charged 5 · refunded 12 · 2 generations, 1 failed",
    );
    await page.locator('#feed li[data-type="REFUND"]').waitFor({ timeout: SHOW_TIMEOUT_MS });
    expect(await page.locator("#error").isHidden(), await page.locator("#error-text").innerText()).toBe(true);

    mkdirSync(`${ROOT}test-artifacts`, { recursive: true });
    await page.screenshot({ path: `${ROOT}test-artifacts/dashboard-embedded.png`, fullPage: true });
    await page.close();
    expect(pageErrors).toEqual([]);
  });

  it("shows caps, the alert setting, older pages, the date range and a live refund, also at phone width", async () => {
    await exerciseInsights(server, browser.context, "embedded", `${ROOT}test-artifacts`);
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
