import { randomBytes } from "node:crypto";
import { GraphQLError } from "graphql";
import { accountExists } from "../db/accounts.ts";
import {
  deleteEndpoint,
  deliveryAccount,
  endpointAccount,
  insertEndpoint,
  listEndpoints,
  redeliver,
} from "../db/webhooks.ts";
import { ForbiddenError, InvalidInputError, NotFoundError } from "../domain/errors.ts";
import { PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX } from "../domain/history.ts";
import type { WEBHOOK_EVENT_TYPES } from "../domain/outbox.ts";
import { checkWebhookUrl } from "../domain/webhook-url.ts";
import { builder } from "./builder.ts";
import type { Context } from "./context.ts";
import { resultDescription } from "./descriptions.ts";
import { globalId, inputId, localId } from "./ids.ts";
import { requirePlatform } from "./support.ts";

/** Longest endpoint description. */
export const WEBHOOK_DESCRIPTION_LENGTH_MAX = 500;

export const WebhookEventTypeEnum = builder.enumType("WebhookEventType", {
  description: "What a webhook tells; the body's `type` names it in lowercase (shown with each value).",
  values: {
    LEDGER_ENTRY_ADDED: {
      value: "ledger_entry.added",
      description:
        '"ledger_entry.added": an entry was written to the account\'s ledger (one event per entry).',
    },
    GENERATION_FINISHED: {
      value: "generation.finished",
      description:
        '"generation.finished": a generation ended (every item succeeded, failed, timed out or was cancelled).',
    },
    BALANCE_LOW: {
      value: "balance.low",
      description: '"balance.low": the available balance fell below the account\'s alert threshold.',
    },
    GRANT_EXPIRING: {
      value: "grant.expiring",
      description: '"grant.expiring": a grant with credits left expires soon.',
    },
  } as const,
});

export const DeliveryStatusEnum = builder.enumType("DeliveryStatus", {
  description: "Where one event's delivery to one endpoint stands.",
  values: {
    PENDING: { description: "Not delivered yet: due now, or waiting for its next retry." },
    SUCCEEDED: { description: "The endpoint answered 2xx within 10 seconds." },
    FAILED: { description: "Every retry was spent (over 24 hours) without a 2xx answer." },
  } as const,
});

/** Platform tokens see endpoints and deliveries; for anyone else they do not exist. */
const platformOnly = (context: Context) => {
  if (!context.access.isPlatform) return { OR: [] };
  // An API key limited to one account sees only that account's endpoints and deliveries.
  const scope = context.access.accountScope;
  return scope === null ? {} : { accountId: scope };
};

export const WebhookDeliveryRef = builder.prismaNode("WebhookDelivery", {
  description: "One event sent (or to be sent) to one endpoint, with how its attempts went.",
  id: { field: "id", description: "The delivery's global id." },
  nullable: true,
  findUnique: (id, context) => ({ id, ...platformOnly(context) }),
  fields: (t) => ({
    eventId: t.exposeString("eventId", {
      description: "The event's id: the `webhook-id` header, the same on every attempt and redelivery.",
    }),
    eventType: t.field({
      type: WebhookEventTypeEnum,
      description: "What the event tells.",
      resolve: (delivery) => delivery.eventType as (typeof WEBHOOK_EVENT_TYPES)[number],
    }),
    status: t.field({
      type: DeliveryStatusEnum,
      description: "PENDING, SUCCEEDED or FAILED.",
      resolve: (delivery) => delivery.status as "PENDING" | "SUCCEEDED" | "FAILED",
    }),
    attempts: t.exposeInt("attempts", { description: "Attempts made so far." }),
    lastAttemptAt: t.expose("lastAttemptAt", {
      type: "DateTime",
      nullable: true,
      description: "When the last attempt ended; null before the first.",
    }),
    nextAttemptAt: t.expose("nextAttemptAt", {
      type: "DateTime",
      nullable: true,
      description: "When the next attempt is due; null once SUCCEEDED or FAILED.",
    }),
    responseStatus: t.exposeInt("responseStatus", {
      nullable: true,
      description:
        "The HTTP status of the last answer; null before the first or when none came (timeout, refused).",
    }),
    payload: t.expose("payload", {
      type: "JSON",
      description: "The request body sent: `{type, timestamp, data}`.",
    }),
    createdAt: t.expose("createdAt", {
      type: "DateTime",
      description:
        "When the delivery was queued (with the change that caused its event, or by redeliverWebhook).",
    }),
  }),
});

export const WebhookEndpointRef = builder.prismaNode("WebhookEndpoint", {
  description:
    "A URL that receives the events of one account, or of every account, signed per Standard Webhooks.",
  id: { field: "id", description: "The endpoint's global id." },
  nullable: true,
  findUnique: (id, context) => ({ id, ...platformOnly(context) }),
  fields: (t) => ({
    url: t.exposeString("url", { description: "Where events are POSTed (https)." }),
    accountId: t.id({
      nullable: true,
      description: "The global id of the account whose events it receives; null: every account's.",
      resolve: (endpoint) => (endpoint.accountId === null ? null : globalId("Account", endpoint.accountId)),
    }),
    description: t.exposeString("description", { nullable: true, description: "What the endpoint is for." }),
    eventTypes: t.field({
      type: [WebhookEventTypeEnum],
      description: "The event types it receives.",
      resolve: (endpoint) => endpoint.eventTypes as (typeof WEBHOOK_EVENT_TYPES)[number][],
    }),
    enabled: t.exposeBoolean("enabled", { description: "Whether events are queued and sent to it." }),
    createdAt: t.expose("createdAt", { type: "DateTime", description: "When it was created." }),
    deliveries: t.relatedConnection(
      "deliveries",
      {
        description: "Its deliveries, newest first.",
        cursor: "id",
        defaultSize: PAGE_SIZE_DEFAULT,
        maxSize: PAGE_SIZE_MAX,
        args: {
          status: t.arg({ type: DeliveryStatusEnum, description: "Only deliveries in this status." }),
        },
        query: (args) => ({
          where: args.status == null ? {} : { status: args.status },
          orderBy: [{ createdAt: "desc" }, { id: "desc" }],
        }),
      },
      { name: "WebhookDeliveryConnection", description: "A page of an endpoint's deliveries, newest first." },
      { name: "WebhookDeliveryEdge", description: "One delivery of the page, with its cursor." },
    ),
  }),
});

builder.queryField("webhookEndpoints", (t) =>
  t.prismaField({
    type: [WebhookEndpointRef],
    description:
      "Webhook endpoints (service, admin): those of one account, or with accountId omitted every endpoint (admin).",
    args: {
      accountId: t.arg.id({ description: "The account's global id; omitted: every endpoint (admin only)." }),
    },
    resolve: async (query, _root, args, context) => {
      if (!context.access.isPlatform || (args.accountId == null && !context.access.isAdmin)) {
        throw new GraphQLError("Not allowed for this token's role", { extensions: { code: "FORBIDDEN" } });
      }
      const accountId = args.accountId == null ? null : localId(args.accountId, "Account");
      if (args.accountId != null && (accountId === null || !(await context.access.canRead(accountId))))
        return [];
      const rows = await listEndpoints(context.db, accountId);
      return context.prisma.webhookEndpoint.findMany({
        ...query,
        where: { id: { in: rows.map((row) => row.id) } },
        orderBy: [{ createdAt: "asc" }, { id: "asc" }],
      });
    },
  }),
);

const CreateWebhookEndpointInput = builder.inputType("CreateWebhookEndpointInput", {
  description: "A URL to send events to, and which events.",
  fields: (t) => ({
    url: t.string({
      required: true,
      description: "An https URL whose host resolves to public addresses only; at most 2,000 characters.",
    }),
    accountId: t.id({
      description: "The account whose events it receives; omitted: every account (admin only).",
    }),
    eventTypes: t.field({
      type: [WebhookEventTypeEnum],
      required: true,
      description: "The event types it receives: at least one.",
    }),
    description: t.string({
      description: `What it is for, at most ${WEBHOOK_DESCRIPTION_LENGTH_MAX} characters.`,
    }),
  }),
});

const CreateWebhookEndpointSuccess = builder
  .objectRef<{ endpointId: string; secret: string }>("CreateWebhookEndpointSuccess")
  .implement({
    description: "The endpoint was created; events from now on are queued for it.",
    fields: (t) => ({
      endpoint: t.prismaField({
        type: WebhookEndpointRef,
        description: "The endpoint created.",
        resolve: (query, parent, _args, context) =>
          context.prisma.webhookEndpoint.findUniqueOrThrow({ ...query, where: { id: parent.endpointId } }),
      }),
      secret: t.exposeString("secret", {
        description:
          'The signing secret ("whsec_…"), shown only here: verify each request\'s webhook-signature with it.',
      }),
    }),
  });

/** A signing secret as Standard Webhooks libraries take it: "whsec_" and 32 random bytes in base64. */
function newSecret(): string {
  return `whsec_${randomBytes(32).toString("base64")}`;
}

builder.mutationField("createWebhookEndpoint", (t) =>
  t.field({
    type: CreateWebhookEndpointSuccess,
    description: "Creates a webhook endpoint for one account (service, admin) or every account (admin).",
    args: {
      input: t.arg({
        type: CreateWebhookEndpointInput,
        required: true,
        description: "The endpoint to create.",
      }),
    },
    errors: {
      types: [],
      union: { name: "CreateWebhookEndpointResult", description: resultDescription("createWebhookEndpoint") },
    },
    resolve: async (_root, { input }, context) => {
      requirePlatform(context, "createWebhookEndpoint");
      if (input.accountId == null && !context.access.isAdmin)
        throw new ForbiddenError(
          "createWebhookEndpoint for every account (no accountId) needs an admin token",
        );
      const accountId = input.accountId == null ? null : inputId("accountId", input.accountId, "Account");
      if (input.eventTypes.length === 0)
        throw new InvalidInputError("eventTypes", "must name at least one event type");
      const description = input.description ?? null;
      if (description !== null && description.length > WEBHOOK_DESCRIPTION_LENGTH_MAX)
        throw new InvalidInputError(
          "description",
          `must be at most ${WEBHOOK_DESCRIPTION_LENGTH_MAX} characters`,
        );
      const url = await checkWebhookUrl(input.url, context.webhookAllowPrivate);
      if (url instanceof InvalidInputError) throw url;
      if (accountId !== null) {
        if (!(await accountExists(context.db, accountId)) || !(await context.access.canRead(accountId)))
          throw new NotFoundError("Account");
      }
      const secret = newSecret();
      const endpoint = await insertEndpoint(context.db, {
        url: url.toString(),
        accountId,
        description,
        eventTypes: [...new Set(input.eventTypes)],
        secret,
        createdBy: context.principal?.sub ?? "",
      });
      return { endpointId: endpoint.id, secret };
    },
  }),
);

const DeleteWebhookEndpointInput = builder.inputType("DeleteWebhookEndpointInput", {
  description: "The endpoint to delete.",
  fields: (t) => ({ id: t.id({ required: true, description: "The endpoint's global id." }) }),
});

const DeleteWebhookEndpointSuccess = builder
  .objectRef<{ id: string }>("DeleteWebhookEndpointSuccess")
  .implement({
    description:
      "The endpoint and its deliveries were deleted (or it was already gone); nothing more is sent to it.",
    fields: (t) => ({
      deletedId: t.exposeID("id", { description: "The global id the endpoint had." }),
    }),
  });

/** Who may change an endpoint: platform tokens for one account's, admin for every account's. */
async function requireEndpointAccess(context: Context, operation: string, endpointId: string): Promise<void> {
  requirePlatform(context, operation);
  const accountId = await endpointAccount(context.db, endpointId);
  if (accountId === undefined || (accountId !== null && !(await context.access.canRead(accountId))))
    throw new NotFoundError("WebhookEndpoint");
  if (accountId === null && !context.access.isAdmin)
    throw new ForbiddenError(`${operation} of an endpoint for every account needs an admin token`);
}

builder.mutationField("deleteWebhookEndpoint", (t) =>
  t.field({
    type: DeleteWebhookEndpointSuccess,
    description:
      "Deletes a webhook endpoint and its deliveries (service, admin; admin for an every-account one).",
    args: {
      input: t.arg({
        type: DeleteWebhookEndpointInput,
        required: true,
        description: "The endpoint to delete.",
      }),
    },
    errors: {
      types: [],
      union: { name: "DeleteWebhookEndpointResult", description: resultDescription("deleteWebhookEndpoint") },
    },
    resolve: async (_root, { input }, context) => {
      requirePlatform(context, "deleteWebhookEndpoint");
      const id = inputId("id", input.id, "WebhookEndpoint");
      // Deleting is idempotent: an endpoint already gone (a retried request) is what was asked for.
      const accountId = await endpointAccount(context.db, id);
      // Another account's endpoint, to an API key limited to one account, does not exist.
      if (typeof accountId === "string" && !(await context.access.canRead(accountId)))
        throw new NotFoundError("WebhookEndpoint");
      if (accountId === null && !context.access.isAdmin)
        throw new ForbiddenError(
          "deleteWebhookEndpoint of an endpoint for every account needs an admin token",
        );
      if (accountId !== undefined) await deleteEndpoint(context.db, id);
      return { id: input.id };
    },
  }),
);

const RedeliverWebhookInput = builder.inputType("RedeliverWebhookInput", {
  description: "The delivery to send again.",
  fields: (t) => ({ deliveryId: t.id({ required: true, description: "The delivery's global id." }) }),
});

const RedeliverWebhookSuccess = builder
  .objectRef<{ deliveryId: string }>("RedeliverWebhookSuccess")
  .implement({
    description: "A fresh delivery of the same event (same webhook-id) was queued, due now.",
    fields: (t) => ({
      delivery: t.prismaField({
        type: WebhookDeliveryRef,
        description: "The new delivery.",
        resolve: (query, parent, _args, context) =>
          context.prisma.webhookDelivery.findUniqueOrThrow({ ...query, where: { id: parent.deliveryId } }),
      }),
    }),
  });

builder.mutationField("redeliverWebhook", (t) =>
  t.field({
    type: RedeliverWebhookSuccess,
    description:
      "Queues the event of a delivery again for the same endpoint, whatever the first delivery's status (service, admin).",
    args: {
      input: t.arg({
        type: RedeliverWebhookInput,
        required: true,
        description: "The delivery to send again.",
      }),
    },
    errors: {
      types: [],
      union: { name: "RedeliverWebhookResult", description: resultDescription("redeliverWebhook") },
    },
    resolve: async (_root, { input }, context) => {
      requirePlatform(context, "redeliverWebhook");
      const id = inputId("deliveryId", input.deliveryId, "WebhookDelivery");
      const delivery = await deliveryAccount(context.db, id);
      if (delivery === undefined) throw new NotFoundError("WebhookDelivery");
      await requireEndpointAccess(context, "redeliverWebhook", delivery.endpointId);
      const deliveryId = await redeliver(context.db, id, new Date());
      if (deliveryId === undefined) throw new NotFoundError("WebhookDelivery");
      return { deliveryId };
    },
  }),
);
