import { readFileSync } from "node:fs";
import { parse } from "csv-parse/sync";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { localId } from "../../src/schema/ids.ts";
import { LEDGER_EXPORT_COLUMNS } from "../../src/server/export.ts";
import { createAccount, grant } from "../support/fixtures.ts";
import { dataOf, startServer, type TestServer, unique } from "../support/harness.ts";
import { startServerProcess } from "../support/process.ts";
import { onPglite } from "../support/test-database.ts";
import { readAll, refund, settle } from "./helpers.ts";

/** GET /export/ledger.csv (SPEC §8.3): the ledger as CSV, streamed. */

const RESERVE = `mutation($input: ReserveGenerationInput!) {
  reserveGeneration(input: $input) { __typename ... on ReserveGenerationSuccess { generation { id } } }
}`;

const LEDGER = `query($accountId: ID!, $first: Int, $after: String) {
  ledger(accountId: $accountId, first: $first, after: $after) {
    edges { cursor node { sequence createdAt type status amount balanceBefore balanceAfter reason message actor
      generation { id feature model requestedBy } } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}`;

interface Node {
  sequence: number;
  createdAt: string;
  type: string;
  status: string;
  amount: number;
  balanceBefore: number;
  balanceAfter: number;
  reason: string | null;
  message: string | null;
  actor: string;
  generation: { id: string; feature: string; model: string | null; requestedBy: string | null } | null;
}

/** Messages CSV must quote: commas, quotes, newlines, a leading space, non-ASCII. */
const MESSAGES = ['provider said "no", twice', "line one\nline two\n\tline three", " padded, ", "naïve ✓ ﬁn"];

const exportUrl = (base: string, params: Record<string, string>) => {
  const url = new URL("/export/ledger.csv", base);
  for (const [name, value] of Object.entries(params)) url.searchParams.set(name, value);
  return url.toString();
};

const get = (url: string, token: string | null) =>
  fetch(url, token === null ? {} : { headers: { authorization: `Bearer ${token}` } });

describe("ledger export", () => {
  let server: TestServer;
  let owner: string;
  let accountId: string;

  beforeAll(async () => {
    server = await startServer();
    const service = await server.token("platform", "service");
    const account = await createAccount(server, service);
    accountId = account.id;
    owner = await server.token(account.ownerId, "user");
    await grant(server, service, accountId, 500);
    for (const [i, message] of MESSAGES.entries()) {
      const data = dataOf(
        await server.gql(service, RESERVE, {
          input: {
            idempotencyKey: unique("reserve"),
            accountId,
            feature: `Video, "HD" ${i}`,
            model: i % 2 === 0 ? "v1,beta" : undefined,
            requestedBy: i % 2 === 0 ? account.ownerId : undefined,
            unitCost: 10 + i,
          },
        }),
      );
      const id: string = data.reserveGeneration.generation.id;
      await refund(server, service, id, "PROVIDER_ERROR", message);
    }
    const open = dataOf(
      await server.gql(service, RESERVE, {
        input: { idempotencyKey: unique("reserve"), accountId, feature: "Open", unitCost: 3 },
      }),
    );
    const settled = dataOf(
      await server.gql(service, RESERVE, {
        input: { idempotencyKey: unique("reserve"), accountId, feature: "Done", unitCost: 4 },
      }),
    );
    await settle(server, service, settled.reserveGeneration.generation.id);
    expect(open.reserveGeneration.generation.id).toBeDefined();
  });
  afterAll(() => server.close());

  const ledger = async () =>
    (
      await readAll<Node>(
        (after) => server.gql(owner, LEDGER, { accountId, first: 100, after }),
        "ledger",
        100,
      )
    ).reverse();

  /** A ledger node as the export writes it: every value a string, null as empty. */
  const asRow = (node: Node) => ({
    sequence: String(node.sequence),
    created_at: node.createdAt,
    type: node.type,
    status: node.status,
    amount: String(node.amount),
    balance_before: String(node.balanceBefore),
    balance_after: String(node.balanceAfter),
    reason: node.reason ?? "",
    message: node.message ?? "",
    generation_id: node.generation?.id ?? "",
    feature: node.generation?.feature ?? "",
    model: node.generation?.model ?? "",
    requested_by: node.generation?.requestedBy ?? "",
    actor: node.actor,
  });

  it("is the ledger, oldest first, quoted so that it parses back exactly", async () => {
    const response = await get(exportUrl(server.url, { accountId }), owner);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/^text\/csv/);
    const text = await response.text();
    expect(text.split("\n")[0]).toBe(LEDGER_EXPORT_COLUMNS.join(","));
    const rows = parse(text, { columns: true }) as Record<string, string>[];
    const nodes = await ledger();
    expect(nodes.length).toBe(1 + 2 * MESSAGES.length + 2);
    expect(rows).toEqual(nodes.map(asRow));
    expect(rows.map((row) => row.message).filter((message) => message !== "")).toEqual(MESSAGES);
    expect(new Set(rows.map((row) => row.status))).toEqual(new Set(["COMPLETED", "FAILED", "PENDING"]));
  });

  it("exports entries created in [from, to)", async () => {
    const nodes = await ledger();
    const from = nodes[3]?.createdAt ?? "";
    const to = nodes[6]?.createdAt ?? "";
    const response = await get(exportUrl(server.url, { accountId, from, to }), owner);
    const rows = parse(await response.text(), { columns: true }) as Record<string, string>[];
    const inRange = nodes.filter((node) => node.createdAt >= from && node.createdAt < to);
    expect(inRange.length).toBeGreaterThan(0);
    expect(rows).toEqual(inRange.map(asRow));
  });

  it("answers 401 without a valid token, 404 for an account the caller cannot see, 400 for bad arguments", async () => {
    expect((await get(exportUrl(server.url, { accountId }), null)).status).toBe(401);
    expect((await get(exportUrl(server.url, { accountId }), "not-a-jwt")).status).toBe(401);
    const stranger = await server.token("not-a-member", "user");
    const hidden = await get(exportUrl(server.url, { accountId }), stranger);
    expect(hidden.status).toBe(404);
    expect(await hidden.json()).toEqual({ error: "Account not found" });
    const missing = accountId.replace(/.$/, (last) => (last === "A" ? "B" : "A"));
    expect((await get(exportUrl(server.url, { accountId: missing }), owner)).status).toBe(404);
    expect((await get(exportUrl(server.url, { accountId: "nope" }), owner)).status).toBe(404);
    const badFrom = await get(exportUrl(server.url, { accountId, from: "yesterday" }), owner);
    expect(badFrom.status).toBe(400);
    expect((await badFrom.json()).error).toMatch(/^from: DateTime must be an ISO-8601 string/);
    expect((await get(new URL("/export/ledger.csv", server.url).toString(), owner)).status).toBe(400);
    const reversed = { accountId, from: "2026-05-01T00:00:00Z", to: "2026-04-01T00:00:00Z" };
    expect((await get(exportUrl(server.url, reversed), owner)).status).toBe(400);
  });
});

/** Entries inserted by SQL for the large export (PostgreSQL only: PGlite runs in the test's process). */
const LARGE_ENTRIES = 200_000;

describe.skipIf(onPglite())("a large ledger export", () => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startServer();
  });
  afterAll(() => server.close());

  it(`streams ${LARGE_ENTRIES} entries with the server's RSS growing by less than 50 MB`, async () => {
    const service = await server.token("platform", "service");
    const account = await createAccount(server, service);
    const id = localId(account.id, "Account");
    // Alternating +1 / −1 adjustments keep the account at 0 with a gapless sequence, so the
    // ledger audit run after this file still passes; each message needs quoting.
    await server.app.db.query(
      `INSERT INTO ledger_entry (id, account_id, sequence, type, amount, balance_before, balance_after, title,
                                 message, transfer_id, created_at, actor)
       SELECT gen_random_uuid(), $1::uuid, k, 'ADJUSTMENT', CASE WHEN k % 2 = 1 THEN 1 ELSE -1 END,
              CASE WHEN k % 2 = 1 THEN 0 ELSE 1 END, CASE WHEN k % 2 = 1 THEN 1 ELSE 0 END, 'Adjustment',
              'entry ' || k || ', said "ok"', gen_random_uuid(), now() - ($2::int - k) * interval '1 millisecond',
              'system'
         FROM generate_series(1, $2::int) AS k`,
      [id, LARGE_ENTRIES],
    );
    await server.app.db.query("UPDATE account SET sequence = $2 WHERE id = $1::uuid", [id, LARGE_ENTRIES]);

    const child = await startServerProcess();
    try {
      const pid = child.child.pid ?? 0;
      const rssBytes = () => {
        const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
        return Number(match?.[1] ?? 0) * 1024;
      };
      const owner = await server.token(account.ownerId, "user");
      const url = exportUrl(child.url, { accountId: account.id });
      // A small export first, so code loading and pools are in the baseline.
      await (
        await get(exportUrl(child.url, { accountId: account.id, to: new Date(0).toISOString() }), owner)
      ).text();
      const baseline = rssBytes();
      let peak = baseline;
      const sampler = setInterval(() => {
        peak = Math.max(peak, rssBytes());
      }, 50);
      let lines = 0;
      let bytes = 0;
      let last = "";
      try {
        const response = await get(url, owner);
        expect(response.status).toBe(200);
        const decoder = new TextDecoder();
        // Counted as it arrives, never held: the client stays small too.
        for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
          bytes += chunk.byteLength;
          const text = last + decoder.decode(chunk, { stream: true });
          const parts = text.split("\n");
          last = parts.pop() ?? "";
          lines += parts.length;
        }
      } finally {
        clearInterval(sampler);
      }
      expect(last).toBe("");
      expect(lines).toBe(LARGE_ENTRIES + 1);
      expect(bytes).toBeGreaterThan(LARGE_ENTRIES * 60);
      const growthMb = (peak - baseline) / 1024 / 1024;
      console.info(
        `export of ${LARGE_ENTRIES} entries: ${(bytes / 1e6).toFixed(1)} MB, RSS +${growthMb.toFixed(1)} MB`,
      );
      expect(growthMb).toBeLessThan(50);
    } finally {
      await child.stop();
    }
  }, 180_000);
});
