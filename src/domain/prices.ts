/**
 * The rate card and quotes (SPEC §8.1). A reserve without a unit cost pays the
 * current price of (feature, model), else of (feature, no model); the
 * generation keeps the unit cost it was reserved at. A quote answers what a
 * reserve would decide, by the same rule (`checkHold`), and holds nothing.
 */
import type { Database, Sql } from "../db/database.ts";
import { currentUnitCost, type PriceRow, readHoldState, replacePrice } from "../db/prices.ts";
import { readSpendCaps } from "../db/spend-caps.ts";
import { CREDITS_MAX, type Credits, minCredits } from "./credits.ts";
import { InvalidInputError, NotFoundError } from "./errors.ts";
import { checkHold } from "./reserve.ts";
import { leastRemaining, periodStart } from "./spend-caps.ts";
import { QUANTITY_MAX, validate } from "./validate.ts";

/** The unit cost a reserve takes: its own, else the rate card's; an error when neither exists. */
export async function pricedUnitCost(
  sql: Sql,
  feature: string,
  model: string | null,
  unitCost: Credits | null,
): Promise<Credits | InvalidInputError> {
  if (unitCost !== null) return unitCost;
  const price = await currentUnitCost(sql, feature, model);
  if (price !== null) return price;
  const key =
    model === null
      ? `feature ${JSON.stringify(feature)}`
      : `feature ${JSON.stringify(feature)} (model ${JSON.stringify(model)}, or no model)`;
  return new InvalidInputError("unitCost", `is required: the rate card has no price for ${key}`);
}

/** The hold `unitCost × quantity`, refused past 2^53 − 1 credits (an amount the API reports). */
export function holdAmount(unitCost: Credits, quantity: number): Credits | InvalidInputError {
  const total = unitCost * BigInt(quantity);
  if (total > CREDITS_MAX) {
    return new InvalidInputError(
      "unitCost",
      `× quantity (${quantity}) must be at most 2^53 − 1 credits, got ${total}`,
    );
  }
  return total;
}

export interface QuoteRequest {
  readonly accountId: string;
  readonly feature: string;
  readonly model?: string | null;
  readonly quantity?: number | null;
  readonly unitCost?: Credits | number | null;
  readonly requestedBy?: string | null;
}

/** SPEC `Quote`: shortfall = max(0, total − min(available, capRemaining)). */
export interface Quote {
  readonly unitCost: Credits;
  readonly total: Credits;
  readonly available: Credits;
  readonly affordable: boolean;
  readonly shortfall: Credits;
  readonly capRemaining: Credits | null;
}

/**
 * What a reserve of this input would hold now, and whether it would be
 * taken: reads the account without locking it, so a concurrent reserve may
 * still take the credits first. Writes nothing.
 */
export async function quoteGeneration(
  sql: Sql,
  request: QuoteRequest,
  now = new Date(),
): Promise<Quote | InvalidInputError | NotFoundError> {
  const checked = validate((c) => ({
    feature: c.requiredText("feature", request.feature),
    model: c.optionalText("model", request.model),
    quantity: c.integer("quantity", request.quantity ?? 1, 1, QUANTITY_MAX),
    unitCost: request.unitCost == null ? null : c.positiveCredits("unitCost", request.unitCost),
    requestedBy: c.optionalText("requestedBy", request.requestedBy),
  }));
  if (checked instanceof InvalidInputError) return checked;
  const unitCost = await pricedUnitCost(sql, checked.feature, checked.model, checked.unitCost);
  if (unitCost instanceof InvalidInputError) return unitCost;
  const total = holdAmount(unitCost, checked.quantity);
  if (total instanceof InvalidInputError) return total;
  const [hold, caps] = await Promise.all([
    readHoldState(sql, request.accountId, now),
    checked.requestedBy === null
      ? []
      : readSpendCaps(sql, request.accountId, checked.requestedBy, {
          day: periodStart("DAY", now),
          month: periodStart("MONTH", now),
        }),
  ]);
  if (hold === null) return new NotFoundError("Account");
  const refused = checkHold({ ...hold, caps }, total, now);
  if (refused instanceof InvalidInputError) return refused;
  const capRemaining = leastRemaining(caps);
  const coverable = capRemaining === null ? hold.available : minCredits(hold.available, capRemaining);
  return {
    unitCost,
    total,
    available: hold.available,
    affordable: refused === null,
    shortfall: total > coverable ? total - coverable : 0n,
    capRemaining,
  };
}

/** Sets the current price of (feature, model), keeping the old one in the history (admin). */
export async function setPrice(
  db: Database,
  input: { feature: string; model?: string | null; unitCost: Credits | number },
  setBy: string,
): Promise<PriceRow | InvalidInputError> {
  const checked = validate((c) => ({
    feature: c.requiredText("feature", input.feature),
    model: input.model == null ? null : c.requiredText("model", input.model),
    unitCost: c.positiveCredits("unitCost", input.unitCost),
  }));
  if (checked instanceof InvalidInputError) return checked;
  return replacePrice(db, { ...checked, setBy });
}
