-- Who caused each entry (SPEC §8.3 LedgerEntry.actor): a token's sub, "apikey:<id>", or "system".
-- Entries written before this migration were not attributed: they read "system". The default only
-- fills those rows (a constant default rewrites nothing); it is dropped at once, so a write path
-- that forgot the actor fails instead of being attributed to the system.
ALTER TABLE "ledger_entry" ADD COLUMN "actor" TEXT NOT NULL DEFAULT 'system';
ALTER TABLE "ledger_entry" ALTER COLUMN "actor" DROP DEFAULT;
