import { type BulkOutcome, reserveGenerations, settleGenerations } from "../domain/bulk.ts";
import { type DomainError, InvalidInputError, NotFoundError } from "../domain/errors.ts";
import type { Failure } from "../domain/ledger.ts";
import { builder } from "./builder.ts";
import {
  type GenerationPayload,
  principalOf,
  ReserveGenerationInput,
  ReserveGenerationResult,
  SettleGenerationInput,
  SettleGenerationResult,
} from "./generation.ts";
import { inputId } from "./ids.ts";
import { requirePlatform } from "./support.ts";

/**
 * Bulk reserve and settle (SPEC §8.7). Each answer lists one member of the
 * single mutation's result union per item, in input order: the item's
 * success, or its own operating error. Only a refusal of the whole request
 * (no items, more than 1,000, a token that may not reserve) is the bulk
 * result's error, and then nothing was written.
 */

/** An item's answer: its payload, or its error (the union's field makes it a member). */
type ItemAnswer = GenerationPayload | DomainError;

type BulkPayload = { readonly results: readonly ItemAnswer[] };

function bulkPayload(
  name: string,
  union: typeof ReserveGenerationResult | typeof SettleGenerationResult,
  what: string,
) {
  return builder.objectRef<BulkPayload>(name).implement({
    description: `Every item's answer, one per item in input order: each succeeded or failed on its own, as ${what} would have answered it.`,
    fields: (t) => ({
      results: t.field({
        type: [union],
        description: `One \`${what}\` result per item, in input order.`,
        // Returned errors become their union members (the errors plugin wraps each item).
        resolve: (parent) => parent.results as never,
      }),
    }),
  });
}

/** The per-item answers for GraphQL, or the whole request's refusal thrown as its error. */
function answers(outcome: BulkOutcome): BulkPayload {
  if (!outcome.ok) throw outcome.error;
  return {
    results: outcome.results.map((result) =>
      result.ok
        ? {
            generationId: result.value.generationId,
            balance: result.balance,
            replayed: result.replayed,
            generation: result.generation,
          }
        : result.error,
    ),
  };
}

/** Decodes an item's global ids; a malformed one is that item's InvalidInputError, one out of scope its NotFoundError. */
function decoded<T>(decode: () => T): T | Failure {
  try {
    return decode();
  } catch (error) {
    if (error instanceof InvalidInputError || error instanceof NotFoundError) return { ok: false, error };
    throw error;
  }
}

const ITEMS_DESCRIPTION =
  "1 to 1,000 items, each with its own idempotency key; more or none: InvalidInputError.";

const ReserveGenerationsInput = builder.inputType("ReserveGenerationsInput", {
  description: "Generations to start, each on its own (all or none of an item, never of the request).",
  fields: (t) => ({
    items: t.field({ type: [ReserveGenerationInput], required: true, description: ITEMS_DESCRIPTION }),
  }),
});

const SettleGenerationsInput = builder.inputType("SettleGenerationsInput", {
  description: "Outcomes of many generations, each applied on its own.",
  fields: (t) => ({
    items: t.field({ type: [SettleGenerationInput], required: true, description: ITEMS_DESCRIPTION }),
  }),
});

builder.mutationField("reserveGenerations", (t) =>
  t.field({
    type: bulkPayload("ReserveGenerationsSuccess", ReserveGenerationResult, "reserveGeneration"),
    description:
      "Starts many generations in one request: each item is a reserveGeneration with every rule and its own idempotency key, answered in input order; items share database transactions (service, admin).",
    args: {
      input: t.arg({
        type: ReserveGenerationsInput,
        required: true,
        description: "The generations to start.",
      }),
    },
    errors: {
      types: [],
      union: {
        name: "ReserveGenerationsResult",
        description:
          "What `reserveGenerations` answers: the per-item results, or the refusal of the whole request (nothing written).",
      },
    },
    resolve: async (_root, { input }, context) => {
      requirePlatform(context, "reserveGenerations");
      const scope = context.access.accountScope;
      const items = input.items.map((item) =>
        decoded(() => {
          const accountId = inputId("accountId", item.accountId, "Account");
          // An API key limited to one account sees every other account as missing, as on reserveGeneration.
          if (scope !== null && accountId !== scope) throw new NotFoundError("Account");
          return {
            ...item,
            accountId,
            boardId: item.boardId == null ? null : inputId("boardId", item.boardId, "Board"),
          };
        }),
      );
      return answers(await reserveGenerations(context.ledger, principalOf(context), items));
    },
  }),
);

builder.mutationField("settleGenerations", (t) =>
  t.field({
    type: bulkPayload("SettleGenerationsSuccess", SettleGenerationResult, "settleGeneration"),
    description:
      "Reports the outcomes of many generations in one request: each item is a settleGeneration with every rule and its own idempotency key, answered in input order; items share database transactions (service, admin).",
    args: {
      input: t.arg({ type: SettleGenerationsInput, required: true, description: "The outcomes to apply." }),
    },
    errors: {
      types: [],
      union: {
        name: "SettleGenerationsResult",
        description:
          "What `settleGenerations` answers: the per-item results, or the refusal of the whole request (nothing written).",
      },
    },
    resolve: async (_root, { input }, context) => {
      requirePlatform(context, "settleGenerations");
      const items = input.items.map((item) =>
        decoded(() => ({ ...item, generationId: inputId("generationId", item.generationId, "Generation") })),
      );
      const scope = context.access.accountScope;
      if (scope !== null) {
        // A key limited to one account sees other accounts' generations as missing (one owner lookup for all).
        const owners = await context.ledger.generationOwners(
          items.flatMap((item) => ("ok" in item ? [] : [item.generationId])),
        );
        items.forEach((item, index) => {
          if (!("ok" in item) && owners.get(item.generationId)?.accountId !== scope) {
            items[index] = { ok: false, error: new NotFoundError("Generation") };
          }
        });
      }
      return answers(await settleGenerations(context.ledger, principalOf(context), items));
    },
  }),
);
