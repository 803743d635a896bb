-- The rate card (SPEC §8.1): the unit cost of a feature, or of a feature on one
-- model. A price is never updated in place: setting a new one marks the current
-- row superseded and inserts the next, so the history stays. At most one current
-- price per (feature, model), a NULL model being its own key (the feature's
-- fallback price).

-- CreateTable
CREATE TABLE "price" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "feature" TEXT NOT NULL,
    "model" TEXT,
    "unit_cost" BIGINT NOT NULL,
    "effective_from" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "superseded_at" TIMESTAMPTZ(3),
    "set_by" TEXT NOT NULL,

    CONSTRAINT "price_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "price_unit_cost_range" CHECK ("unit_cost" BETWEEN 1 AND 9007199254740991),
    CONSTRAINT "price_superseded_after_effective" CHECK ("superseded_at" IS NULL OR "superseded_at" >= "effective_from")
);

-- The current price of each key: the reserve's lookup, and the guard against two current rows.
CREATE UNIQUE INDEX "price_current" ON "price" ("feature", (coalesce("model", ''))) WHERE "superseded_at" IS NULL;

-- A key's history, newest first.
CREATE INDEX "price_feature_model_effective_from_idx" ON "price" ("feature", "model", "effective_from" DESC);
