-- Creditbook initial schema. Amounts are BIGINT credits. The CHECK
-- constraints and triggers at the end are the ledger's last line of defence:
-- the domain code asserts the same rules before it writes.

CREATE TYPE "AccountKind" AS ENUM ('PERSONAL', 'WORKSPACE');
CREATE TYPE "MemberRole" AS ENUM ('OWNER', 'MEMBER');
CREATE TYPE "GrantSource" AS ENUM ('SUBSCRIPTION', 'WALLET');
CREATE TYPE "GenerationStatus" AS ENUM ('IN_PROGRESS', 'SUCCEEDED', 'PARTIALLY_SUCCEEDED', 'FAILED', 'TIMED_OUT', 'CANCELLED');
CREATE TYPE "ItemStatus" AS ENUM ('IN_PROGRESS', 'SUCCEEDED', 'FAILED', 'TIMED_OUT', 'CANCELLED');
CREATE TYPE "LedgerEntryType" AS ENUM ('GRANT', 'USAGE', 'REFUND', 'RELEASE', 'EXPIRY', 'ADJUSTMENT');
CREATE TYPE "RefundReason" AS ENUM ('GENERATION_FAILED', 'TIMEOUT', 'SYSTEM_ERROR', 'PROVIDER_ERROR', 'SERVICE_UNAVAILABLE', 'CONTENT_REJECTED', 'MALFORMED_RESPONSE', 'INVALID_INPUT', 'CANCELLED', 'BILLING_ERROR');
CREATE TYPE "PostingBook" AS ENUM ('GRANT_AVAILABLE', 'GRANT_HELD', 'ISSUED', 'REVENUE', 'EXPIRED', 'ADJUSTED');

CREATE TABLE "account" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "kind" "AccountKind" NOT NULL,
    "name" TEXT NOT NULL,
    "available" BIGINT NOT NULL DEFAULT 0,
    "held" BIGINT NOT NULL DEFAULT 0,
    "subscription" BIGINT NOT NULL DEFAULT 0,
    "wallet" BIGINT NOT NULL DEFAULT 0,
    "sequence" INTEGER NOT NULL DEFAULT 0,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "account_pkey" PRIMARY KEY ("id")
);

CREATE TABLE "account_member" (
    "account_id" UUID NOT NULL,
    "user_id" TEXT NOT NULL,
    "role" "MemberRole" NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "account_member_pkey" PRIMARY KEY ("account_id","user_id")
);

CREATE TABLE "credit_grant" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "account_id" UUID NOT NULL,
    "source" "GrantSource" NOT NULL,
    "amount" BIGINT NOT NULL,
    "remaining" BIGINT NOT NULL,
    "held" BIGINT NOT NULL DEFAULT 0,
    "expires_at" TIMESTAMPTZ(3),
    "expired_at" TIMESTAMPTZ(3),
    "reference" TEXT,
    "title" TEXT,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "credit_grant_pkey" PRIMARY KEY ("id")
);

CREATE TABLE "generation" (
    "id" UUID NOT NULL,
    "account_id" UUID NOT NULL,
    "requested_by" TEXT,
    "feature" TEXT NOT NULL,
    "model" TEXT,
    "quantity" INTEGER NOT NULL,
    "unit_cost" BIGINT NOT NULL,
    "reserved" BIGINT NOT NULL,
    "charged" BIGINT NOT NULL DEFAULT 0,
    "refunded" BIGINT NOT NULL DEFAULT 0,
    "released" BIGINT NOT NULL DEFAULT 0,
    "support_refunded" BIGINT NOT NULL DEFAULT 0,
    "status" "GenerationStatus" NOT NULL DEFAULT 'IN_PROGRESS',
    "failure_reason" "RefundReason",
    "failure_message" TEXT,
    "metadata" JSONB,
    "deadline" TIMESTAMPTZ(3) NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "finished_at" TIMESTAMPTZ(3),
    CONSTRAINT "generation_pkey" PRIMARY KEY ("id")
);

CREATE TABLE "generation_item" (
    "generation_id" UUID NOT NULL,
    "index" INTEGER NOT NULL,
    "account_id" UUID NOT NULL,
    "status" "ItemStatus" NOT NULL DEFAULT 'IN_PROGRESS',
    "reserved" BIGINT NOT NULL,
    "charged" BIGINT NOT NULL DEFAULT 0,
    "refunded" BIGINT NOT NULL DEFAULT 0,
    "released" BIGINT NOT NULL DEFAULT 0,
    "reason" "RefundReason",
    "message" TEXT,
    "finished_at" TIMESTAMPTZ(3),
    CONSTRAINT "generation_item_pkey" PRIMARY KEY ("generation_id","index")
);

CREATE TABLE "generation_draw" (
    "generation_id" UUID NOT NULL,
    "draw_index" INTEGER NOT NULL,
    "account_id" UUID NOT NULL,
    "grant_id" UUID NOT NULL,
    "amount" BIGINT NOT NULL,
    "held" BIGINT NOT NULL,
    "charged" BIGINT NOT NULL DEFAULT 0,
    "returned" BIGINT NOT NULL DEFAULT 0,
    "support_refunded" BIGINT NOT NULL DEFAULT 0,
    CONSTRAINT "generation_draw_pkey" PRIMARY KEY ("generation_id","draw_index")
);

CREATE TABLE "ledger_entry" (
    "id" UUID NOT NULL,
    "account_id" UUID NOT NULL,
    "sequence" INTEGER NOT NULL,
    "type" "LedgerEntryType" NOT NULL,
    "amount" BIGINT NOT NULL,
    "balance_before" BIGINT NOT NULL,
    "balance_after" BIGINT NOT NULL,
    "title" TEXT NOT NULL,
    "reason" "RefundReason",
    "message" TEXT,
    "generation_id" UUID,
    "grant_id" UUID,
    "transfer_id" UUID NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "ledger_entry_pkey" PRIMARY KEY ("id")
);

CREATE TABLE "posting" (
    "id" BIGSERIAL NOT NULL,
    "account_id" UUID NOT NULL,
    "transfer_id" UUID NOT NULL,
    "book" "PostingBook" NOT NULL,
    "grant_id" UUID,
    "generation_id" UUID,
    "amount" BIGINT NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "posting_pkey" PRIMARY KEY ("id")
);

CREATE TABLE "idempotency_record" (
    "principal" TEXT NOT NULL,
    "operation" TEXT NOT NULL,
    "key" TEXT NOT NULL,
    "request_hash" TEXT NOT NULL,
    "account_id" UUID,
    "result" JSONB NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "expires_at" TIMESTAMPTZ(3) NOT NULL,
    CONSTRAINT "idempotency_record_pkey" PRIMARY KEY ("principal","operation","key")
);

CREATE TABLE "board" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "account_id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "created_by" TEXT,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "board_pkey" PRIMARY KEY ("id")
);

CREATE TABLE "board_item" (
    "board_id" UUID NOT NULL,
    "generation_id" UUID NOT NULL,
    "account_id" UUID NOT NULL,
    "added_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "board_item_pkey" PRIMARY KEY ("board_id","generation_id")
);

CREATE INDEX "account_member_user_id_idx" ON "account_member"("user_id");
CREATE INDEX "credit_grant_account_id_created_at_idx" ON "credit_grant"("account_id", "created_at");
CREATE INDEX "generation_account_id_created_at_id_idx" ON "generation"("account_id", "created_at" DESC, "id" DESC);
CREATE UNIQUE INDEX "ledger_entry_account_id_sequence_key" ON "ledger_entry"("account_id", "sequence");
CREATE INDEX "ledger_entry_generation_id_idx" ON "ledger_entry"("generation_id");
CREATE INDEX "posting_account_id_transfer_id_idx" ON "posting"("account_id", "transfer_id");
CREATE INDEX "idempotency_record_expires_at_idx" ON "idempotency_record"("expires_at");
CREATE INDEX "board_account_id_idx" ON "board"("account_id");
CREATE INDEX "board_item_generation_id_idx" ON "board_item"("generation_id");

ALTER TABLE "account_member" ADD CONSTRAINT "account_member_account_id_fkey" FOREIGN KEY ("account_id") REFERENCES "account"("id") ON DELETE RESTRICT ON UPDATE CASCADE;
ALTER TABLE "credit_grant" ADD CONSTRAINT "credit_grant_account_id_fkey" FOREIGN KEY ("account_id") REFERENCES "account"("id") ON DELETE RESTRICT ON UPDATE CASCADE;
ALTER TABLE "generation" ADD CONSTRAINT "generation_account_id_fkey" FOREIGN KEY ("account_id") REFERENCES "account"("id") ON DELETE RESTRICT ON UPDATE CASCADE;
ALTER TABLE "generation_item" ADD CONSTRAINT "generation_item_generation_id_fkey" FOREIGN KEY ("generation_id") REFERENCES "generation"("id") ON DELETE RESTRICT ON UPDATE CASCADE;
ALTER TABLE "generation_draw" ADD CONSTRAINT "generation_draw_generation_id_fkey" FOREIGN KEY ("generation_id") REFERENCES "generation"("id") ON DELETE RESTRICT ON UPDATE CASCADE;
ALTER TABLE "ledger_entry" ADD CONSTRAINT "ledger_entry_account_id_fkey" FOREIGN KEY ("account_id") REFERENCES "account"("id") ON DELETE RESTRICT ON UPDATE CASCADE;
ALTER TABLE "ledger_entry" ADD CONSTRAINT "ledger_entry_generation_id_fkey" FOREIGN KEY ("generation_id") REFERENCES "generation"("id") ON DELETE SET NULL ON UPDATE CASCADE;
ALTER TABLE "board" ADD CONSTRAINT "board_account_id_fkey" FOREIGN KEY ("account_id") REFERENCES "account"("id") ON DELETE RESTRICT ON UPDATE CASCADE;
ALTER TABLE "board_item" ADD CONSTRAINT "board_item_board_id_fkey" FOREIGN KEY ("board_id") REFERENCES "board"("id") ON DELETE RESTRICT ON UPDATE CASCADE;
ALTER TABLE "board_item" ADD CONSTRAINT "board_item_generation_id_fkey" FOREIGN KEY ("generation_id") REFERENCES "generation"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- ---------------------------------------------------------------------------
-- Invariants held by the database (not expressible in schema.prisma).
-- ---------------------------------------------------------------------------

ALTER TABLE "account"
    ADD CONSTRAINT "account_amounts_nonnegative" CHECK ("available" >= 0 AND "held" >= 0 AND "subscription" >= 0 AND "wallet" >= 0),
    ADD CONSTRAINT "account_available_by_source" CHECK ("available" = "subscription" + "wallet"),
    ADD CONSTRAINT "account_sequence_nonnegative" CHECK ("sequence" >= 0),
    ADD CONSTRAINT "account_name_length" CHECK (char_length("name") BETWEEN 1 AND 200);

ALTER TABLE "credit_grant"
    ADD CONSTRAINT "credit_grant_amount_positive" CHECK ("amount" > 0),
    ADD CONSTRAINT "credit_grant_remaining_nonnegative" CHECK ("remaining" >= 0 AND "held" >= 0),
    ADD CONSTRAINT "credit_grant_within_amount" CHECK ("remaining" + "held" <= "amount"),
    ADD CONSTRAINT "credit_grant_expired_empty" CHECK ("expired_at" IS NULL OR "remaining" = 0);

ALTER TABLE "generation"
    ADD CONSTRAINT "generation_quantity_range" CHECK ("quantity" BETWEEN 1 AND 100),
    ADD CONSTRAINT "generation_unit_cost_positive" CHECK ("unit_cost" > 0),
    ADD CONSTRAINT "generation_reserved_is_quantity_times_unit" CHECK ("reserved" = "unit_cost" * "quantity"),
    ADD CONSTRAINT "generation_amounts_nonnegative" CHECK ("charged" >= 0 AND "refunded" >= 0 AND "released" >= 0 AND "support_refunded" >= 0),
    ADD CONSTRAINT "generation_outcomes_within_reserve" CHECK ("charged" + ("refunded" - "support_refunded") + "released" <= "reserved"),
    ADD CONSTRAINT "generation_support_within_charge" CHECK ("support_refunded" <= "charged" AND "support_refunded" <= "refunded"),
    ADD CONSTRAINT "generation_finished_when_final" CHECK (("status" = 'IN_PROGRESS') = ("finished_at" IS NULL));

ALTER TABLE "generation_item"
    ADD CONSTRAINT "generation_item_amounts" CHECK ("reserved" > 0 AND "charged" >= 0 AND "refunded" >= 0 AND "released" >= 0),
    ADD CONSTRAINT "generation_item_outcome" CHECK (
        ("status" = 'IN_PROGRESS' AND "charged" = 0 AND "refunded" = 0 AND "released" = 0 AND "finished_at" IS NULL)
        OR ("status" = 'SUCCEEDED' AND "refunded" = 0 AND "charged" + "released" = "reserved" AND "finished_at" IS NOT NULL)
        OR ("status" IN ('FAILED', 'TIMED_OUT', 'CANCELLED') AND "charged" = 0 AND "released" = 0 AND "refunded" = "reserved" AND "reason" IS NOT NULL AND "finished_at" IS NOT NULL));

ALTER TABLE "generation_draw"
    ADD CONSTRAINT "generation_draw_amounts" CHECK ("amount" > 0 AND "held" >= 0 AND "charged" >= 0 AND "returned" >= 0 AND "support_refunded" >= 0),
    ADD CONSTRAINT "generation_draw_balanced" CHECK ("held" + "charged" + "returned" = "amount"),
    ADD CONSTRAINT "generation_draw_support_within_charge" CHECK ("support_refunded" <= "charged");

ALTER TABLE "ledger_entry"
    ADD CONSTRAINT "ledger_entry_sequence_positive" CHECK ("sequence" >= 1),
    ADD CONSTRAINT "ledger_entry_amount_nonzero" CHECK ("amount" <> 0),
    ADD CONSTRAINT "ledger_entry_balance_moves_by_amount" CHECK ("balance_after" = "balance_before" + "amount"),
    ADD CONSTRAINT "ledger_entry_balance_nonnegative" CHECK ("balance_before" >= 0 AND "balance_after" >= 0),
    ADD CONSTRAINT "ledger_entry_sign_by_type" CHECK (
        ("type" IN ('GRANT', 'REFUND', 'RELEASE') AND "amount" > 0)
        OR ("type" IN ('USAGE', 'EXPIRY') AND "amount" < 0)
        OR "type" = 'ADJUSTMENT'),
    ADD CONSTRAINT "ledger_entry_refund_has_reason" CHECK (("type" = 'REFUND') = ("reason" IS NOT NULL));

ALTER TABLE "posting"
    ADD CONSTRAINT "posting_amount_nonzero" CHECK ("amount" <> 0);

ALTER TABLE "board"
    ADD CONSTRAINT "board_name_length" CHECK (char_length("name") BETWEEN 1 AND 200);

-- Entries and postings are append-only; a finished generation item never changes.
CREATE FUNCTION creditbook_forbid_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % is not allowed', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$;

CREATE TRIGGER "ledger_entry_append_only" BEFORE UPDATE OR DELETE ON "ledger_entry"
    FOR EACH ROW EXECUTE FUNCTION creditbook_forbid_change();
CREATE TRIGGER "posting_append_only" BEFORE UPDATE OR DELETE ON "posting"
    FOR EACH ROW EXECUTE FUNCTION creditbook_forbid_change();

CREATE FUNCTION creditbook_item_final() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD."status" <> 'IN_PROGRESS' THEN
        RAISE EXCEPTION 'generation item %/% already ended as %', OLD."generation_id", OLD."index", OLD."status"
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER "generation_item_ends_once" BEFORE UPDATE ON "generation_item"
    FOR EACH ROW EXECUTE FUNCTION creditbook_item_final();

-- Work queues for the reaper: only unfinished work is indexed.
CREATE INDEX "generation_open_deadline_idx" ON "generation"("deadline") WHERE "status" = 'IN_PROGRESS';
CREATE INDEX "credit_grant_open_expiry_idx" ON "credit_grant"("expires_at") WHERE "expired_at" IS NULL AND "expires_at" IS NOT NULL;
