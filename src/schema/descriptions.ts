/**
 * Description texts that recur across the schema, written once so every
 * mutation says the same thing the same way.
 */

/** For every `idempotencyKey` input field. */
export const IDEMPOTENCY_KEY =
  "Chosen by the client, 1 to 200 printable characters, scoped to the token's `sub` and this mutation, kept at least 24 hours. The same key with the same input returns the stored answer (`replayed: true`); with different input it is `IdempotencyKeyReusedError`. Retry a request whose answer was lost with the SAME key, never a new one.";

/** For every `replayed` field of a success type. */
export const REPLAYED =
  "True when this is the stored answer of an earlier call with the same idempotency key (a retry or a concurrent duplicate): nothing was applied again. The objects returned show their current state.";

/** For the `balance` field of a success type. */
export const BALANCE_AFTER = "The account's balance right after this change (on a replay: its balance now).";

/** For a `…Result` union of the mutation named. */
export function resultDescription(mutation: string): string {
  return `What \`${mutation}\` answers: its success type, or one of the operating errors it can meet (each implements \`Error\`).`;
}

const SUCCESS_DESCRIPTIONS: Readonly<Record<string, string>> = {
  ReserveGenerationSuccess:
    "The generation was reserved: unitCost × quantity credits are held, and its USAGE entry written.",
  SettleGenerationSuccess:
    "The reported outcomes were applied: delivered items charged (surplus released), failed ones refunded.",
  RefundGenerationSuccess: "Every unfinished item was ended with the reason and refunded in full.",
  CancelGenerationSuccess:
    "Every unfinished item was cancelled and refunded in full; finished items stay as they were.",
  SupportRefundSuccess: "The support refund was returned to the account as a REFUND entry.",
};

/** For a success type of a generation mutation, by its type name. */
export function successDescription(typeName: string): string {
  return SUCCESS_DESCRIPTIONS[typeName] ?? `The answer of a successful ${typeName.replace(/Success$/, "")}.`;
}

/** For the `accountId` argument of a query whose result is not nullable. */
export const NOT_FOUND_ACCOUNT =
  "The account's global id. An unknown account, or one the caller is not a member of, is a GraphQL error with code NOT_FOUND.";

/** For the `accountId` argument of a subscription. */
export const ACCOUNT_TO_FOLLOW = "The account to follow (a global id).";
