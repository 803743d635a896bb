import type { SpendingScope } from "../db/analytics.ts";
import { InvalidInputError } from "../domain/errors.ts";
import {
  parseSpendingRange,
  type SpendingFigures,
  type SpendingSummary,
  spendingSummary,
} from "../domain/history.ts";
import { builder } from "./builder.ts";
import { NOT_FOUND_ACCOUNT } from "./descriptions.ts";
import { historyArgumentError } from "./generation.ts";
import { localId } from "./ids.ts";
import { assertReadable } from "./support.ts";

/**
 * What an account spent over a period, from its generations (SPEC §4
 * SpendingSummary). Unlike a board's cost it counts everything, including
 * generations no longer on any board.
 */
export const FeatureSpendingRef = builder
  .objectRef<SpendingFigures & { readonly feature: string }>("FeatureSpending")
  .implement({
    description: "The spending figures of the generations of one feature.",
    fields: (t) => ({
      feature: t.exposeString("feature", { description: 'The feature, e.g. "Quick Video".' }),
      charged: t.expose("charged", { type: "Credits", description: "Σ charged for delivered items." }),
      refunded: t.expose("refunded", {
        type: "Credits",
        description: "Σ refunded: failed items plus support refunds.",
      }),
      net: t.expose("net", { type: "Credits", description: "charged − support refunds: what was paid." }),
      generations: t.exposeInt("generations", { description: "Generations of this feature in the period." }),
      failedGenerations: t.exposeInt("failedGenerations", {
        description: "Generations that ended FAILED, TIMED_OUT or CANCELLED.",
      }),
    }),
  });

/** A summary with the scope it was computed over, so its breakdown reads the same generations. */
type ScopedSpendingSummary = SpendingSummary & { readonly scope: SpendingScope };

export const SpendingSummaryRef = builder.objectRef<ScopedSpendingSummary>("SpendingSummary").implement({
  description:
    "Over the generations created in [from, to): failed runs add to generations and failedGenerations, never to charged or net.",
  fields: (t) => ({
    charged: t.expose("charged", {
      type: "Credits",
      description: "Σ Generation.charged: delivered items only.",
    }),
    refunded: t.expose("refunded", {
      type: "Credits",
      description: "Σ Generation.refunded: refunds of failed items plus support refunds.",
    }),
    net: t.expose("net", {
      type: "Credits",
      description: "charged − support refunds: what was actually paid.",
    }),
    generations: t.exposeInt("generations", { description: "Every generation created in the period." }),
    failedGenerations: t.exposeInt("failedGenerations", {
      description: "Generations that ended FAILED, TIMED_OUT or CANCELLED.",
    }),
    byFeature: t.field({
      type: [FeatureSpendingRef],
      description: "The same figures per feature, the largest charge first.",
      resolve: (summary) => summary.byFeature,
    }),
  }),
});

builder.queryField("spending", (t) =>
  t.field({
    type: SpendingSummaryRef,
    description: "What an account's generations created in [from, to) cost; an omitted bound is open.",
    args: {
      accountId: t.arg.id({ required: true, description: NOT_FOUND_ACCOUNT }),
      from: t.arg({ type: "DateTime", description: "Generations created at or after this instant." }),
      to: t.arg({ type: "DateTime", description: "Generations created before this instant (exclusive)." }),
    },
    resolve: async (_root, args, context) => {
      const range = parseSpendingRange(args.from, args.to);
      if (range instanceof InvalidInputError) throw historyArgumentError(range);
      const accountId = await assertReadable(context, localId(args.accountId, "Account"));
      const summary = await spendingSummary(context.db, accountId, range.from, range.to);
      return { ...summary, scope: { accountId, ...range } };
    },
  }),
);
