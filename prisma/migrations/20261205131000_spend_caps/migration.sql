-- Spend caps per member (SPEC §8.2): at most `amount` credits a UTC day or
-- month for the generations one member (generation.requested_by) starts on an
-- account. What a member spent is not stored: it is summed, under the account
-- lock the reserve holds, from the member's generations of the period
-- (reserved − refunded − released: held plus charged, less support refunds),
-- so no counter can drift from the generations it counts.

-- CreateEnum
CREATE TYPE "CapPeriod" AS ENUM ('DAY', 'MONTH');

-- CreateTable
CREATE TABLE "spend_cap" (
    "account_id" UUID NOT NULL,
    "member_id" TEXT NOT NULL,
    "period" "CapPeriod" NOT NULL,
    "amount" BIGINT NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "spend_cap_pkey" PRIMARY KEY ("account_id", "member_id", "period"),
    CONSTRAINT "spend_cap_amount_range" CHECK ("amount" BETWEEN 0 AND 9007199254740991)
);

-- AddForeignKey
ALTER TABLE "spend_cap" ADD CONSTRAINT "spend_cap_account_id_fkey" FOREIGN KEY ("account_id") REFERENCES "account"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- A member's generations of a period, for the sum above.
CREATE INDEX "generation_account_id_requested_by_created_at_idx" ON "generation" ("account_id", "requested_by", "created_at");
