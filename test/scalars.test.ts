import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BalanceDocument, GrantCreditsDocument } from "../src/generated/graphql/graphql.ts";
import { gqlData, sourceOf } from "./support/documents.ts";
import { createAccount } from "./support/fixtures.ts";
import { dataOf, type GraphQLResponse, startServer, type TestServer, unique } from "./support/harness.ts";

const MAX_SAFE = "9007199254740991"; // 2^53 − 1
const TOO_BIG = "9007199254740992"; // 2^53

/** Reads the wire text of exactly these fields, in this order (the assertions compare it). */
const BALANCE = `query($id: ID!) { balance(accountId: $id) { available wallet sequence } }`;

/**
 * The grantCredits document as text: these tests write values into requests
 * by hand (raw JSON numbers, wrong types), which the typed helper would not let through.
 */
const GRANT = sourceOf(GrantCreditsDocument);

describe("scalars: Credits and DateTime (SPEC §4, §5)", () => {
  let server: TestServer;
  let service: string;

  beforeAll(async () => {
    server = await startServer();
    service = await server.token(unique("svc"), "service");
  });
  afterAll(() => server.close());

  /**
   * Posts a request whose body is written by hand, so values JSON.stringify
   * cannot produce (−0, integers beyond 2^53) reach the server as written.
   */
  async function postRaw(body: string): Promise<{ status: number; text: string; json: GraphQLResponse }> {
    const response = await fetch(server.url, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${service}` },
      body,
    });
    const text = await response.text();
    return { status: response.status, text, json: JSON.parse(text) as GraphQLResponse };
  }

  /** A grant request with `amount` spliced in as raw JSON text. */
  function grantWithRawAmount(accountId: string, amountJson: string, key = unique("grant")): string {
    const input = JSON.stringify({ idempotencyKey: key, accountId, source: "WALLET" });
    return `{"query":${JSON.stringify(GRANT)},"variables":{"input":${input.slice(0, -1)},"amount":${amountJson}}}}`;
  }

  /** The same grant written as a literal in the document. */
  function grantLiteral(accountId: string, amountLiteral: string, extra = ""): string {
    return `mutation { grantCredits(input: { idempotencyKey: ${JSON.stringify(unique("lit"))}, accountId: ${JSON.stringify(accountId)}, source: WALLET, amount: ${amountLiteral}${extra} }) {
      __typename
      ... on GrantCreditsSuccess { balance { available } }
      ... on InvalidInputError { code field message }
    } }`;
  }

  async function sequenceOf(accountId: string): Promise<number> {
    const { balance } = await gqlData(server, service, BalanceDocument, { accountId });
    if (balance === null) throw new Error(`no balance for ${accountId}`);
    return balance.sequence;
  }

  /** Expects a GraphQL error (no execution, no data) whose message matches. */
  function expectValidationError(response: GraphQLResponse, message: RegExp) {
    expect(response.data ?? null).toBeNull();
    expect(response.errors?.length).toBeGreaterThan(0);
    expect(response.errors?.map((error) => error.message).join("\n")).toMatch(message);
    // A coercion failure is the client's fault, never an internal error.
    expect(response.errors?.map((error) => error.extensions?.code)).not.toContain("INTERNAL_SERVER_ERROR");
  }

  describe("Credits", () => {
    it("accepts 2^53 − 1 and reads it back exactly, as a variable and as a literal", async () => {
      const viaVariable = await createAccount(server, service);
      const granted = await postRaw(grantWithRawAmount(viaVariable.id, MAX_SAFE));
      expect(granted.json.data?.grantCredits.__typename).toBe("GrantCreditsSuccess");
      // Compare the wire text: a rounding bug would show up as ...992 here.
      expect(granted.text).toContain(`"amount":${MAX_SAFE}`);
      expect(granted.text).toContain(`"available":${MAX_SAFE}`);
      const read = await fetch(server.url, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${service}` },
        body: JSON.stringify({ query: BALANCE, variables: { id: viaVariable.id } }),
      });
      expect(await read.text()).toContain(`"available":${MAX_SAFE},"wallet":${MAX_SAFE}`);

      const viaLiteral = await createAccount(server, service);
      const literal = await postRaw(JSON.stringify({ query: grantLiteral(viaLiteral.id, MAX_SAFE) }));
      expect(literal.text).toContain(`"available":${MAX_SAFE}`);
    });

    it("refuses a grant that would take the balance beyond 2^53 − 1 (InvalidInputError, nothing written)", async () => {
      // Such a balance could never be sent exactly again: every read of it would fail.
      const account = await createAccount(server, service);
      const first = await postRaw(grantWithRawAmount(account.id, "1"));
      expect(first.json.data?.grantCredits.__typename).toBe("GrantCreditsSuccess");
      const over = await postRaw(grantWithRawAmount(account.id, MAX_SAFE));
      expect(over.json.errors).toBeUndefined();
      expect(over.json.data?.grantCredits).toMatchObject({
        __typename: "InvalidInputError",
        field: "amount",
      });
      const balance = await server.gql(service, BALANCE, { id: account.id });
      expect(balance).toEqual({ data: { balance: { available: 1, wallet: 1, sequence: 1 } } });
    });

    it("rejects 2^53 as a GraphQL error and writes nothing", async () => {
      const account = await createAccount(server, service);
      const asVariable = await postRaw(grantWithRawAmount(account.id, TOO_BIG));
      expectValidationError(asVariable.json, /Credits.*2\^53/);
      expect(asVariable.status).toBeLessThan(500);
      const asLiteral = await postRaw(JSON.stringify({ query: grantLiteral(account.id, TOO_BIG) }));
      expectValidationError(asLiteral.json, /Credits.*2\^53/);
      const negative = await postRaw(JSON.stringify({ query: grantLiteral(account.id, `-${TOO_BIG}`) }));
      expectValidationError(negative.json, /Credits.*2\^53/);
      expect(await sequenceOf(account.id)).toBe(0);
    });

    it.each([
      ["a float", "1.5", /whole number/],
      ["a string", '"10"', /string/],
      ["a boolean", "true", /Credits/],
    ])("rejects %s, as a variable and as a literal", async (_title, value, message) => {
      const account = await createAccount(server, service);
      expectValidationError((await postRaw(grantWithRawAmount(account.id, value))).json, message);
      expectValidationError(
        (await postRaw(JSON.stringify({ query: grantLiteral(account.id, value) }))).json,
        message,
      );
      expect(await sequenceOf(account.id)).toBe(0);
    });

    it("rejects float literals even when their value is whole (10.0, 1e3)", async () => {
      const account = await createAccount(server, service);
      for (const literal of ["10.0", "1e3"]) {
        const response = (await postRaw(JSON.stringify({ query: grantLiteral(account.id, literal) }))).json;
        expectValidationError(response, /whole number/);
      }
      // As JSON variables they are the numbers 10 and 1000, exactly like GraphQL's Int.
      const asVariable = (await postRaw(grantWithRawAmount(account.id, "1e3"))).json;
      expect(asVariable.data?.grantCredits).toMatchObject({ balance: { available: 1000 } });
      expect(await sequenceOf(account.id)).toBe(1);
    });

    it("treats −0 as 0: InvalidInputError on amount, as a variable and as a literal", async () => {
      const account = await createAccount(server, service);
      for (const response of [
        await postRaw(grantWithRawAmount(account.id, "-0")),
        await postRaw(JSON.stringify({ query: grantLiteral(account.id, "-0") })),
        await postRaw(grantWithRawAmount(account.id, "0")),
      ]) {
        expect(response.json.errors).toBeUndefined();
        expect(response.json.data?.grantCredits).toMatchObject({
          __typename: "InvalidInputError",
          code: "INVALID_INPUT",
          field: "amount",
        });
        expect(response.json.data?.grantCredits.message).toMatch(
          /^amount must be a positive number of credits, got 0$/,
        );
      }
      expect(await sequenceOf(account.id)).toBe(0);
    });

    it("rejects a negative amount as InvalidInputError naming the field", async () => {
      const account = await createAccount(server, service);
      const asVariable = dataOf(
        await server.gql(service, GRANT, {
          input: { idempotencyKey: unique("grant"), accountId: account.id, source: "WALLET", amount: -5 },
        }),
      ).grantCredits;
      expect(asVariable).toMatchObject({
        __typename: "InvalidInputError",
        code: "INVALID_INPUT",
        field: "amount",
      });
      expect(asVariable.message).toContain("-5");
      const asLiteral = (await postRaw(JSON.stringify({ query: grantLiteral(account.id, "-5") }))).json;
      expect(asLiteral.data?.grantCredits).toMatchObject({
        __typename: "InvalidInputError",
        field: "amount",
      });
      expect(await sequenceOf(account.id)).toBe(0);
    });
  });

  describe("DateTime", () => {
    const grantExpiring = (accountId: string, expiresAt: unknown) =>
      server.gql(service, GRANT, {
        input: {
          idempotencyKey: unique("grant"),
          accountId,
          source: "SUBSCRIPTION",
          amount: 10,
          expiresAt,
        },
      });

    it("accepts ISO-8601 with a zone and returns it in UTC with milliseconds", async () => {
      const account = await createAccount(server, service);
      const result = dataOf(await grantExpiring(account.id, "2099-06-30T14:00:00+02:00")).grantCredits;
      expect(result).toMatchObject({
        __typename: "GrantCreditsSuccess",
        grant: { expiresAt: "2099-06-30T12:00:00.000Z" },
      });
      const leapDay = dataOf(await grantExpiring(account.id, "2096-02-29T23:59:59.5-00:30")).grantCredits;
      expect(leapDay).toMatchObject({ grant: { expiresAt: "2096-03-01T00:29:59.500Z" } });
    });

    it.each([
      ["words", "next tuesday"],
      ["a date without a time", "2099-01-01"],
      ["a time without a zone", "2099-01-01T00:00:00"],
      ["a month that does not exist", "2099-13-01T00:00:00Z"],
      ["a day the month does not have", "2099-02-30T00:00:00Z"],
      ["hour 24", "2099-01-01T24:00:00Z"],
      ["a number", 4_102_444_800_000],
    ])("rejects %s as a GraphQL error", async (_title, value) => {
      const account = await createAccount(server, service);
      expectValidationError(await grantExpiring(account.id, value), /DateTime/);
      const literal = `mutation { grantCredits(input: { idempotencyKey: ${JSON.stringify(unique("lit"))}, accountId: ${JSON.stringify(account.id)}, source: SUBSCRIPTION, amount: 10, expiresAt: ${JSON.stringify(value)} }) { __typename } }`;
      expectValidationError(await server.gql(service, literal), /DateTime/);
      expect(await sequenceOf(account.id)).toBe(0);
    });

    it("rejects expiresAt in the past as InvalidInputError on expiresAt", async () => {
      const account = await createAccount(server, service);
      const result = dataOf(await grantExpiring(account.id, "2020-01-01T00:00:00Z")).grantCredits;
      expect(result).toMatchObject({
        __typename: "InvalidInputError",
        code: "INVALID_INPUT",
        field: "expiresAt",
      });
      expect(result.message).toContain("2020-01-01T00:00:00.000Z");
      expect(await sequenceOf(account.id)).toBe(0);
    });
  });
});
