/**
 * The mutation rate limit counts mutation root fields, not operations: an
 * operation of 30 aliased `createBoard` fields is 30 mutations. The audit sent
 * 10 such requests under a limit of 2/s (bursts of 4) and got 120 boards
 * written; the window must bound the fields actually executed. The principals
 * are service tokens, limited by RATE_LIMIT_SERVICE_PER_SECOND.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAccount } from "../support/fixtures.ts";
import { type GraphQLResponse, startServer, type TestServer, unique } from "../support/harness.ts";

const RATE_PER_SECOND = 2;
const BURST = 2 * RATE_PER_SECOND;

/** One mutation with `n` aliased createBoard fields, each with its own variable. */
function aliasedCreateBoards(n: number): string {
  const variables = Array.from({ length: n }, (_, i) => `$b${i}: CreateBoardInput!`).join(", ");
  const fields = Array.from(
    { length: n },
    (_, i) => `b${i}: createBoard(input: $b${i}) { __typename ... on Error { code } }`,
  ).join("\n");
  return `mutation(${variables}) {\n${fields}\n}`;
}

describe("rate limit per mutation field", () => {
  let server: TestServer;
  let admin: string;
  let accountId: string;

  beforeAll(async () => {
    server = await startServer({ rateLimitServicePerSecond: RATE_PER_SECOND, reaperEnabled: false });
    admin = await server.token(unique("fields-admin"), "admin");
    accountId = (await createAccount(server, admin)).id;
  });
  afterAll(() => server?.close());

  async function boardCount(): Promise<number> {
    const answer = await server.gql<{ account: { boards: { id: string }[] } }>(
      admin,
      "query($id: ID!) { account(id: $id) { boards { id } } }",
      { id: accountId },
    );
    return answer.data?.account.boards.length ?? -1;
  }

  async function send(token: string, n: number, name: string) {
    const variables = Object.fromEntries(
      Array.from({ length: n }, (_, i) => [`b${i}`, { accountId, name: `${name}-${i}` }]),
    );
    const response = await server.post(token, { query: aliasedCreateBoards(n), variables });
    return {
      status: response.status,
      retryAfter: response.headers.get("retry-after"),
      body: (await response.json()) as GraphQLResponse,
    };
  }

  it("refuses an operation with more mutation fields than the burst, writing nothing", async () => {
    const burster = await server.token(unique("fields-burster"), "service");
    const before = await boardCount();
    const started = performance.now();
    const answers = [];
    for (let i = 0; i < 10; i += 1) answers.push(await send(burster, 30, `wide-${i}`));
    const elapsedSeconds = (performance.now() - started) / 1000;
    const written = (await boardCount()) - before;
    // What the windows allow: a full burst per window that passed, counted in fields.
    expect(written).toBeLessThanOrEqual(BURST + Math.ceil(elapsedSeconds * RATE_PER_SECOND));
    // No operation of 30 fields fits a window of 4: each is refused whole, with no Retry-After.
    expect(written).toBe(0);
    for (const answer of answers) {
      expect(answer.body.data ?? null).toBeNull();
      expect(answer.body.errors?.[0]?.extensions?.code).toBe("RATE_LIMITED");
      expect(answer.body.errors?.[0]?.message).toMatch(/30 mutations.*at most 4/);
      expect(answer.status).toBe(429);
      expect(answer.retryAfter).toBeNull();
    }
  });

  it("takes one point per field: a window of 4 lets one operation of 3 through, then refuses the next", async () => {
    const burster = await server.token(unique("fields-narrow"), "service");
    const before = await boardCount();
    const first = await send(burster, 3, "narrow-a");
    expect(first.body.errors).toBeUndefined();
    expect(Object.values(first.body.data ?? {})).toHaveLength(3);
    // One point left in this window: three more fields do not fit.
    const second = await send(burster, 3, "narrow-b");
    expect(second.status).toBe(429);
    expect(second.body.errors?.[0]?.extensions?.code).toBe("RATE_LIMITED");
    expect((await boardCount()) - before).toBe(3);
    // After the Retry-After the client was given, the same operation goes through.
    expect(second.retryAfter).toMatch(/^[12]$/);
    await new Promise((resolve) => setTimeout(resolve, 1_000 * Number(second.retryAfter) + 100));
    const third = await send(burster, 3, "narrow-c");
    expect(third.body.errors).toBeUndefined();
    expect((await boardCount()) - before).toBe(6);
  });
});
