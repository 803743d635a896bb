/**
 * A retry must get the stored answer "even if the state moved on" (SPEC §5,
 * Idempotency). Found by the model-based test: a grant whose `expiresAt`
 * passed between the first delivery and a retry was refused as
 * InvalidInputError ("expiresAt must be in the future") instead of being
 * answered with the grant it made, because the time check ran before the
 * idempotency lookup, so a client whose answer was lost could not learn what
 * happened to its grant. Fixed in 6e7e5fb (the check moved into the
 * transaction, after the lookup); this is its regression test.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Billing, closeSql, sleep } from "../billing/ops.ts";
import { GRANT } from "../support/fixtures.ts";
import { unique } from "../support/harness.ts";

describe("retrying a grant after its expiry", () => {
  let billing: Billing;
  beforeAll(async () => {
    billing = await Billing.start();
  });
  afterAll(async () => {
    await billing.close();
    await closeSql();
  });

  it("answers with the stored grant (replayed), not InvalidInputError", async () => {
    const accountId = await billing.account(0);
    const input = {
      idempotencyKey: unique("grant"),
      accountId,
      source: "SUBSCRIPTION",
      amount: 5,
      expiresAt: new Date(Date.now() + 1_500).toISOString(),
    };
    const first = (await billing.call(billing.service, GRANT, { input })).data.grantCredits;
    expect(first).toMatchObject({ __typename: "GrantCreditsSuccess", replayed: false });
    // The answer is "lost"; the client retries after the grant's expiresAt has passed.
    await sleep(2_000);
    const retry = (await billing.call(billing.service, GRANT, { input })).data.grantCredits;
    expect(retry).toMatchObject({
      __typename: "GrantCreditsSuccess",
      replayed: true,
      grant: { id: first.grant.id },
    });
  });
});
