/**
 * Token expiries share one timer (src/schema/live/expiry.ts): each callback
 * still runs once its second has passed, in any order of arming, and a
 * cancelled one never runs.
 */
import { describe, expect, it } from "vitest";
import { atExpiry } from "../../src/schema/live/expiry.ts";

const nowSeconds = () => Math.floor(Date.now() / 1_000);

describe("atExpiry", () => {
  it("runs an expiry already passed at once", () => {
    let ran = 0;
    atExpiry(nowSeconds() - 1, () => {
      ran += 1;
    });
    expect(ran).toBe(1);
  });

  it("runs each expiry once its second has passed, and not a cancelled one", async () => {
    const base = nowSeconds();
    const ran: string[] = [];
    const at = new Map<string, number>();
    const arm = (name: string, exp: number) =>
      atExpiry(exp, () => {
        ran.push(name);
        at.set(name, Date.now());
      });
    // Armed later first: the timer must move to the earlier one.
    arm("late", base + 3);
    arm("early", base + 1);
    const cancel = arm("cancelled", base + 2);
    arm("same-second", base + 2);
    cancel();
    await new Promise((resolve) => setTimeout(resolve, (base + 4) * 1_000 - Date.now() + 200));
    expect(ran).toEqual(["early", "same-second", "late"]);
    expect(at.get("early")).toBeGreaterThanOrEqual((base + 1) * 1_000);
    expect(at.get("same-second")).toBeGreaterThanOrEqual((base + 2) * 1_000);
    expect(at.get("late")).toBeGreaterThanOrEqual((base + 3) * 1_000);
    // On time: within a second of the expiry even on a busy machine.
    expect(at.get("late") ?? 0).toBeLessThan((base + 4) * 1_000);
  }, 10_000);
});
