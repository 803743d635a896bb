import {
  balanceAt,
  type HistoricalBalance,
  type OperatorReport,
  operatorReport,
  type ReasonCount,
  type SpendingDimension,
  type SpendingGroup,
  spendingBreakdown,
} from "../db/analytics.ts";
import { InvalidInputError } from "../domain/errors.ts";
import { parseSpendingRange } from "../domain/history.ts";
import { UUID } from "../domain/uuid.ts";
import { builder } from "./builder.ts";
import { NOT_FOUND_ACCOUNT } from "./descriptions.ts";
import { RefundReasonEnum } from "./enums.ts";
import { historyArgumentError } from "./generation.ts";
import { globalId, localId } from "./ids.ts";
import { SpendingSummaryRef } from "./spending.ts";
import { assertReadable } from "./support.ts";

/** Analytics (SPEC §8.3): spending breakdowns, the balance at an instant, the operator's report. */

export const SpendingDimensionEnum = builder.enumType("SpendingDimension", {
  description: "What `SpendingSummary.breakdown` groups generations by.",
  values: {
    FEATURE: { description: "The generation's feature." },
    MODEL: { description: "The generation's model; key null for generations without one." },
    MEMBER: { description: "Who requested it (`requestedBy`); key null when not recorded." },
    API_KEY: {
      description:
        "The API key whose request reserved it (the USAGE entry's actor \"apikey:<id>\"); key = the ApiKey's id as `apiKeys` lists it; null for other callers.",
    },
    DAY: { description: 'The UTC calendar date it was created on, e.g. "2026-12-03"; oldest first.' },
  } as const,
});

export const SpendingGroupRef = builder.objectRef<SpendingGroup>("SpendingGroup").implement({
  description:
    "The spending figures of one group of generations, defined as in SpendingSummary: the groups of a breakdown add up to the summary.",
  fields: (t) => ({
    key: t.exposeString("key", {
      nullable: true,
      description: "The group's value of the dimension; null when the generations have none.",
    }),
    charged: t.expose("charged", { type: "Credits", description: "Σ charged for delivered items." }),
    refunded: t.expose("refunded", {
      type: "Credits",
      description: "Σ refunded: failed items plus support refunds.",
    }),
    net: t.expose("net", { type: "Credits", description: "charged − support refunds: what was paid." }),
    generations: t.exposeInt("generations", { description: "Generations of the group in the period." }),
    failedGenerations: t.exposeInt("failedGenerations", {
      description: "Generations that ended FAILED, TIMED_OUT or CANCELLED.",
    }),
  }),
});

builder.objectField(SpendingSummaryRef, "breakdown", (t) =>
  t.field({
    type: [SpendingGroupRef],
    description:
      "The summary's generations grouped by a dimension, the largest charge first (DAY: oldest first); the groups add up to the summary.",
    args: {
      by: t.arg({ type: SpendingDimensionEnum, required: true, description: "What to group by." }),
    },
    resolve: async (summary, { by }, context) => {
      const groups = await spendingBreakdown(context.db, summary.scope, by satisfies SpendingDimension);
      if (by !== "API_KEY") return groups;
      // An API key is named as the API names it (ApiKey.id), so a group matches an entry of `apiKeys`.
      return groups.map((group) =>
        group.key !== null && UUID.test(group.key) ? { ...group, key: globalId("ApiKey", group.key) } : group,
      );
    },
  }),
);

const HistoricalBalanceRef = builder.objectRef<HistoricalBalance>("HistoricalBalance").implement({
  description: "An account's available balance as it was at an instant, read from its ledger.",
  fields: (t) => ({
    accountId: t.id({
      description: "The account's global id.",
      resolve: (balance) => globalId("Account", balance.accountId),
    }),
    at: t.expose("at", { type: "DateTime", description: "The instant asked for." }),
    balance: t.expose("balance", {
      type: "Credits",
      description: "balanceAfter of the last entry created at or before `at`; 0 before the first entry.",
    }),
    sequence: t.exposeInt("sequence", {
      description: "The sequence of that entry; 0 before the first entry.",
    }),
  }),
});

builder.queryField("balanceAt", (t) =>
  t.field({
    type: HistoricalBalanceRef,
    description:
      "An account's available balance at an instant: balanceAfter of its last entry created at or before `at` (latest createdAt, ties by sequence).",
    args: {
      accountId: t.arg.id({ required: true, description: NOT_FOUND_ACCOUNT }),
      at: t.arg({ type: "DateTime", required: true, description: "The instant." }),
    },
    resolve: async (_root, args, context) => {
      const accountId = await assertReadable(context, localId(args.accountId, "Account"));
      return balanceAt(context.db, accountId, args.at);
    },
  }),
);

const ReasonCountRef = builder.objectRef<ReasonCount>("ReasonCount").implement({
  description: "The refunds of one reason in the operator's report.",
  fields: (t) => ({
    reason: t.expose("reason", { type: RefundReasonEnum, description: "The REFUND entries' reason." }),
    generations: t.exposeInt("generations", {
      description: "Generations of the period with at least one refund of this reason.",
    }),
    refunded: t.expose("refunded", { type: "Credits", description: "Σ of those refunds." }),
  }),
});

const OperatorReportRef = builder.objectRef<OperatorReport>("OperatorReport").implement({
  description: "Every account's generations created in [from, to), for the platform's operators.",
  fields: (t) => ({
    generations: t.exposeInt("generations", { description: "Every generation created in the period." }),
    failedGenerations: t.exposeInt("failedGenerations", {
      description: "Generations that ended FAILED, TIMED_OUT or CANCELLED.",
    }),
    refundRate: t.exposeFloat("refundRate", {
      description: "failedGenerations / generations; 0 when there are none.",
    }),
    byReason: t.expose("byReason", {
      type: [ReasonCountRef],
      description: "Refunds by reason, the most refunded first.",
    }),
    byFeature: t.expose("byFeature", {
      type: [SpendingGroupRef],
      description: "The figures per feature, the largest charge first.",
    }),
    byModel: t.expose("byModel", {
      type: [SpendingGroupRef],
      description: "The figures per model (key null: no model), the largest charge first.",
    }),
    overdueInProgress: t.exposeInt("overdueInProgress", {
      description: "Generations still IN_PROGRESS past their deadline (the reaper has not reached them yet).",
    }),
  }),
});

builder.queryField("operatorReport", (t) =>
  t.field({
    type: OperatorReportRef,
    description: "Generations, failures and refunds across all accounts (admin); an omitted bound is open.",
    authScopes: { admin: true },
    args: {
      from: t.arg({ type: "DateTime", description: "Generations created at or after this instant." }),
      to: t.arg({ type: "DateTime", description: "Generations created before this instant (exclusive)." }),
    },
    resolve: async (_root, args, context) => {
      const range = parseSpendingRange(args.from, args.to);
      if (range instanceof InvalidInputError) throw historyArgumentError(range);
      return operatorReport(context.db, range.from, range.to);
    },
  }),
);
