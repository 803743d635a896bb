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
  fields: (t) => ({
    code: t.field({ type: ErrorCodeEnum, resolve: (error) => error.code }),
    message: t.exposeString("message"),
  }),
});

const common = { interfaces: [ErrorInterface] };

builder.objectType(InsufficientCreditsError, {
  name: "InsufficientCreditsError",
  ...common,
  fields: (t) => ({
    available: t.expose("available", { type: "Credits" }),
    required: t.expose("required", { type: "Credits" }),
  }),
});

builder.objectType(InvalidInputError, {
  name: "InvalidInputError",
  ...common,
  fields: (t) => ({ field: t.exposeString("field", { nullable: true }) }),
});

builder.objectType(NotFoundError, { name: "NotFoundError", ...common, fields: () => ({}) });
builder.objectType(ForbiddenError, { name: "ForbiddenError", ...common, fields: () => ({}) });
builder.objectType(IdempotencyKeyReusedError, {
  name: "IdempotencyKeyReusedError",
  ...common,
  fields: () => ({}),
});

builder.objectType(AlreadyFinalizedError, {
  name: "AlreadyFinalizedError",
  ...common,
  fields: (t) => ({
    generation: t.prismaField({
      type: GenerationRef,
      resolve: (query, error, _args, context) =>
        context.prisma.generation.findUniqueOrThrow({ ...query, where: { id: error.generationId } }),
    }),
  }),
});

builder.objectType(RefundExceedsChargeError, {
  name: "RefundExceedsChargeError",
  ...common,
  fields: (t) => ({ refundable: t.expose("refundable", { type: "Credits" }) }),
});
