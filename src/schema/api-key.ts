import type { ApiKeyRow } from "../domain/api-keys.ts";
import { DomainError } from "../domain/errors.ts";
import { builder } from "./builder.ts";
import { resultDescription } from "./descriptions.ts";
import { globalId, inputId } from "./ids.ts";
import { requireAdmin } from "./support.ts";

export const ApiKeyRef = builder.prismaNode("ApiKey", {
  description:
    "A credential for the platform's backend: `Authorization: Bearer cb_…` acts with the service role, limited to one account when `accountId` is set. Admins only; the secret itself is shown once, by createApiKey.",
  id: { field: "id", description: "The key's global id." },
  nullable: true,
  // Select mode, so the hash is never loaded: each field selects its own column.
  select: { id: true, accountId: true },
  // Only admins see keys: for anyone else `node(id)` answers null, as for an id that names nothing
  // (an empty OR matches no row).
  findUnique: (id, context) => (context.access.isAdmin ? { id } : { id, OR: [] }),
  fields: (t) => ({
    name: t.exposeString("name", { description: "What the key is for, as given at creation." }),
    prefix: t.exposeString("prefix", {
      description: 'The secret\'s first 11 characters ("cb_" and 8 more), to tell keys apart.',
    }),
    accountId: t.field({
      type: "ID",
      nullable: true,
      description: "The one account the key may act on (a global id); null: every account.",
      resolve: (key) => (key.accountId === null ? null : globalId("Account", key.accountId)),
    }),
    createdAt: t.expose("createdAt", { type: "DateTime", description: "When the key was created." }),
    lastUsedAt: t.expose("lastUsedAt", {
      type: "DateTime",
      nullable: true,
      description:
        "When the key last authenticated a request, to the minute (written at most once a minute per key and server instance); null: never.",
    }),
    revokedAt: t.expose("revokedAt", {
      type: "DateTime",
      nullable: true,
      description: "When the key was revoked (it is refused from then on, on every instance within 1 s).",
    }),
  }),
});

builder.queryField("apiKeys", (t) =>
  t.field({
    type: [ApiKeyRef],
    nullable: { list: false, items: false },
    description: "Every API key, revoked ones included, newest first (admin).",
    authScopes: { admin: true },
    resolve: (_root, _args, context) => context.apiKeys.list(),
  }),
);

const CreateApiKeyInput = builder.inputType("CreateApiKeyInput", {
  description: "A new API key.",
  fields: (t) => ({
    name: t.string({ required: true, description: "What the key is for, 1 to 200 characters." }),
    accountId: t.id({
      description: "Limits the key to this account (a global id); omitted: every account.",
    }),
    rateLimitPerSecond: t.int({
      description:
        "The key's own mutation rate limit, 1 to 1,000,000 a second (bursts of twice that); omitted: RATE_LIMIT_SERVICE_PER_SECOND.",
    }),
  }),
});

const CreateApiKeySuccess = builder
  .objectRef<{ apiKey: ApiKeyRow; secret: string }>("CreateApiKeySuccess")
  .implement({
    description: "The key was created. Keep the secret now: it is never shown again.",
    fields: (t) => ({
      apiKey: t.field({ type: ApiKeyRef, description: "The key.", resolve: (result) => result.apiKey }),
      secret: t.exposeString("secret", {
        description:
          "`cb_` and 43 base64url characters (32 random bytes): send it as `Authorization: Bearer <secret>`. Only a keyed hash is stored.",
      }),
    }),
  });

builder.mutationField("createApiKey", (t) =>
  t.field({
    type: CreateApiKeySuccess,
    description: "Creates an API key and shows its secret once (admin).",
    args: { input: t.arg({ type: CreateApiKeyInput, required: true, description: "The key to create." }) },
    errors: { union: { name: "CreateApiKeyResult", description: resultDescription("createApiKey") } },
    resolve: async (_root, { input }, context) => {
      requireAdmin(context, "createApiKey");
      const accountId = input.accountId == null ? null : inputId("accountId", input.accountId, "Account");
      const created = await context.apiKeys.create({
        name: input.name,
        accountId,
        rateLimitPerSecond: input.rateLimitPerSecond ?? null,
      });
      if (created instanceof DomainError) throw created;
      return created;
    },
  }),
);

const RevokeApiKeyInput = builder.inputType("RevokeApiKeyInput", {
  description: "The key to revoke.",
  fields: (t) => ({ id: t.id({ required: true, description: "The key's global id." }) }),
});

const RevokeApiKeySuccess = builder.objectRef<{ apiKey: ApiKeyRow }>("RevokeApiKeySuccess").implement({
  description:
    "The key is revoked: every request with it is refused (HTTP 401) and its open subscriptions are closed, on every instance within 1 s. Revoking it again changes nothing.",
  fields: (t) => ({
    apiKey: t.field({
      type: ApiKeyRef,
      description: "The key, with its revokedAt.",
      resolve: (result) => result.apiKey,
    }),
  }),
});

builder.mutationField("revokeApiKey", (t) =>
  t.field({
    type: RevokeApiKeySuccess,
    description: "Revokes an API key for good (admin).",
    args: { input: t.arg({ type: RevokeApiKeyInput, required: true, description: "The key to revoke." }) },
    errors: { union: { name: "RevokeApiKeyResult", description: resultDescription("revokeApiKey") } },
    resolve: async (_root, { input }, context) => {
      requireAdmin(context, "revokeApiKey");
      const id = inputId("id", input.id, "ApiKey");
      const revoked = await context.apiKeys.revoke(id);
      if (revoked instanceof DomainError) throw revoked;
      context.revocations.announce({ kind: "apiKey", apiKeyId: id });
      return { apiKey: revoked };
    },
  }),
);
