/**
 * `metadata` (JSON) is the one input a client can shape freely. Found by the
 * fuzz test: strings PostgreSQL's jsonb cannot hold (U+0000, unpaired
 * surrogates) and deep nesting (JSON.stringify and jsonb recurse per level)
 * reached the database and came back as INTERNAL_SERVER_ERROR. These are the
 * deterministic versions of those inputs.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BalanceDocument, ReserveGenerationDocument } from "../../src/generated/graphql/graphql.ts";
import { localId } from "../../src/schema/ids.ts";
import { JSON_DEPTH_MAX } from "../../src/schema/scalars.ts";
import { expectTypename, gqlData, gqlDoc, sourceOf } from "../support/documents.ts";
import { createAccount, grant } from "../support/fixtures.ts";
import { type GraphQLResponse, startServer, type TestServer, unique } from "../support/harness.ts";

/** Arrays nested `depth` levels deep, as JSON text (too deep for JSON.stringify to write). */
function nestedText(depth: number): string {
  return `${"[".repeat(depth)}${"]".repeat(depth)}`;
}

describe("metadata (JSON input)", () => {
  let server: TestServer;
  let service: string;
  let accountId: string;

  beforeAll(async () => {
    server = await startServer();
    service = await server.token(unique("metadata"), "service");
    accountId = (await createAccount(server, service)).id;
    await grant(server, service, accountId, 100);
  });
  afterAll(() => server?.close());

  const balance = async () => (await gqlData(server, service, BalanceDocument, { accountId })).balance;

  it("refuses strings PostgreSQL cannot store as InvalidInputError naming metadata, holding nothing", async () => {
    const before = await balance();
    for (const metadata of [
      { prompt: "a\u0000b" },
      { "\u0000": 1 },
      { prompt: "\ud800" },
      ["ok", ["\udfff"]],
      "\u0000",
    ]) {
      const data = await gqlData(server, service, ReserveGenerationDocument, {
        input: { idempotencyKey: unique("reserve"), accountId, feature: "Image", unitCost: 1, metadata },
      });
      const refused = expectTypename(data.reserveGeneration, "InvalidInputError");
      expect(refused).toMatchObject({ code: "INVALID_INPUT", field: "metadata" });
    }
    expect(await balance()).toEqual(before);
  });

  it(`accepts ${JSON_DEPTH_MAX} levels of nesting and refuses deeper as a coercion error, never a 5xx`, async () => {
    const reserveWith = (metadataJson: string) =>
      fetch(server.url, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${service}` },
        body: `{"query":${JSON.stringify(sourceOf(ReserveGenerationDocument))},"variables":{"input":{"idempotencyKey":"${unique("reserve")}","accountId":"${accountId}","feature":"Image","unitCost":1,"metadata":${metadataJson}}}}`,
      });
    const accepted = await reserveWith(nestedText(JSON_DEPTH_MAX));
    const reserved = (await accepted.json()) as GraphQLResponse<{
      reserveGeneration: { __typename: string };
    }>;
    expect(reserved.data?.reserveGeneration.__typename).toBe("ReserveGenerationSuccess");
    const before = await balance();
    for (const depth of [JSON_DEPTH_MAX + 1, 3_000, 40_000]) {
      const response = await reserveWith(nestedText(depth));
      const text = await response.text();
      expect(response.status, text.slice(0, 300)).toBe(400);
      const body = JSON.parse(text) as GraphQLResponse;
      expect(body.data ?? null).toBeNull();
      expect(body.errors?.[0]?.message).toMatch(
        new RegExp(`input.metadata.*JSON must nest at most ${JSON_DEPTH_MAX} levels`),
      );
    }
    expect(await balance()).toEqual(before);
  });

  // The ledger is called directly too (jobs, scripts): it checks depth itself, before serializing.
  it("the ledger itself refuses deeply nested metadata as InvalidInputError", async () => {
    let metadata: unknown = [];
    for (let depth = 1; depth < 100_000; depth += 1) metadata = [metadata];
    const outcome = await server.app.ledger.reserveGeneration("metadata-test", {
      idempotencyKey: unique("reserve"),
      accountId: localId(accountId, "Account") ?? "",
      feature: "Image",
      unitCost: 1,
      metadata,
    });
    expect(outcome).toMatchObject({ ok: false, error: { field: "metadata" } });
  });

  it("still stores ordinary metadata, unicode included", async () => {
    const response = await gqlDoc(server, service, ReserveGenerationDocument, {
      input: {
        idempotencyKey: unique("reserve"),
        accountId,
        feature: "Image",
        unitCost: 1,
        metadata: { prompt: "un chat 🐈 \u202eRTL", seed: 42, tags: ["a", { b: null }] },
      },
    });
    expect(response.errors).toBeUndefined();
    expectTypename(response.data?.reserveGeneration, "ReserveGenerationSuccess");
  });
});
