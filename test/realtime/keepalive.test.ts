/**
 * One keepalive sweep for every WebSocket (src/server/keepalive.ts): a
 * socket that answers pings stays open, one that stops answering is
 * terminated by the round after the unanswered ping.
 */
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { WebSocket, WebSocketServer } from "ws";
import { keepAlive } from "../../src/server/keepalive.ts";

const INTERVAL_MS = 200;
const cleanups: (() => void)[] = [];

afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

async function server(): Promise<string> {
  const wss = new WebSocketServer({ port: 0, host: "127.0.0.1" });
  await new Promise<void>((resolve) => wss.once("listening", () => resolve()));
  const stop = keepAlive(wss, INTERVAL_MS);
  cleanups.push(() => {
    stop();
    for (const client of wss.clients) client.terminate();
    wss.close();
  });
  return `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`;
}

function connect(url: string, autoPong: boolean): Promise<WebSocket> {
  const socket = new WebSocket(url, { autoPong });
  return new Promise((resolve, reject) => {
    socket.once("open", () => resolve(socket));
    socket.once("error", reject);
  });
}

describe("keepAlive", () => {
  it("keeps a socket that answers pings and terminates one that does not", async () => {
    const url = await server();
    const answering = await connect(url, true);
    const silent = await connect(url, false);
    let pings = 0;
    answering.on("ping", () => {
      pings += 1;
    });
    const silentClosed = new Promise<number>((resolve) => silent.once("close", (code) => resolve(code)));
    const started = Date.now();
    const code = await silentClosed;
    // Terminated (no close frame: 1006) in the round after its unanswered ping.
    expect(code).toBe(1006);
    expect(Date.now() - started).toBeLessThan(INTERVAL_MS * 2 + 1_000);
    await new Promise((resolve) => setTimeout(resolve, INTERVAL_MS * 4));
    expect(answering.readyState).toBe(WebSocket.OPEN);
    expect(pings).toBeGreaterThanOrEqual(3);
    answering.close();
  });
});
