/**
 * The dashboard's HTTP client against small stand-in servers: it sends the
 * persisted hash first and the document text only when the server cannot
 * resolve that hash, and learns when a server resolves no hashes at all.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, describe, expect, it } from "vitest";
import { GraphQLClient, persisted, UnauthorizedError } from "../../dashboard/src/graphql.ts";
import { BalanceDocument, ViewerDocument } from "../../src/generated/graphql/graphql.ts";
import manifest from "../../src/generated/graphql/persisted-documents.json";

interface Body {
  readonly query?: string;
  readonly operationName?: string;
  readonly extensions?: { persistedQuery?: { sha256Hash?: string } };
}

type Answer = { status: number; body: unknown };

describe("GraphQLClient", () => {
  const servers: Server[] = [];
  const viewer = persisted(ViewerDocument);
  const balance = persisted(BalanceDocument);

  afterAll(async () => {
    await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  });

  /** A server answering with `answer(body)`; returns its URL and every body it got. */
  async function serve(answer: (body: Body) => Answer): Promise<{ url: string; bodies: Body[] }> {
    const bodies: Body[] = [];
    const server = createServer((req, res) => {
      let raw = "";
      req.on("data", (chunk: Buffer) => {
        raw += chunk.toString();
      });
      req.on("end", () => {
        const body = JSON.parse(raw) as Body;
        bodies.push(body);
        const { status, body: reply } = answer(body);
        res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(reply));
      });
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/graphql`, bodies };
  }

  it("takes the hash and text from the persisted manifest", () => {
    const documents = manifest as Record<string, string>;
    expect(documents[`sha256:${viewer.hash}`]).toBe(viewer.text);
    expect(viewer.name).toBe("Viewer");
  });

  it("sends only the hash to a server that resolves it", async () => {
    const { url, bodies } = await serve((body) =>
      body.extensions?.persistedQuery?.sha256Hash === viewer.hash && body.query === undefined
        ? { status: 200, body: { data: { viewer: { id: "alice" } } } }
        : { status: 400, body: { errors: [{ message: "unexpected request" }] } },
    );
    const client = new GraphQLClient({ url, token: () => "t" });
    expect(await client.data(viewer, {})).toEqual({ viewer: { id: "alice" } });
    expect(await client.data(viewer, {})).toEqual({ viewer: { id: "alice" } });
    expect(bodies.map((body) => body.query)).toEqual([undefined, undefined]);
  });

  it("falls back to the text, once, on a server without persisted operations", async () => {
    const { url, bodies } = await serve((body) =>
      body.query === undefined
        ? {
            status: 400,
            body: {
              errors: [{ message: "Must provide query string.", extensions: { code: "BAD_REQUEST" } }],
            },
          }
        : { status: 200, body: { data: { name: body.operationName } } },
    );
    const client = new GraphQLClient({ url, token: () => null });
    expect(await client.data(viewer, {})).toEqual({ name: "Viewer" });
    expect(await client.data(balance, { accountId: "a" })).toEqual({ name: "Balance" });
    // The second request went straight to text: the client learnt the server's kind.
    expect(bodies.map((body) => body.query === undefined)).toEqual([true, false, false]);
    expect(bodies[2]?.query).toBe(balance.text);
  });

  it("sends the text of an unknown hash but keeps using hashes", async () => {
    const { url, bodies } = await serve((body) => {
      if (body.query !== undefined) return { status: 200, body: { data: { byText: body.operationName } } };
      if (body.extensions?.persistedQuery?.sha256Hash === balance.hash) {
        return { status: 200, body: { data: { byHash: true } } };
      }
      return {
        status: 400,
        body: {
          errors: [
            { message: "Persisted operation not found", extensions: { code: "PERSISTED_QUERY_NOT_FOUND" } },
          ],
        },
      };
    });
    const client = new GraphQLClient({ url, token: () => null });
    expect(await client.data(viewer, {})).toEqual({ byText: "Viewer" });
    expect(await client.data(balance, { accountId: "a" })).toEqual({ byHash: true });
    expect(bodies).toHaveLength(3);
  });

  it("reports a refused token as UnauthorizedError", async () => {
    const { url } = await serve(() => ({ status: 401, body: { errors: [{ message: "Invalid token" }] } }));
    const client = new GraphQLClient({ url, token: () => "expired" });
    await expect(client.data(viewer, {})).rejects.toBeInstanceOf(UnauthorizedError);
  });
});
