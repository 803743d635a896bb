import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BALANCE_AT_SQL } from "../../src/db/analytics.ts";
import type { Database } from "../../src/db/database.ts";
import { EXPORT_PAGE_SIZE, EXPORT_PAGE_SQL } from "../../src/db/ledger-export.ts";
import {
  type LedgerFilterInput,
  ledgerPageStatement,
  type PageInput,
  parseLedgerQuery,
  type Statement,
} from "../../src/domain/history.ts";
import { createAccount, grant } from "../support/fixtures.ts";
import { dataOf, startServer, type TestServer } from "../support/harness.ts";
import { onPglite, openTestDatabase } from "../support/test-database.ts";
import { LEDGER_PAGE, refund, reserve, settle } from "./helpers.ts";

/**
 * The ledger's pages are index scans however long the ledger is: one account
 * gets 200,000 entries (20,000 on PGlite) written straight into the tables (consistently, so
 * the audit after this file stays clean), then the exact statements the
 * `ledger` resolver runs are EXPLAINed.
 */
// On PGlite (the same planner, in WebAssembly) a tenth as many: writing 200,000 rows there
// alone takes minutes, and 20,000 already make a sequential scan far dearer than the index.
const ENTRIES = onPglite() ? 20_000 : 200_000;
const PAGE = 50;
/** A first page's execution time: PGlite's PostgreSQL runs as WebAssembly, a few times slower. */
const EXECUTION_MS_MAX = onPglite() ? 150 : 50;

/** Entry `s` of the generated ledger: mostly GRANT +3, every 10th ADJUSTMENT −1, every 100th EXPIRY −1. */
const GENERATED_ENTRY_SQL = `
INSERT INTO ledger_entry (id, account_id, sequence, type, amount, balance_before, balance_after, title, grant_id, transfer_id, created_at, actor)
SELECT gen_random_uuid(), $1::uuid, s,
       (CASE WHEN s % 100 = 0 THEN 'EXPIRY' WHEN s % 10 = 5 THEN 'ADJUSTMENT' ELSE 'GRANT' END)::"LedgerEntryType",
       amount, after - amount, after,
       CASE WHEN s % 100 = 0 THEN 'Credits expired' WHEN s % 10 = 5 THEN 'Adjustment' ELSE 'Generated' END,
       CASE WHEN s % 100 = 0 OR s % 10 = 5 THEN NULL ELSE $2::uuid END,
       $3::uuid,
       now() - make_interval(secs => ($4::int - s) / 10.0), 'system'
  FROM generate_series(1, $4::int) AS s,
       LATERAL (SELECT CASE WHEN s % 100 = 0 OR s % 10 = 5 THEN -1 ELSE 3 END AS amount,
                       -- Balance after entry s: 3 per GRANT so far, −1 per ADJUSTMENT and EXPIRY so far.
                       3 * s - 4 * (s / 100) - 4 * ((s + 5) / 10) AS after) AS x`;

interface PlanNode {
  "Node Type": string;
  "Relation Name"?: string;
  "Index Name"?: string;
  "Scan Direction"?: string;
  "Actual Rows"?: number;
  "Actual Loops"?: number;
  Plans?: PlanNode[];
}

function nodesOf(plan: PlanNode): PlanNode[] {
  return [plan, ...(plan.Plans ?? []).flatMap(nodesOf)];
}

describe(`ledger index use on a ${ENTRIES.toLocaleString("en")}-entry account`, () => {
  let server: TestServer;
  let db: Database;
  let accountId: string;
  let globalAccountId: string;
  let owner: string;

  beforeAll(async () => {
    server = await startServer();
    const service = await server.token("platform", "service");
    const account = await createAccount(server, service, { name: "Large ledger" });
    globalAccountId = account.id;
    owner = await server.token(account.ownerId, "user");
    accountId = Buffer.from(account.id, "base64").toString("utf8").split(":")[1] ?? "";
    db = await openTestDatabase();

    // Entry counts by type, and what they add up to.
    const expiries = Math.floor(ENTRIES / 100);
    const adjustments = Math.floor((ENTRIES + 5) / 10);
    const issued = 3 * (ENTRIES - expiries - adjustments);
    const available = issued - adjustments - expiries;
    const grantId = randomUUID();
    await db.transaction({ isolation: "READ COMMITTED", timeoutMs: 120_000 }, async (tx) => {
      // The account is fresh and nothing else writes it while this runs.
      await tx.query(
        `INSERT INTO credit_grant (id, account_id, source, amount, remaining, title)
         VALUES ($1, $2, 'WALLET', $3, $4, 'Generated')`,
        [grantId, accountId, issued, available],
      );
      const [issue, adjust, expire] = [randomUUID(), randomUUID(), randomUUID()];
      await tx.query(
        `INSERT INTO posting (account_id, transfer_id, book, grant_id, amount) VALUES
           ($1, $2, 'GRANT_AVAILABLE', $5, $6), ($1, $2, 'ISSUED', $5, -$6::bigint),
           ($1, $3, 'GRANT_AVAILABLE', $5, -$7::bigint), ($1, $3, 'ADJUSTED', $5, $7),
           ($1, $4, 'GRANT_AVAILABLE', $5, -$8::bigint), ($1, $4, 'EXPIRED', $5, $8)`,
        [accountId, issue, adjust, expire, grantId, issued, adjustments, expiries],
      );
      await tx.query(GENERATED_ENTRY_SQL, [accountId, grantId, issue, ENTRIES]);
      await tx.query("UPDATE account SET available = $2, wallet = $2, sequence = $3 WHERE id = $1", [
        accountId,
        available,
        ENTRIES,
      ]);
    });
    // A few real generations on top, through the API, so feature and status filters have matches.
    await grant(server, service, globalAccountId, 1_000);
    const ids = [];
    for (let i = 0; i < 3; i += 1) {
      ids.push(await reserve(server, service, globalAccountId, { feature: "Explained Video", unitCost: 20 }));
    }
    await settle(server, service, ids[0] ?? "", [{ index: 0, succeeded: true, cost: 15 }]);
    await refund(server, service, ids[1] ?? "", "PROVIDER_ERROR");
    // Statistics as a live database would have them (autovacuum analyzes tables after this many writes).
    await db.query("ANALYZE ledger_entry");
    await db.query("ANALYZE generation");
  }, 120_000);
  afterAll(async () => {
    await db?.close();
    await server?.close();
  });

  const statement = (page: PageInput, filter: LedgerFilterInput | null = null): Statement => {
    const query = parseLedgerQuery(page, filter);
    if (query instanceof Error) throw query;
    return ledgerPageStatement(accountId, query);
  };
  const explain = async ({ text, params }: Statement) => {
    const [row] = await db.query<{ "QUERY PLAN": [{ Plan: PlanNode; "Execution Time": number }] }>(
      `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ${text}`,
      params,
    );
    const [result] = row?.["QUERY PLAN"] ?? [];
    if (result === undefined) throw new Error("no plan");
    const nodes = nodesOf(result.Plan);
    const entryScans = nodes.filter((node) => node["Relation Name"] === "ledger_entry");
    return {
      nodeTypes: nodes.map((node) => node["Node Type"]),
      entryScans,
      executionMs: result["Execution Time"],
    };
  };
  const cursorOf = (sequence: number) => Buffer.from(`ledger:v1:${sequence}`).toString("base64url");

  it("reads the first page of 50 backwards from the (account_id, sequence) index, nothing more", async () => {
    const plan = await explain(statement({ first: PAGE }));
    expect(plan.nodeTypes).not.toContain("Sort");
    // One scan of ledger_entry, by index. (Each returned USAGE entry's generation
    // status is one primary-key lookup; in this small test database PostgreSQL may
    // read the generation table sequentially instead, as it should.)
    expect(plan.entryScans).toHaveLength(1);
    expect(plan.entryScans[0]).toMatchObject({
      "Node Type": "Index Scan",
      "Index Name": "ledger_entry_account_id_sequence_key",
      "Scan Direction": "Backward",
      "Actual Rows": PAGE + 1,
    });
    console.info(`first page of ${PAGE}: Index Scan Backward, ${plan.executionMs.toFixed(3)} ms`);
    expect(plan.executionMs).toBeLessThan(EXECUTION_MS_MAX);

    // Deep in the ledger after a cursor, it is the same plan and the same work.
    const deep = await explain(statement({ first: PAGE, after: cursorOf(ENTRIES / 2) }));
    expect(deep.entryScans[0]).toMatchObject({ "Node Type": "Index Scan", "Actual Rows": PAGE + 1 });
    expect(deep.nodeTypes).not.toContain("Sort");
    console.info(`page of ${PAGE} after sequence ${ENTRIES / 2}: ${deep.executionMs.toFixed(3)} ms`);
  });

  it("reads a filtered page by type from the (account_id, type, sequence) index, merging several types in order", async () => {
    const single = await explain(statement({ first: PAGE }, { types: ["EXPIRY"] }));
    // No join at all: entries other than USAGE are COMPLETED whatever their generation.
    expect(single.nodeTypes).not.toContain("Seq Scan");
    expect(single.nodeTypes).not.toContain("Sort");
    expect(single.entryScans).toEqual([
      expect.objectContaining({
        "Node Type": "Index Scan",
        "Index Name": "ledger_entry_account_id_type_sequence_idx",
        "Scan Direction": "Backward",
        "Actual Rows": PAGE + 1,
      }),
    ]);
    console.info(`EXPIRY page of ${PAGE}: ${single.executionMs.toFixed(3)} ms`);

    const several = await explain(
      statement({ first: PAGE, after: cursorOf(150_000) }, { types: ["EXPIRY", "ADJUSTMENT", "REFUND"] }),
    );
    expect(several.nodeTypes).toContain("Merge Append");
    expect(several.nodeTypes).not.toContain("Seq Scan");
    expect(several.nodeTypes).not.toContain("Sort");
    expect(several.entryScans).toHaveLength(3);
    for (const scan of several.entryScans) {
      expect(scan).toMatchObject({
        "Node Type": "Index Scan",
        "Index Name": "ledger_entry_account_id_type_sequence_idx",
      });
      expect(scan["Actual Rows"]).toBeLessThanOrEqual(PAGE + 1);
    }
    console.info(`EXPIRY+ADJUSTMENT+REFUND page of ${PAGE}: ${several.executionMs.toFixed(3)} ms`);
  });

  it("reads one feature's entries in order from the partial (account_id, title, sequence) index", async () => {
    // Only 5 of 200,006 entries are of this feature (3 USAGE, a RELEASE, a REFUND):
    // reading the ledger backwards until a page is full would read every entry.
    const plan = await explain(statement({ first: PAGE }, { feature: "Explained Video" }));
    expect(plan.entryScans).toEqual([
      expect.objectContaining({
        "Node Type": "Index Scan",
        "Index Name": "ledger_entry_account_id_title_sequence_idx",
        "Scan Direction": "Backward",
        "Actual Rows": 5,
      }),
    ]);
    expect(plan.nodeTypes).not.toContain("Sort");
    console.info(`feature page: ${plan.executionMs.toFixed(3)} ms`);
  });

  it("reads ledger_entry through an index, never sequentially, for status, feature and date filters", async () => {
    const filters: LedgerFilterInput[] = [
      { statuses: ["PENDING"] },
      { statuses: ["FAILED"], types: ["USAGE"] },
      { statuses: ["COMPLETED"] },
      { feature: "Explained Video" },
      { from: new Date(Date.now() - 60_000) },
      { types: ["REFUND"], feature: "Explained Video", statuses: ["COMPLETED"] },
    ];
    for (const filter of filters) {
      const plan = await explain(statement({ first: PAGE }, filter));
      expect(plan.entryScans.length, JSON.stringify(filter)).toBeGreaterThan(0);
      for (const scan of plan.entryScans) {
        expect(["Index Scan", "Index Only Scan", "Bitmap Heap Scan"], JSON.stringify(filter)).toContain(
          scan["Node Type"],
        );
      }
      // The generation side may be read either way (in this small test database a
      // sequential scan of generation can be cheapest); ledger_entry never is.
      console.info(
        `${JSON.stringify(filter)}: ${plan.entryScans.map((scan) => `${scan["Node Type"]} ${scan["Index Name"]}`).join(", ")}; ${plan.executionMs.toFixed(3)} ms`,
      );
    }
  });

  it("answers balanceAt with one backward probe of (account_id, created_at, sequence)", async () => {
    // The generated entries are 0.1 s apart, ending now: instants across the whole history.
    const spanMs = ENTRIES * 100;
    for (const agoMs of [0, 1_000, spanMs / 3, spanMs / 2, spanMs - 1_000, spanMs * 2]) {
      const at = new Date(Date.now() - agoMs);
      const plan = await explain({ text: BALANCE_AT_SQL, params: [accountId, at] });
      expect(plan.nodeTypes).not.toContain("Sort");
      expect(plan.entryScans).toEqual([
        expect.objectContaining({
          "Index Name": "ledger_entry_account_id_created_at_sequence_idx",
          "Scan Direction": "Backward",
          "Actual Rows": agoMs === spanMs * 2 ? 0 : 1,
        }),
      ]);
      console.info(`balanceAt ${at.toISOString()}: ${plan.executionMs.toFixed(3)} ms`);
      expect(plan.executionMs).toBeLessThan(onPglite() ? EXECUTION_MS_MAX : 5);
    }
  });

  it("reads a ledger export page forwards from the (account_id, sequence) index", async () => {
    const plan = await explain({
      text: EXPORT_PAGE_SQL,
      params: [accountId, ENTRIES / 2, ENTRIES + 6, null, null, EXPORT_PAGE_SIZE],
    });
    expect(plan.nodeTypes).not.toContain("Sort");
    expect(plan.entryScans).toEqual([
      expect.objectContaining({
        "Node Type": "Index Scan",
        "Index Name": "ledger_entry_account_id_sequence_key",
        "Scan Direction": "Forward",
        "Actual Rows": EXPORT_PAGE_SIZE,
      }),
    ]);
    console.info(`export page of ${EXPORT_PAGE_SIZE}: ${plan.executionMs.toFixed(3)} ms`);
  });

  it("serves the same page through GraphQL", async () => {
    const plain = `query($accountId: ID!, $first: Int) {
      ledger(accountId: $accountId, first: $first) {
        edges { cursor node { id sequence type amount status title balanceBefore balanceAfter reason message createdAt } }
        pageInfo { hasNextPage endCursor }
      }
    }`;
    const timed = async (document: string) => {
      const timesMs: number[] = [];
      let ledger: { edges: { node: { sequence: number } }[] } = { edges: [] };
      for (let i = 0; i < 20; i += 1) {
        const started = performance.now();
        ledger = dataOf(
          await server.gql(owner, document, { accountId: globalAccountId, first: PAGE }),
        ).ledger;
        timesMs.push(performance.now() - started);
      }
      const sorted = timesMs.sort((a, b) => a - b);
      return { ledger, minMs: sorted[0] ?? 0, medianMs: sorted[10] ?? 0 };
    };
    for (const [name, document] of [
      ["entry fields", plain],
      ["with generation { ... }", LEDGER_PAGE],
    ] as const) {
      const { ledger, minMs, medianMs } = await timed(document);
      expect(ledger.edges).toHaveLength(PAGE);
      // The newest entry is the last of: grant, 3 usages, a release and a refund on top.
      expect(ledger.edges[0]?.node.sequence).toBe(ENTRIES + 6);
      expect(ledger.edges.at(-1)?.node.sequence).toBe(ENTRIES + 6 - PAGE + 1);
      console.info(
        `GraphQL ledger(first: ${PAGE}), ${name}, HTTP round trip in-process: min ${minMs.toFixed(1)} ms, median ${medianMs.toFixed(1)} ms`,
      );
    }
  });
});
