/**
 * The dashboard's version-2 parts in a real Chromium, against one server
 * (dashboard.test.ts runs it on PostgreSQL and on the embedded default):
 * member caps with what is left, the low-balance alert set and cleared from
 * the page, "Load more" paging of the feed past the live replay, the daily
 * chart and the breakdowns, the CSV download, the date range, a live refund
 * in green, the operator view for admins, and a phone-width screen without sideways
 * scrolling. Screenshots go to test-artifacts/.
 */
import { mkdirSync, readFileSync } from "node:fs";
import type { BrowserContext, Locator, Page } from "playwright-core";
import { expect } from "vitest";
import { createAccount, grant } from "../support/fixtures.ts";
import { dataOf, type TestServer, unique } from "../support/harness.ts";

/** How long the page may take to show a change. @default 10_000 // 10 seconds */
const SHOW_TIMEOUT_MS = 10_000;

const RESERVE = `mutation($input: ReserveGenerationInput!) {
  reserveGeneration(input: $input) {
    __typename
    ... on ReserveGenerationSuccess { generation { id } }
    ... on Error { code message }
  }
}`;
const SETTLE = `mutation($input: SettleGenerationInput!) {
  settleGeneration(input: $input) { __typename ... on Error { code message } }
}`;
const REFUND = `mutation($input: RefundGenerationInput!) {
  refundGeneration(input: $input) { __typename ... on Error { code message } }
}`;
const SET_CAP = `mutation($input: SetSpendCapInput!) {
  setSpendCap(input: $input) { __typename ... on Error { code message } }
}`;

/** The platform's side of the story, over the API. */
class Platform {
  constructor(
    private readonly server: TestServer,
    private readonly token: string,
  ) {}

  async call(query: string, input: Record<string, unknown>): Promise<Record<string, { __typename: string }>> {
    return dataOf(await this.server.gql(this.token, query, { input }));
  }

  async reserve(accountId: string, requestedBy: string, feature: string, model: string, unitCost: number) {
    const data = await this.call(RESERVE, {
      idempotencyKey: unique("reserve"),
      accountId,
      requestedBy,
      feature,
      model,
      unitCost,
    });
    const answer = data.reserveGeneration as { __typename: string; generation: { id: string } };
    expect(answer.__typename).toBe("ReserveGenerationSuccess");
    return answer.generation.id;
  }

  async settle(generationId: string): Promise<void> {
    const data = await this.call(SETTLE, { idempotencyKey: unique("settle"), generationId });
    expect(data.settleGeneration?.__typename).toBe("SettleGenerationSuccess");
  }

  async refund(generationId: string): Promise<void> {
    const data = await this.call(REFUND, {
      idempotencyKey: unique("refund"),
      generationId,
      reason: "PROVIDER_ERROR",
    });
    expect(data.refundGeneration?.__typename).toBe("RefundGenerationSuccess");
  }
}

export interface Workspace {
  readonly accountId: string;
  readonly ownerId: string;
  /** Its two models, unique to this run (the operator report spans every account). */
  readonly veo: string;
  readonly flux: string;
  /** Ledger entries written for it. */
  readonly entries: number;
}

/**
 * A workspace with 1,000 credits, a 300-a-day cap on ana, ana's delivered
 * veo run (40), ben's refunded flux run (25) and 55 small top-ups, so the
 * ledger holds more entries than the live replay brings.
 */
export async function seedWorkspace(server: TestServer, serviceToken: string): Promise<Workspace> {
  const platform = new Platform(server, serviceToken);
  const { id: accountId, ownerId } = await createAccount(server, serviceToken, {
    kind: "WORKSPACE",
    name: "Insights Studio",
  });
  await grant(server, serviceToken, accountId, 1_000, { source: "WALLET" });
  const cap = await platform.call(SET_CAP, { accountId, memberId: "ana", period: "DAY", amount: 300 });
  expect(cap.setSpendCap?.__typename).toBe("SetSpendCapSuccess");
  const veo = unique("veo");
  const flux = unique("flux");
  await platform.settle(await platform.reserve(accountId, "ana", "Video", veo, 40));
  await platform.refund(await platform.reserve(accountId, "ben", "Image", flux, 25));
  for (let i = 0; i < 55; i += 1) await grant(server, serviceToken, accountId, 1, { source: "WALLET" });
  // GRANT, USAGE (ana), USAGE + REFUND (ben), 55 GRANTs.
  return { accountId, ownerId, veo, flux, entries: 1 + 1 + 2 + 55 };
}

async function shows(locator: Locator, expected: string | RegExp): Promise<void> {
  const deadline = Date.now() + SHOW_TIMEOUT_MS;
  for (;;) {
    const text = (await locator.textContent()) ?? "";
    if (typeof expected === "string" ? text === expected : expected.test(text)) return;
    if (Date.now() > deadline) throw new Error(`${locator}: expected ${expected}, still "${text}"`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Opens the dashboard signed in with `token` on the account, waiting until it is live. */
async function openSignedIn(context: BrowserContext, origin: string, accountId: string, token: string) {
  const page = await context.newPage();
  const errors: string[] = [];
  page.on("pageerror", (error) => errors.push(error.message));
  await page.goto(`${origin}/dashboard/?account=${encodeURIComponent(accountId)}#token=${token}`);
  await page.locator('#connection[data-state="live"]').waitFor({ timeout: SHOW_TIMEOUT_MS });
  return { page, errors };
}

/** Runs every version-2 check on one server; `name` tells the screenshots apart. */
export async function exerciseInsights(
  server: TestServer,
  context: BrowserContext,
  name: string,
  artifacts: string,
): Promise<void> {
  const serviceToken = await server.token(unique("insights-platform"), "service");
  const workspace = await seedWorkspace(server, serviceToken);
  const origin = new URL(server.url).origin;
  const ownerToken = await server.token(workspace.ownerId, "user", "1h");
  const { page, errors } = await openSignedIn(context, origin, workspace.accountId, ownerToken);

  // Member caps: ana spent 40 of 300 today.
  await shows(page.locator('#caps li[data-member="ana"] .cap__left'), /^260 of 300 left/);

  // The low-balance alert, set and cleared by the OWNER from the page.
  await page.locator("#alert-threshold").fill("2000");
  await page.getByRole("button", { name: "Save" }).click();
  await shows(page.locator("#alert-status"), "Below 2,000 credits now: the alert has fired.");
  await page.locator("#alert-threshold").fill("100");
  await page.getByRole("button", { name: "Save" }).click();
  await shows(page.locator("#alert-status"), "Alerts when available credits fall below 100.");
  await page.getByRole("button", { name: "Clear" }).click();
  await shows(page.locator("#alert-status"), "No alert is set.");

  // The live replay brings the newest 50 entries; "Load more" brings the rest, each once.
  await page.locator(`#feed li[data-sequence="${workspace.entries}"]`).waitFor({ timeout: SHOW_TIMEOUT_MS });
  expect(await page.locator("#feed li").count()).toBe(50);
  await page.getByRole("button", { name: "Load more" }).click();
  await page.locator('#feed li[data-sequence="1"]').waitFor({ timeout: SHOW_TIMEOUT_MS });
  expect(await page.locator("#feed li").count()).toBe(workspace.entries);
  await page.locator("#feed-more").waitFor({ state: "hidden", timeout: SHOW_TIMEOUT_MS });

  // The daily chart and the breakdowns by model and by member.
  const chart = page.locator("#daily-chart");
  await waitForAttribute(chart, "data-refunded", "25");
  expect(await chart.getAttribute("data-days")).toBe("1");
  expect(await chart.getAttribute("data-charged")).toBe("40");
  expect(await chart.evaluate((node: HTMLCanvasElement) => node.width > 0 && node.height > 0)).toBe(true);
  await shows(page.locator(`#by-model tr[data-key="${workspace.veo}"] td:nth-child(2)`), "40");
  await shows(page.locator(`#by-model tr[data-key="${workspace.flux}"] td:nth-child(3)`), "25");
  await shows(page.locator('#by-member tr[data-key="ben"] td:nth-child(6)'), "1");
  expect(await page.locator("#operator").isHidden()).toBe(true);

  // "Download CSV": the account's ledger as the export serves it, header first, oldest first.
  const [download] = await Promise.all([
    page.waitForEvent("download", { timeout: SHOW_TIMEOUT_MS }),
    page.getByRole("button", { name: "Download CSV" }).click(),
  ]);
  const csv = readFileSync((await download.path()) ?? "", "utf8")
    .trim()
    .split(/\r?\n/);
  expect(csv[0]).toBe(
    "sequence,created_at,type,status,amount,balance_before,balance_after,reason,message,generation_id,feature,model,requested_by,actor",
  );
  expect(csv).toHaveLength(1 + workspace.entries);
  expect(csv[1]?.startsWith("1,")).toBe(true);

  // The date range: tomorrow on has no generations; all time has both.
  const tomorrow = new Date(Date.now() + 86_400_000).toISOString().slice(0, 10);
  await page.locator("#range-from").fill(tomorrow);
  await page.getByRole("button", { name: "Apply" }).click();
  await shows(
    page.locator("#spending .spending__totals"),
    "Charged 0 · refunded 0 · 0 generations, 0 failed",
  );
  await page.getByRole("button", { name: "All time" }).click();
  await shows(
    page.locator("#spending .spending__totals"),
    "Charged 40 · refunded 25 · 2 generations, 1 failed",
  );

  // A refund while the page is open lands live, in green, on top.
  const platform = new Platform(server, serviceToken);
  await platform.refund(await platform.reserve(workspace.accountId, "ana", "Video", workspace.veo, 10));
  const refund = page.locator(`#feed li[data-sequence="${workspace.entries + 2}"]`);
  await refund.waitFor({ timeout: SHOW_TIMEOUT_MS });
  expect(await refund.getAttribute("data-type")).toBe("REFUND");
  expect(await refund.getAttribute("class")).toContain("entry--fresh");
  expect(await refund.locator(".amount").evaluate((node) => getComputedStyle(node).color)).toBe(
    "rgb(19, 115, 51)",
  );

  mkdirSync(artifacts, { recursive: true });
  await page.screenshot({ path: `${artifacts}/dashboard-v2-${name}.png`, fullPage: true });

  // A phone-width screen: one column, nothing wider than the screen.
  await page.setViewportSize({ width: 390, height: 844 });
  await expectNoSidewaysScroll(page);
  await page.screenshot({ path: `${artifacts}/dashboard-v2-${name}-phone.png`, fullPage: true });
  await page.close();
  expect(errors).toEqual([]);

  // An admin also sees the operator report across every account.
  const admin = await openSignedIn(
    context,
    origin,
    workspace.accountId,
    await server.token("ops", "admin", "1h"),
  );
  await admin.page.locator("#operator").waitFor({ timeout: SHOW_TIMEOUT_MS });
  await shows(admin.page.locator(`#operator-models tr[data-key="${workspace.flux}"] td:nth-child(6)`), "1");
  await admin.page
    .locator('#operator-reasons li[data-reason="PROVIDER_ERROR"]')
    .waitFor({ timeout: SHOW_TIMEOUT_MS });
  expect(await admin.page.locator('#operator-figures [data-figure="refund-rate"] dd').textContent()).toMatch(
    /%$/,
  );
  await admin.page.screenshot({ path: `${artifacts}/dashboard-v2-${name}-operator.png`, fullPage: true });
  await admin.page.close();
  expect(admin.errors).toEqual([]);
}

async function waitForAttribute(locator: Locator, name: string, expected: string): Promise<void> {
  const deadline = Date.now() + SHOW_TIMEOUT_MS;
  while ((await locator.getAttribute(name)) !== expected) {
    if (Date.now() > deadline)
      throw new Error(`${locator} ${name}: expected ${expected}, still ${await locator.getAttribute(name)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function expectNoSidewaysScroll(page: Page): Promise<void> {
  // The chart follows its box on the next frames (a ResizeObserver): give the layout a moment.
  const deadline = Date.now() + SHOW_TIMEOUT_MS;
  for (;;) {
    const widths = await page.evaluate(() => {
      const screen = document.documentElement.clientWidth;
      const wide = [...document.querySelectorAll<HTMLElement>("body *")]
        .filter((node) => node.getBoundingClientRect().right > screen + 1)
        .map((node) => `${node.tagName.toLowerCase()}#${node.id}.${node.className}`);
      return { page: document.documentElement.scrollWidth, screen, wide: wide.slice(0, 5) };
    });
    if (widths.page <= widths.screen) return;
    if (Date.now() > deadline) expect(widths).toEqual({ ...widths, page: widths.screen });
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
