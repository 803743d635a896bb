/**
 * The parse and validation cache cannot be used to grow the heap. The audit
 * sent 1,100 unique 8 KB documents (`{ viewer { id } …×740 } #<random>`)
 * with no token: yoga's cache of 1,024 documents, counted by entries, kept
 * about 1 MB of AST for each and the heap went from 30 MB to 2 GB. Now the
 * cache is bounded by the bytes it holds (DOCUMENT_CACHE_BYTES_MAX), keeps
 * only documents that passed validation, and such documents are refused at
 * the token limit before any AST is kept.
 *
 * The heap is measured in this process (the server runs in it) after a full
 * garbage collection before and after each attack.
 */
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DOCUMENT_CACHE_BYTES_MAX } from "../../src/server/document-cache.ts";
import { type GraphQLResponse, startServer, type TestServer } from "../support/harness.ts";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

/**
 * What the heap may grow by: the cache's whole budget (its estimate of a
 * document's size is above what V8 measures for one, see document-cache.ts),
 * plus as much again for everything else a thousand requests leave behind
 * (connection pools, metrics, JIT code).
 */
const HEAP_GROWTH_BYTES_MAX = 2 * DOCUMENT_CACHE_BYTES_MAX;

function heapUsedAfterGc(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

describe("document cache under unique documents", () => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startServer();
    // Warm up: the first requests load code and fill pools, which is not growth from the attack.
    for (let i = 0; i < 20; i += 1) await server.gql(null, `{ __typename } #warm-${i}`);
  });
  afterAll(() => server?.close());

  /** Sends `count` documents one after another, with no token; returns the heap growth and the answers' codes. */
  async function attack(count: number, document: (i: number) => string) {
    const before = heapUsedAfterGc();
    const cpu = process.cpuUsage();
    const codes = new Map<string, number>();
    for (let i = 0; i < count; i += 1) {
      const response = await server.post(null, { query: document(i) });
      const body = (await response.json()) as GraphQLResponse;
      const code = String(body.errors?.[0]?.extensions?.code ?? "ok");
      codes.set(code, (codes.get(code) ?? 0) + 1);
    }
    const { user, system } = process.cpuUsage(cpu);
    return {
      growthBytes: heapUsedAfterGc() - before,
      codes,
      cpuMsPerRequest: (user + system) / 1000 / count,
    };
  }

  it("keeps the heap bounded under valid documents heavy with comments", async () => {
    // Valid, within every limit, and unique (fixed-width lines keep each body under 100 KB): each is 85 KB of comment lines, about 400 KB of tokens once parsed.
    const { growthBytes, codes } = await attack(
      200,
      (i) => `{ __typename }\n${`# ${i} ${Math.random().toFixed(16)}\n`.repeat(3_500)}`,
    );
    expect(codes.get("ok"), JSON.stringify([...codes])).toBe(200);
    expect(growthBytes).toBeLessThan(HEAP_GROWTH_BYTES_MAX);
  });

  it("refuses the audit's 1,100 unique documents of 740 fields and keeps none of them", async () => {
    // The CPU of a request in this process (client and server) for the smallest unique document, as a
    // yardstick that the machine's load affects as much as the attack.
    const baseline = await attack(200, (i) => `{ __typename } #${i}-${Math.random()}`);
    const fields = "viewer { id } ".repeat(740);
    const { growthBytes, codes, cpuMsPerRequest } = await attack(
      1_100,
      (i) => `{ ${fields} } #${i}-${Math.random()}`,
    );
    expect([...codes], "refused at the token limit, before validation").toEqual([
      ["GRAPHQL_PARSE_FAILED", 1_100],
    ]);
    expect(growthBytes).toBeLessThan(HEAP_GROWTH_BYTES_MAX);
    // Refused while parsing, an attack document costs about what the smallest one does (it cost 150–600 ms).
    expect(cpuMsPerRequest).toBeLessThan(3 * baseline.cpuMsPerRequest);
    // 1,300 requests one after another take a minute on a loaded machine.
  }, 180_000);
});
