import { queryFromInfo } from "@pothos/plugin-prisma";
import { GraphQLError } from "graphql";
import { assert } from "../domain/assert.ts";
import type { BalanceSnapshot } from "../domain/balance.ts";
import {
  AlreadyFinalizedError,
  ForbiddenError,
  IdempotencyKeyReusedError,
  InsufficientCreditsError,
  InvalidInputError,
  NotFoundError,
  RefundExceedsChargeError,
} from "../domain/errors.ts";
import {
  generationCursor,
  generationPage,
  PAGE_SIZE_DEFAULT,
  PAGE_SIZE_MAX,
  parseGenerationQuery,
} from "../domain/history.ts";
import type { GenerationState } from "../domain/model.ts";
import { BalanceRef } from "./balance.ts";
import { builder } from "./builder.ts";
import { holdsSelection } from "./committed.ts";
import type { Context } from "./context.ts";
import { GenerationStatusEnum, ItemStatusEnum, RefundReasonEnum } from "./enums.ts";
import { inputId, localId } from "./ids.ts";
import { readAccountPage, requireAdmin, requirePlatform, requireVisible, unwrap } from "./support.ts";
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

type GenerationPayload = {
  generationId: string;
  balance: BalanceSnapshot;
  replayed: boolean;
  /** The generation as its transaction committed it, when this request changed it. */
  generation?: GenerationState | undefined;
};

function generationPayload(name: string) {
  return builder.objectRef<GenerationPayload>(name).implement({
    fields: (t) => ({
      generation: t.prismaField({
        type: GenerationRef,
        // The committed state is in hand: no read back, unless the selection asks for more than it
        // holds (the board, the account, ledger entries): then the query runs as on a replay.
        resolve: (query, parent, _args, context) =>
          parent.generation !== undefined && holdsSelection(query, parent.generation)
            ? (parent.generation as unknown as Awaited<
                ReturnType<typeof context.prisma.generation.findUniqueOrThrow>
              >)
            : context.prisma.generation.findUniqueOrThrow({ ...query, where: { id: parent.generationId } }),
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
      const { value, replayed, balance, generation } = unwrap(
        await context.ledger.reserveGeneration(principalOf(context), { ...input, accountId, boardId }),
      );
      return { generationId: value.generationId, balance, replayed, generation };
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
      const { value, replayed, balance, generation } = unwrap(
        await context.ledger.settleGeneration(principalOf(context), { ...input, generationId }),
      );
      return { generationId: value.generationId, balance, replayed, generation };
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
      const { value, replayed, balance, generation } = unwrap(
        await context.ledger.refundGeneration(principalOf(context), { ...input, generationId }),
      );
      return { generationId: value.generationId, balance, replayed, generation };
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
      const { value, replayed, balance, generation } = unwrap(
        await context.ledger.cancelGeneration(principalOf(context), { ...input, generationId }),
      );
      return { generationId: value.generationId, balance, replayed, generation };
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
      const { value, replayed, balance, generation } = unwrap(
        await context.ledger.supportRefund(principalOf(context), { ...input, generationId }),
      );
      return { generationId: value.generationId, balance, replayed, generation };
    },
  }),
);

// ---------------------------------------------------------------------------
// History: an account's generations, newest first.
// ---------------------------------------------------------------------------

/**
 * A rejected argument of a history query (`ledger`, `generations`,
 * `spending`). Those fields return no result union, so a bad argument is a
 * GraphQL error with code BAD_USER_INPUT that names the argument.
 */
export function historyArgumentError(error: InvalidInputError): GraphQLError {
  return new GraphQLError(error.message, {
    extensions: { code: "BAD_USER_INPUT", argument: error.field },
  });
}

/**
 * The Relay pageInfo of a page read forwards. `hasPreviousPage` is true after
 * a cursor: the entry the cursor points at came before this page.
 */
export function forwardPageInfo(cursors: readonly string[], hasNextPage: boolean, afterCursor: boolean) {
  return {
    hasNextPage,
    hasPreviousPage: afterCursor,
    startCursor: cursors[0] ?? null,
    endCursor: cursors.at(-1) ?? null,
  };
}

const GenerationFilterInput = builder.inputType("GenerationFilter", {
  description: "Narrows `generations`; every condition given must hold.",
  fields: (t) => ({
    statuses: t.field({
      type: [GenerationStatusEnum],
      description: "Only generations in one of these statuses (at least one).",
    }),
    feature: t.string({ description: 'Only generations of this feature, e.g. "Quick Video".' }),
    from: t.field({ type: "DateTime", description: "Only generations created at or after this instant." }),
    to: t.field({
      type: "DateTime",
      description: "Only generations created before this instant (exclusive).",
    }),
  }),
});

const GenerationConnection = builder.connectionObject(
  { type: GenerationRef, name: "GenerationConnection", edgesNullable: { list: false, items: false } },
  { name: "GenerationEdge" },
);

builder.queryField("generations", (t) =>
  t.field({
    type: GenerationConnection,
    description:
      "An account's generations, newest first, with per-item outcomes and what each was charged, refunded and released.",
    args: {
      accountId: t.arg.id({ required: true }),
      filter: t.arg({ type: GenerationFilterInput }),
      first: t.arg.int({ description: `Page size, 1 to ${PAGE_SIZE_MAX} (default ${PAGE_SIZE_DEFAULT}).` }),
      after: t.arg.string({ description: "The endCursor of the previous page." }),
    },
    resolve: async (_root, args, context, info) => {
      const query = parseGenerationQuery(args, args.filter);
      if (query instanceof InvalidInputError) throw historyArgumentError(query);
      const page = await readAccountPage(context, localId(args.accountId, "Account"), (accountId) =>
        generationPage(context.db, accountId, query),
      );
      // The page's order comes from the keyset statement; Prisma then loads
      // the rows with whatever the client selected under edges.node (items, ...).
      const generations = await context.prisma.generation.findMany({
        ...queryFromInfo({ context, info, path: ["edges", "node"] }),
        where: { id: { in: page.rows.map((row) => row.id) } },
      });
      const byId = new Map(generations.map((generation) => [generation.id, generation]));
      const edges = page.rows.map((row) => {
        const node = byId.get(row.id);
        assert(node !== undefined, `generation ${row.id} of a page can be loaded`);
        return { cursor: generationCursor(row), node };
      });
      return {
        edges,
        pageInfo: forwardPageInfo(
          edges.map((edge) => edge.cursor),
          page.hasNextPage,
          query.before !== null,
        ),
      };
    },
  }),
);
