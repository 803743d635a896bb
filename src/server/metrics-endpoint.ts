import { createHash, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { bearerToken } from "./auth.ts";
import type { Metrics } from "./metrics.ts";

/**
 * Who may read /metrics:
 * - `port`: METRICS_PORT is set; a second server on 127.0.0.1 serves it
 *   (with the token too, if METRICS_TOKEN is set) and the main port does not;
 * - `token`: METRICS_TOKEN is set; the main port serves it to
 *   `Authorization: Bearer <token>` only;
 * - `loopback`: neither, in embedded mode (a local `npm start`); the main port
 *   serves it to connections from this machine naming a loopback host;
 * - `off`: neither, with DATABASE_URL (a deployment); nobody.
 */
export type MetricsAccess = "port" | "token" | "loopback" | "off";

export interface MetricsEndpointOptions {
  /** METRICS_TOKEN: the bearer token scrapers send. */
  readonly token: string | undefined;
  /** METRICS_PORT: a loopback-only port for /metrics (0: any free port). */
  readonly port: number | undefined;
  /** Whether the service runs on embedded PGlite (no DATABASE_URL): a developer's machine. */
  readonly embedded: boolean;
}

/** The access rule the options give (see MetricsAccess). */
export function metricsAccessOf(options: MetricsEndpointOptions): MetricsAccess {
  if (options.port !== undefined) return "port";
  if (options.token !== undefined) return "token";
  return options.embedded ? "loopback" : "off";
}

const LOOPBACK_ADDRESSES = new Set(["127.0.0.1", "::1", "::ffff:127.0.0.1"]);
const LOOPBACK_HOSTS = new Set(["localhost", "127.0.0.1", "[::1]"]);

/**
 * Whether a request comes from this machine and names it: the socket's peer
 * is a loopback address and so is the Host header. The Host check keeps a
 * web page whose domain was rebound to 127.0.0.1 from reading the figures
 * through the visitor's browser.
 */
function isLocal(req: IncomingMessage): boolean {
  if (!LOOPBACK_ADDRESSES.has(req.socket.remoteAddress ?? "")) return false;
  const host = req.headers.host ?? "";
  const hostname = host.startsWith("[") ? host.slice(0, host.indexOf("]") + 1) : host.split(":")[0];
  return LOOPBACK_HOSTS.has((hostname ?? "").toLowerCase());
}

/** SHA-256 of a token: equal-length inputs for a constant-time comparison. */
const digest = (value: string) => createHash("sha256").update(value).digest();

function answer(res: ServerResponse, status: number, message: string, headers: Record<string, string> = {}) {
  res
    .writeHead(status, { "content-type": "application/json", ...headers })
    .end(JSON.stringify({ error: message }));
}

/**
 * /metrics behind its access rule: on the main port through `handle`, and on
 * its own loopback server when METRICS_PORT is set.
 */
export class MetricsEndpoint {
  readonly access: MetricsAccess;
  private readonly tokenDigest: Buffer | null;
  private server: Server | null = null;

  constructor(
    private readonly metrics: Metrics,
    private readonly options: MetricsEndpointOptions,
  ) {
    this.access = metricsAccessOf(options);
    this.tokenDigest = options.token === undefined ? null : digest(options.token);
  }

  /** Answers a main-port request for /metrics; false for any other path. */
  async handle(req: IncomingMessage, res: ServerResponse, path: string): Promise<boolean> {
    if (path !== "/metrics") return false;
    switch (this.access) {
      case "port":
        answer(res, 404, "Not found");
        break;
      case "token":
        await this.serveWithToken(req, res);
        break;
      case "loopback":
        if (isLocal(req)) await this.serve(res);
        else
          answer(res, 403, "Metrics are served to this machine only; set METRICS_TOKEN to scrape remotely");
        break;
      case "off":
        answer(res, 404, "Metrics are off: set METRICS_TOKEN or METRICS_PORT");
        break;
    }
    return true;
  }

  /** Starts the loopback server when METRICS_PORT is set. */
  async listen(): Promise<void> {
    if (this.options.port === undefined) return;
    const server = createServer((req, res) => {
      if ((req.url ?? "/").split("?")[0] !== "/metrics") answer(res, 404, "Not found");
      else void this.serveWithToken(req, res);
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.options.port, "127.0.0.1", () => {
        server.off("error", reject);
        resolve();
      });
    });
    this.server = server;
  }

  /** The loopback server's /metrics URL, or null when METRICS_PORT is unset. */
  url(): string | null {
    const address = this.server?.address() as AddressInfo | null | undefined;
    return address == null ? null : `http://127.0.0.1:${address.port}/metrics`;
  }

  async close(): Promise<void> {
    const server = this.server;
    if (server === null) return;
    this.server = null;
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Serves when no token is configured or the right one came; 401 otherwise. */
  private async serveWithToken(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (this.tokenDigest !== null) {
      let sent: string | undefined;
      try {
        sent = bearerToken(req.headers.authorization);
      } catch {
        // A header that is not `Bearer <token>` carries no token: answered 401 like a missing one.
        sent = undefined;
      }
      if (sent === undefined || !timingSafeEqual(digest(sent), this.tokenDigest)) {
        answer(res, 401, "Metrics need Authorization: Bearer <METRICS_TOKEN>", {
          "www-authenticate": 'Bearer realm="metrics"',
        });
        return;
      }
    }
    await this.serve(res);
  }

  private async serve(res: ServerResponse): Promise<void> {
    const { contentType, body } = await this.metrics.render();
    res.writeHead(200, { "content-type": contentType }).end(body);
  }
}
