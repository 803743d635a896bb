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
import { SpendCapExceededError } from "../domain/spend-caps.ts";
import { BalanceRef } from "./balance.ts";
import { builder } from "./builder.ts";
import { holdsSelection } from "./committed.ts";
import type { Context } from "./context.ts";
import {
  BALANCE_AFTER,
  IDEMPOTENCY_KEY,
  NOT_FOUND_ACCOUNT,
  REPLAYED,
  resultDescription,
  successDescription,
} from "./descriptions.ts";
import { GenerationStatusEnum, ItemStatusEnum, RefundReasonEnum } from "./enums.ts";
import { inputId, localId } from "./ids.ts";
import {
  readAccountPage,
  requireAdmin,
  requireGenerationInScope,
  requirePlatform,
  requireVisible,
  unwrap,
} from "./support.ts";
import { onVisibleAccount } from "./visibility.ts";

export const GenerationItemRef = builder.prismaObject("GenerationItem", {
  description:
    "One item of a generation (one image of a batch, one shot of a video). It ends exactly once: charged when delivered, refunded in full otherwise.",
  fields: (t) => ({
    index: t.exposeInt("index", { description: "Position of the item in its generation, from 0." }),
    status: t.expose("status", { type: ItemStatusEnum, description: "Where the item stands." }),
    reserved: t.expose("reserved", { type: "Credits", description: "Credits held for it: the unit cost." }),
    charged: t.expose("charged", {
      type: "Credits",
      description: "Credits charged: its cost once delivered (at most `reserved`), else 0.",
    }),
    refunded: t.expose("refunded", {
      type: "Credits",
      description: "Credits refunded: `reserved` once it failed, timed out or was cancelled, else 0.",
    }),
    reason: t.expose("reason", {
      type: RefundReasonEnum,
      nullable: true,
      description: "Why it was refunded; null unless it FAILED, TIMED_OUT or was CANCELLED.",
    }),
    message: t.exposeString("message", {
      nullable: true,
      description: "The failure's message as the platform reported it; null when none was given.",
    }),
  }),
});

export const GenerationRef = builder.prismaNode("Generation", {
  description:
    "One billable request: `quantity` items of a `feature` at `unitCost` each. Its credits are held at reserve; each item is then charged when delivered or refunded in full when it fails, times out or is cancelled.",
  id: { field: "id", description: "The generation's global id." },
  nullable: true,
  findUnique: (id, context) => ({ id, ...onVisibleAccount(context) }),
  fields: (t) => ({
    account: t.relation("account", { description: "The account it is billed to." }),
    requestedBy: t.exposeString("requestedBy", {
      nullable: true,
      description: "The user (token `sub`) who asked for it, who may cancel it; null when not given.",
    }),
    feature: t.exposeString("feature", {
      description:
        'What is generated, e.g. "Quick Video"; the title of its USAGE, REFUND and RELEASE entries.',
    }),
    model: t.exposeString("model", { nullable: true, description: "The model used; null when not given." }),
    status: t.expose("status", {
      type: GenerationStatusEnum,
      description: "IN_PROGRESS until every item has ended, then what the items' outcomes add up to.",
    }),
    quantity: t.exposeInt("quantity", { description: "Number of items, 1 to 100." }),
    unitCost: t.expose("unitCost", { type: "Credits", description: "Credits reserved per item." }),
    reserved: t.expose("reserved", {
      type: "Credits",
      description: "Credits held at reserve: unitCost × quantity.",
    }),
    charged: t.expose("charged", { type: "Credits", description: "Charged for delivered items." }),
    refunded: t.expose("refunded", {
      type: "Credits",
      description: "Refunds for failed items plus support refunds.",
    }),
    released: t.expose("released", {
      type: "Credits",
      description: "Surplus of reserves given back on success.",
    }),
    items: t.relation("items", { description: "Its items, by index.", query: { orderBy: { index: "asc" } } }),
    failureReason: t.expose("failureReason", {
      type: RefundReasonEnum,
      nullable: true,
      description: "The refund reason of its first failed item; null while no item has failed.",
    }),
    failureMessage: t.exposeString("failureMessage", {
      nullable: true,
      description: "The message that came with `failureReason`; null when none.",
    }),
    deadline: t.expose("deadline", {
      type: "DateTime",
      description:
        "When unfinished items time out: the reaper refunds them within 5 seconds after (reason TIMEOUT).",
    }),
    createdAt: t.expose("createdAt", { type: "DateTime", description: "When it was reserved." }),
    finishedAt: t.expose("finishedAt", {
      type: "DateTime",
      nullable: true,
      description: "When its last item ended; null while IN_PROGRESS.",
    }),
  }),
});

builder.queryField("generation", (t) =>
  t.prismaField({
    type: GenerationRef,
    nullable: true,
    description:
      "A generation by id; null when it does not exist or is on an account the caller is not a member of.",
    args: { id: t.arg.id({ required: true, description: "The generation's global id." }) },
    resolve: async (query, _root, args, context) => {
      const id = localId(args.id, "Generation");
      if (id === null) return null;
      const generation = await context.prisma.generation.findUnique({ ...query, where: { id } });
      return generation !== null && (await context.access.canRead(generation.accountId)) ? generation : null;
    },
  }),
);

export type GenerationPayload = {
  generationId: string;
  balance: BalanceSnapshot;
  replayed: boolean;
  /** The generation as its transaction committed it, when this request changed it. */
  generation?: GenerationState | undefined;
};

function generationPayload(name: string) {
  return builder.objectRef<GenerationPayload>(name).implement({
    description: successDescription(name),
    fields: (t) => ({
      generation: t.prismaField({
        type: GenerationRef,
        description: "The generation as this change left it.",
        // The committed state is in hand: no read back, unless the selection asks for more than it
        // holds (the board, the account, ledger entries): then the query runs as on a replay.
        resolve: (query, parent, _args, context) =>
          parent.generation !== undefined && holdsSelection(query, parent.generation)
            ? (parent.generation as unknown as Awaited<
                ReturnType<typeof context.prisma.generation.findUniqueOrThrow>
              >)
            : context.prisma.generation.findUniqueOrThrow({ ...query, where: { id: parent.generationId } }),
      }),
      balance: t.field({ type: BalanceRef, description: BALANCE_AFTER, resolve: (parent) => parent.balance }),
      replayed: t.exposeBoolean("replayed", { description: REPLAYED }),
    }),
  });
}

export const ReserveGenerationInput = builder.inputType("ReserveGenerationInput", {
  description: "A generation to start: its credits are held at once, or nothing is written.",
  fields: (t) => ({
    idempotencyKey: t.string({ required: true, description: IDEMPOTENCY_KEY }),
    accountId: t.id({ required: true, description: "The account to bill (a global id)." }),
    requestedBy: t.string({
      description: "The user (token `sub`) who asked; they may cancel it. At most 200 characters.",
    }),
    feature: t.string({
      required: true,
      description: 'What is generated, e.g. "Quick Video"; the ledger entry\'s title. 1 to 200 characters.',
    }),
    model: t.string({ description: "The model used, at most 200 characters." }),
    unitCost: t.field({
      type: "Credits",
      description:
        "Credits per item: positive; the most a delivered item can be charged. Omitted: the rate card's current price of (feature, model), else of the feature (see `prices`); the generation keeps it.",
    }),
    quantity: t.int({ defaultValue: 1, description: "Number of items, 1 to 100, each billed on its own." }),
    timeoutSeconds: t.int({
      description:
        "Seconds until unfinished items time out and are refunded: 1 to 86400 (default 9000, 150 minutes).",
    }),
    boardId: t.id({ description: "A board of the same account to put the generation on (a global id)." }),
    metadata: t.field({
      type: "JSON",
      description: "Anything the platform wants kept with it, at most 8 KB of JSON.",
    }),
  }),
});

const ItemOutcomeInput = builder.inputType("ItemOutcomeInput", {
  description:
    "How one item ended. Its first outcome wins: the same again is a no-op, another one AlreadyFinalizedError.",
  fields: (t) => ({
    index: t.int({ required: true, description: "Item position, from 0 to quantity − 1." }),
    succeeded: t.boolean({
      required: true,
      description: "True: delivered, charged `cost`. False: failed, refunded in full (needs `reason`).",
    }),
    cost: t.field({
      type: "Credits",
      description: "Cost of a delivered item; default and maximum its unit cost.",
    }),
    reason: t.field({
      type: RefundReasonEnum,
      description: "Required when the item failed; refused when it succeeded.",
    }),
    message: t.string({
      description: "What went wrong, at most 200 characters; kept on the item and its REFUND entry.",
    }),
  }),
});

export const SettleGenerationInput = builder.inputType("SettleGenerationInput", {
  description: "The outcomes of a generation's items, as the platform learned them.",
  fields: (t) => ({
    idempotencyKey: t.string({ required: true, description: IDEMPOTENCY_KEY }),
    generationId: t.id({ required: true, description: "The generation's global id." }),
    items: t.field({
      type: [ItemOutcomeInput],
      description: "Per-item outcomes (at most 100); omitted: every item succeeded at its reserved cost.",
    }),
  }),
});

const RefundGenerationInput = builder.inputType("RefundGenerationInput", {
  description: "A whole generation failed: every unfinished item ends with this reason.",
  fields: (t) => ({
    idempotencyKey: t.string({ required: true, description: IDEMPOTENCY_KEY }),
    generationId: t.id({ required: true, description: "The generation's global id." }),
    reason: t.field({
      type: RefundReasonEnum,
      required: true,
      description: "Why it failed; shown on the REFUND entry.",
    }),
    message: t.string({ description: "What went wrong, at most 200 characters." }),
  }),
});

const CancelGenerationInput = builder.inputType("CancelGenerationInput", {
  description: "A generation to cancel.",
  fields: (t) => ({
    idempotencyKey: t.string({ required: true, description: IDEMPOTENCY_KEY }),
    generationId: t.id({ required: true, description: "The generation's global id." }),
  }),
});

const SupportRefundInput = builder.inputType("SupportRefundInput", {
  description: "Credits to give back for a generation that was charged (admin).",
  fields: (t) => ({
    idempotencyKey: t.string({ required: true, description: IDEMPOTENCY_KEY }),
    generationId: t.id({ required: true, description: "The generation's global id." }),
    amount: t.field({
      type: "Credits",
      required: true,
      description: "Credits to return: positive, at most what was charged minus earlier support refunds.",
    }),
    reason: t.field({ type: RefundReasonEnum, required: true, description: "Why; usually BILLING_ERROR." }),
    note: t.string({ description: "A note for the REFUND entry's message, at most 200 characters." }),
  }),
});

export const principalOf = (context: Context) => context.principal?.sub ?? "";

/**
 * The result unions of reserve and settle, declared on their own (not by the
 * errors plugin on the mutation field) because the bulk mutations answer one
 * per item (bulk.ts). A field of such a union turns its errors into members.
 */
export const ReserveGenerationResult = builder.errorUnion("ReserveGenerationResult", {
  description: resultDescription("reserveGeneration"),
  types: [
    generationPayload("ReserveGenerationSuccess"),
    InsufficientCreditsError,
    SpendCapExceededError,
    IdempotencyKeyReusedError,
  ],
  resolveType: () => "ReserveGenerationSuccess",
});
export const SettleGenerationResult = builder.errorUnion("SettleGenerationResult", {
  description: resultDescription("settleGeneration"),
  types: [generationPayload("SettleGenerationSuccess"), AlreadyFinalizedError, IdempotencyKeyReusedError],
  resolveType: () => "SettleGenerationSuccess",
});

builder.mutationField("reserveGeneration", (t) =>
  t.field({
    type: ReserveGenerationResult,
    description:
      "Starts a generation: holds unitCost × quantity credits atomically (subscription credits first), or answers InsufficientCreditsError and writes nothing (service, admin).",
    args: {
      input: t.arg({ type: ReserveGenerationInput, required: true, description: "The generation to start." }),
    },
    resolve: async (_root, { input }, context) => {
      requirePlatform(context, "reserveGeneration");
      const accountId = inputId("accountId", input.accountId, "Account");
      const boardId = input.boardId == null ? null : inputId("boardId", input.boardId, "Board");
      if (context.access.accountScope !== null) await requireVisible(context, accountId);
      const { value, replayed, balance, generation } = unwrap(
        await context.ledger.reserveGeneration(principalOf(context), { ...input, accountId, boardId }),
      );
      return { generationId: value.generationId, balance, replayed, generation };
    },
  }),
);

builder.mutationField("settleGeneration", (t) =>
  t.field({
    type: SettleGenerationResult,
    description:
      "Reports item outcomes: a delivered item is charged its cost and the rest of its reserve released; a failed one is refunded in full. With `items` omitted every item succeeded at its reserved cost (service, admin).",
    args: {
      input: t.arg({ type: SettleGenerationInput, required: true, description: "The outcomes to apply." }),
    },
    resolve: async (_root, { input }, context) => {
      requirePlatform(context, "settleGeneration");
      const generationId = inputId("generationId", input.generationId, "Generation");
      await requireGenerationInScope(context, generationId);
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
    description:
      "Fails a whole generation: every unfinished item ends with the reason and is refunded in full; finished items stay as they were. AlreadyFinalizedError when no item is unfinished (service, admin).",
    args: {
      input: t.arg({
        type: RefundGenerationInput,
        required: true,
        description: "The generation and the reason.",
      }),
    },
    errors: {
      types: [AlreadyFinalizedError, IdempotencyKeyReusedError],
      union: { name: "RefundGenerationResult", description: resultDescription("refundGeneration") },
    },
    resolve: async (_root, { input }, context) => {
      requirePlatform(context, "refundGeneration");
      const generationId = inputId("generationId", input.generationId, "Generation");
      await requireGenerationInScope(context, generationId);
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
    description:
      "Cancels a generation: every unfinished item is refunded in full with reason CANCELLED; finished items stay charged. A service or admin token may cancel any; a user only what they requested, an account OWNER any of the account's.",
    args: {
      input: t.arg({ type: CancelGenerationInput, required: true, description: "The generation to cancel." }),
    },
    errors: {
      types: [AlreadyFinalizedError, IdempotencyKeyReusedError],
      union: { name: "CancelGenerationResult", description: resultDescription("cancelGeneration") },
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
      await requireGenerationInScope(context, generationId);
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
    description:
      "Gives back up to what a generation was charged, minus earlier support refunds (admin). It adds to the generation's `refunded`; `charged` stays what was delivered.",
    args: {
      input: t.arg({
        type: SupportRefundInput,
        required: true,
        description: "The generation and the amount.",
      }),
    },
    errors: {
      types: [RefundExceedsChargeError, IdempotencyKeyReusedError],
      union: { name: "SupportRefundResult", description: resultDescription("supportRefund") },
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
  {
    type: GenerationRef,
    name: "GenerationConnection",
    description: "A page of an account's generations, newest first.",
    edgesNullable: { list: false, items: false },
  },
  { name: "GenerationEdge", description: "One generation of the page, with its cursor." },
);

builder.queryField("generations", (t) =>
  t.field({
    type: GenerationConnection,
    description:
      "An account's generations, newest first, with per-item outcomes and what each was charged, refunded and released.",
    args: {
      accountId: t.arg.id({ required: true, description: NOT_FOUND_ACCOUNT }),
      filter: t.arg({
        type: GenerationFilterInput,
        description: "Only generations that match; omitted: all.",
      }),
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
