/**
 * Limits on the HTTP server's sockets. Node's defaults let a client hold a
 * socket for 300 s by trickling a body (requestTimeout) and accept sockets
 * until file descriptors run out; 20,000 sockets sending one byte every 5 s
 * took a server down. Here headers and bodies must arrive within seconds and
 * the number of open sockets is capped — with a few reserved past the cap
 * for the health checks, so that an orchestrator probing /healthz or /readyz
 * on the same port does not restart an instance for being busy.
 *
 * The timeouts cover receiving a request only: a response may stream for as
 * long as it likes (SSE), and an upgraded socket (WebSocket) has left the
 * HTTP server's accounting altogether.
 */
import type { IncomingMessage, Server, ServerOptions, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import type { Config } from "./config.ts";

/** Sockets over the cap that may still ask for /healthz or /readyz. */
export const HEALTH_CONNECTIONS_RESERVED = 4;
/** How long a socket on a reserved slot may stay: one health check, then it goes. */
export const RESERVED_LIFETIME_MS = 2_000;
/** Paths a socket on a reserved slot may ask for. */
const HEALTH_PATHS = new Set(["/healthz", "/readyz"]);

/** The configuration's socket limits (see config.ts). */
export type ConnectionLimits = Pick<
  Config,
  "httpHeadersTimeoutMs" | "httpRequestTimeoutMs" | "connectionsMax"
>;

/**
 * Options for `createServer`: the two timeouts, and how often Node checks
 * them (its default, 30 s, would let a slow body live twice its timeout).
 */
export function serverTimeouts(limits: ConnectionLimits): ServerOptions {
  return {
    headersTimeout: limits.httpHeadersTimeoutMs,
    requestTimeout: limits.httpRequestTimeoutMs,
    connectionsCheckingInterval: Math.max(
      100,
      Math.floor(Math.min(limits.httpHeadersTimeoutMs, limits.httpRequestTimeoutMs) / 4),
    ),
  };
}

/** What `limitConnections` gives the request handler. */
export interface ConnectionGate {
  /** Whether `socket` holds a reserved slot (over the cap): it may only ask for a health check. */
  isReserved(socket: Socket): boolean;
  /**
   * Answers 503 TOO_MANY_CONNECTIONS (and closes) a request on a reserved
   * slot that is not a health check; returns whether it did.
   */
  refuse(req: IncomingMessage, res: ServerResponse): boolean;
  /** Open sockets now. */
  count(): number;
}

/** Counts the server's sockets, destroying those past the cap and its reserve at once. */
export function limitConnections(server: Server, limits: ConnectionLimits): ConnectionGate {
  const reserved = new WeakSet<Socket>();
  let open = 0;
  server.on("connection", (socket: Socket) => {
    if (open >= limits.connectionsMax + HEALTH_CONNECTIONS_RESERVED) {
      // Refused before a byte is read: the client sees the connection closed and may retry elsewhere.
      socket.destroy();
      return;
    }
    open += 1;
    socket.once("close", () => {
      open -= 1;
    });
    if (open > limits.connectionsMax) {
      reserved.add(socket);
      // A deadline, not an idle timeout: trickling bytes must not keep a reserved slot.
      const deadline = setTimeout(() => socket.destroy(), RESERVED_LIFETIME_MS);
      socket.once("close", () => clearTimeout(deadline));
    } else {
      // Node's headers timeout starts at a request's first byte: a socket that never sends one is cut here.
      socket.setTimeout(limits.httpHeadersTimeoutMs, () => socket.destroy());
    }
  });
  // Once a request has begun, Node's own timeouts (and keepAliveTimeout between requests) take over.
  const started = (req: IncomingMessage) => {
    if (!reserved.has(req.socket)) req.socket.setTimeout(0);
  };
  server.on("request", started);
  server.on("upgrade", started);
  return {
    isReserved: (socket) => reserved.has(socket),
    count: () => open,
    refuse(req, res) {
      if (!reserved.has(req.socket)) return false;
      const path = (req.url ?? "/").split("?")[0] ?? "/";
      // A health check is answered, and its socket then closed so the slot frees for the next probe.
      res.shouldKeepAlive = false;
      if (HEALTH_PATHS.has(path)) return false;
      res.writeHead(503, { "content-type": "application/json", "retry-after": "1", connection: "close" }).end(
        JSON.stringify({
          errors: [
            {
              message: "The server has too many open connections; retry shortly",
              extensions: { code: "TOO_MANY_CONNECTIONS" },
            },
          ],
        }),
      );
      req.resume();
      return true;
    },
  };
}
