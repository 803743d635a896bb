-- B5: generations $3..$4 of a long history on account $1 (grant $2), as the
-- domain would have left them: generation k (one item of $5 credits) writes a
-- USAGE entry; every fifth one failed and also has a REFUND entry (reason
-- PROVIDER_ERROR); the others succeeded (charged, nothing released).
-- Sequences and balances follow from k alone, so chunks are independent:
--   USAGE of k has sequence 1 + k + (k−1)/5 (sequence 1 is the seed GRANT),
--   available before it = $6 − $5 × (generations succeeded before k).
-- Entries are one second apart, the last ($7 = final sequence) now.
-- Postings are written once for the whole history by b5-finish.sql.
WITH g AS (
    SELECT k,
           gen_random_uuid() AS generation_id,
           gen_random_uuid() AS transfer_id,
           gen_random_uuid() AS refund_transfer_id,
           (k % 5 = 0) AS failed,
           1 + k + (k - 1) / 5 AS usage_sequence,
           $6::bigint - $5::bigint * ((k - 1) - (k - 1) / 5) AS before
      FROM generate_series($3::int, $4::int) AS k
), t AS (
    SELECT g.*, now() - ($7::int - usage_sequence) * interval '1 second' AS created_at FROM g
), gen AS (
    INSERT INTO generation (id, account_id, requested_by, feature, quantity, unit_cost, reserved, charged, refunded,
                            status, failure_reason, failure_message, deadline, created_at, finished_at)
    SELECT generation_id, $1::uuid, 'bench', 'Bench history', 1, $5::bigint, $5::bigint,
           CASE WHEN failed THEN 0 ELSE $5::bigint END, CASE WHEN failed THEN $5::bigint ELSE 0 END,
           CASE WHEN failed THEN 'FAILED'::"GenerationStatus" ELSE 'SUCCEEDED'::"GenerationStatus" END,
           CASE WHEN failed THEN 'PROVIDER_ERROR'::"RefundReason" END, CASE WHEN failed THEN 'bench' END,
           created_at + interval '9000 seconds', created_at, created_at + interval '500 milliseconds'
      FROM t
), item AS (
    INSERT INTO generation_item (generation_id, index, account_id, status, reserved, charged, refunded, reason,
                                 message, finished_at)
    SELECT generation_id, 0, $1::uuid,
           CASE WHEN failed THEN 'FAILED'::"ItemStatus" ELSE 'SUCCEEDED'::"ItemStatus" END, $5::bigint,
           CASE WHEN failed THEN 0 ELSE $5::bigint END, CASE WHEN failed THEN $5::bigint ELSE 0 END,
           CASE WHEN failed THEN 'PROVIDER_ERROR'::"RefundReason" END, CASE WHEN failed THEN 'bench' END,
           created_at + interval '500 milliseconds'
      FROM t
), draw AS (
    INSERT INTO generation_draw (generation_id, draw_index, account_id, grant_id, amount, held, charged, returned)
    SELECT generation_id, 0, $1::uuid, $2::uuid, $5::bigint, 0,
           CASE WHEN failed THEN 0 ELSE $5::bigint END, CASE WHEN failed THEN $5::bigint ELSE 0 END
      FROM t
), usage AS (
    INSERT INTO ledger_entry (id, account_id, sequence, type, amount, balance_before, balance_after, title,
                              generation_id, transfer_id, created_at, actor)
    SELECT gen_random_uuid(), $1::uuid, usage_sequence, 'USAGE', -$5::bigint, before, before - $5::bigint,
           'Bench history', generation_id, transfer_id, created_at, 'system'
      FROM t
), refund AS (
    INSERT INTO ledger_entry (id, account_id, sequence, type, amount, balance_before, balance_after, title, reason,
                              message, generation_id, transfer_id, created_at, actor)
    SELECT gen_random_uuid(), $1::uuid, usage_sequence + 1, 'REFUND', $5::bigint, before - $5::bigint, before,
           'Bench history', 'PROVIDER_ERROR', 'bench', generation_id, refund_transfer_id,
           created_at + interval '500 milliseconds', 'system'
      FROM t WHERE failed
)
SELECT count(*)::int AS generations FROM t;
