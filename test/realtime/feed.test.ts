/**
 * The live feed's own guarantees, with events under the test's control: a
 * lost or late event is filled from the ledger before anything after it,
 * amounts survive the event encoding exactly, and generationUpdated with a
 * generationId follows that generation only.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AccountEvent } from "../../src/domain/events.ts";
import { createLogger } from "../../src/log.ts";
import { type LiveEntry, Realtime } from "../../src/schema/live/realtime.ts";
import { decodeEvent, encodeEvent, InProcessEventBus } from "../../src/server/events.ts";
import { startServer, type TestServer } from "../support/harness.ts";
import { connect, type LiveClient, until } from "../support/ws.ts";
import { accountWithOwner, GENERATION_UPDATED, type Json, range, sleep } from "./helpers.ts";

describe("live feed", () => {
  let server: TestServer;
  const clients: LiveClient[] = [];

  beforeAll(async () => {
    server = await startServer();
  });

  afterAll(async () => {
    await Promise.all(clients.map((client) => client.dispose()));
    await server?.close();
  });

  it("fills a gap from the ledger before a later event, and ignores the late one", async () => {
    const { service, accountId } = await accountWithOwner(server.url, 100);
    const uuid = Buffer.from(accountId, "base64").toString().split(":")[1] ?? "";
    // A feed on its own bus, with no periodic resync: only the gap fill can bring a missing entry.
    const bus = new InProcessEventBus();
    const realtime = new Realtime(server.app.db, bus, createLogger("silent"), {
      resyncIntervalMs: 3_600_000,
    });
    const held: AccountEvent[] = [];
    let holding = false;
    const stopForwarding = server.app.events.subscribe(uuid, (event) => {
      if (holding) held.push(event);
      else bus.publish(event);
    });
    const emitted: LiveEntry[] = [];
    const listening = await realtime.listen(uuid, { entry: (entry) => emitted.push(entry) });
    try {
      expect(listening.startAfter).toBe(1);
      // Lose the event of entry 2 (and hold it back), then let entry 3's event through.
      holding = true;
      await service.grant(accountId, 2);
      await until(
        () => held.length === 1,
        () => "the held event",
      );
      holding = false;
      await service.grant(accountId, 3);
      await until(
        () => emitted.length === 2,
        () => `entries 2 and 3 (got ${emitted.map((e) => e.sequence)})`,
      );
      expect(emitted.map((entry) => [entry.sequence, entry.amount])).toEqual([
        [2, 2n],
        [3, 3n],
      ]);
      // The late event arrives after all: nothing is emitted twice.
      for (const event of held) bus.publish(event);
      await service.grant(accountId, 4);
      await until(
        () => emitted.length >= 3,
        () => "entry 4",
      );
      await sleep(50);
      expect(emitted.map((entry) => entry.sequence)).toEqual(range(2, 4));
    } finally {
      listening.stop();
      stopForwarding();
      realtime.stop();
    }
  });

  it("keeps amounts exact through the event encoding, beyond the safe-integer range too", () => {
    const big = 2n ** 62n + 1n;
    const event: AccountEvent = {
      accountId: "a",
      sequence: 7,
      entries: [
        {
          id: "e",
          accountId: "a",
          sequence: 7,
          type: "REFUND",
          amount: big,
          balanceBefore: -big,
          balanceAfter: 0n,
          title: "amount",
          reason: "PROVIDER_ERROR",
          message: "available",
          generationId: "g",
          grantId: null,
          transferId: "t",
          createdAt: new Date("2026-01-02T03:04:05.678Z"),
          actor: "apikey:k",
        },
      ],
      generationIds: ["g"],
      generationStatuses: { g: "FAILED" },
      balance: {
        accountId: "a",
        available: big,
        held: 1n,
        total: big + 1n,
        subscription: 0n,
        wallet: big,
        nextExpiry: { amount: 9_007_199_254_740_993n, at: new Date("2026-02-01T00:00:00.000Z") },
        sequence: 7,
        updatedAt: new Date("2026-01-02T03:04:05.678Z"),
      },
    };
    expect(decodeEvent(encodeEvent(event))).toEqual(event);
  });

  it("generationUpdated with a generationId follows that generation only", async () => {
    const { service, ownerToken, accountId } = await accountWithOwner(server.url, 1_000);
    const items = 10;
    const followed = await service.reserve(accountId, { unitCost: 10, quantity: items });
    const other = await service.reserve(accountId, { unitCost: 10, quantity: 1 });
    const client = connect(server.url, { token: ownerToken });
    clients.push(client);
    const updates = client.subscribe<Json>(GENERATION_UPDATED, { accountId, generationId: followed.id });
    const settleItem = (index: number) =>
      service.gql(SETTLE, {
        input: {
          idempotencyKey: `settle-${followed.id}-${index}`,
          generationId: followed.id,
          items: [{ index, succeeded: true }],
        },
      });
    // Settle the followed generation's items one by one until an update shows the subscription is live.
    let index = 0;
    while (updates.values.length === 0) {
      if (index >= items - 1) throw new Error("the subscription never received an update");
      await settleItem(index);
      index += 1;
      await sleep(100);
    }
    // Now live: the other generation's refund comes first on the same feed, then one more followed update.
    await service.refund(other.id, "PROVIDER_ERROR");
    await settleItem(index);
    await updates.waitFor(
      (values) =>
        values.some((value) =>
          value.generationUpdated.items.some(
            (item: Json) => item.index === index && item.status === "SUCCEEDED",
          ),
        ),
      `the update for item ${index}`,
    );
    expect(new Set(updates.values.map((value) => value.generationUpdated.id))).toEqual(
      new Set([followed.id]),
    );
  });
});

const SETTLE = `mutation($input: SettleGenerationInput!) { settleGeneration(input: $input) {
  __typename ... on SettleGenerationSuccess { generation { id } } ... on Error { code message } } }`;
