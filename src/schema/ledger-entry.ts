import type { BalanceSnapshot } from "../domain/balance.ts";
import { IdempotencyKeyReusedError, InsufficientCreditsError } from "../domain/errors.ts";
import { entryStatusOf, type GenerationStatus } from "../domain/model.ts";
import { BalanceRef } from "./balance.ts";
import { builder } from "./builder.ts";
import { EntryStatusEnum, LedgerEntryTypeEnum, RefundReasonEnum } from "./enums.ts";
import { GenerationRef } from "./generation.ts";
import { inputId } from "./ids.ts";
import { requireAdmin, unwrap } from "./support.ts";
import { onVisibleAccount } from "./visibility.ts";

export const LedgerEntryRef = builder.prismaNode("LedgerEntry", {
  id: { field: "id" },
  nullable: true,
  findUnique: (id, context) => ({ id, ...onVisibleAccount(context) }),
  fields: (t) => ({
    sequence: t.exposeInt("sequence"),
    type: t.expose("type", { type: LedgerEntryTypeEnum }),
    amount: t.expose("amount", {
      type: "Credits",
      description: "Signed: + adds to the balance, − takes from it.",
    }),
    status: t.field({
      type: EntryStatusEnum,
      description:
        "USAGE: PENDING while items run, COMPLETED when charged, FAILED when refunded; others COMPLETED.",
      // Live events carry their generation's status; pages load them in one batch.
      resolve: async (entry, _args, context) => {
        if (entry.type !== "USAGE" || entry.generationId === null) return "COMPLETED";
        const known = (entry as { generationStatus?: GenerationStatus }).generationStatus;
        return entryStatusOf(
          entry.type,
          known ?? (await context.loaders.generationStatus.load(entry.generationId)),
        );
      },
    }),
    title: t.exposeString("title"),
    balanceBefore: t.expose("balanceBefore", { type: "Credits" }),
    balanceAfter: t.expose("balanceAfter", { type: "Credits" }),
    reason: t.expose("reason", { type: RefundReasonEnum, nullable: true }),
    message: t.exposeString("message", { nullable: true }),
    generation: t.relation("generation", { nullable: true, type: GenerationRef }),
    createdAt: t.expose("createdAt", { type: "DateTime" }),
  }),
});

builder.prismaObjectField("Generation", "ledgerEntries", (t) =>
  t.relation("entries", { query: { orderBy: { sequence: "asc" } } }),
);

const AdjustBalanceInput = builder.inputType("AdjustBalanceInput", {
  fields: (t) => ({
    idempotencyKey: t.string({ required: true }),
    accountId: t.id({ required: true }),
    amount: t.field({
      type: "Credits",
      required: true,
      description: "Signed; may not drive available below 0.",
    }),
    note: t.string({ required: true }),
  }),
});

const AdjustBalanceSuccess = builder
  .objectRef<{ entryId: string; balance: BalanceSnapshot; replayed: boolean }>("AdjustBalanceSuccess")
  .implement({
    fields: (t) => ({
      entry: t.prismaField({
        type: LedgerEntryRef,
        resolve: (query, parent, _args, context) =>
          context.prisma.ledgerEntry.findUniqueOrThrow({ ...query, where: { id: parent.entryId } }),
      }),
      balance: t.field({ type: BalanceRef, resolve: (parent) => parent.balance }),
      replayed: t.exposeBoolean("replayed"),
    }),
  });

builder.mutationField("adjustBalance", (t) =>
  t.field({
    type: AdjustBalanceSuccess,
    args: { input: t.arg({ type: AdjustBalanceInput, required: true }) },
    errors: {
      types: [InsufficientCreditsError, IdempotencyKeyReusedError],
      union: { name: "AdjustBalanceResult" },
    },
    resolve: async (_root, { input }, context) => {
      requireAdmin(context, "adjustBalance");
      const accountId = inputId("accountId", input.accountId, "Account");
      const { value, replayed, balance } = unwrap(
        await context.ledger.adjustBalance(context.principal?.sub ?? "", { ...input, accountId }),
      );
      return { entryId: value.entryId, balance, replayed };
    },
  }),
);
