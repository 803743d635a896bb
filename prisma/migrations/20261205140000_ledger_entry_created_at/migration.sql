-- balanceAt (SPEC §8.3) reads an account's last entry at or before an instant: one probe of this
-- index read backwards, however long the ledger is. Ties on created_at are broken by sequence.
CREATE INDEX "ledger_entry_account_id_created_at_sequence_idx" ON "ledger_entry"("account_id", "created_at", "sequence");
