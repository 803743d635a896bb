import { CreateAccountDocument, GrantCreditsDocument } from "../../src/generated/graphql/graphql.ts";
import { expectTypename, gqlData } from "./documents.ts";
import { type TestServer, unique } from "./harness.ts";

/**
 * The createAccount mutation as text, for tests that send it through their own
 * client (test/billing/ops.ts, test/embedded.test.ts). New tests use
 * `CreateAccountDocument` with `gqlDoc` instead.
 */
export const CREATE_ACCOUNT = `mutation($input: CreateAccountInput!) {
  createAccount(input: $input) {
    __typename
    ... on CreateAccountSuccess { replayed account { id name kind } }
    ... on Error { code message }
  }
}`;

/**
 * The grantCredits mutation as text, for tests that send it through their own
 * client or as a raw body. New tests use `GrantCreditsDocument` with `gqlDoc`.
 */
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
  const data = await gqlData(server, serviceToken, CreateAccountDocument, {
    input: {
      idempotencyKey: unique("acct"),
      kind: options.kind ?? "PERSONAL",
      name: options.name ?? "Test account",
      ownerId,
    },
  });
  const created = expectTypename(data.createAccount, "CreateAccountSuccess");
  return { id: created.account.id, ownerId };
}

/** Grants credits through the API; returns the success (grant and balance after). */
export async function grant(
  server: TestServer,
  serviceToken: string,
  accountId: string,
  amount: number,
  options: { source?: "SUBSCRIPTION" | "WALLET"; expiresAt?: string; key?: string } = {},
) {
  const data = await gqlData(server, serviceToken, GrantCreditsDocument, {
    input: {
      idempotencyKey: options.key ?? unique("grant"),
      accountId,
      source: options.source ?? "WALLET",
      amount,
      expiresAt: options.expiresAt,
    },
  });
  return expectTypename(data.grantCredits, "GrantCreditsSuccess");
}
