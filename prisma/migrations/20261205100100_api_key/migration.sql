-- API keys (SPEC §8.6): `Authorization: Bearer cb_…` acts as the service role, limited to one
-- account when account_id is set. Only a keyed SHA-256 of the secret is stored (HMAC-SHA256 with
-- the server's pepper, see src/domain/api-keys.ts): a copy of this table lets no one sign in.
CREATE TABLE "api_key" (
    "id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "prefix" TEXT NOT NULL,
    "hash" BYTEA NOT NULL,
    "account_id" UUID,
    "rate_limit_per_second" INTEGER,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "last_used_at" TIMESTAMPTZ(3),
    "revoked_at" TIMESTAMPTZ(3),

    CONSTRAINT "api_key_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "api_key_hash_is_sha256" CHECK (octet_length("hash") = 32),
    CONSTRAINT "api_key_rate_limit_positive" CHECK ("rate_limit_per_second" IS NULL OR "rate_limit_per_second" >= 1)
);

CREATE UNIQUE INDEX "api_key_hash_key" ON "api_key"("hash");

ALTER TABLE "api_key" ADD CONSTRAINT "api_key_account_id_fkey" FOREIGN KEY ("account_id") REFERENCES "account"("id") ON DELETE RESTRICT ON UPDATE CASCADE;
