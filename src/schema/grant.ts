import type { BalanceSnapshot } from "../domain/balance.ts";
import { IdempotencyKeyReusedError } from "../domain/errors.ts";
import { BalanceRef } from "./balance.ts";
import { builder } from "./builder.ts";
import { BALANCE_AFTER, IDEMPOTENCY_KEY, REPLAYED, resultDescription } from "./descriptions.ts";
import { GrantSourceEnum } from "./enums.ts";
import { inputId } from "./ids.ts";
import { requirePlatform, requireVisible, unwrap } from "./support.ts";
import { onVisibleAccount } from "./visibility.ts";

export const GrantRef = builder.prismaNode("Grant", {
  description:
    "A bucket of an account's credits. Reserves draw SUBSCRIPTION grants first (soonest expiry first), then WALLET grants (oldest first); refunds return credits to the grant they came from.",
  id: { field: "id", description: "The grant's global id." },
  nullable: true,
  findUnique: (id, context) => ({ id, ...onVisibleAccount(context) }),
  fields: (t) => ({
    source: t.expose("source", { type: GrantSourceEnum, description: "SUBSCRIPTION or WALLET." }),
    amount: t.expose("amount", { type: "Credits", description: "Credits the grant started with." }),
    remaining: t.expose("remaining", {
      type: "Credits",
      description: "Credits of this grant available now (0 once it has expired).",
    }),
    held: t.expose("held", {
      type: "Credits",
      description: "Credits of this grant held by generations in progress.",
    }),
    expiresAt: t.expose("expiresAt", {
      type: "DateTime",
      nullable: true,
      description:
        "When the unheld remainder expires (written off by an EXPIRY entry within 5 seconds); null: never.",
    }),
    reference: t.exposeString("reference", {
      nullable: true,
      description: "The platform's own reference (an order or invoice id), as given to grantCredits.",
    }),
    createdAt: t.expose("createdAt", { type: "DateTime", description: "When the grant was made." }),
  }),
});

builder.prismaObjectField("Account", "grants", (t) =>
  t.relation("grants", {
    description: "The account's grants, oldest first.",
    args: {
      includeExpired: t.arg.boolean({
        defaultValue: false,
        description: "Also list grants that have expired (their remaining is 0).",
      }),
    },
    query: (args) => ({
      where: args.includeExpired ? {} : { expiredAt: null },
      orderBy: [{ createdAt: "asc" }, { id: "asc" }],
    }),
  }),
);

const GrantCreditsInput = builder.inputType("GrantCreditsInput", {
  description: "Credits to add to an account as a new grant.",
  fields: (t) => ({
    idempotencyKey: t.string({ required: true, description: IDEMPOTENCY_KEY }),
    accountId: t.id({ required: true, description: "The account's global id." }),
    source: t.field({
      type: GrantSourceEnum,
      required: true,
      description: "SUBSCRIPTION (a period's quota, usually with expiresAt) or WALLET.",
    }),
    amount: t.field({
      type: "Credits",
      required: true,
      description: "Credits to add: positive; the account's total may not pass 2^53 − 1.",
    }),
    expiresAt: t.field({
      type: "DateTime",
      description: "When the unspent remainder expires: in the future. Omitted: never.",
    }),
    reference: t.string({ description: "The platform's own reference, at most 200 characters." }),
    title: t.string({
      description:
        'Shown as the GRANT entry\'s title, at most 200 characters; default "Credit purchase" (WALLET) or "Subscription credits" (SUBSCRIPTION).',
    }),
  }),
});

const GrantCreditsSuccess = builder
  .objectRef<{ grantId: string; balance: BalanceSnapshot; replayed: boolean }>("GrantCreditsSuccess")
  .implement({
    description: "The grant was made and its GRANT entry written.",
    fields: (t) => ({
      grant: t.prismaField({
        type: GrantRef,
        description: "The grant made.",
        resolve: (query, parent, _args, context) =>
          context.prisma.grant.findUniqueOrThrow({ ...query, where: { id: parent.grantId } }),
      }),
      balance: t.field({ type: BalanceRef, description: BALANCE_AFTER, resolve: (parent) => parent.balance }),
      replayed: t.exposeBoolean("replayed", { description: REPLAYED }),
    }),
  });

builder.mutationField("grantCredits", (t) =>
  t.field({
    type: GrantCreditsSuccess,
    description: "Adds credits to an account as a SUBSCRIPTION or WALLET grant (service, admin).",
    args: { input: t.arg({ type: GrantCreditsInput, required: true, description: "The grant to make." }) },
    errors: {
      types: [IdempotencyKeyReusedError],
      union: { name: "GrantCreditsResult", description: resultDescription("grantCredits") },
    },
    resolve: async (_root, { input }, context) => {
      requirePlatform(context, "grantCredits");
      const accountId = inputId("accountId", input.accountId, "Account");
      if (context.access.accountScope !== null) await requireVisible(context, accountId);
      const { value, replayed, balance } = unwrap(
        await context.ledger.grantCredits(context.principal?.sub ?? "", { ...input, accountId }),
      );
      return { grantId: value.grantId, balance, replayed };
    },
  }),
);
