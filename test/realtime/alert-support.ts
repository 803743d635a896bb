/**
 * Balance-alert pieces shared by the alert tests on one instance and across
 * instances: the mutations as any token, the `balanceLow` document, and a
 * warm-up that proves a subscriber receives alerts before a test counts them.
 */
import type { LiveSubscription } from "../support/ws.ts";
import { type Api, type Json, unique } from "./helpers.ts";

export const BALANCE_LOW = `subscription($accountId: ID!) {
  balanceLow(accountId: $accountId) { accountId threshold available at }
}`;

/** setBalanceAlert as `api`'s token; returns the result union member. */
export async function setAlert(api: Api, accountId: string, threshold: number): Promise<Json> {
  const data = await api.gql(
    `mutation($input: SetBalanceAlertInput!) { setBalanceAlert(input: $input) {
      __typename
      ... on SetBalanceAlertSuccess { balanceAlert { threshold triggered } account { id balanceAlert { threshold triggered } } }
      ... on InvalidInputError { field }
      ... on Error { code message } } }`,
    { input: { accountId, threshold } },
  );
  return data.setBalanceAlert;
}

/** clearBalanceAlert as `api`'s token; returns the result union member. */
export async function clearAlert(api: Api, accountId: string): Promise<Json> {
  const data = await api.gql(
    `mutation($input: ClearBalanceAlertInput!) { clearBalanceAlert(input: $input) {
      __typename ... on ClearBalanceAlertSuccess { account { id balanceAlert { threshold } } }
      ... on Error { code message } } }`,
    { input: { accountId } },
  );
  return data.clearBalanceAlert;
}

/** The account's alert as `Account.balanceAlert` shows it. */
export async function alertOf(api: Api, accountId: string): Promise<Json> {
  const data = await api.gql(
    "query($id: ID!) { account(id: $id) { balanceAlert { threshold triggered } } }",
    {
      id: accountId,
    },
  );
  return data.account.balanceAlert;
}

/** Adjusts the balance by `amount` (admin `api`); returns the available balance after. */
export async function adjust(api: Api, accountId: string, amount: number): Promise<number> {
  const data = await api.gql(
    `mutation($input: AdjustBalanceInput!) { adjustBalance(input: $input) {
      __typename ... on AdjustBalanceSuccess { balance { available } } ... on Error { code message } } }`,
    { input: { idempotencyKey: unique("adjust"), accountId, amount, note: "alert test" } },
  );
  if (data.adjustBalance.__typename !== "AdjustBalanceSuccess")
    throw new Error(`adjustBalance: ${JSON.stringify(data.adjustBalance)}`);
  return data.adjustBalance.balance.available;
}

/**
 * Until `subscription` has received an alert: sets the alert at the
 * account's `available`, reserves 1 credit (a fall below it) and refunds it
 * (re-armed). Leaves the balance as it was and the alert armed at `available`.
 */
export async function warmUpAlerts(
  service: Api,
  accountId: string,
  subscription: LiveSubscription<Json>,
): Promise<void> {
  const deadline = Date.now() + 10_000;
  const available = (
    await service.gql("query($id: ID!) { balance(accountId: $id) { available } }", { id: accountId })
  ).balance.available as number;
  const set = await setAlert(service, accountId, available);
  if (set.__typename !== "SetBalanceAlertSuccess") throw new Error(`setBalanceAlert: ${JSON.stringify(set)}`);
  while (subscription.values.length === 0) {
    if (Date.now() > deadline) throw new Error("balanceLow never started receiving");
    const generation = await service.reserve(accountId, { unitCost: 1, feature: "Warm-up" });
    await service.refund(generation.id, "SYSTEM_ERROR");
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Waits `ms`, for events that must not come to have had their chance. */
export function settle(ms = 500): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
