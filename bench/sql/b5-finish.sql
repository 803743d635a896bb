-- B5: closes the history written by b5-history.sql: the account and grant
-- totals move by what the $3 succeeded generations were charged ($4 each),
-- the account's sequence becomes $5, and one balanced transfer carries the
-- postings of all the charges (GRANT_AVAILABLE −, REVENUE +). Holds and the
-- returns of failed generations net to zero per grant, so they need none.
WITH acc AS (
    UPDATE account
       SET available = available - $3::bigint * $4::bigint, wallet = wallet - $3::bigint * $4::bigint,
           sequence = $5::int, updated_at = now()
     WHERE id = $1::uuid
 RETURNING id
), gr AS (
    UPDATE credit_grant SET remaining = remaining - $3::bigint * $4::bigint WHERE id = $2::uuid
), t AS (
    SELECT gen_random_uuid() AS transfer_id
), p AS (
    INSERT INTO posting (account_id, transfer_id, book, grant_id, amount)
    SELECT $1::uuid, t.transfer_id, b.book, $2::uuid, b.sign * $3::bigint * $4::bigint
      FROM t, (VALUES ('GRANT_AVAILABLE'::"PostingBook", -1), ('REVENUE'::"PostingBook", 1)) AS b(book, sign)
)
SELECT count(*)::int AS accounts FROM acc;
