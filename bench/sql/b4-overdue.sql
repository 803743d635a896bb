-- B4: $3 in-progress generations on each of the $2 accounts of prefix $1
-- (seeded by seed-accounts.sql, untouched since: sequence 1, one WALLET
-- grant), each one item of $4 credits, exactly as reserveGeneration leaves
-- them: generation, item, draw, USAGE entry (gapless sequences 2..$3+1 with
-- balance before/after), the hold's two postings, and the account and grant
-- totals moved by the hold. Deadlines start a day ahead; the bench moves them
-- into the past at the instant it starts the clock.
WITH g AS (
    SELECT ($1::text || '-0000-4000-8000-' || lpad(a::text, 12, '0'))::uuid AS account_id,
           ($1::text || '-0000-4000-9000-' || lpad(a::text, 12, '0'))::uuid AS grant_id,
           k,
           gen_random_uuid() AS generation_id,
           gen_random_uuid() AS transfer_id,
           now() - interval '1 hour' + k * interval '1 millisecond' AS created_at
      FROM generate_series(1, $2::int) AS a, generate_series(1, $3::int) AS k
), acc AS (
    UPDATE account x
       SET available = x.available - $3::bigint * $4::bigint, wallet = x.wallet - $3::bigint * $4::bigint,
           held = x.held + $3::bigint * $4::bigint, sequence = x.sequence + $3::int, updated_at = now()
     WHERE x.id IN (SELECT DISTINCT account_id FROM g)
 RETURNING x.id, x.available + $3::bigint * $4::bigint AS available_before, x.sequence - $3::int AS sequence_before
), gr AS (
    UPDATE credit_grant c
       SET remaining = c.remaining - $3::bigint * $4::bigint, held = c.held + $3::bigint * $4::bigint
     WHERE c.id IN (SELECT DISTINCT grant_id FROM g)
), gen AS (
    INSERT INTO generation (id, account_id, requested_by, feature, quantity, unit_cost, reserved, deadline, created_at)
    SELECT generation_id, account_id, 'bench', 'Bench reaper', 1, $4::bigint, $4::bigint,
           now() + interval '1 day', created_at
      FROM g
), item AS (
    INSERT INTO generation_item (generation_id, index, account_id, reserved)
    SELECT generation_id, 0, account_id, $4::bigint FROM g
), draw AS (
    INSERT INTO generation_draw (generation_id, draw_index, account_id, grant_id, amount, held)
    SELECT generation_id, 0, account_id, grant_id, $4::bigint, $4::bigint FROM g
), entry AS (
    INSERT INTO ledger_entry (id, account_id, sequence, type, amount, balance_before, balance_after, title,
                              generation_id, transfer_id, created_at, actor)
    SELECT gen_random_uuid(), g.account_id, acc.sequence_before + g.k, 'USAGE', -$4::bigint,
           acc.available_before - $4::bigint * (g.k - 1), acc.available_before - $4::bigint * g.k,
           'Bench reaper', g.generation_id, g.transfer_id, g.created_at, 'system'
      FROM g JOIN acc ON acc.id = g.account_id
), post AS (
    INSERT INTO posting (account_id, transfer_id, book, grant_id, generation_id, amount, created_at)
    SELECT g.account_id, g.transfer_id, b.book, g.grant_id, g.generation_id, b.sign * $4::bigint, g.created_at
      FROM g, (VALUES ('GRANT_AVAILABLE'::"PostingBook", -1), ('GRANT_HELD'::"PostingBook", 1)) AS b(book, sign)
)
SELECT count(*)::int AS generations FROM g;
