/**
 * Subscriptions follow the same rules as queries: a token is checked at
 * connect (connectionParams or the upgrade request's header), a user follows
 * only accounts they are a member of, and a socket closes with 4401 when its
 * token expires.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TokenService } from "../../src/server/auth.ts";
import { startServer, type TestServer } from "../support/harness.ts";
import { connect, type LiveClient } from "../support/ws.ts";
import {
  accountWithOwner,
  BALANCE_CHANGED,
  GENERATION_UPDATED,
  type Json,
  LEDGER_ENTRY_ADDED,
  tokens,
  unique,
  warmUp,
} from "./helpers.ts";

const CLOSE_UNAUTHORIZED = 4401;

describe("subscription authorization", () => {
  let server: TestServer;
  const clients: LiveClient[] = [];
  const open = (options: Parameters<typeof connect>[1]) => {
    const client = connect(server.url, options);
    clients.push(client);
    return client;
  };

  beforeAll(async () => {
    server = await startServer();
  });

  afterAll(async () => {
    await Promise.all(clients.map((client) => client.dispose()));
    await server?.close();
  });

  it("lets a member subscribe with the token in connectionParams or in the upgrade header", async () => {
    const { service, ownerToken, accountId } = await accountWithOwner(server.url, 100);
    // Default tokens live 30 days, longer than one timer can wait: the socket must not close at once.
    const viaParams = open({ token: ownerToken });
    const viaHeader = open({ authorizationHeader: `Bearer ${ownerToken}` });
    const subscriptions = [
      viaParams.subscribe<Json>(BALANCE_CHANGED, { accountId }),
      viaHeader.subscribe<Json>(LEDGER_ENTRY_ADDED, { accountId }),
      viaHeader.subscribe<Json>(GENERATION_UPDATED, { accountId }),
    ];
    await warmUp(service, accountId, subscriptions);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(viaParams.closes).toEqual([]);
    expect(viaHeader.closes).toEqual([]);
  });

  it("refuses every subscription to an account the user is not a member of", async () => {
    const { service, accountId } = await accountWithOwner(server.url, 100);
    const stranger = open({ token: await tokens.sign(unique("stranger"), "user") });
    const attempts = [
      stranger.subscribe<Json>(BALANCE_CHANGED, { accountId }),
      stranger.subscribe<Json>(LEDGER_ENTRY_ADDED, { accountId, afterSequence: 0 }),
      stranger.subscribe<Json>(GENERATION_UPDATED, { accountId }),
    ];
    for (const attempt of attempts) {
      await attempt.waitEnded();
      // Like a query: someone else's account looks as if it does not exist.
      expect(attempt.errors).toMatchObject([{ extensions: { code: "NOT_FOUND" } }]);
    }
    // Nothing leaks afterwards either.
    await service.grant(accountId, 5);
    await new Promise((resolve) => setTimeout(resolve, 200));
    for (const attempt of attempts) expect(attempt.values).toEqual([]);
    expect(stranger.closes).toEqual([]);
  });

  it("closes the socket with 4401 when the token expires", async () => {
    const { service, ownerId, accountId } = await accountWithOwner(server.url, 100);
    const shortLived = await tokens.sign(ownerId, "user", "2s");
    const startedMs = Date.now();
    const client = open({ token: shortLived });
    const balances = client.subscribe<Json>(BALANCE_CHANGED, { accountId });
    await warmUp(service, accountId, [balances]);
    const closed = await client.waitClosed(5_000);
    expect(closed).toEqual({ code: CLOSE_UNAUTHORIZED, reason: "Token expired" });
    // Not before the token's exp (whole seconds, so up to 1 s early relative to when we signed it).
    expect(Date.now() - startedMs).toBeGreaterThanOrEqual(900);
    await balances.waitEnded();
  });

  it("refuses a connection with no token, a bad token or an expired token", async () => {
    const { ownerId } = await accountWithOwner(server.url, 0);
    const cases: [string, Parameters<typeof connect>[1]][] = [
      ["no token", { token: null }],
      [
        "a token signed with another secret",
        { token: await new TokenService("x".repeat(40)).sign(ownerId, "user") },
      ],
      ["a malformed token", { token: "not-a-jwt" }],
      ["an expired token", { token: await tokens.sign(ownerId, "user", "-10s") }],
      ["a bad upgrade header", { authorizationHeader: "Basic dXNlcjpwYXNz" }],
      ["a bad token in the upgrade header", { authorizationHeader: "Bearer not-a-jwt" }],
    ];
    for (const [what, options] of cases) {
      const client = open(options);
      const subscription = client.subscribe<Json>(BALANCE_CHANGED, { accountId: "x" });
      const closed = await client.waitClosed();
      expect({ what, code: closed.code }).toEqual({ what, code: CLOSE_UNAUTHORIZED });
      await subscription.waitEnded();
      expect(subscription.values).toEqual([]);
    }
  });
});
