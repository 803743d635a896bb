import { lexicographicSortSchema } from "graphql";
import { builder } from "./builder.ts";
import "./scalars.ts";
import "./enums.ts";
import "./balance.ts";
import "./account.ts";
import "./viewer.ts";
import "./grant.ts";
import "./generation.ts";
import "./bulk.ts";
import "./ledger-entry.ts";
import "./board.ts";
import "./spending.ts";
import "./analytics.ts";
import "./prices.ts";
import "./spend-caps.ts";
import "./errors.ts";
import "./audit.ts";
import "./webhook.ts";
import "./alerts.ts";
import "./api-key.ts";
import "./subscriptions.ts";

/** The executable schema. */
export const schema = builder.toSchema({ sortSchema: false });

/** The schema as committed in schema.graphql (sorted, so diffs stay readable). */
export function printableSchema() {
  return lexicographicSortSchema(schema);
}
