import { describe, expect, it } from "vitest";
import { InvalidInputError } from "../../src/domain/errors.ts";
import { checkWebhookUrl, isPublicAddress } from "../../src/domain/webhook-url.ts";
import {
  retryDelayMs,
  WEBHOOK_ATTEMPTS_MAX,
  WEBHOOK_RETRY_BASE_MS,
} from "../../src/jobs/webhook-delivery.ts";

/** The SSRF rules and the retry schedule of webhooks (SPEC §8.4), without a database. */
describe("webhook rules", () => {
  it("tells public addresses from loopback, private, link-local and reserved ones", () => {
    for (const address of [
      "127.0.0.1",
      "10.0.0.1",
      "172.31.255.255",
      "192.168.0.10",
      "169.254.169.254",
      "100.64.0.1",
      "0.0.0.0",
      "224.0.0.1",
      "::1",
      "::",
      "fd00::1",
      "fe80::1",
      "::ffff:10.0.0.1",
      "::ffff:7f00:1",
      "not an address",
    ]) {
      expect([address, isPublicAddress(address)]).toEqual([address, false]);
    }
    for (const address of ["8.8.8.8", "198.51.100.7", "172.32.0.1", "2606:4700::1111", "::ffff:8.8.8.8"]) {
      expect([address, isPublicAddress(address)]).toEqual([address, true]);
    }
  });

  it("checks what a name resolves to, and lifts every rule with allowPrivate", async () => {
    const refused = await checkWebhookUrl("https://localhost/hooks", false);
    expect(refused).toBeInstanceOf(InvalidInputError);
    expect((refused as InvalidInputError).message).toMatch(/resolves to .*loopback, private or link-local/);
    expect(await checkWebhookUrl("http://localhost/hooks", true)).toBeInstanceOf(URL);
    expect(await checkWebhookUrl("ftp://198.51.100.7/", true)).toBeInstanceOf(InvalidInputError);
  });

  it("retries with growing, jittered pauses over at least 24 hours", () => {
    const pauses = (random: () => number) =>
      Array.from({ length: WEBHOOK_ATTEMPTS_MAX - 1 }, (_, i) =>
        retryDelayMs(i + 1, WEBHOOK_RETRY_BASE_MS, random),
      );
    const least = pauses(() => 0);
    const most = pauses(() => 0.999);
    expect(least.slice(0, 3)).toEqual([10_000, 30_000, 90_000]);
    for (let i = 1; i < least.length; i += 1) expect(least[i]).toBeGreaterThanOrEqual(least[i - 1] ?? 0);
    const total = least.reduce((sum, ms) => sum + ms, 0);
    expect(total).toBeGreaterThanOrEqual(24 * 3_600_000);
    expect(Math.max(...least)).toBe(8 * 3_600_000);
    most.forEach((ms, i) => {
      expect(ms).toBeGreaterThan(least[i] ?? 0);
      expect(ms).toBeLessThanOrEqual(Math.round((least[i] ?? 0) * 1.25));
    });
  });
});
