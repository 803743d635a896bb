import SchemaBuilder from "@pothos/core";
import ErrorsPlugin from "@pothos/plugin-errors";
import PrismaPlugin from "@pothos/plugin-prisma";
import RelayPlugin from "@pothos/plugin-relay";
import ScopeAuthPlugin from "@pothos/plugin-scope-auth";
import { GraphQLError } from "graphql";
import type PrismaTypes from "../db/generated/pothos-types.ts";
import { getDatamodel } from "../db/generated/pothos-types.ts";
import type { Credits } from "../domain/credits.ts";
import { ForbiddenError, InvalidInputError, NotFoundError } from "../domain/errors.ts";
import type { Context } from "./context.ts";
import { decodeNodeId, isNodeId } from "./ids.ts";
import { relayDescriptions } from "./relay-descriptions.ts";

/**
 * The one Pothos builder. Plugin order matters: scope-auth wraps resolvers
 * outside the errors plugin, so a failed type-level scope is a GraphQL error
 * (UNAUTHENTICATED / FORBIDDEN), while ForbiddenError thrown inside a
 * mutation resolver becomes a union member.
 */
export const builder = new SchemaBuilder<{
  Context: Context;
  PrismaTypes: PrismaTypes;
  AuthScopes: { authenticated: boolean; admin: boolean };
  Scalars: {
    Credits: { Input: Credits; Output: Credits | number };
    DateTime: { Input: Date; Output: Date };
    JSON: { Input: unknown; Output: unknown };
    ID: { Input: string; Output: string };
  };
  DefaultFieldNullability: false;
}>({
  plugins: [ScopeAuthPlugin, ErrorsPlugin, PrismaPlugin, RelayPlugin],
  defaultFieldNullability: false,
  scopeAuth: {
    authScopes: (context) => ({
      authenticated: context.principal !== null,
      admin: context.principal?.role === "admin",
    }),
    unauthorizedError: (_parent, context) =>
      context.principal === null
        ? new GraphQLError("Authentication required: send Authorization: Bearer <token>", {
            extensions: { code: "UNAUTHENTICATED" },
          })
        : new GraphQLError("Not allowed for this token's role", { extensions: { code: "FORBIDDEN" } }),
  },
  errors: {
    defaultTypes: [InvalidInputError, NotFoundError, ForbiddenError],
    directResult: true,
  },
  prisma: {
    client: (context) => context.prisma,
    dmmf: getDatamodel(),
    exposeDescriptions: false,
    filterConnectionTotalCount: true,
    onUnusedQuery: null,
  },
  relay: {
    clientMutationId: "omit",
    cursorType: "String",
    decodeGlobalID: (globalId) => decodeNodeId(globalId),
    ...relayDescriptions,
    nodeQueryOptions: {
      ...relayDescriptions.nodeQueryOptions,
      // A malformed id names no node: null, without a query (see isNodeId).
      resolve: (_root, args, _context, _info, resolveNode) =>
        isNodeId(args.id) ? resolveNode(args.id) : null,
    },
    nodesQueryOptions: false,
  },
});

builder.queryType({
  description:
    "Reads. Every field needs a token (`Authorization: Bearer <token>`); without one only `__typename` and introspection answer.",
  authScopes: { authenticated: true },
});
builder.mutationType({
  description:
    "Writes. Each returns a `…Result` union of its success type and the operating errors it can meet (`... on Error { code message }`); an error answer means nothing of the request was applied.",
  authScopes: { authenticated: true },
});
