import {
  AlreadyFinalizedError,
  type DomainError,
  ForbiddenError,
  IdempotencyKeyReusedError,
  InsufficientCreditsError,
  InvalidInputError,
  NotFoundError,
  RefundExceedsChargeError,
} from "../domain/errors.ts";
import { builder } from "./builder.ts";
import { ErrorCodeEnum } from "./enums.ts";
import { GenerationRef } from "./generation.ts";

/** The `Error` interface every operating error implements (SPEC §4). */
export const ErrorInterface = builder.interfaceRef<DomainError>("Error").implement({
  description:
    "An operating error: an expected outcome a client handles, returned as a member of a mutation's result union. Select `... on Error { code message }` on every result.",
  fields: (t) => ({
    code: t.field({
      type: ErrorCodeEnum,
      description: "What went wrong, for programs to branch on.",
      resolve: (error) => error.code,
    }),
    message: t.exposeString("message", {
      description: "What went wrong, for people: names the field, the rule and the value where there is one.",
    }),
  }),
});

const common = { interfaces: [ErrorInterface] };

builder.objectType(InsufficientCreditsError, {
  name: "InsufficientCreditsError",
  description:
    "The account has fewer available credits than the operation needs (a reserve, or a negative adjustment). Nothing was held or written; retrying with the same key after a top-up is safe.",
  ...common,
  fields: (t) => ({
    available: t.expose("available", {
      type: "Credits",
      description: "Credits available when it was refused.",
    }),
    required: t.expose("required", { type: "Credits", description: "Credits the operation needed." }),
  }),
});

builder.objectType(InvalidInputError, {
  name: "InvalidInputError",
  description:
    "A value of the right type breaks a rule (a bound, a length, an id of another type, a date in the past). Nothing was written: fix the input.",
  ...common,
  fields: (t) => ({
    field: t.exposeString("field", {
      nullable: true,
      description:
        "The input field at fault as a path within the input, e.g. `unitCost` or `items[2].cost`; null when no single field is.",
    }),
  }),
});

builder.objectType(NotFoundError, {
  name: "NotFoundError",
  description:
    "The account, generation or board named does not exist, or the caller may not see it (to a user, another account's objects do not exist). Nothing was written.",
  ...common,
  fields: () => ({}),
});
builder.objectType(ForbiddenError, {
  name: "ForbiddenError",
  description:
    "The token may not do this: the mutation needs another role (service or admin), or a user cancels a generation they did not request on an account they do not own. Nothing was written.",
  ...common,
  fields: () => ({}),
});
builder.objectType(IdempotencyKeyReusedError, {
  name: "IdempotencyKeyReusedError",
  description:
    "This token already used the idempotency key for this mutation with different input. Nothing was written: use a new key for a new request.",
  ...common,
  fields: () => ({}),
});

builder.objectType(AlreadyFinalizedError, {
  name: "AlreadyFinalizedError",
  description:
    "The generation's items already ended with another outcome (settled otherwise, refunded, cancelled or timed out): the first outcome stands and nothing changed. Do not retry.",
  ...common,
  fields: (t) => ({
    generation: t.prismaField({
      type: GenerationRef,
      description: "The generation as it stands, with the outcome that won.",
      resolve: (query, error, _args, context) =>
        context.prisma.generation.findUniqueOrThrow({ ...query, where: { id: error.generationId } }),
    }),
  }),
});

builder.objectType(RefundExceedsChargeError, {
  name: "RefundExceedsChargeError",
  description:
    "A support refund asked for more than is still refundable (what the generation was charged minus earlier support refunds). Nothing was refunded.",
  ...common,
  fields: (t) => ({
    refundable: t.expose("refundable", {
      type: "Credits",
      description: "The most a support refund of this generation may return now.",
    }),
  }),
});
