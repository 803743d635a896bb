/**
 * A lean GraphQL-over-HTTP client on node:http with keep-alive connections:
 * the load generators spend as little CPU as possible per request, since they
 * share the machine with the server and PostgreSQL.
 */
import { Agent, type IncomingHttpHeaders, request } from "node:http";

export interface GraphQLResponse<T = Record<string, unknown>> {
  readonly status: number;
  readonly data?: T | null;
  readonly errors?: readonly { message: string; extensions?: { code?: string } }[];
}

export class GraphQLHttpClient {
  private readonly agent: Agent;
  private readonly url: URL;
  private readonly authorization: string;

  /**
   * @param url the /graphql endpoint
   * @param token a bearer token
   * @param socketsMax most concurrent keep-alive connections
   */
  constructor(url: string, token: string, socketsMax: number) {
    this.url = new URL(url);
    this.authorization = `Bearer ${token}`;
    this.agent = new Agent({ keepAlive: true, maxSockets: socketsMax, maxFreeSockets: socketsMax });
  }

  /** POSTs a prepared JSON body; resolves with the status and the raw response text. */
  postRaw(
    body: string,
    timeoutMs = 30_000,
  ): Promise<{ status: number; text: string; headers: IncomingHttpHeaders }> {
    return new Promise((resolve, reject) => {
      const req = request(
        {
          agent: this.agent,
          host: this.url.hostname,
          port: this.url.port,
          path: this.url.pathname,
          method: "POST",
          headers: {
            "content-type": "application/json",
            accept: "application/graphql-response+json, application/json",
            authorization: this.authorization,
            "content-length": Buffer.byteLength(body),
          },
          timeout: timeoutMs,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (chunk: Buffer) => chunks.push(chunk));
          res.on("end", () =>
            resolve({
              status: res.statusCode ?? 0,
              text: Buffer.concat(chunks).toString(),
              headers: res.headers,
            }),
          );
          res.on("error", reject);
        },
      );
      req.on("timeout", () => req.destroy(new Error(`request timed out after ${timeoutMs} ms`)));
      req.on("error", reject);
      req.end(body);
    });
  }

  /** Runs one operation and parses the response. */
  async execute<T = Record<string, unknown>>(
    query: string,
    variables: Record<string, unknown> = {},
  ): Promise<GraphQLResponse<T>> {
    const { status, text } = await this.postRaw(JSON.stringify({ query, variables }));
    let parsed: { data?: T | null; errors?: GraphQLResponse["errors"] };
    try {
      parsed = JSON.parse(text) as typeof parsed;
    } catch {
      throw new Error(`HTTP ${status}: not JSON: ${text.slice(0, 200)}`);
    }
    return { status, ...parsed };
  }

  close(): void {
    this.agent.destroy();
  }
}

/** Runs `work` over `items` with at most `concurrency` at a time; results in input order. */
export async function mapLimit<T, R>(
  items: readonly T[],
  concurrency: number,
  work: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const lanes = Array.from({ length: Math.min(concurrency, items.length) }, async () => {
    while (next < items.length) {
      const index = next;
      next += 1;
      results[index] = await work(items[index] as T, index);
    }
  });
  await Promise.all(lanes);
  return results;
}
