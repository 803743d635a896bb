-- Balance alerts (SPEC §8.5): an account's optional threshold and whether
-- `available` is below it now. Both live on the account row, which every
-- ledger transaction already locks, reads and writes: deciding a crossing
-- costs no extra statement, and two transactions can never both see the
-- crossing (the second one reads `alert_triggered` already set).
-- A threshold is Credits: 0 to 2^53 − 1.

-- AlterTable
ALTER TABLE "account" ADD COLUMN     "alert_threshold" BIGINT,
ADD COLUMN     "alert_triggered" BOOLEAN NOT NULL DEFAULT false;

ALTER TABLE "account"
    ADD CONSTRAINT "account_alert_threshold_range" CHECK ("alert_threshold" BETWEEN 0 AND 9007199254740991),
    ADD CONSTRAINT "account_alert_untriggered_without_threshold" CHECK ("alert_threshold" IS NOT NULL OR NOT "alert_triggered");

-- When the reaper sent a grant's `grant.expiring` notice (null: not yet), so it sends one per grant.
-- AlterTable
ALTER TABLE "credit_grant" ADD COLUMN     "expiry_noticed_at" TIMESTAMPTZ(3);

-- The reaper's search for grants to notice: open, unnoticed grants by expiry.
CREATE INDEX "credit_grant_expiry_notice_idx" ON "credit_grant" ("expires_at")
    WHERE "expiry_noticed_at" IS NULL AND "expired_at" IS NULL AND "expires_at" IS NOT NULL;
