import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../src/db/database.ts";
import {
  CreateAccountDocument,
  type CreateAccountInput,
  GrantCreditsDocument,
  type GrantCreditsInput,
} from "../src/generated/graphql/graphql.ts";
import { localId } from "../src/schema/ids.ts";
import { expectTypename, gqlData } from "./support/documents.ts";
import { createAccount } from "./support/fixtures.ts";
import { startServer, type TestServer, unique } from "./support/harness.ts";
import { openTestDatabase } from "./support/test-database.ts";

/** What the database holds for one account: counted from the rows, not from the API. */
interface Written {
  readonly grants: number;
  readonly entries: number;
  readonly sequences: number[];
  readonly available: string;
}

describe("grantCredits and createAccount idempotency (SPEC §5)", () => {
  let server: TestServer;
  let service: string;
  let pool: Database;

  beforeAll(async () => {
    server = await startServer();
    service = await server.token(unique("svc"), "service");
    pool = await openTestDatabase();
  });
  afterAll(async () => {
    await pool?.close();
    await server?.close();
  });

  async function written(accountGlobalId: string): Promise<Written> {
    const id = localId(accountGlobalId, "Account");
    if (id === null) throw new Error(`${accountGlobalId} is not an Account id`);
    const rows = await pool.query<{ grants: number; sequences: number[] | null; available: string }>(
      `SELECT (SELECT count(*)::int FROM credit_grant WHERE account_id = $1) AS grants,
              (SELECT array_agg(sequence ORDER BY sequence) FROM ledger_entry WHERE account_id = $1) AS sequences,
              (SELECT available::text FROM account WHERE id = $1) AS available`,
      [id],
    );
    const row = rows[0];
    if (row === undefined) throw new Error("the count query returns one row");
    const sequences = row.sequences ?? [];
    return { grants: row.grants, entries: sequences.length, sequences, available: row.available };
  }

  const grantInput = (accountId: string, key: string, amount = 100): GrantCreditsInput => ({
    idempotencyKey: key,
    accountId,
    source: "WALLET",
    amount,
    reference: "order-1",
  });

  /** The result union of a grant: success or an operating error. */
  async function grantCredits(token: string, input: GrantCreditsInput) {
    return (await gqlData(server, token, GrantCreditsDocument, { input })).grantCredits;
  }

  /** A grant that must succeed (narrows the union for the assertions on its fields). */
  async function granted(token: string, input: GrantCreditsInput) {
    return expectTypename(await grantCredits(token, input), "GrantCreditsSuccess");
  }

  async function createAccountWith(token: string, input: CreateAccountInput) {
    return (await gqlData(server, token, CreateAccountDocument, { input })).createAccount;
  }

  it("replays the stored answer with replayed: true and writes once", async () => {
    const account = await createAccount(server, service);
    const key = unique("grant");
    const first = await granted(service, grantInput(account.id, key));
    expect(first).toMatchObject({ __typename: "GrantCreditsSuccess", replayed: false });
    expect(first.balance).toMatchObject({ available: 100, sequence: 1 });

    const again = await granted(service, grantInput(account.id, key));
    expect(again).toMatchObject({ __typename: "GrantCreditsSuccess", replayed: true });
    expect(again.grant.id).toBe(first.grant.id);
    expect(again.balance).toMatchObject({ available: 100, sequence: 1 });

    // Field order does not make it a different request.
    const { amount, ...rest } = grantInput(account.id, key);
    const reordered = await grantCredits(service, { amount, ...rest });
    expect(reordered).toMatchObject({ replayed: true, grant: { id: first.grant.id } });

    expect(await written(account.id)).toEqual({ grants: 1, entries: 1, sequences: [1], available: "100" });
  });

  it("replays even after the account moved on", async () => {
    const account = await createAccount(server, service);
    const key = unique("grant");
    const first = await granted(service, grantInput(account.id, key, 40));
    await grantCredits(service, grantInput(account.id, unique("grant"), 60));
    const replay = await grantCredits(service, grantInput(account.id, key, 40));
    expect(replay).toMatchObject({ replayed: true, grant: { id: first.grant.id, amount: 40 } });
    expect(await written(account.id)).toEqual({ grants: 2, entries: 2, sequences: [1, 2], available: "100" });
  });

  it("refuses the same key with different input (IDEMPOTENCY_KEY_REUSED) and writes nothing", async () => {
    const account = await createAccount(server, service);
    const key = unique("grant");
    await grantCredits(service, grantInput(account.id, key, 100));
    const before = await written(account.id);

    for (const changed of [
      grantInput(account.id, key, 101),
      { ...grantInput(account.id, key), source: "SUBSCRIPTION", expiresAt: "2099-01-01T00:00:00Z" },
      { ...grantInput(account.id, key), reference: "order-2" },
      { ...grantInput(account.id, key), title: "Bonus" },
    ] satisfies GrantCreditsInput[]) {
      const refused = expectTypename(await grantCredits(service, changed), "IdempotencyKeyReusedError");
      expect(refused).toMatchObject({
        __typename: "IdempotencyKeyReusedError",
        code: "IDEMPOTENCY_KEY_REUSED",
      });
      expect(refused.message).toMatch(/idempotency key/i);
    }
    expect(await written(account.id)).toEqual(before);

    // The same key on another account is another request too.
    const other = await createAccount(server, service);
    const elsewhere = await grantCredits(service, grantInput(other.id, key, 100));
    expect(elsewhere).toMatchObject({ __typename: "IdempotencyKeyReusedError" });
    expect(await written(other.id)).toMatchObject({ grants: 0, entries: 0, available: "0" });
  });

  it("runs 20 concurrent duplicates once: one replayed: false, 19 replayed: true", async () => {
    const account = await createAccount(server, service);
    const input = grantInput(account.id, unique("grant"), 250);
    const results = await Promise.all(Array.from({ length: 20 }, () => grantCredits(service, input)));
    expect(results.map((answer) => answer.__typename)).toEqual(Array(20).fill("GrantCreditsSuccess"));
    const answers = results.map((answer) => expectTypename(answer, "GrantCreditsSuccess"));
    expect(answers.filter((answer) => answer.replayed === false)).toHaveLength(1);
    expect(answers.filter((answer) => answer.replayed === true)).toHaveLength(19);
    expect(new Set(answers.map((answer) => answer.grant.id)).size).toBe(1);
    for (const answer of answers) expect(answer.balance).toMatchObject({ available: 250, sequence: 1 });
    expect(await written(account.id)).toEqual({ grants: 1, entries: 1, sequences: [1], available: "250" });
  });

  it("runs duplicates sent to two server instances at once exactly once", async () => {
    // Each instance has its own in-process queue; only the database can make them agree.
    const other = await startServer();
    try {
      const account = await createAccount(server, service);
      const input = grantInput(account.id, unique("grant"), 75);
      const results = await Promise.all(
        Array.from(
          { length: 20 },
          async (_, i) =>
            (await gqlData(i % 2 === 0 ? server : other, service, GrantCreditsDocument, { input }))
              .grantCredits,
        ),
      );
      expect(results.map((answer) => answer.__typename)).toEqual(Array(20).fill("GrantCreditsSuccess"));
      const answers = results.map((answer) => expectTypename(answer, "GrantCreditsSuccess"));
      expect(answers.filter((answer) => answer.replayed === false)).toHaveLength(1);
      expect(new Set(answers.map((answer) => answer.grant.id)).size).toBe(1);
      expect(await written(account.id)).toEqual({ grants: 1, entries: 1, sequences: [1], available: "75" });
    } finally {
      await other.close();
    }
  });

  it("scopes keys by the token's sub: another service with the same key makes a new grant", async () => {
    const account = await createAccount(server, service);
    const key = unique("grant");
    const other = await server.token(unique("svc-other"), "service");
    const first = await granted(service, grantInput(account.id, key));
    const second = await granted(other, grantInput(account.id, key));
    expect(second).toMatchObject({ __typename: "GrantCreditsSuccess", replayed: false });
    expect(second.grant.id).not.toBe(first.grant.id);
    expect(second.balance).toMatchObject({ available: 200, sequence: 2 });
    // Each sub replays its own answer.
    expect(await grantCredits(other, grantInput(account.id, key))).toMatchObject({
      replayed: true,
      grant: { id: second.grant.id },
    });
    expect(await grantCredits(service, grantInput(account.id, key))).toMatchObject({
      replayed: true,
      grant: { id: first.grant.id },
    });
    expect(await written(account.id)).toEqual({ grants: 2, entries: 2, sequences: [1, 2], available: "200" });
  });

  it("scopes keys by mutation: a createAccount key does not collide with a grant key", async () => {
    const key = unique("shared");
    const created = expectTypename(
      await createAccountWith(service, {
        idempotencyKey: key,
        kind: "PERSONAL",
        name: "Shared key",
        ownerId: unique("user"),
      }),
      "CreateAccountSuccess",
    );
    expect(created).toMatchObject({ __typename: "CreateAccountSuccess", replayed: false });
    const granted = await grantCredits(service, grantInput(created.account.id, key));
    expect(granted).toMatchObject({ __typename: "GrantCreditsSuccess", replayed: false });
  });

  describe("createAccount", () => {
    const createInput = (key: string, ownerId: string, name = "Studio"): CreateAccountInput => ({
      idempotencyKey: key,
      kind: "WORKSPACE",
      name,
      ownerId,
    });

    async function accountsOwnedBy(ownerId: string): Promise<number> {
      const rows = await pool.query<{ count: number }>(
        "SELECT count(*)::int AS count FROM account_member WHERE user_id = $1",
        [ownerId],
      );
      return rows[0]?.count ?? -1;
    }

    it("replays with the same account, and refuses a changed request", async () => {
      const owner = unique("owner");
      const key = unique("acct");
      const first = expectTypename(
        await createAccountWith(service, createInput(key, owner)),
        "CreateAccountSuccess",
      );
      expect(first).toMatchObject({ __typename: "CreateAccountSuccess", replayed: false });
      const again = await createAccountWith(service, createInput(key, owner));
      expect(again).toMatchObject({ replayed: true, account: { id: first.account.id, name: "Studio" } });

      const renamed = await createAccountWith(service, createInput(key, owner, "Other name"));
      expect(renamed).toMatchObject({
        __typename: "IdempotencyKeyReusedError",
        code: "IDEMPOTENCY_KEY_REUSED",
      });
      expect(await accountsOwnedBy(owner)).toBe(1);
    });

    it("creates one account for 20 concurrent duplicates", async () => {
      const owner = unique("owner");
      const input = createInput(unique("acct"), owner);
      const results = await Promise.all(Array.from({ length: 20 }, () => createAccountWith(service, input)));
      expect(results.map((answer) => answer.__typename)).toEqual(Array(20).fill("CreateAccountSuccess"));
      const answers = results.map((answer) => expectTypename(answer, "CreateAccountSuccess"));
      expect(answers.filter((answer) => answer.replayed === false)).toHaveLength(1);
      expect(new Set(answers.map((answer) => answer.account.id)).size).toBe(1);
      expect(await accountsOwnedBy(owner)).toBe(1);
    });

    it("scopes keys by sub: another service's same key creates another account", async () => {
      const owner = unique("owner");
      const input = createInput(unique("acct"), owner);
      const other = await server.token(unique("svc-other"), "service");
      const first = expectTypename(await createAccountWith(service, input), "CreateAccountSuccess");
      const second = expectTypename(await createAccountWith(other, input), "CreateAccountSuccess");
      expect(second).toMatchObject({ __typename: "CreateAccountSuccess", replayed: false });
      expect(second.account.id).not.toBe(first.account.id);
      expect(await accountsOwnedBy(owner)).toBe(2);
    });
  });
});
