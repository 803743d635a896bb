/**
 * Balance alerts and grant-expiry notices (SPEC §8.5): an alert fires once
 * per fall below its threshold, decided inside the transaction that crosses
 * it, whatever the concurrency; it re-arms when `available` is back at or
 * above; only the platform and the account's OWNER manage it; the reaper
 * notices a grant about to expire once. Events arrive over a real graphql-ws
 * client; the notices are checked on the book, where the transaction stores them.
 */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { evaluateBalanceAlert, noticeExpiringGrants } from "../../src/domain/alerts.ts";
import { Book } from "../../src/domain/book.ts";
import { adjustBalance, grantCredits } from "../../src/domain/grants.ts";
import type { AccountState } from "../../src/domain/model.ts";
import { localId } from "../../src/schema/ids.ts";
import { startServer, type TestServer } from "../support/harness.ts";
import { createOwnDatabase, type OwnDatabase } from "../support/own-database.ts";
import { onPglite } from "../support/test-database.ts";
import { connect, type LiveClient } from "../support/ws.ts";
import { adjust, alertOf, BALANCE_LOW, clearAlert, setAlert, settle, warmUpAlerts } from "./alert-support.ts";
import { Api, accountWithOwner, type Json, tokens, unique } from "./helpers.ts";

/** Concurrent reserves in the race test, and what each holds. */
const RESERVES = 20;
const RESERVE_COST = 30;

describe("balance alerts", () => {
  let server: TestServer;
  let admin: Api;
  const clients: LiveClient[] = [];
  const open = (token: string) => {
    const client = connect(server.url, { token });
    clients.push(client);
    return client;
  };

  let own: OwnDatabase | undefined;

  beforeAll(async () => {
    // A database of its own on PostgreSQL (PGlite's is the file's already): the other files'
    // servers reap the shared test database, and one of them expiring this file's grant would
    // fire its alert there, on that server's in-process events, not on this server's socket.
    own = onPglite() ? undefined : await createOwnDatabase("creditbook_alerts");
    server = await startServer({ reaperEnabled: false, ...(own && { databaseUrl: own.url }) });
    admin = new Api(server.url, await tokens.sign("alerts-admin", "admin"));
  }, 60_000);

  afterAll(async () => {
    await Promise.all(clients.map((client) => client.dispose()));
    await server?.close();
    if (own !== undefined) {
      expect(await own.auditProblems()).toEqual([]);
      await own.drop();
    }
  });

  it("fires exactly one balanceLow when 20 concurrent reserves cross the threshold, then re-arms after a grant", async () => {
    const { service, ownerToken, accountId } = await accountWithOwner(server.url, 1_000);
    const lows = open(ownerToken).subscribe<Json>(BALANCE_LOW, { accountId });
    await warmUpAlerts(service, accountId, lows);
    await settle(200);
    const before = lows.values.length;

    const set = await setAlert(service, accountId, 500);
    expect(set).toMatchObject({
      __typename: "SetBalanceAlertSuccess",
      balanceAlert: { threshold: 500, triggered: false },
    });
    const reserves = await Promise.all(
      Array.from({ length: RESERVES }, () => service.reserve(accountId, { unitCost: RESERVE_COST })),
    );
    expect(reserves).toHaveLength(RESERVES);
    await lows.waitFor((values) => values.length > before, "the balanceLow of the crossing");
    await settle();
    const fired = lows.values.slice(before).map((value) => value.balanceLow);
    // Reserves apply one at a time under the account lock: the one that crossed left 1000 − 17 × 30.
    expect(fired).toEqual([
      { accountId, threshold: 500, available: 1_000 - 17 * RESERVE_COST, at: expect.any(String) },
    ]);
    expect(await alertOf(service, accountId)).toEqual({ threshold: 500, triggered: true });

    // Back at or above: re-armed, and nothing is sent for rising.
    await service.grant(accountId, 700);
    expect(await alertOf(service, accountId)).toEqual({ threshold: 500, triggered: false });
    await service.reserve(accountId, { unitCost: 650 });
    await lows.waitFor((values) => values.length > before + 1, "the second balanceLow");
    await settle();
    expect(lows.values.slice(before + 1).map((value) => value.balanceLow)).toEqual([
      { accountId, threshold: 500, available: 1_100 - 650, at: expect.any(String) },
    ]);
  });

  it("sends nothing after the alert is cleared, and nothing at set time when already below", async () => {
    const { service, owner, ownerToken, accountId } = await accountWithOwner(server.url, 1_000);
    const lows = open(ownerToken).subscribe<Json>(BALANCE_LOW, { accountId });
    await warmUpAlerts(service, accountId, lows);
    await settle(200);
    const before = lows.values.length;

    // The OWNER clears it: a fall below the old threshold sends nothing.
    const cleared = await clearAlert(owner, accountId);
    expect(cleared).toEqual({
      __typename: "ClearBalanceAlertSuccess",
      account: { id: accountId, balanceAlert: null },
    });
    expect(await alertOf(owner, accountId)).toBeNull();
    expect(await adjust(admin, accountId, -900)).toBe(100);

    // Set while already below: triggered at once, and no event until a new fall.
    const set = await setAlert(owner, accountId, 500);
    expect(set.balanceAlert).toEqual({ threshold: 500, triggered: true });
    expect(await adjust(admin, accountId, -50)).toBe(50);
    expect(await adjust(admin, accountId, 550)).toBe(600);
    expect(await alertOf(owner, accountId)).toEqual({ threshold: 500, triggered: false });
    // A fall of the balance through an admin adjustment fires like a reserve.
    expect(await adjust(admin, accountId, -200)).toBe(400);
    await lows.waitFor((values) => values.length > before, "the balanceLow after re-arming");
    await settle();
    expect(lows.values.slice(before).map((value) => value.balanceLow)).toEqual([
      { accountId, threshold: 500, available: 400, at: expect.any(String) },
    ]);
  });

  it("lets service, admin and the OWNER manage an alert; a MEMBER is forbidden, a stranger finds nothing", async () => {
    const { service, owner, accountId } = await accountWithOwner(server.url, 100);
    const memberId = unique("member");
    await service.gql(
      `mutation($input: AddAccountMemberInput!) { addAccountMember(input: $input) { __typename } }`,
      { input: { accountId, userId: memberId, role: "MEMBER" } },
    );
    const member = new Api(server.url, await tokens.sign(memberId, "user"));
    const stranger = new Api(server.url, await tokens.sign(unique("stranger"), "user"));

    for (const [who, api, threshold] of [
      ["service", service, 10],
      ["admin", admin, 20],
      ["owner", owner, 30],
    ] as const) {
      expect({ who, answer: await setAlert(api, accountId, threshold) }).toMatchObject({
        who,
        answer: { __typename: "SetBalanceAlertSuccess", balanceAlert: { threshold, triggered: false } },
      });
    }
    expect(await setAlert(member, accountId, 40)).toMatchObject({
      __typename: "ForbiddenError",
      code: "FORBIDDEN",
    });
    expect(await clearAlert(member, accountId)).toMatchObject({ __typename: "ForbiddenError" });
    expect(await setAlert(stranger, accountId, 40)).toMatchObject({
      __typename: "NotFoundError",
      code: "NOT_FOUND",
    });
    expect(await clearAlert(stranger, accountId)).toMatchObject({ __typename: "NotFoundError" });
    expect(await setAlert(service, accountId, -1)).toMatchObject({
      __typename: "InvalidInputError",
      field: "threshold",
      message: "threshold must be 0 or more credits, got -1",
    });
    expect(await setAlert(service, "not-an-id", 5)).toMatchObject({
      __typename: "InvalidInputError",
      field: "accountId",
    });
    // None of the refused calls changed it; a MEMBER can still read it.
    expect(await alertOf(member, accountId)).toEqual({ threshold: 30, triggered: false });
    expect(await clearAlert(admin, accountId)).toMatchObject({ __typename: "ClearBalanceAlertSuccess" });
    expect(await alertOf(member, accountId)).toBeNull();

    // A stranger cannot follow the account's alerts either.
    const attempt = open(stranger.token).subscribe<Json>(BALANCE_LOW, { accountId });
    await attempt.waitEnded();
    expect(attempt.errors).toMatchObject([{ extensions: { code: "NOT_FOUND" } }]);
  });

  it("notices a grant with credits left that expires within GRANT_EXPIRY_NOTICE_HOURS once", async () => {
    const { service, accountId } = await accountWithOwner(server.url, 0);
    const hour = 3_600_000;
    const grantAt = async (expiresInMs: number, amount = 100) => {
      const data = await service.gql(
        `mutation($input: GrantCreditsInput!) { grantCredits(input: $input) {
          __typename ... on GrantCreditsSuccess { grant { id } } ... on Error { code message } } }`,
        {
          input: {
            idempotencyKey: unique("grant"),
            accountId,
            source: "SUBSCRIPTION",
            amount,
            expiresAt: new Date(Date.now() + expiresInMs).toISOString(),
          },
        },
      );
      return localId(data.grantCredits.grant.id, "Grant") ?? "";
    };
    // Drawn first (soonest expiry) and all held by the reserve: no credits left, so no notice.
    const heldGrant = await grantAt(hour, 50);
    await service.reserve(accountId, { unitCost: 50 });
    const soon = await grantAt(2 * hour);
    const later = await grantAt(100 * hour);
    const noticedAt = async (grantId: string) => {
      const rows = await server.app.db.query<{ expiry_noticed_at: Date | null }>(
        "SELECT expiry_noticed_at FROM credit_grant WHERE id = $1",
        [grantId],
      );
      return rows[0]?.expiry_noticed_at ?? null;
    };
    expect(await noticedAt(soon)).toBeNull();
    await server.app.reaper.round();
    const first = await noticedAt(soon);
    expect(first).toBeInstanceOf(Date);
    expect(await noticedAt(later)).toBeNull();
    await server.app.reaper.round();
    expect(await noticedAt(soon)).toEqual(first);
    expect(await noticedAt(later)).toBeNull();
    expect(await noticedAt(heldGrant)).toBeNull();
  });

  it("fires when the reaper's expiry takes available below the threshold", async () => {
    const { service, ownerToken, accountId } = await accountWithOwner(server.url, 100);
    const lows = open(ownerToken).subscribe<Json>(BALANCE_LOW, { accountId });
    await warmUpAlerts(service, accountId, lows);
    await settle(200);
    const before = lows.values.length;
    const expiresAt = new Date(Date.now() + 1_500);
    const granted = await service.gql(
      `mutation($input: GrantCreditsInput!) { grantCredits(input: $input) { __typename } }`,
      {
        input: {
          idempotencyKey: unique("grant"),
          accountId,
          source: "SUBSCRIPTION",
          amount: 400,
          expiresAt: expiresAt.toISOString(),
        },
      },
    );
    expect(granted.grantCredits.__typename).toBe("GrantCreditsSuccess");
    expect((await setAlert(service, accountId, 300)).balanceAlert).toEqual({
      threshold: 300,
      triggered: false,
    });
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, expiresAt.getTime() - Date.now() + 100)));
    await server.app.reaper.round();
    await lows.waitFor((values) => values.length > before, "the balanceLow of the expiry");
    expect(lows.values.slice(before).map((value) => value.balanceLow)).toEqual([
      { accountId, threshold: 300, available: 100, at: expect.any(String) },
    ]);
  });
});

describe("notices on the book", () => {
  const now = new Date("2026-12-05T12:00:00.000Z");
  const bookOf = (alertThreshold: bigint | null, alertTriggered = false) => {
    const account: AccountState = {
      id: randomUUID(),
      kind: "PERSONAL",
      available: 0n,
      held: 0n,
      subscription: 0n,
      wallet: 0n,
      sequence: 0,
      updatedAt: now,
      reservedVolume: 0n,
      alertThreshold,
      alertTriggered,
    };
    return new Book(account, new Map(), new Map(), now);
  };
  const grant = (book: Book, amount: bigint, expiresAt: Date | null = null) =>
    grantCredits(book, {
      accountId: book.account.id,
      source: "WALLET",
      amount,
      expiresAt,
      reference: null,
      title: null,
    });
  const take = (book: Book, amount: bigint) =>
    adjustBalance(book, { accountId: book.account.id, amount: -amount, note: "test" });

  it("pushes one balance.low notice per fall, with the entry's sequence, and none for rising", () => {
    const book = bookOf(100n);
    grant(book, 150n);
    take(book, 40n); // 110: still at or above
    take(book, 20n); // 90: the fall
    take(book, 30n); // 60: still below, nothing more
    grant(book, 50n); // 110: re-armed
    take(book, 11n); // 99: the next fall
    expect(book.notices).toEqual([
      {
        type: "balance.low",
        accountId: book.account.id,
        sequence: 3,
        data: { threshold: "100", available: "90", at: now.toISOString() },
      },
      {
        type: "balance.low",
        accountId: book.account.id,
        sequence: 6,
        data: { threshold: "100", available: "99", at: now.toISOString() },
      },
    ]);
    expect(book.balanceLow.map((event) => event.available)).toEqual([90n, 99n]);
    expect(book.account.alertTriggered).toBe(true);
    book.assertConsistent();
  });

  it("pushes nothing without an alert, or when it was already triggered", () => {
    const none = bookOf(null);
    grant(none, 10n);
    take(none, 10n);
    evaluateBalanceAlert(none);
    expect(none.notices).toEqual([]);
    const triggered = bookOf(100n, true);
    grant(triggered, 50n);
    take(triggered, 10n);
    expect(triggered.notices).toEqual([]);
  });

  it("pushes one grant.expiring notice per grant with credits left within the notice window", () => {
    const book = bookOf(null);
    const hour = 3_600_000;
    const soon = grant(book, 70n, new Date(now.getTime() + 71 * hour));
    grant(book, 80n, new Date(now.getTime() + 73 * hour));
    grant(book, 90n);
    expect(noticeExpiringGrants(book, 72)).toBe(1);
    expect(noticeExpiringGrants(book, 72)).toBe(0);
    expect(book.notices).toEqual([
      {
        type: "grant.expiring",
        accountId: book.account.id,
        sequence: null,
        data: {
          grantId: "grantId" in soon ? soon.grantId : "",
          source: "WALLET",
          remaining: "70",
          expiresAt: new Date(now.getTime() + 71 * hour).toISOString(),
          reference: null,
        },
      },
    ]);
  });
});
