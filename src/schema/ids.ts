import { decodeGlobalID, encodeGlobalID } from "@pothos/plugin-relay";
import { InvalidInputError } from "../domain/errors.ts";

export type NodeTypeName = "Account" | "Grant" | "Generation" | "LedgerEntry" | "Board";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * The database id inside a Relay global id of the given type, or null when
 * the value is not one (malformed, another type, or not a uuid inside).
 */
export function localId(globalId: string, typename: NodeTypeName): string | null {
  try {
    const decoded = decodeGlobalID(globalId);
    return decoded.typename === typename && UUID.test(decoded.id) ? decoded.id.toLowerCase() : null;
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
