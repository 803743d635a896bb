-- Creates $2 PERSONAL accounts, each with one WALLET grant of $3 credits, exactly
-- as `grantCredits` leaves them: the grant, its GRANT entry (sequence 1) and a
-- balanced transfer (GRANT_AVAILABLE +amount, ISSUED −amount). Ids are
-- deterministic so pgbench scripts can compute them from a number:
--   account  <$1>-0000-4000-8000-<n, 12 digits>
--   grant    <$1>-0000-4000-9000-<n, 12 digits>
-- $1: eight hex digits naming the phase; $2: count; $3: credits per account;
-- $4: account name prefix.
WITH n AS (
    SELECT i,
           ($1::text || '-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid AS account_id,
           ($1::text || '-0000-4000-9000-' || lpad(i::text, 12, '0'))::uuid AS grant_id,
           gen_random_uuid() AS transfer_id
      FROM generate_series(1, $2::int) AS i
), a AS (
    INSERT INTO account (id, kind, name, available, held, subscription, wallet, sequence)
    SELECT account_id, 'PERSONAL', $4::text || ' ' || i, $3::bigint, 0, 0, $3::bigint, 1 FROM n
), m AS (
    INSERT INTO account_member (account_id, user_id, role)
    SELECT account_id, 'bench-owner-' || $1::text || '-' || i, 'OWNER' FROM n
), g AS (
    INSERT INTO credit_grant (id, account_id, source, amount, remaining, held)
    SELECT grant_id, account_id, 'WALLET', $3::bigint, $3::bigint, 0 FROM n
), e AS (
    INSERT INTO ledger_entry (id, account_id, sequence, type, amount, balance_before, balance_after, title,
                              grant_id, transfer_id, actor)
    SELECT gen_random_uuid(), account_id, 1, 'GRANT', $3::bigint, 0, $3::bigint, 'Credit purchase',
           grant_id, transfer_id, 'system'
      FROM n
), p AS (
    INSERT INTO posting (account_id, transfer_id, book, grant_id, amount)
    SELECT n.account_id, n.transfer_id, b.book, n.grant_id, b.sign * $3::bigint
      FROM n, (VALUES ('GRANT_AVAILABLE'::"PostingBook", 1), ('ISSUED'::"PostingBook", -1)) AS b(book, sign)
)
SELECT count(*)::int AS accounts FROM n;
