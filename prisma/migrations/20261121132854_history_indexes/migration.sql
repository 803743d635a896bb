-- Indexes for the history queries (src/domain/history.ts), so a page is an
-- index scan that reads about one page of rows however long the history is:
--   generation (account_id, status, created_at, id): generations filtered by
--     status, and ledger entries filtered by derived status (PENDING/FAILED
--     come from the generation's status);
--   generation (account_id, feature, created_at, id): generations filtered by
--     feature, and ledger entries of one feature;
--   ledger_entry (account_id, type, sequence): the ledger filtered by type
--     ("show me my refunds"), one ordered scan per type;
--   ledger_entry (account_id, title, sequence) WHERE generation_id IS NOT NULL:
--     the ledger filtered by feature. Entries of a generation carry its
--     feature as their title (SPEC §2), so one feature's entries are one
--     ordered range, however rare the feature. Partial (only generation
--     entries), which schema.prisma cannot express, like the reaper's indexes.
-- Not CONCURRENTLY: migrations run in a transaction, where that is not
-- allowed. On a large live database create them CONCURRENTLY by hand first
-- (same names); IF NOT EXISTS then makes this migration a no-op.

-- CreateIndex
CREATE INDEX IF NOT EXISTS "generation_account_id_status_created_at_id_idx" ON "generation"("account_id", "status", "created_at" DESC, "id" DESC);

-- CreateIndex
CREATE INDEX IF NOT EXISTS "generation_account_id_feature_created_at_id_idx" ON "generation"("account_id", "feature", "created_at" DESC, "id" DESC);

-- CreateIndex
CREATE INDEX IF NOT EXISTS "ledger_entry_account_id_type_sequence_idx" ON "ledger_entry"("account_id", "type", "sequence");

-- CreateIndex (partial; see above)
CREATE INDEX IF NOT EXISTS "ledger_entry_account_id_title_sequence_idx" ON "ledger_entry"("account_id", "title", "sequence") WHERE "generation_id" IS NOT NULL;
