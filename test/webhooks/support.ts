import {
  CreateWebhookEndpointDocument,
  RefundGenerationDocument,
  ReserveGenerationDocument,
  WebhookDeliveriesDocument,
  type WebhookEventType,
} from "../../src/generated/graphql/graphql.ts";
import { expectTypename, gqlData } from "../support/documents.ts";
import { type TestServer, unique } from "../support/harness.ts";

/** Creates an endpoint through the API; returns it with its secret. */
export async function createEndpoint(
  server: TestServer,
  token: string,
  input: { url: string; accountId: string | null; eventTypes: WebhookEventType[] },
) {
  const data = await gqlData(server, token, CreateWebhookEndpointDocument, {
    input: { ...input, description: "test receiver" },
  });
  return expectTypename(data.createWebhookEndpoint, "CreateWebhookEndpointSuccess");
}

/** Reserves one item of `unitCost` and refunds it; returns the generation's id. */
export async function reserveAndRefund(
  server: TestServer,
  token: string,
  accountId: string,
  unitCost: number,
): Promise<string> {
  const reserved = await gqlData(server, token, ReserveGenerationDocument, {
    input: { idempotencyKey: unique("reserve"), accountId, feature: "Quick Video", unitCost, quantity: 1 },
  });
  const generationId = expectTypename(reserved.reserveGeneration, "ReserveGenerationSuccess").generation.id;
  const refunded = await gqlData(server, token, RefundGenerationDocument, {
    input: { idempotencyKey: unique("refund"), generationId, reason: "PROVIDER_ERROR" },
  });
  expectTypename(refunded.refundGeneration, "RefundGenerationSuccess");
  return generationId;
}

/** An endpoint's deliveries, newest first. */
export async function deliveriesOf(server: TestServer, token: string, endpointId: string) {
  const data = await gqlData(server, token, WebhookDeliveriesDocument, { endpointId, first: 100 });
  const node = data.node;
  if (node == null || !("deliveries" in node)) throw new Error(`no endpoint ${endpointId}`);
  return node.deliveries.edges.map((edge) => edge.node);
}

/** Polls `read` until `done` holds of its value (or fails after `timeoutMs`). */
export async function eventually<T>(
  read: () => Promise<T>,
  done: (value: T) => boolean,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > deadline) throw new Error(`not reached in ${timeoutMs} ms: ${JSON.stringify(value)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
