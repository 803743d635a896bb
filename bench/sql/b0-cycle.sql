-- B0: one reserve + settle cycle at its best, for pgbench (-M prepared).
-- Each operation is ONE statement (one round trip, one transaction under
-- autocommit) doing the same rows as src/domain/reserve.ts and settle.ts
-- (through book.ts / store.ts flush) for a one-item generation paid from one
-- WALLET grant. Accounts come from seed-accounts.sql with prefix b0000000.
--
-- Variables (pgbench -D): base (first account number - 1), accounts (how
-- many to pick from), cost (unit cost).
\set n :base + random(1, :accounts)

-- Reserve: lock the account row by updating it with the available >= cost
-- guard; everything else joins the updated row, so a failed guard writes
-- nothing. Writes what flush() writes for a reserve: account, grant,
-- generation, item, draw, USAGE entry (next sequence, balance before/after),
-- the two postings of the hold and the idempotency record.
WITH k AS (
    SELECT ('b0000000-0000-4000-8000-' || lpad(:n::text, 12, '0'))::uuid AS account_id,
           ('b0000000-0000-4000-9000-' || lpad(:n::text, 12, '0'))::uuid AS grant_id,
           :cost::bigint AS cost,
           gen_random_uuid() AS generation_id,
           gen_random_uuid() AS transfer_id,
           now() AS at
), acc AS (
    UPDATE account a
       SET available = a.available - k.cost, wallet = a.wallet - k.cost, held = a.held + k.cost,
           sequence = a.sequence + 1, updated_at = k.at
      FROM k
     WHERE a.id = k.account_id AND a.available >= k.cost AND a.wallet >= k.cost
 RETURNING a.id, a.sequence, a.available
), gr AS (
    UPDATE credit_grant g
       SET remaining = g.remaining - k.cost, held = g.held + k.cost
      FROM k, acc
     WHERE g.id = k.grant_id AND g.account_id = acc.id
), gen AS (
    INSERT INTO generation (id, account_id, requested_by, feature, model, quantity, unit_cost, reserved,
                            deadline, created_at)
    SELECT k.generation_id, acc.id, 'bench', 'Bench', NULL, 1, k.cost, k.cost,
           k.at + interval '9000 seconds', k.at
      FROM k, acc
), item AS (
    INSERT INTO generation_item (generation_id, index, account_id, reserved)
    SELECT k.generation_id, 0, acc.id, k.cost FROM k, acc
), draw AS (
    INSERT INTO generation_draw (generation_id, draw_index, account_id, grant_id, amount, held)
    SELECT k.generation_id, 0, acc.id, k.grant_id, k.cost, k.cost FROM k, acc
), entry AS (
    INSERT INTO ledger_entry (id, account_id, sequence, type, amount, balance_before, balance_after, title,
                              generation_id, transfer_id, created_at, actor)
    SELECT gen_random_uuid(), acc.id, acc.sequence, 'USAGE', -k.cost, acc.available + k.cost, acc.available,
           'Bench', k.generation_id, k.transfer_id, k.at, 'system'
      FROM k, acc
), post AS (
    INSERT INTO posting (account_id, transfer_id, book, grant_id, generation_id, amount, created_at)
    SELECT acc.id, k.transfer_id, b.book, k.grant_id, k.generation_id, b.sign * k.cost, k.at
      FROM k, acc,
           (VALUES ('GRANT_AVAILABLE'::"PostingBook", -1), ('GRANT_HELD'::"PostingBook", 1)) AS b(book, sign)
), idem AS (
    INSERT INTO idempotency_record (principal, operation, key, request_hash, account_id, result, created_at,
                                    expires_at)
    SELECT 'bench', 'reserveGeneration', k.generation_id::text,
           encode(sha256(convert_to(acc.id::text || '|Bench|' || k.cost, 'UTF8')), 'hex'), acc.id,
           jsonb_build_object('generationId', k.generation_id), k.at, k.at + interval '24 hours'
      FROM k, acc
)
SELECT k.generation_id AS gen FROM k, acc
\gset

-- Settle (every item succeeded at its reserved cost): the account row first
-- (the same lock order as the domain), guarded on the generation being in
-- progress; then generation, item, draw and grant, the two postings of the
-- charge and the idempotency record. No entry: a charge at the reserved cost
-- does not move `available` (the USAGE entry already did), as in settle.ts.
WITH k AS (
    SELECT :gen::uuid AS generation_id,
           ('b0000000-0000-4000-8000-' || lpad(:n::text, 12, '0'))::uuid AS account_id,
           ('b0000000-0000-4000-9000-' || lpad(:n::text, 12, '0'))::uuid AS grant_id,
           :cost::bigint AS cost,
           gen_random_uuid() AS transfer_id,
           now() AS at
), acc AS (
    UPDATE account a
       SET held = a.held - k.cost, updated_at = k.at
      FROM k
     WHERE a.id = k.account_id
       AND EXISTS (SELECT 1 FROM generation g
                    WHERE g.id = k.generation_id AND g.account_id = k.account_id AND g.status = 'IN_PROGRESS')
 RETURNING a.id
), gen AS (
    UPDATE generation g
       SET charged = g.charged + k.cost, status = 'SUCCEEDED', finished_at = k.at
      FROM k, acc
     WHERE g.id = k.generation_id AND g.account_id = acc.id
 RETURNING g.id
), item AS (
    UPDATE generation_item i
       SET status = 'SUCCEEDED', charged = k.cost, released = 0, finished_at = k.at
      FROM k, gen
     WHERE i.generation_id = gen.id AND i.index = 0
), draw AS (
    UPDATE generation_draw d
       SET held = d.held - k.cost, charged = d.charged + k.cost
      FROM k, gen
     WHERE d.generation_id = gen.id AND d.draw_index = 0
), gr AS (
    UPDATE credit_grant g
       SET held = g.held - k.cost
      FROM k, gen
     WHERE g.id = k.grant_id
), post AS (
    INSERT INTO posting (account_id, transfer_id, book, grant_id, generation_id, amount, created_at)
    SELECT k.account_id, k.transfer_id, b.book, k.grant_id, gen.id, b.sign * k.cost, k.at
      FROM k, gen,
           (VALUES ('GRANT_HELD'::"PostingBook", -1), ('REVENUE'::"PostingBook", 1)) AS b(book, sign)
), idem AS (
    INSERT INTO idempotency_record (principal, operation, key, request_hash, account_id, result, created_at,
                                    expires_at)
    SELECT 'bench', 'settleGeneration', 'settle:' || gen.id::text,
           encode(sha256(convert_to(gen.id::text, 'UTF8')), 'hex'), k.account_id,
           jsonb_build_object('generationId', gen.id), k.at, k.at + interval '24 hours'
      FROM k, gen
)
SELECT count(*) AS settled FROM gen;
