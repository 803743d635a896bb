/**
 * Two server processes on one PostgreSQL and one Redis: a fall below the
 * alert threshold made through instance A reaches a `balanceLow` subscriber
 * on instance B, once, with exact amounts.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REDIS_URL } from "../support/env.ts";
import { type ServerProcess, startServerProcess } from "../support/process.ts";
import { connect, type LiveClient } from "../support/ws.ts";
import { BALANCE_LOW, setAlert, settle, warmUpAlerts } from "./alert-support.ts";
import { accountWithOwner, type Json, reportServerErrors } from "./helpers.ts";

describe("balanceLow across instances", () => {
  let a: ServerProcess;
  let b: ServerProcess;
  const clients: LiveClient[] = [];

  beforeAll(async () => {
    [a, b] = await Promise.all([
      startServerProcess({ REDIS_URL, LOG_LEVEL: "info" }),
      startServerProcess({ REDIS_URL, LOG_LEVEL: "info" }),
    ]);
  });

  afterAll(async () => {
    await Promise.all(clients.map((client) => client.dispose()));
    await Promise.all([a?.stop(), b?.stop()]);
    reportServerErrors({ a, b });
  });

  it("delivers a crossing made on A to a subscriber on B", async () => {
    // Near the top of the safe-integer range, where a trip through a float would show.
    const credits = 9_007_199_254_740_000;
    const { service, ownerToken, accountId } = await accountWithOwner(a.url, credits);
    const onB = connect(b.url, { token: ownerToken });
    clients.push(onB);
    const lows = onB.subscribe<Json>(BALANCE_LOW, { accountId });
    await warmUpAlerts(service, accountId, lows);
    await settle(200);
    const before = lows.values.length;

    const threshold = credits - 100;
    expect((await setAlert(service, accountId, threshold)).balanceAlert).toEqual({
      threshold,
      triggered: false,
    });
    // `service` calls A: the crossing is decided and committed there.
    const crossing = await service.reserve(accountId, { unitCost: 101 });
    expect(crossing.balance.available).toBe(credits - 101);
    await lows.waitFor((values) => values.length > before, "balanceLow on B");
    await settle();
    expect(lows.values.slice(before).map((value) => value.balanceLow)).toEqual([
      { accountId, threshold, available: credits - 101, at: expect.any(String) },
    ]);
  });
});
