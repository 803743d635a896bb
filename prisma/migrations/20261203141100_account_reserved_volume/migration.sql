-- An account's reserved volume: the credits its generations ever reserved.
-- Every generation's charged, refunded (failed items plus support refunds)
-- and released are at most its reserved, so this bounds every sum the API
-- reports over an account's generations (spending and its per-feature
-- figures, net, a board's cost), however often credits were granted again
-- after being charged or reserved again after a refund. Kept at most
-- 2^53 − 1, the largest Credits value a client can receive exactly; the
-- ledger refuses a reserve that would pass it (src/domain/reserve.ts) and
-- this CHECK is the last line of defence. Written with the account row the
-- ledger already updates in every transaction: no extra statement.

-- AlterTable
ALTER TABLE "account" ADD COLUMN     "reserved_volume" BIGINT NOT NULL DEFAULT 0;

-- The volume of the generations already there. An account already past the bound is set to
-- the bound (LEAST): it can reserve nothing more, which is the rule, while its other operations
-- (settles, grants, which write the same row) keep working.
UPDATE "account" a SET "reserved_volume" = LEAST(g.volume, 9007199254740991)
  FROM (SELECT "account_id", sum("reserved") AS volume FROM "generation" GROUP BY "account_id") g
 WHERE g."account_id" = a."id";

ALTER TABLE "account"
    ADD CONSTRAINT "account_reserved_volume_range" CHECK ("reserved_volume" BETWEEN 0 AND 9007199254740991);
