import type { BalanceSnapshot } from "../domain/balance.ts";
import {
  AlreadyFinalizedError,
  ForbiddenError,
  IdempotencyKeyReusedError,
  InsufficientCreditsError,
  NotFoundError,
  RefundExceedsChargeError,
} from "../domain/errors.ts";
import { BalanceRef } from "./balance.ts";
import { builder } from "./builder.ts";
import type { Context } from "./context.ts";
import { GenerationStatusEnum, ItemStatusEnum, RefundReasonEnum } from "./enums.ts";
import { inputId, localId } from "./ids.ts";
import { requireAdmin, requirePlatform, requireVisible, unwrap } from "./support.ts";
import { onVisibleAccount } from "./visibility.ts";

export const GenerationItemRef = builder.prismaObject("GenerationItem", {
  fields: (t) => ({
    index: t.exposeInt("index", { description: "Position of the item in its generation, from 0." }),
    status: t.expose("status", { type: ItemStatusEnum }),
    reserved: t.expose("reserved", { type: "Credits" }),
    charged: t.expose("charged", { type: "Credits" }),
    refunded: t.expose("refunded", { type: "Credits" }),
    reason: t.expose("reason", { type: RefundReasonEnum, nullable: true }),
    message: t.exposeString("message", { nullable: true }),
  }),
});

export const GenerationRef = builder.prismaNode("Generation", {
  id: { field: "id" },
  nullable: true,
  findUnique: (id, context) => ({ id, ...onVisibleAccount(context) }),
  fields: (t) => ({
    account: t.relation("account"),
    requestedBy: t.exposeString("requestedBy", { nullable: true }),
    feature: t.exposeString("feature"),
    model: t.exposeString("model", { nullable: true }),
    status: t.expose("status", { type: GenerationStatusEnum }),
    quantity: t.exposeInt("quantity"),
    unitCost: t.expose("unitCost", { type: "Credits" }),
    reserved: t.expose("reserved", { type: "Credits" }),
    charged: t.expose("charged", { type: "Credits", description: "Charged for delivered items." }),
    refunded: t.expose("refunded", {
      type: "Credits",
      description: "Refunds for failed items plus support refunds.",
    }),
    released: t.expose("released", {
      type: "Credits",
      description: "Surplus of reserves given back on success.",
    }),
    items: t.relation("items", { query: { orderBy: { index: "asc" } } }),
    failureReason: t.expose("failureReason", { type: RefundReasonEnum, nullable: true }),
    failureMessage: t.exposeString("failureMessage", { nullable: true }),
    deadline: t.expose("deadline", { type: "DateTime" }),
    createdAt: t.expose("createdAt", { type: "DateTime" }),
    finishedAt: t.expose("finishedAt", { type: "DateTime", nullable: true }),
  }),
});

builder.queryField("generation", (t) =>
  t.prismaField({
    type: GenerationRef,
    nullable: true,
    args: { id: t.arg.id({ required: true }) },
    resolve: async (query, _root, args, context) => {
      const id = localId(args.id, "Generation");
      if (id === null) return null;
      const generation = await context.prisma.generation.findUnique({ ...query, where: { id } });
      return generation !== null && (await context.access.canRead(generation.accountId)) ? generation : null;
    },
  }),
);

type GenerationPayload = { generationId: string; balance: BalanceSnapshot; replayed: boolean };

function generationPayload(name: string) {
  return builder.objectRef<GenerationPayload>(name).implement({
    fields: (t) => ({
      generation: t.prismaField({
        type: GenerationRef,
        resolve: (query, parent, _args, context) =>
          context.prisma.generation.findUniqueOrThrow({ ...query, where: { id: parent.generationId } }),
      }),
      balance: t.field({ type: BalanceRef, resolve: (parent) => parent.balance }),
      replayed: t.exposeBoolean("replayed"),
    }),
  });
}

const ReserveGenerationInput = builder.inputType("ReserveGenerationInput", {
  fields: (t) => ({
    idempotencyKey: t.string({ required: true }),
    accountId: t.id({ required: true }),
    requestedBy: t.string({ description: "The user who asked; they may cancel it." }),
    feature: t.string({
      required: true,
      description: 'What is generated, e.g. "Quick Video"; the ledger entry\'s title.',
    }),
    model: t.string(),
    unitCost: t.field({ type: "Credits", required: true }),
    quantity: t.int({ defaultValue: 1 }),
    timeoutSeconds: t.int({
      description: "Seconds until unfinished items time out and are refunded (default 9000, 150 minutes).",
    }),
    boardId: t.id(),
    metadata: t.field({ type: "JSON" }),
  }),
});

const ItemOutcomeInput = builder.inputType("ItemOutcomeInput", {
  fields: (t) => ({
    index: t.int({ required: true, description: "Item position, from 0." }),
    succeeded: t.boolean({ required: true }),
    cost: t.field({
      type: "Credits",
      description: "Cost of a delivered item; default and maximum its unit cost.",
    }),
    reason: t.field({ type: RefundReasonEnum, description: "Required when the item failed." }),
    message: t.string(),
  }),
});

const SettleGenerationInput = builder.inputType("SettleGenerationInput", {
  fields: (t) => ({
    idempotencyKey: t.string({ required: true }),
    generationId: t.id({ required: true }),
    items: t.field({
      type: [ItemOutcomeInput],
      description: "Per-item outcomes (at most 100); omitted: every item succeeded at its reserved cost.",
    }),
  }),
});

const RefundGenerationInput = builder.inputType("RefundGenerationInput", {
  fields: (t) => ({
    idempotencyKey: t.string({ required: true }),
    generationId: t.id({ required: true }),
    reason: t.field({ type: RefundReasonEnum, required: true }),
    message: t.string(),
  }),
});

const CancelGenerationInput = builder.inputType("CancelGenerationInput", {
  fields: (t) => ({
    idempotencyKey: t.string({ required: true }),
    generationId: t.id({ required: true }),
  }),
});

const SupportRefundInput = builder.inputType("SupportRefundInput", {
  fields: (t) => ({
    idempotencyKey: t.string({ required: true }),
    generationId: t.id({ required: true }),
    amount: t.field({ type: "Credits", required: true }),
    reason: t.field({ type: RefundReasonEnum, required: true }),
    note: t.string(),
  }),
});

const principalOf = (context: Context) => context.principal?.sub ?? "";

builder.mutationField("reserveGeneration", (t) =>
  t.field({
    type: generationPayload("ReserveGenerationSuccess"),
    args: { input: t.arg({ type: ReserveGenerationInput, required: true }) },
    errors: {
      types: [InsufficientCreditsError, IdempotencyKeyReusedError],
      union: { name: "ReserveGenerationResult" },
    },
    resolve: async (_root, { input }, context) => {
      requirePlatform(context, "reserveGeneration");
      const accountId = inputId("accountId", input.accountId, "Account");
      const boardId = input.boardId == null ? null : inputId("boardId", input.boardId, "Board");
      const { value, replayed, balance } = unwrap(
        await context.ledger.reserveGeneration(principalOf(context), { ...input, accountId, boardId }),
      );
      return { generationId: value.generationId, balance, replayed };
    },
  }),
);

builder.mutationField("settleGeneration", (t) =>
  t.field({
    type: generationPayload("SettleGenerationSuccess"),
    args: { input: t.arg({ type: SettleGenerationInput, required: true }) },
    errors: {
      types: [AlreadyFinalizedError, IdempotencyKeyReusedError],
      union: { name: "SettleGenerationResult" },
    },
    resolve: async (_root, { input }, context) => {
      requirePlatform(context, "settleGeneration");
      const generationId = inputId("generationId", input.generationId, "Generation");
      const { value, replayed, balance } = unwrap(
        await context.ledger.settleGeneration(principalOf(context), { ...input, generationId }),
      );
      return { generationId: value.generationId, balance, replayed };
    },
  }),
);

builder.mutationField("refundGeneration", (t) =>
  t.field({
    type: generationPayload("RefundGenerationSuccess"),
    args: { input: t.arg({ type: RefundGenerationInput, required: true }) },
    errors: {
      types: [AlreadyFinalizedError, IdempotencyKeyReusedError],
      union: { name: "RefundGenerationResult" },
    },
    resolve: async (_root, { input }, context) => {
      requirePlatform(context, "refundGeneration");
      const generationId = inputId("generationId", input.generationId, "Generation");
      const { value, replayed, balance } = unwrap(
        await context.ledger.refundGeneration(principalOf(context), { ...input, generationId }),
      );
      return { generationId: value.generationId, balance, replayed };
    },
  }),
);

builder.mutationField("cancelGeneration", (t) =>
  t.field({
    type: generationPayload("CancelGenerationSuccess"),
    args: { input: t.arg({ type: CancelGenerationInput, required: true }) },
    errors: {
      types: [AlreadyFinalizedError, IdempotencyKeyReusedError],
      union: { name: "CancelGenerationResult" },
    },
    resolve: async (_root, { input }, context) => {
      const generationId = inputId("generationId", input.generationId, "Generation");
      if (!context.access.isPlatform) {
        // A user may cancel what they requested; an account OWNER may cancel any of the account's.
        const owner = await context.ledger.generationOwner(generationId);
        if (owner === null) throw new NotFoundError("Generation");
        await requireVisible(context, owner.accountId, "Generation");
        const role = await context.access.memberRole(owner.accountId);
        if (owner.requestedBy !== context.principal?.sub && role !== "OWNER") {
          throw new ForbiddenError("Only the requester or an account owner may cancel this generation");
        }
      }
      const { value, replayed, balance } = unwrap(
        await context.ledger.cancelGeneration(principalOf(context), { ...input, generationId }),
      );
      return { generationId: value.generationId, balance, replayed };
    },
  }),
);

builder.mutationField("supportRefund", (t) =>
  t.field({
    type: generationPayload("SupportRefundSuccess"),
    args: { input: t.arg({ type: SupportRefundInput, required: true }) },
    errors: {
      types: [RefundExceedsChargeError, IdempotencyKeyReusedError],
      union: { name: "SupportRefundResult" },
    },
    resolve: async (_root, { input }, context) => {
      requireAdmin(context, "supportRefund");
      const generationId = inputId("generationId", input.generationId, "Generation");
      const { value, replayed, balance } = unwrap(
        await context.ledger.supportRefund(principalOf(context), { ...input, generationId }),
      );
      return { generationId: value.generationId, balance, replayed };
    },
  }),
);
