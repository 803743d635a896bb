import { describe, expect, it } from "vitest";
import {
  type Balance,
  durationUntil,
  type Entry,
  Feed,
  type Generation,
  InProgress,
  newerBalance,
  signedCredits,
  usageStatusOf,
} from "../../dashboard/src/model.ts";

const balance = (sequence: number, updatedAt: string, available: number): Balance => ({
  accountId: "a",
  available,
  held: 0,
  total: available,
  subscription: 0,
  wallet: available,
  nextExpiry: null,
  sequence,
  updatedAt,
});

const entry = (
  sequence: number,
  type: Entry["type"] = "USAGE",
  generationId: string | null = "g1",
): Entry => ({
  id: `e${sequence}`,
  sequence,
  type,
  amount: type === "USAGE" ? -5 : 5,
  status: type === "USAGE" ? "PENDING" : "COMPLETED",
  title: "Quick Video",
  balanceBefore: 0,
  balanceAfter: 0,
  reason: null,
  message: null,
  createdAt: "2026-01-01T00:00:00Z",
  generation: generationId === null ? null : { id: generationId },
});

const generation = (
  id: string,
  status: Generation["status"],
  deadline = "2026-01-01T02:30:00Z",
): Generation => ({
  id,
  requestedBy: null,
  feature: "Quick Video",
  model: null,
  status,
  quantity: 1,
  unitCost: 5,
  reserved: 5,
  charged: 0,
  refunded: 0,
  released: 0,
  failureReason: null,
  failureMessage: null,
  deadline,
  createdAt: "2026-01-01T00:00:00Z",
  finishedAt: null,
  items: [],
});

describe("dashboard model", () => {
  it("keeps the newest balance: higher sequence, then later updatedAt", () => {
    const first = balance(3, "2026-01-01T00:00:01Z", 10);
    expect(newerBalance(null, first)).toBe(first);
    expect(newerBalance(first, balance(2, "2026-01-01T00:00:09Z", 99))).toBe(first);
    const held = balance(3, "2026-01-01T00:00:02Z", 10);
    expect(newerBalance(first, held)).toBe(held);
    expect(newerBalance(held, first)).toBe(held);
    const next = balance(4, "2026-01-01T00:00:00Z", 20);
    expect(newerBalance(held, next)).toBe(next);
  });

  it("derives a usage entry's status from its generation's", () => {
    expect(usageStatusOf("IN_PROGRESS")).toBe("PENDING");
    expect(usageStatusOf("SUCCEEDED")).toBe("COMPLETED");
    expect(usageStatusOf("PARTIALLY_SUCCEEDED")).toBe("COMPLETED");
    expect(usageStatusOf("FAILED")).toBe("FAILED");
    expect(usageStatusOf("TIMED_OUT")).toBe("FAILED");
    expect(usageStatusOf("CANCELLED")).toBe("FAILED");
  });

  it("holds each sequence once, newest first, and trims the oldest", () => {
    const feed = new Feed(3);
    expect(feed.put(entry(2))).toBe(true);
    expect(feed.put(entry(1, "GRANT", null))).toBe(true);
    expect(feed.put(entry(2))).toBe(false);
    expect(feed.put(entry(4, "REFUND"))).toBe(true);
    expect(feed.put(entry(3, "RELEASE"))).toBe(true);
    expect(feed.entries().map((e) => e.sequence)).toEqual([4, 3, 2]);
    expect(feed.lastSequence).toBe(4);
    // An entry older than a full feed is not kept.
    expect(feed.put(entry(1, "GRANT", null))).toBe(false);
    expect(feed.has(1)).toBe(false);
  });

  it("moves usage entries out of pending when their generation ends", () => {
    const feed = new Feed();
    feed.put(entry(1, "USAGE", "g1"));
    feed.put(entry(2, "USAGE", "g2"));
    feed.put(entry(3, "REFUND", "g1"));
    expect(feed.pendingGenerationIds().sort()).toEqual(["g1", "g2"]);
    const changed = feed.applyGeneration({ id: "g1", status: "FAILED" });
    expect(changed.map((e) => [e.sequence, e.status])).toEqual([[1, "FAILED"]]);
    expect(feed.applyGeneration({ id: "g1", status: "FAILED" })).toEqual([]);
    expect(feed.pendingGenerationIds()).toEqual(["g2"]);
  });

  it("never lists a finished generation again, even from an older answer", () => {
    const list = new InProgress();
    expect(list.apply(generation("late", "IN_PROGRESS", "2026-01-01T03:00:00Z"))).toBe(true);
    expect(list.apply(generation("soon", "IN_PROGRESS", "2026-01-01T01:00:00Z"))).toBe(true);
    expect(list.list().map((g) => g.id)).toEqual(["soon", "late"]);
    expect(list.apply(generation("soon", "TIMED_OUT"))).toBe(true);
    expect(list.apply(generation("soon", "IN_PROGRESS"))).toBe(false);
    expect(list.finishedStatus("soon")).toBe("TIMED_OUT");
    expect(list.ids()).toEqual(["late"]);
  });

  it("formats signed amounts and countdowns", () => {
    expect(signedCredits(12)).toBe("+12");
    expect(signedCredits(-1200)).toBe("\u22121,200");
    expect(signedCredits(0)).toBe("0");
    const now = Date.parse("2026-01-01T00:00:00Z");
    expect(durationUntil(now + 150 * 60_000, now)).toBe("2h 30m");
    expect(durationUntil(now + 245_000, now)).toBe("4m 05s");
    expect(durationUntil(now + 12_000, now)).toBe("12s");
    expect(durationUntil(now - 1_000, now)).toBe("now");
  });
});
