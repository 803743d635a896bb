/** GraphQL documents and helpers of the rate-card, quote and spend-cap tests. */
import { dataOf } from "../support/harness.ts";
import type { Billing, Json } from "./ops.ts";

export const QUOTE = `query Quote($accountId: ID!, $feature: String!, $model: String, $quantity: Int, $unitCost: Credits, $requestedBy: String) {
  quoteGeneration(accountId: $accountId, feature: $feature, model: $model, quantity: $quantity, unitCost: $unitCost, requestedBy: $requestedBy) {
    unitCost total available affordable shortfall capRemaining
  }
}`;

const SET_CAP = `mutation SetCap($input: SetSpendCapInput!) {
  setSpendCap(input: $input) {
    __typename
    ... on SetSpendCapSuccess { cap { memberId period amount spent remaining resetsAt } }
    ... on Error { code message }
    ... on InvalidInputError { field }
  }
}`;

/** Sets a cap with the service token (or `token`); answers the union member. */
export async function setCap(
  billing: Billing,
  accountId: string,
  memberId: string,
  period: "DAY" | "MONTH",
  amount: number | null,
  token = billing.service,
): Promise<Json> {
  return dataOf<Json>(await billing.call(token, SET_CAP, { input: { accountId, memberId, period, amount } }))
    .setSpendCap;
}
