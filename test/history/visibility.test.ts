import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAccount, grant } from "../support/fixtures.ts";
import { dataOf, startServer, type TestServer } from "../support/harness.ts";
import { firstError, LEDGER_PAGE, readLedger, reserve, settle } from "./helpers.ts";

/** History is visible to the account's members (and the platform) only. */

const GENERATIONS = `query($accountId: ID!) { generations(accountId: $accountId) { edges { node { id } } } }`;
const SPENDING = `query($accountId: ID!) { spending(accountId: $accountId) { charged } }`;
const NODE = `query($id: ID!) { node(id: $id) { __typename id ... on LedgerEntry { sequence amount } } }`;

describe("history visibility", () => {
  let server: TestServer;
  let service: string;
  let alice: { token: string; accountId: string; generationId: string };
  let bob: { token: string; accountId: string; generationId: string };

  beforeAll(async () => {
    server = await startServer();
    service = await server.token("platform", "service");
    const make = async () => {
      const account = await createAccount(server, service);
      await grant(server, service, account.id, 100);
      const generationId = await reserve(server, service, account.id, { unitCost: 10, feature: "Image" });
      await settle(server, service, generationId);
      return { token: await server.token(account.ownerId, "user"), accountId: account.id, generationId };
    };
    [alice, bob] = await Promise.all([make(), make()]);
  });
  afterAll(() => server.close());

  it("shows a user their own history only; another account is NOT_FOUND", async () => {
    expect(await readLedger(server, alice.token, alice.accountId)).toHaveLength(2);
    for (const document of [LEDGER_PAGE, GENERATIONS, SPENDING]) {
      const foreign = firstError(await server.gql(alice.token, document, { accountId: bob.accountId }));
      expect(foreign.extensions?.code).toBe("NOT_FOUND");
      // Exactly what an account that does not exist looks like.
      const missing = firstError(
        await server.gql(alice.token, document, {
          accountId: Buffer.from("Account:00000000-0000-4000-8000-000000000000").toString("base64"),
        }),
      );
      expect(missing).toMatchObject({ message: foreign.message, extensions: { code: "NOT_FOUND" } });
      expect(
        firstError(await server.gql(alice.token, document, { accountId: "garbage" })).extensions?.code,
      ).toBe("NOT_FOUND");
      expect(
        firstError(await server.gql(null, document, { accountId: alice.accountId })).extensions?.code,
      ).toBe("UNAUTHENTICATED");
    }
  });

  it("answers NOT_FOUND to the platform for an account that does not exist, and an empty page for one without history", async () => {
    const missing = Buffer.from("Account:00000000-0000-4000-8000-000000000000").toString("base64");
    for (const document of [LEDGER_PAGE, GENERATIONS]) {
      const error = firstError(await server.gql(service, document, { accountId: missing }));
      expect(error).toMatchObject({ message: "Account not found", extensions: { code: "NOT_FOUND" } });
    }
    const empty = (await createAccount(server, service)).id;
    expect(await readLedger(server, service, empty)).toEqual([]);
    const generations = await server.gql(service, GENERATIONS, { accountId: empty });
    expect(generations.errors).toBeUndefined();
    expect(generations.data?.generations.edges).toEqual([]);
  });

  it("resolves node(id) of a foreign LedgerEntry to null", async () => {
    const [bobEntry] = await readLedger(server, bob.token, bob.accountId);
    const [aliceEntry] = await readLedger(server, alice.token, alice.accountId);
    expect(dataOf(await server.gql(alice.token, NODE, { id: bobEntry?.id })).node).toBeNull();
    expect(dataOf(await server.gql(alice.token, NODE, { id: aliceEntry?.id })).node).toMatchObject({
      __typename: "LedgerEntry",
      id: aliceEntry?.id,
      sequence: aliceEntry?.sequence,
    });
    expect(dataOf(await server.gql(bob.token, NODE, { id: bobEntry?.id })).node.id).toBe(bobEntry?.id);
  });

  it("never lets a filter reach into another account", async () => {
    // Bob's generation id on Alice's ledger matches nothing.
    expect(
      await readLedger(server, alice.token, alice.accountId, { generationId: bob.generationId }),
    ).toEqual([]);
    expect(
      (await readLedger(server, alice.token, alice.accountId, { generationId: alice.generationId })).length,
    ).toBe(1);
  });

  it("lets a service read any account's history, and workspace members theirs", async () => {
    expect(await readLedger(server, service, bob.accountId)).toHaveLength(2);
    const workspace = await createAccount(server, service, { kind: "WORKSPACE" });
    await grant(server, service, workspace.id, 5);
    const member = `member-${workspace.id.slice(0, 6)}`;
    await server.gql(
      service,
      `mutation($input: AddAccountMemberInput!) { addAccountMember(input: $input) { __typename } }`,
      { input: { accountId: workspace.id, userId: member, role: "MEMBER" } },
    );
    const token = await server.token(member, "user");
    expect(await readLedger(server, token, workspace.id)).toHaveLength(1);
    expect(
      firstError(await server.gql(token, LEDGER_PAGE, { accountId: alice.accountId })).extensions?.code,
    ).toBe("NOT_FOUND");
  });
});
