import { SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AddAccountMemberDocument, LedgerAuditDocument } from "../src/generated/graphql/graphql.ts";
import { sourceOf } from "./support/documents.ts";
import { TEST_SECRET } from "./support/env.ts";
import { createAccount, grant } from "./support/fixtures.ts";
import { dataOf, startServer, type TestServer, unique } from "./support/harness.ts";

const VIEWER = `{ viewer { id role accounts { id name } } }`;

const ACCOUNT = `query($id: ID!) {
  account(id: $id) { id name members { userId role } }
  balance(accountId: $id) { accountId available }
  node(id: $id) { id ... on Account { name } }
}`;

/** Generated from operations/*.graphql; it selects exactly the fields the assertions compare. */
const ADD_MEMBER = sourceOf(AddAccountMemberDocument);

const RESERVE = `mutation($input: ReserveGenerationInput!) {
  reserveGeneration(input: $input) {
    __typename
    ... on ReserveGenerationSuccess { generation { id status requestedBy } balance { available held } }
    ... on Error { code message }
  }
}`;

const CANCEL = `mutation($input: CancelGenerationInput!) {
  cancelGeneration(input: $input) {
    __typename
    ... on CancelGenerationSuccess { replayed generation { id status refunded } balance { available held } }
    ... on Error { code message }
  }
}`;

const ADJUST = `mutation($input: AdjustBalanceInput!) {
  adjustBalance(input: $input) {
    __typename
    ... on AdjustBalanceSuccess { balance { available } }
    ... on Error { code message }
  }
}`;

const SUPPORT_REFUND = `mutation($input: SupportRefundInput!) {
  supportRefund(input: $input) {
    __typename
    ... on SupportRefundSuccess { generation { refunded } }
    ... on Error { code message }
  }
}`;

const SETTLE = `mutation($input: SettleGenerationInput!) {
  settleGeneration(input: $input) {
    __typename
    ... on SettleGenerationSuccess { generation { status charged } }
    ... on Error { code message }
  }
}`;

/** Generated from operations/admin.graphql (ok, accountsChecked, problems). */
const AUDIT = sourceOf(LedgerAuditDocument);

describe("authentication and roles (SPEC §3)", () => {
  let server: TestServer;
  let service: string;
  let admin: string;

  beforeAll(async () => {
    server = await startServer();
    service = await server.token(unique("svc"), "service");
    admin = await server.token(unique("admin"), "admin");
  });
  afterAll(() => server.close());

  /** An account owned by a fresh user with `credits` in its wallet. */
  async function fundedAccount(credits = 100) {
    const account = await createAccount(server, service);
    if (credits > 0) await grant(server, service, account.id, credits);
    return { ...account, userToken: await server.token(account.ownerId, "user") };
  }

  async function balanceOf(
    accountId: string,
  ): Promise<{ available: number; held: number; sequence: number }> {
    const data = dataOf(
      await server.gql(service, `query($id: ID!) { balance(accountId: $id) { available held sequence } }`, {
        id: accountId,
      }),
    );
    return data.balance;
  }

  async function reserve(accountId: string, requestedBy: string | null, unitCost = 10) {
    const data = dataOf(
      await server.gql(service, RESERVE, {
        input: {
          idempotencyKey: unique("reserve"),
          accountId,
          requestedBy,
          feature: "Quick Video",
          unitCost,
        },
      }),
    );
    expect(data.reserveGeneration.__typename).toBe("ReserveGenerationSuccess");
    return data.reserveGeneration.generation.id as string;
  }

  describe("without a token", () => {
    it("answers __typename and introspection only", async () => {
      expect(await server.gql(null, `{ __typename }`)).toEqual({ data: { __typename: "Query" } });
      const introspection = await server.gql(null, `{ __schema { queryType { name } } }`);
      expect(introspection.errors).toBeUndefined();
      expect(introspection.data?.__schema.queryType.name).toBe("Query");
    });

    it("gives UNAUTHENTICATED for viewer, account and mutations", async () => {
      const viewer = await server.gql(null, VIEWER);
      expect(viewer.data ?? null).toBeNull();
      expect(viewer.errors?.map((error) => error.extensions?.code)).toEqual(["UNAUTHENTICATED"]);

      const account = await createAccount(server, service);
      const read = await server.gql(null, `query($id: ID!) { account(id: $id) { id } }`, { id: account.id });
      expect(read.errors?.[0]?.extensions?.code).toBe("UNAUTHENTICATED");
      expect(read.data?.account ?? null).toBeNull();

      const mutation = await server.gql(null, ADJUST, {
        input: { idempotencyKey: unique("adj"), accountId: account.id, amount: 5, note: "no token" },
      });
      expect(mutation.errors?.[0]?.extensions?.code).toBe("UNAUTHENTICATED");
      expect(mutation.data?.adjustBalance ?? null).toBeNull();
      expect((await balanceOf(account.id)).sequence).toBe(0);
    });
  });

  describe("a bad or expired token is HTTP 401", () => {
    const status = async (authorization: string) => {
      const response = await fetch(server.url, {
        method: "POST",
        headers: { "content-type": "application/json", authorization },
        body: JSON.stringify({ query: "{ __typename }" }),
      });
      const body = await response.text();
      // No stack traces or internals in the answer.
      expect(body).not.toMatch(/at .*\.ts:\d+|JWSSignatureVerificationFailed|node_modules/);
      if (response.status === 401) {
        expect(response.headers.get("www-authenticate")).toBe("Bearer");
        const parsed = JSON.parse(body) as { data?: unknown; errors: { extensions?: { code?: string } }[] };
        expect(parsed.data ?? null).toBeNull();
        expect(parsed.errors.map((error) => error.extensions?.code)).toEqual(["UNAUTHENTICATED"]);
      }
      return response.status;
    };
    const sign = (claims: Record<string, unknown>, secret: string, exp: number | string = "1h") => {
      const jwt = new SignJWT(claims)
        .setProtectedHeader({ alg: "HS256" })
        .setIssuedAt()
        .setExpirationTime(exp);
      return jwt.sign(new TextEncoder().encode(secret));
    };

    it("refuses garbage, a wrong signature, an expired token and bad claims", async () => {
      expect(await status("Bearer not-a-jwt")).toBe(401);
      expect(
        await status(`Bearer ${await sign({ sub: "eve", role: "admin" }, `${TEST_SECRET}-other`)}`),
      ).toBe(401);
      const expired = await sign(
        { sub: "alice", role: "user" },
        TEST_SECRET,
        Math.floor(Date.now() / 1000) - 60,
      );
      expect(await status(`Bearer ${expired}`)).toBe(401);
      expect(await status(`Bearer ${await sign({ sub: "alice", role: "root" }, TEST_SECRET)}`)).toBe(401);
      expect(await status(`Bearer ${await sign({ role: "service" }, TEST_SECRET)}`)).toBe(401);
      expect(await status(`Basic ${Buffer.from("a:b").toString("base64")}`)).toBe(401);
      // The same secret and claims pass, so the refusals above are about the token.
      expect(await status(`Bearer ${await sign({ sub: "alice", role: "user" }, TEST_SECRET)}`)).toBe(200);
    });

    it("refuses an unsigned (alg: none) token", async () => {
      const header = Buffer.from(JSON.stringify({ alg: "none", typ: "JWT" })).toString("base64url");
      const payload = Buffer.from(
        JSON.stringify({ sub: "eve", role: "admin", exp: Math.floor(Date.now() / 1000) + 3600 }),
      ).toString("base64url");
      expect(await status(`Bearer ${header}.${payload}.`)).toBe(401);
    });
  });

  describe("viewer", () => {
    it("is the token's subject and role, listing exactly their accounts", async () => {
      const user = unique("user");
      const first = await createAccount(server, service, { ownerId: user, name: "Personal" });
      const second = await createAccount(server, service, { ownerId: unique("other"), kind: "WORKSPACE" });
      await createAccount(server, service, { ownerId: unique("stranger") });
      const added = dataOf(
        await server.gql(service, ADD_MEMBER, {
          input: { accountId: second.id, userId: user, role: "MEMBER" },
        }),
      );
      expect(added.addAccountMember.__typename).toBe("AddAccountMemberSuccess");

      const data = dataOf(await server.gql(await server.token(user, "user"), VIEWER));
      expect(data.viewer.id).toBe(user);
      expect(data.viewer.role).toBe("user");
      expect(data.viewer.accounts.map((account: { id: string }) => account.id).sort()).toEqual(
        [first.id, second.id].sort(),
      );

      const nobody = dataOf(await server.gql(await server.token(unique("nobody"), "user"), VIEWER));
      expect(nobody.viewer.accounts).toEqual([]);
    });
  });

  describe("what a user may see", () => {
    it("sees their account, balance and node; a foreign one looks missing", async () => {
      const mine = await fundedAccount(70);
      const foreign = await fundedAccount(30);

      const own = dataOf(await server.gql(mine.userToken, ACCOUNT, { id: mine.id }));
      expect(own.account).toMatchObject({ id: mine.id, members: [{ userId: mine.ownerId, role: "OWNER" }] });
      expect(own.balance).toEqual({ accountId: mine.id, available: 70 });
      expect(own.node).toMatchObject({ id: mine.id });

      const other = await server.gql(mine.userToken, ACCOUNT, { id: foreign.id });
      expect(other.errors).toBeUndefined();
      expect(other.data).toEqual({ account: null, balance: null, node: null });

      // A well-formed id of nothing looks the same as a foreign one.
      const missing = Buffer.from("Account:00000000-0000-4000-8000-000000000000").toString("base64");
      expect(dataOf(await server.gql(mine.userToken, ACCOUNT, { id: missing }))).toEqual({
        account: null,
        balance: null,
        node: null,
      });

      // Nor do the foreign account's generations and grants show through other ids.
      const generationId = await reserve(foreign.id, mine.ownerId);
      const foreignGrant = dataOf(
        await server.gql(service, `query($id: ID!) { account(id: $id) { grants { id } } }`, {
          id: foreign.id,
        }),
      ).account.grants[0].id as string;
      const through = await server.gql(
        mine.userToken,
        `query($g: ID!, $grant: ID!) { generation(id: $g) { id } node(id: $g) { id } grant: node(id: $grant) { id } }`,
        { g: generationId, grant: foreignGrant },
      );
      expect(through).toEqual({ data: { generation: null, node: null, grant: null } });

      // Services and admins see every account.
      for (const token of [service, admin]) {
        const seen = dataOf(await server.gql(token, ACCOUNT, { id: foreign.id }));
        expect(seen.account?.id).toBe(foreign.id);
        expect(seen.balance?.available).toBe(20);
      }
    });

    it("sees an account once added as a member; the role is an upsert", async () => {
      const workspace = await fundedAccount(10);
      const member = unique("member");
      const memberToken = await server.token(member, "user");
      expect(dataOf(await server.gql(memberToken, ACCOUNT, { id: workspace.id })).account).toBeNull();

      const added = dataOf(
        await server.gql(service, ADD_MEMBER, {
          input: { accountId: workspace.id, userId: member, role: "MEMBER" },
        }),
      );
      expect(added.addAccountMember.account.members).toEqual([
        { userId: workspace.ownerId, role: "OWNER" },
        { userId: member, role: "MEMBER" },
      ]);
      const seen = dataOf(await server.gql(memberToken, ACCOUNT, { id: workspace.id }));
      expect(seen.account?.id).toBe(workspace.id);
      expect(seen.balance?.available).toBe(10);

      const promoted = dataOf(
        await server.gql(service, ADD_MEMBER, {
          input: { accountId: workspace.id, userId: member, role: "OWNER" },
        }),
      );
      expect(promoted.addAccountMember.account.members).toEqual([
        { userId: workspace.ownerId, role: "OWNER" },
        { userId: member, role: "OWNER" },
      ]);
    });

    it("cannot add members; a service adding one to a missing account gets NotFoundError", async () => {
      const account = await fundedAccount(0);
      const byUser = dataOf(
        await server.gql(account.userToken, ADD_MEMBER, {
          input: { accountId: account.id, userId: unique("friend"), role: "OWNER" },
        }),
      );
      expect(byUser.addAccountMember).toMatchObject({ __typename: "ForbiddenError", code: "FORBIDDEN" });
      const missing = Buffer.from("Account:00000000-0000-4000-8000-000000000000").toString("base64");
      const notFound = dataOf(
        await server.gql(service, ADD_MEMBER, { input: { accountId: missing, userId: "x", role: "MEMBER" } }),
      );
      expect(notFound.addAccountMember).toMatchObject({ __typename: "NotFoundError", code: "NOT_FOUND" });
    });
  });

  describe("platform mutations", () => {
    it("are ForbiddenError for a user, and write nothing", async () => {
      const account = await fundedAccount(50);
      const createResult = dataOf(
        await server.gql(
          account.userToken,
          `mutation($input: CreateAccountInput!) { createAccount(input: $input) { __typename ... on Error { code message } } }`,
          {
            input: { idempotencyKey: unique("k"), kind: "PERSONAL", name: "Mine", ownerId: account.ownerId },
          },
        ),
      );
      expect(createResult.createAccount).toMatchObject({ __typename: "ForbiddenError", code: "FORBIDDEN" });

      const grantResult = dataOf(
        await server.gql(
          account.userToken,
          `mutation($input: GrantCreditsInput!) { grantCredits(input: $input) { __typename ... on Error { code message } } }`,
          {
            input: {
              idempotencyKey: unique("k"),
              accountId: account.id,
              source: "WALLET",
              amount: 1_000_000,
            },
          },
        ),
      );
      expect(grantResult.grantCredits).toMatchObject({ __typename: "ForbiddenError", code: "FORBIDDEN" });

      const reserveResult = dataOf(
        await server.gql(account.userToken, RESERVE, {
          input: { idempotencyKey: unique("k"), accountId: account.id, feature: "Quick Video", unitCost: 5 },
        }),
      );
      expect(reserveResult.reserveGeneration).toMatchObject({
        __typename: "ForbiddenError",
        code: "FORBIDDEN",
      });

      const generationId = await reserve(account.id, account.ownerId);
      for (const [query, name, input] of [
        [SETTLE, "settleGeneration", { idempotencyKey: unique("k"), generationId }],
        [
          `mutation($input: RefundGenerationInput!) { refundGeneration(input: $input) { __typename ... on Error { code } } }`,
          "refundGeneration",
          { idempotencyKey: unique("k"), generationId, reason: "PROVIDER_ERROR" },
        ],
      ] as const) {
        const result = dataOf(await server.gql(account.userToken, query, { input }));
        expect(result[name]).toMatchObject({ __typename: "ForbiddenError", code: "FORBIDDEN" });
      }

      expect(await balanceOf(account.id)).toEqual({ available: 40, held: 10, sequence: 2 });
      const viewer = dataOf(await server.gql(account.userToken, VIEWER));
      expect(viewer.viewer.accounts).toHaveLength(1);
    });

    it("adjustBalance and supportRefund are ForbiddenError for a service; an admin may", async () => {
      const account = await fundedAccount(100);
      const generationId = await reserve(account.id, account.ownerId, 20);
      const settled = dataOf(
        await server.gql(service, SETTLE, { input: { idempotencyKey: unique("k"), generationId } }),
      );
      expect(settled.settleGeneration).toMatchObject({ generation: { status: "SUCCEEDED", charged: 20 } });
      const before = await balanceOf(account.id);

      const adjustInput = {
        idempotencyKey: unique("adj"),
        accountId: account.id,
        amount: 7,
        note: "goodwill",
      };
      const refundInput = { idempotencyKey: unique("sr"), generationId, amount: 5, reason: "BILLING_ERROR" };
      for (const token of [service, account.userToken]) {
        const adjust = dataOf(await server.gql(token, ADJUST, { input: adjustInput }));
        expect(adjust.adjustBalance).toMatchObject({ __typename: "ForbiddenError", code: "FORBIDDEN" });
        const refund = dataOf(await server.gql(token, SUPPORT_REFUND, { input: refundInput }));
        expect(refund.supportRefund).toMatchObject({ __typename: "ForbiddenError", code: "FORBIDDEN" });
      }
      expect(await balanceOf(account.id)).toEqual(before);

      const adjusted = dataOf(await server.gql(admin, ADJUST, { input: adjustInput }));
      expect(adjusted.adjustBalance).toMatchObject({
        __typename: "AdjustBalanceSuccess",
        balance: { available: before.available + 7 },
      });
      const refunded = dataOf(await server.gql(admin, SUPPORT_REFUND, { input: refundInput }));
      expect(refunded.supportRefund).toMatchObject({
        __typename: "SupportRefundSuccess",
        generation: { refunded: 5 },
      });
    });
  });

  describe("ledgerAudit", () => {
    it("is FORBIDDEN for users and services, a report for admins", async () => {
      const account = await fundedAccount(25);
      for (const token of [account.userToken, service]) {
        const refused = await server.gql(token, AUDIT, { accountId: account.id });
        expect(refused.data ?? null).toBeNull();
        expect(refused.errors?.map((error) => error.extensions?.code)).toEqual(["FORBIDDEN"]);
      }
      const report = dataOf(await server.gql(admin, AUDIT, { accountId: account.id }));
      expect(report.ledgerAudit).toEqual({ ok: true, accountsChecked: 1, problems: [] });
    });
  });

  describe("cancelGeneration", () => {
    it("a requester cancels their own, a MEMBER not another's, an OWNER any", async () => {
      const workspace = await fundedAccount(100);
      const owner = workspace.userToken;
      const alice = unique("alice");
      const bob = unique("bob");
      for (const userId of [alice, bob]) {
        const added = dataOf(
          await server.gql(service, ADD_MEMBER, {
            input: { accountId: workspace.id, userId, role: "MEMBER" },
          }),
        );
        expect(added.addAccountMember.__typename).toBe("AddAccountMemberSuccess");
      }
      const aliceToken = await server.token(alice, "user");
      const bobToken = await server.token(bob, "user");
      const aliceGeneration = await reserve(workspace.id, alice);
      const bobGeneration = await reserve(workspace.id, bob);
      const unattributed = await reserve(workspace.id, null);

      const cancel = async (token: string, generationId: string) =>
        dataOf(await server.gql(token, CANCEL, { input: { idempotencyKey: unique("cancel"), generationId } }))
          .cancelGeneration;

      expect(await cancel(bobToken, aliceGeneration)).toMatchObject({
        __typename: "ForbiddenError",
        code: "FORBIDDEN",
      });
      expect(await cancel(aliceToken, unattributed)).toMatchObject({ __typename: "ForbiddenError" });
      expect(await balanceOf(workspace.id)).toMatchObject({ available: 70, held: 30 });

      expect(await cancel(aliceToken, aliceGeneration)).toMatchObject({
        __typename: "CancelGenerationSuccess",
        replayed: false,
        generation: { id: aliceGeneration, status: "CANCELLED", refunded: 10 },
      });
      expect(await cancel(owner, bobGeneration)).toMatchObject({
        __typename: "CancelGenerationSuccess",
        generation: { status: "CANCELLED", refunded: 10 },
      });
      expect(await cancel(owner, unattributed)).toMatchObject({ __typename: "CancelGenerationSuccess" });
      expect(await balanceOf(workspace.id)).toMatchObject({ available: 100, held: 0 });
    });

    it("a user outside the account gets NotFoundError, even as the named requester", async () => {
      const account = await fundedAccount(50);
      const outsider = unique("outsider");
      const generationId = await reserve(account.id, outsider);
      const result = dataOf(
        await server.gql(await server.token(outsider, "user"), CANCEL, {
          input: { idempotencyKey: unique("cancel"), generationId },
        }),
      );
      expect(result.cancelGeneration).toMatchObject({ __typename: "NotFoundError", code: "NOT_FOUND" });
      expect(await balanceOf(account.id)).toMatchObject({ available: 40, held: 10 });
    });
  });
});
