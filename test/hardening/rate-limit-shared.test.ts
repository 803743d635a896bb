/**
 * The rate limit shared by all instances (SPEC §8.6): two servers on one
 * Redis give a `user` subject one budget between them, service and admin
 * tokens are not limited by RATE_LIMIT_PER_SECOND (RATE_LIMIT_SERVICE_PER_SECOND
 * is 0 here), a refusal is HTTP 429 with Retry-After, and over graphql-ws it is
 * an error on the operation while the socket stays open.
 */

import { once } from "node:events";
import { createServer } from "node:net";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RATE_LIMIT_WINDOW_SECONDS } from "../../src/server/rate-limit.ts";
import { REDIS_URL } from "../support/env.ts";
import { createAccount } from "../support/fixtures.ts";
import { type GraphQLResponse, startServer, type TestServer, unique } from "../support/harness.ts";
import { connect } from "../support/ws.ts";

const RATE_PER_SECOND = 2;
/** What one window admits per subject: twice the rate. */
const BURST = 2 * RATE_PER_SECOND;
const WINDOW_MS = RATE_LIMIT_WINDOW_SECONDS * 1_000;

const CREATE_BOARD = `mutation($input: CreateBoardInput!) {
  createBoard(input: $input) { __typename ... on Error { code } }
}`;

describe("rate limit shared by all instances through Redis", () => {
  let a: TestServer;
  let b: TestServer;
  let admin: string;
  let accountId: string;
  let redis: Redis;

  beforeAll(async () => {
    const options = { redisUrl: REDIS_URL, rateLimitPerSecond: RATE_PER_SECOND, reaperEnabled: false };
    [a, b] = await Promise.all([startServer(options), startServer(options)]);
    redis = new Redis(REDIS_URL);
    admin = await a.token(unique("shared-admin"), "admin");
    accountId = (await createAccount(a, admin, { kind: "WORKSPACE" })).id;
  });
  afterAll(async () => {
    redis?.disconnect();
    await Promise.all([a?.close(), b?.close()]);
  });

  /** A `user` token for a new subject that is a member of the account. */
  async function member(prefix: string): Promise<{ sub: string; token: string }> {
    const sub = unique(prefix);
    const added = await a.gql(
      admin,
      `mutation($input: AddAccountMemberInput!) { addAccountMember(input: $input) { __typename } }`,
      { input: { accountId, userId: sub, role: "MEMBER" } },
    );
    expect(added.errors).toBeUndefined();
    return { sub, token: await a.token(sub, "user") };
  }

  async function createBoard(server: TestServer, token: string, name: string) {
    const response = await server.post(token, {
      query: CREATE_BOARD,
      variables: { input: { accountId, name } },
    });
    return {
      instance: server === a ? "a" : "b",
      status: response.status,
      retryAfter: response.headers.get("retry-after"),
      body: (await response.json()) as GraphQLResponse<{ createBoard: { __typename: string } }>,
    };
  }

  it(`admits ${BURST} mutations of one user per window across both instances, refusing the rest with 429 and Retry-After`, async () => {
    const { sub, token } = await member("shared-user");
    const requests = 12;
    const started = performance.now();
    const answers = await Promise.all(
      Array.from({ length: requests }, (_, i) => createBoard(i % 2 === 0 ? a : b, token, `shared-${i}`)),
    );
    const elapsedMs = performance.now() - started;
    const succeeded = answers.filter(
      (answer) => answer.body.data?.createBoard.__typename === "CreateBoardSuccess",
    );
    const refused = answers.filter((answer) => answer.body.errors?.[0]?.extensions?.code === "RATE_LIMITED");
    expect(succeeded.length + refused.length, JSON.stringify(answers.slice(0, 2))).toBe(requests);
    // Each instance alone would admit a burst of its own (2 × BURST in all); shared, one burst per window.
    const windows = 1 + Math.floor(elapsedMs / WINDOW_MS);
    expect(succeeded.length).toBeGreaterThanOrEqual(BURST);
    expect(succeeded.length).toBeLessThanOrEqual(BURST * windows);
    // Both instances counted into one Redis key, per subject and role.
    if (windows === 1) expect(await redis.get(`rl:user:${sub}`)).toBe(String(requests));
    // Both instances refused, each with Retry-After in whole seconds until the window reopens.
    expect(new Set(refused.map((answer) => answer.instance))).toEqual(new Set(["a", "b"]));
    for (const answer of refused) {
      expect(answer.status).toBe(429);
      expect(answer.retryAfter).toMatch(/^[12]$/);
      expect(answer.body.data ?? null).toBeNull();
    }
  });

  it("refuses on one instance a user whose budget was spent on the other", async () => {
    const { token } = await member("shared-seq");
    const started = performance.now();
    const spent = await Promise.all(
      Array.from({ length: BURST }, (_, i) => createBoard(a, token, `spend-${i}`)),
    );
    for (const answer of spent) expect(answer.body.errors).toBeUndefined();
    const onB = await createBoard(b, token, "over");
    // Only meaningful inside the window that the burst opened.
    expect(performance.now() - started).toBeLessThan(WINDOW_MS);
    expect(onB.status).toBe(429);
    expect(onB.body.errors?.[0]?.extensions?.code).toBe("RATE_LIMITED");
    // After Retry-After the next window admits the same subject again, on either instance.
    await new Promise((resolve) => setTimeout(resolve, 1_000 * Number(onB.retryAfter) + 100));
    const again = await createBoard(b, token, "again");
    expect(again.body.data?.createBoard.__typename).toBe("CreateBoardSuccess");
  });

  it("does not limit service or admin tokens by RATE_LIMIT_PER_SECOND (RATE_LIMIT_SERVICE_PER_SECOND is 0)", async () => {
    const service = await a.token(unique("shared-service"), "service");
    for (const token of [service, admin]) {
      const answers = await Promise.all(
        Array.from({ length: 3 * BURST }, (_, i) => createBoard(i % 2 === 0 ? a : b, token, `svc-${i}`)),
      );
      for (const answer of answers) {
        expect(answer.status).toBe(200);
        expect(answer.body.data?.createBoard.__typename).toBe("CreateBoardSuccess");
      }
    }
  });

  it("over graphql-ws, refuses the operation with RATE_LIMITED and keeps the socket open", async () => {
    const { token } = await member("shared-ws");
    const live = connect(b.url, { token });
    try {
      const outcomes: unknown[][] = [];
      for (let i = 0; i < BURST + 2; i += 1) {
        const operation = live.subscribe(CREATE_BOARD, { input: { accountId, name: `ws-${i}` } });
        await operation.waitEnded();
        outcomes.push(operation.errors);
      }
      const codes = outcomes.map(
        (errors) => (errors[0] as { extensions?: { code?: string } })?.extensions?.code,
      );
      expect(codes.slice(0, BURST)).toEqual(Array(BURST).fill(undefined));
      expect(codes.slice(BURST)).toEqual(["RATE_LIMITED", "RATE_LIMITED"]);
      // The socket is still open: a query on it is answered, and nothing closed it (4429 or otherwise).
      const query = live.subscribe<{ __typename: string }>("{ __typename }");
      await query.waitFor((values) => values.length === 1, "a query on the same socket");
      expect(live.closes).toEqual([]);
    } finally {
      await live.dispose();
    }
  });
});

describe("rate limit while Redis is down", () => {
  it("falls back to the in-memory limiter instead of failing every mutation", async () => {
    const dead = createServer().listen(0, "127.0.0.1");
    await once(dead, "listening");
    const { port } = dead.address() as { port: number };
    await new Promise((resolve) => dead.close(resolve));
    const server = await startServer({
      redisUrl: `redis://127.0.0.1:${port}`,
      rateLimitPerSecond: RATE_PER_SECOND,
      reaperEnabled: false,
    });
    try {
      const admin = await server.token(unique("down-admin"), "admin");
      const workspace = (await createAccount(server, admin, { kind: "WORKSPACE" })).id;
      const sub = unique("down-user");
      await server.gql(
        admin,
        `mutation($input: AddAccountMemberInput!) { addAccountMember(input: $input) { __typename } }`,
        { input: { accountId: workspace, userId: sub, role: "MEMBER" } },
      );
      const token = await server.token(sub, "user");
      const answers = [];
      for (let i = 0; i < BURST + 1; i += 1) {
        const response = await server.post(token, {
          query: CREATE_BOARD,
          variables: { input: { accountId: workspace, name: `down-${i}` } },
        });
        answers.push({ status: response.status, body: (await response.json()) as GraphQLResponse });
      }
      expect(answers.slice(0, BURST).map((answer) => answer.status)).toEqual(Array(BURST).fill(200));
      expect(answers[BURST]?.status).toBe(429);
      expect(answers[BURST]?.body.errors?.[0]?.extensions?.code).toBe("RATE_LIMITED");
    } finally {
      await server.close();
    }
  });
});
