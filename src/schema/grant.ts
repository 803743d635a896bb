import type { BalanceSnapshot } from "../domain/balance.ts";
import { IdempotencyKeyReusedError } from "../domain/errors.ts";
import { BalanceRef } from "./balance.ts";
import { builder } from "./builder.ts";
import { GrantSourceEnum } from "./enums.ts";
import { inputId } from "./ids.ts";
import { requirePlatform, unwrap } from "./support.ts";
import { onVisibleAccount } from "./visibility.ts";

export const GrantRef = builder.prismaNode("Grant", {
  id: { field: "id" },
  nullable: true,
  findUnique: (id, context) => ({ id, ...onVisibleAccount(context) }),
  fields: (t) => ({
    source: t.expose("source", { type: GrantSourceEnum }),
    amount: t.expose("amount", { type: "Credits" }),
    remaining: t.expose("remaining", {
      type: "Credits",
      description: "Credits of this grant available now.",
    }),
    held: t.expose("held", {
      type: "Credits",
      description: "Credits of this grant held by generations in progress.",
    }),
    expiresAt: t.expose("expiresAt", { type: "DateTime", nullable: true }),
    reference: t.exposeString("reference", { nullable: true }),
    createdAt: t.expose("createdAt", { type: "DateTime" }),
  }),
});

builder.prismaObjectField("Account", "grants", (t) =>
  t.relation("grants", {
    args: { includeExpired: t.arg.boolean({ defaultValue: false }) },
    query: (args) => ({
      where: args.includeExpired ? {} : { expiredAt: null },
      orderBy: [{ createdAt: "asc" }, { id: "asc" }],
    }),
  }),
);

const GrantCreditsInput = builder.inputType("GrantCreditsInput", {
  fields: (t) => ({
    idempotencyKey: t.string({ required: true }),
    accountId: t.id({ required: true }),
    source: t.field({ type: GrantSourceEnum, required: true }),
    amount: t.field({ type: "Credits", required: true }),
    expiresAt: t.field({ type: "DateTime" }),
    reference: t.string(),
    title: t.string({
      description: 'Shown as the GRANT entry\'s title; default "Credit purchase" or "Subscription credits".',
    }),
  }),
});

const GrantCreditsSuccess = builder
  .objectRef<{ grantId: string; balance: BalanceSnapshot; replayed: boolean }>("GrantCreditsSuccess")
  .implement({
    fields: (t) => ({
      grant: t.prismaField({
        type: GrantRef,
        resolve: (query, parent, _args, context) =>
          context.prisma.grant.findUniqueOrThrow({ ...query, where: { id: parent.grantId } }),
      }),
      balance: t.field({ type: BalanceRef, resolve: (parent) => parent.balance }),
      replayed: t.exposeBoolean("replayed"),
    }),
  });

builder.mutationField("grantCredits", (t) =>
  t.field({
    type: GrantCreditsSuccess,
    args: { input: t.arg({ type: GrantCreditsInput, required: true }) },
    errors: { types: [IdempotencyKeyReusedError], union: { name: "GrantCreditsResult" } },
    resolve: async (_root, { input }, context) => {
      requirePlatform(context, "grantCredits");
      const accountId = inputId("accountId", input.accountId, "Account");
      const { value, replayed, balance } = unwrap(
        await context.ledger.grantCredits(context.principal?.sub ?? "", { ...input, accountId }),
      );
      return { grantId: value.grantId, balance, replayed };
    },
  }),
);
