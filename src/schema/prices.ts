import type { PriceRow } from "../db/prices.ts";
import { InvalidInputError } from "../domain/errors.ts";
import { type Quote, quoteGeneration, setPrice } from "../domain/prices.ts";
import { builder } from "./builder.ts";
import { NOT_FOUND_ACCOUNT, resultDescription } from "./descriptions.ts";
import { historyArgumentError } from "./generation.ts";
import { localId } from "./ids.ts";
import { assertReadable, requireAdmin } from "./support.ts";

export const PriceRef = builder.prismaNode("Price", {
  description:
    "A unit cost on the rate card: what one item of a feature (on one model, or on any) costs when a reserve gives no unitCost.",
  id: { field: "id", description: "The price's global id." },
  nullable: true,
  findUnique: (id) => ({ id }),
  fields: (t) => ({
    feature: t.exposeString("feature", { description: "The feature it prices." }),
    model: t.exposeString("model", {
      nullable: true,
      description: "The model it prices; null: the feature's price on any model without its own.",
    }),
    unitCost: t.expose("unitCost", { type: "Credits", description: "Credits per item." }),
    effectiveFrom: t.expose("effectiveFrom", {
      type: "DateTime",
      description: "When it became the current price (reserves from then on pay it).",
    }),
  }),
});

builder.queryField("prices", (t) =>
  t.prismaField({
    type: [PriceRef],
    description:
      "The current prices, by feature and then model (a feature's own price before its models'); any authenticated role.",
    args: { feature: t.arg.string({ description: "Only this feature's prices." }) },
    resolve: (query, _root, args, context) =>
      context.prisma.price.findMany({
        ...query,
        where: { supersededAt: null, ...(args.feature == null ? {} : { feature: args.feature }) },
        orderBy: [{ feature: "asc" }, { model: { sort: "asc", nulls: "first" } }],
      }),
  }),
);

const SetPriceInput = builder.inputType("SetPriceInput", {
  description: "A price to make current; the price it replaces stays in the history.",
  fields: (t) => ({
    feature: t.string({ required: true, description: "The feature, 1 to 200 characters." }),
    model: t.string({
      description: "The model, 1 to 200 characters; omitted: the feature's price on any model.",
    }),
    unitCost: t.field({ type: "Credits", required: true, description: "Credits per item: positive." }),
  }),
});

const SetPriceSuccess = builder.objectRef<{ price: PriceRow }>("SetPriceSuccess").implement({
  description: "The price now current.",
  fields: (t) => ({
    price: t.field({ type: PriceRef, description: "The current price of the key.", resolve: (s) => s.price }),
  }),
});

builder.mutationField("setPrice", (t) =>
  t.field({
    type: SetPriceSuccess,
    description:
      "Makes a unit cost the current price of (feature, model) for reserves without unitCost; generations already reserved keep theirs (admin). Setting the price it already has changes nothing.",
    args: { input: t.arg({ type: SetPriceInput, required: true, description: "The price." }) },
    errors: { types: [], union: { name: "SetPriceResult", description: resultDescription("setPrice") } },
    resolve: async (_root, { input }, context) => {
      requireAdmin(context, "setPrice");
      const price = await setPrice(context.db, input, context.principal?.sub ?? "");
      if (price instanceof InvalidInputError) throw price;
      return { price };
    },
  }),
);

const QuoteRef = builder.objectRef<Quote>("Quote").implement({
  description:
    "What a reserve of this input would hold now, by the reserve's own rules. It holds nothing: a concurrent reserve may still take the credits first.",
  fields: (t) => ({
    unitCost: t.expose("unitCost", {
      type: "Credits",
      description: "Credits per item: the input's, else the rate card's.",
    }),
    total: t.expose("total", {
      type: "Credits",
      description: "unitCost × quantity: what the reserve would hold.",
    }),
    available: t.expose("available", {
      type: "Credits",
      description: "The account's credits that can be drawn now.",
    }),
    affordable: t.exposeBoolean("affordable", {
      description: "Whether the reserve would be taken now (the balance and the member's caps allow it).",
    }),
    shortfall: t.expose("shortfall", {
      type: "Credits",
      description: "max(0, total − min(available, capRemaining)): what is missing; 0 when affordable.",
    }),
    capRemaining: t.expose("capRemaining", {
      type: "Credits",
      nullable: true,
      description:
        "The least left of requestedBy's spend caps on the account; null without requestedBy or caps.",
    }),
  }),
});

builder.queryField("quoteGeneration", (t) =>
  t.field({
    type: QuoteRef,
    description:
      "The cost of a generation before it is started, and whether the account (and the member's caps) can take it; holds and writes nothing. Users quote on their own accounts.",
    args: {
      accountId: t.arg.id({ required: true, description: NOT_FOUND_ACCOUNT }),
      feature: t.arg.string({ required: true, description: "The feature, as reserveGeneration takes it." }),
      model: t.arg.string({ description: "The model; its price, else the feature's." }),
      quantity: t.arg.int({ defaultValue: 1, description: "Number of items, 1 to 100." }),
      unitCost: t.arg({ type: "Credits", description: "Credits per item; omitted: the rate card's price." }),
      requestedBy: t.arg.string({ description: "The member it would be for: their spend caps count." }),
    },
    resolve: async (_root, args, context) => {
      const accountId = await assertReadable(context, localId(args.accountId, "Account"));
      const quote = await quoteGeneration(context.db, { ...args, accountId });
      if (quote instanceof InvalidInputError) throw historyArgumentError(quote);
      if (!("total" in quote)) throw quote;
      return quote;
    },
  }),
);
