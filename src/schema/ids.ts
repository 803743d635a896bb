import { decodeGlobalID, encodeGlobalID } from "@pothos/plugin-relay";
import { InvalidInputError } from "../domain/errors.ts";
import { UUID } from "../domain/uuid.ts";

export type NodeTypeName =
  | "Account"
  | "Grant"
  | "Generation"
  | "LedgerEntry"
  | "Board"
  | "Price"
  | "WebhookEndpoint"
  | "WebhookDelivery"
  | "ApiKey";

const NODE_TYPE_NAMES: ReadonlySet<string> = new Set<NodeTypeName>([
  "Account",
  "Grant",
  "Generation",
  "LedgerEntry",
  "Board",
  "Price",
  "WebhookEndpoint",
  "WebhookDelivery",
  "ApiKey",
]);

/**
 * The database id inside a Relay global id of the given type, or null when
 * the value is not one (malformed, another type, or not a uuid inside).
 */
export function localId(globalId: string, typename: NodeTypeName): string | null {
  try {
    const decoded = decodeGlobalID(globalId);
    return decoded.typename === typename && UUID.test(decoded.id.toLowerCase())
      ? decoded.id.toLowerCase()
      : null;
  } catch {
    return null;
  }
}

/** Like `localId`, for an input field: throws InvalidInputError naming the field. */
export function inputId(field: string, globalId: string, typename: NodeTypeName): string {
  const id = localId(globalId, typename);
  if (id === null)
    throw new InvalidInputError(field, `must be the id of a ${typename} (a global id from this API)`);
  return id;
}

export function globalId(typename: NodeTypeName, id: string): string {
  return encodeGlobalID(typename, id);
}

/** What `decodeNodeId` returns for text that is no global id: a type no node has. */
const NO_NODE = { typename: "", id: "" } as const;

/**
 * Decodes `node(id:)`'s argument without throwing: malformed text becomes
 * NO_NODE, which `isNodeId` refuses, so the answer is null (no such node)
 * rather than an error.
 */
export function decodeNodeId(globalId: string): { typename: string; id: string } {
  try {
    return decodeGlobalID(globalId);
  } catch {
    // Not base64 or no "Type:id" inside: no node has that id, which is the answer.
    return NO_NODE;
  }
}

/**
 * Whether a decoded global id can name a node: one of the node types, with
 * a uuid inside. Anything else would reach the database as a malformed uuid
 * (an error there) or name a type that is no node.
 */
export function isNodeId(decoded: { typename: string; id: unknown }): boolean {
  return (
    NODE_TYPE_NAMES.has(decoded.typename) &&
    typeof decoded.id === "string" &&
    UUID.test(decoded.id.toLowerCase())
  );
}
