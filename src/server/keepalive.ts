import type { WebSocket, WebSocketServer } from "ws";

/** How often every WebSocket is pinged; one not answering by the next round is terminated. @default 12_000 // 12 seconds */
export const KEEPALIVE_INTERVAL_MS = 12_000;

/**
 * Pings every WebSocket of `wsServer` each `intervalMs` from one timer, and
 * terminates those that did not answer the previous ping: graphql-ws's
 * keepalive (same interval, same wait for the pong) without its interval
 * and pong timeout per socket. Returns the function that stops it.
 */
export function keepAlive(wsServer: WebSocketServer, intervalMs = KEEPALIVE_INTERVAL_MS): () => void {
  const awaitingPong = new WeakSet<WebSocket>();
  // One listener function for every socket (`this` is the socket that answered).
  function answered(this: WebSocket): void {
    awaitingPong.delete(this);
  }
  wsServer.on("connection", (socket: WebSocket) => socket.on("pong", answered));
  const timer = setInterval(() => {
    for (const socket of wsServer.clients) {
      if (socket.readyState !== socket.OPEN) continue;
      if (awaitingPong.has(socket)) {
        socket.terminate();
        continue;
      }
      awaitingPong.add(socket);
      socket.ping();
    }
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
