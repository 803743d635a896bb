import { queryFromInfo } from "@pothos/plugin-prisma";
import type { GraphQLResolveInfo } from "graphql";
import { assert } from "../domain/assert.ts";
import type { BalanceSnapshot } from "../domain/balance.ts";
import { IdempotencyKeyReusedError, InsufficientCreditsError, InvalidInputError } from "../domain/errors.ts";
import {
  type LedgerEntryView,
  ledgerCursor,
  ledgerPage,
  PAGE_SIZE_DEFAULT,
  PAGE_SIZE_MAX,
  parseLedgerQuery,
} from "../domain/history.ts";
import { entryStatusOf, type GenerationStatus } from "../domain/model.ts";
import { BalanceRef } from "./balance.ts";
import { builder } from "./builder.ts";
import type { Context } from "./context.ts";
import {
  BALANCE_AFTER,
  IDEMPOTENCY_KEY,
  NOT_FOUND_ACCOUNT,
  REPLAYED,
  resultDescription,
} from "./descriptions.ts";
import { EntryStatusEnum, LedgerEntryTypeEnum, RefundReasonEnum } from "./enums.ts";
import { forwardPageInfo, GenerationRef, historyArgumentError } from "./generation.ts";
import { inputId, localId } from "./ids.ts";
import { readAccountPage, requireAdmin, unwrap } from "./support.ts";
import { onVisibleAccount } from "./visibility.ts";

export const LedgerEntryRef = builder.prismaNode("LedgerEntry", {
  description:
    "One movement of an account's credits: immutable and append-only. Every entry says what moved, why, and the balance before and after; the account's available balance is the sum of its entries' amounts.",
  id: { field: "id", description: "The entry's global id." },
  nullable: true,
  findUnique: (id, context) => ({ id, ...onVisibleAccount(context) }),
  fields: (t) => ({
    sequence: t.exposeInt("sequence", {
      description:
        "Position in the account's ledger: 1, 2, 3, … with no gap. Resume subscriptions with `afterSequence`.",
    }),
    type: t.expose("type", { type: LedgerEntryTypeEnum, description: "What the entry records." }),
    amount: t.expose("amount", {
      type: "Credits",
      description: "Signed: + adds to the balance, − takes from it.",
    }),
    status: t.field({
      type: EntryStatusEnum,
      description:
        "USAGE: PENDING while items run, COMPLETED when charged, FAILED when refunded; others COMPLETED.",
      // Pages and live events carry their generation's status (answered synchronously: no promise
      // per entry); an entry reached otherwise loads it, batched with its siblings.
      resolve: (entry, _args, context) => {
        if (entry.type !== "USAGE" || entry.generationId === null) return "COMPLETED";
        const known = (entry as { generationStatus?: GenerationStatus | null }).generationStatus;
        if (known != null) return entryStatusOf(entry.type, known);
        return context.loaders.generationStatus
          .load(entry.generationId)
          .then((status) => entryStatusOf(entry.type, status));
      },
    }),
    title: t.exposeString("title", {
      description:
        'For people: the generation\'s feature (USAGE, REFUND, RELEASE); the grant\'s title, else "Credit purchase" or "Subscription credits" (GRANT); "Credits expired" (EXPIRY); "Adjustment" (ADJUSTMENT).',
    }),
    balanceBefore: t.expose("balanceBefore", {
      type: "Credits",
      description: "The account's available balance just before this entry.",
    }),
    balanceAfter: t.expose("balanceAfter", {
      type: "Credits",
      description: "The account's available balance just after it: balanceBefore + amount.",
    }),
    reason: t.expose("reason", {
      type: RefundReasonEnum,
      nullable: true,
      description: "Why credits came back: set on REFUND entries, null on the others.",
    }),
    message: t.exposeString("message", {
      nullable: true,
      description: "A refund's message or an adjustment's note; null when none.",
    }),
    generation: t.relation("generation", {
      nullable: true,
      type: GenerationRef,
      description: "The generation it belongs to (USAGE, REFUND, RELEASE); null for the others.",
    }),
    createdAt: t.expose("createdAt", { type: "DateTime", description: "When it was written." }),
    actor: t.exposeString("actor", {
      description:
        "Who caused it: the token's `sub`, `apikey:<id>` for an API key, or `system` for background work (timeouts, expiry). Entries written before actors were recorded read `system`.",
    }),
  }),
});

builder.prismaObjectField("Generation", "ledgerEntries", (t) =>
  t.relation("entries", {
    description: "The ledger entries the generation wrote (USAGE, REFUND, RELEASE), in sequence order.",
    query: { orderBy: { sequence: "asc" } },
  }),
);

const AdjustBalanceInput = builder.inputType("AdjustBalanceInput", {
  description: "A correction of an account's balance by an admin.",
  fields: (t) => ({
    idempotencyKey: t.string({ required: true, description: IDEMPOTENCY_KEY }),
    accountId: t.id({ required: true, description: "The account's global id." }),
    amount: t.field({
      type: "Credits",
      required: true,
      description:
        'Signed and not 0: positive adds a WALLET grant titled "Adjustment"; negative takes from available credits in draw order and may not drive available below 0.',
    }),
    note: t.string({ required: true, description: "Why, 1 to 200 characters; the entry's message." }),
  }),
});

const AdjustBalanceSuccess = builder
  .objectRef<{ entryId: string; balance: BalanceSnapshot; replayed: boolean }>("AdjustBalanceSuccess")
  .implement({
    description: "The adjustment was applied as an ADJUSTMENT entry.",
    fields: (t) => ({
      entry: t.prismaField({
        type: LedgerEntryRef,
        description: "The ADJUSTMENT entry written.",
        resolve: (query, parent, _args, context) =>
          context.prisma.ledgerEntry.findUniqueOrThrow({ ...query, where: { id: parent.entryId } }),
      }),
      balance: t.field({ type: BalanceRef, description: BALANCE_AFTER, resolve: (parent) => parent.balance }),
      replayed: t.exposeBoolean("replayed", { description: REPLAYED }),
    }),
  });

builder.mutationField("adjustBalance", (t) =>
  t.field({
    type: AdjustBalanceSuccess,
    description:
      "Adds or takes credits outside any generation, as an ADJUSTMENT entry (admin). InsufficientCreditsError when it would drive available below 0.",
    args: { input: t.arg({ type: AdjustBalanceInput, required: true, description: "The adjustment." }) },
    errors: {
      types: [InsufficientCreditsError, IdempotencyKeyReusedError],
      union: { name: "AdjustBalanceResult", description: resultDescription("adjustBalance") },
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

// ---------------------------------------------------------------------------
// History: an account's ledger, newest first.
// ---------------------------------------------------------------------------

const LedgerFilterInput = builder.inputType("LedgerFilter", {
  description: 'Narrows `ledger`; every condition given must hold. "My refunds" is { types: [REFUND] }.',
  fields: (t) => ({
    types: t.field({
      type: [LedgerEntryTypeEnum],
      description: "Only entries of these types (at least one).",
    }),
    statuses: t.field({
      type: [EntryStatusEnum],
      description: "Only entries with one of these derived statuses (at least one).",
    }),
    feature: t.string({ description: "Only entries of generations of this feature." }),
    generationId: t.id({ description: "Only the entries of this generation." }),
    from: t.field({ type: "DateTime", description: "Only entries created at or after this instant." }),
    to: t.field({ type: "DateTime", description: "Only entries created before this instant (exclusive)." }),
  }),
});

const LedgerEntryConnection = builder.connectionObject(
  {
    type: LedgerEntryRef,
    name: "LedgerEntryConnection",
    description: "A page of an account's ledger entries, newest first.",
    edgesNullable: { list: false, items: false },
  },
  { name: "LedgerEntryEdge", description: "One ledger entry of the page, with its cursor." },
);

builder.queryField("ledger", (t) =>
  t.field({
    type: LedgerEntryConnection,
    description:
      "An account's ledger entries, newest first (by sequence): what moved, why, and the balance before and after.",
    args: {
      accountId: t.arg.id({ required: true, description: NOT_FOUND_ACCOUNT }),
      filter: t.arg({ type: LedgerFilterInput, description: "Only entries that match; omitted: all." }),
      first: t.arg.int({ description: `Page size, 1 to ${PAGE_SIZE_MAX} (default ${PAGE_SIZE_DEFAULT}).` }),
      after: t.arg.string({ description: "The endCursor of the previous page." }),
    },
    resolve: async (_root, args, context, info) => {
      const rawGenerationId = args.filter?.generationId;
      const generationId = rawGenerationId == null ? null : localId(rawGenerationId, "Generation");
      if (rawGenerationId != null && generationId === null) {
        throw historyArgumentError(
          new InvalidInputError(
            "filter.generationId",
            `must be the id of a Generation, got ${JSON.stringify(rawGenerationId.slice(0, 60))}`,
          ),
        );
      }
      const query = parseLedgerQuery(args, { ...args.filter, generationId });
      if (query instanceof InvalidInputError) throw historyArgumentError(query);
      // One statement returns the page with its generations' statuses, so
      // `status` needs no further query (see the field's resolver).
      const page = await readAccountPage(context, localId(args.accountId, "Account"), (accountId) =>
        ledgerPage(context.db, accountId, query),
      );
      const edges = (await withRelations(context, info, page.rows)).map((entry) => ({
        cursor: ledgerCursor(entry.sequence),
        node: entry,
      }));
      return {
        edges,
        pageInfo: forwardPageInfo(
          edges.map((edge) => edge.cursor),
          page.hasNextPage,
          query.beforeSequence !== null,
        ),
      };
    },
  }),
);

/**
 * The page's entries with the relations the client selected under
 * edges.node (such as `generation { ... }`) loaded by Prisma in one batch.
 * Without this, each entry's relation would be a fallback query of its own.
 * A page that selects only the entry's own fields keeps the rows as read.
 */
async function withRelations(
  context: Context,
  info: GraphQLResolveInfo,
  entries: readonly LedgerEntryView[],
): Promise<readonly LedgerEntryView[]> {
  const selection: { include?: object; select?: object } = queryFromInfo({
    context,
    info,
    path: ["edges", "node"],
  });
  const wanted = selection.select ?? selection.include;
  if (wanted === undefined || Object.keys(wanted).length === 0 || entries.length === 0) return entries;
  const loaded = await context.prisma.ledgerEntry.findMany({
    ...selection,
    where: { id: { in: entries.map((entry) => entry.id) } },
  });
  const byId = new Map(loaded.map((row) => [row.id, row]));
  return entries.map((entry) => {
    const row = byId.get(entry.id);
    assert(row !== undefined, `ledger entry ${entry.id} of a page can be loaded`);
    return Object.assign(row, { generationStatus: entry.generationStatus });
  });
}
