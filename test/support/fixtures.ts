import { dataOf, type TestServer, unique } from "./harness.ts";

export const CREATE_ACCOUNT = `mutation($input: CreateAccountInput!) {
  createAccount(input: $input) {
    __typename
    ... on CreateAccountSuccess { replayed account { id name kind } }
    ... on Error { code message }
  }
}`;

export const GRANT = `mutation($input: GrantCreditsInput!) {
  grantCredits(input: $input) {
    __typename
    ... on GrantCreditsSuccess { replayed grant { id source amount remaining held expiresAt } balance { available held subscription wallet sequence } }
    ... on InvalidInputError { code message field }
    ... on Error { code message }
  }
}`;

/** Creates an account owned by `ownerId` through the API; returns its global id. */
export async function createAccount(
  server: TestServer,
  serviceToken: string,
  options: { ownerId?: string; kind?: "PERSONAL" | "WORKSPACE"; name?: string } = {},
): Promise<{ id: string; ownerId: string }> {
  const ownerId = options.ownerId ?? unique("user");
  const data = dataOf(
    await server.gql(serviceToken, CREATE_ACCOUNT, {
      input: {
        idempotencyKey: unique("acct"),
        kind: options.kind ?? "PERSONAL",
        name: options.name ?? "Test account",
        ownerId,
      },
    }),
  );
  if (data.createAccount.__typename !== "CreateAccountSuccess")
    throw new Error(JSON.stringify(data.createAccount));
  return { id: data.createAccount.account.id, ownerId };
}

/** Grants credits through the API. */
export async function grant(
  server: TestServer,
  serviceToken: string,
  accountId: string,
  amount: number,
  options: { source?: "SUBSCRIPTION" | "WALLET"; expiresAt?: string; key?: string } = {},
) {
  const data = dataOf(
    await server.gql(serviceToken, GRANT, {
      input: {
        idempotencyKey: options.key ?? unique("grant"),
        accountId,
        source: options.source ?? "WALLET",
        amount,
        expiresAt: options.expiresAt,
      },
    }),
  );
  if (data.grantCredits.__typename !== "GrantCreditsSuccess")
    throw new Error(JSON.stringify(data.grantCredits));
  return data.grantCredits;
}
