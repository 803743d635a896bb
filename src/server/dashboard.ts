/**
 * Serves the usage dashboard (dashboard/, built into dashboard/dist by
 * `npm run build:dashboard`) at /dashboard/, redirects / to it, and in
 * embedded mode offers /dashboard/dev-login to sign a short-lived user token.
 * Everything else is left to the caller.
 */
import { readFile } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { extname, join, normalize, sep } from "node:path";
import { fileURLToPath } from "node:url";
import type { TokenService } from "./auth.ts";

/** Where `npm run build:dashboard` writes the dashboard. */
export const DASHBOARD_DIST_DIR = fileURLToPath(new URL("../../dashboard/dist/", import.meta.url));

/** How long a dev-login token lasts: long enough to watch a demo, short enough not to linger. */
export const DEV_LOGIN_EXPIRES_IN = "1h";

export interface DashboardOptions {
  /** The built dashboard. @default DASHBOARD_DIST_DIR */
  readonly distDir?: string;
  /**
   * Signs dev-login tokens. Give it only in embedded mode (no DATABASE_URL),
   * where the secret is generated for this machine and the data is a
   * developer's own; null or absent turns /dashboard/dev-login off.
   */
  readonly devLogin?: TokenService | null;
}

const BASE_PATH = "/dashboard";

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".json": "application/json",
  ".map": "application/json",
  ".woff2": "font/woff2",
};

/**
 * The page loads only its own scripts and styles and talks only to its own
 * origin (HTTP and WebSocket); it cannot be framed. No inline code is allowed,
 * so injected markup could not run.
 */
const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "content-security-policy":
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
};

/** A user id the dev-login accepts: what a token's `sub` may be (1..200 printable characters). */
const SUB_PATTERN = /^[\x21-\x7e]{1,200}$/;

/**
 * Handles `/`, `/dashboard` and everything under it; returns false for any
 * other path so the caller can go on (to /graphql and the rest).
 */
export async function handleDashboard(
  req: IncomingMessage,
  res: ServerResponse,
  options: DashboardOptions = {},
): Promise<boolean> {
  const url = new URL(req.url ?? "/", "http://localhost");
  const path = url.pathname;
  if (path !== "/" && path !== BASE_PATH && !path.startsWith(`${BASE_PATH}/`)) return false;
  if (req.method !== "GET" && req.method !== "HEAD") {
    res
      .writeHead(405, { allow: "GET, HEAD", "content-type": "text/plain; charset=utf-8" })
      .end("Method not allowed\n");
    return true;
  }
  if (path === "/" || path === BASE_PATH) {
    // The trailing slash makes the page's relative URLs resolve under /dashboard/.
    res.writeHead(302, { location: `${BASE_PATH}/${url.search}` }).end();
    return true;
  }
  const distDir = options.distDir ?? DASHBOARD_DIST_DIR;
  const rest = path.slice(BASE_PATH.length + 1);
  if (rest === "config.json") {
    const body = JSON.stringify({ devLogin: devLoginAllowed(req, options) });
    res
      .writeHead(200, { "content-type": "application/json", "cache-control": "no-store" })
      .end(req.method === "HEAD" ? undefined : body);
    return true;
  }
  if (rest === "dev-login") {
    await devLogin(req, res, url, options);
    return true;
  }
  await serveFile(req, res, distDir, rest === "" ? "index.html" : rest);
  return true;
}

/**
 * Dev-login works in embedded mode and only for requests from this machine:
 * the server listens on every interface by default, and a token for any user
 * must not be handed to the network. The socket address alone is not enough:
 * a page whose host name an attacker re-points at 127.0.0.1 (DNS rebinding)
 * reaches us from the victim's browser over loopback. Its Host header (and
 * Origin, which browsers send on cross-origin requests) still carry the
 * attacker's name, so both must name this machine and this server's port.
 */
function devLoginAllowed(req: IncomingMessage, options: DashboardOptions): boolean {
  if (options.devLogin == null || !isLoopback(req.socket.remoteAddress)) return false;
  const port = req.socket.localPort;
  if (port === undefined || !isLoopbackAuthority(req.headers.host, port)) return false;
  const origin = req.headers.origin;
  if (origin === undefined) return true;
  let parsed: URL;
  try {
    parsed = new URL(origin);
  } catch {
    // "null" (a sandboxed or file page) and garbage are not this machine.
    return false;
  }
  return (
    (parsed.protocol === "http:" || parsed.protocol === "https:") && isLoopbackAuthority(parsed.host, port)
  );
}

/** Host names that can only mean this machine: rebinding cannot point them elsewhere. */
const LOOPBACK_HOSTS = new Set(["localhost", "127.0.0.1", "[::1]"]);

/** Whether `authority` (a Host header or a URL's host) is a loopback name with exactly `port`. */
function isLoopbackAuthority(authority: string | undefined, port: number): boolean {
  if (authority === undefined) return false;
  const match = /^(\[::1\]|[^:[\]]+):(\d{1,5})$/.exec(authority.toLowerCase());
  // Without a port the browser means 80 (or 443): accepted only when that is our port.
  const host = match?.[1] ?? authority.toLowerCase();
  const given = match === null ? (port === 80 ? 80 : -1) : Number(match[2]);
  return LOOPBACK_HOSTS.has(host) && given === port;
}

function isLoopback(address: string | undefined): boolean {
  if (address === undefined) return false;
  return address === "::1" || address.startsWith("127.") || address.startsWith("::ffff:127.");
}

/** `GET /dashboard/dev-login?sub=alice[&account=<id>]` → the dashboard, signed in as alice. */
async function devLogin(
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
  options: DashboardOptions,
): Promise<void> {
  if (options.devLogin == null || !devLoginAllowed(req, options)) {
    sendText(res, 404, "Not found\n");
    return;
  }
  const sub = url.searchParams.get("sub") ?? "";
  if (!SUB_PATTERN.test(sub)) {
    sendText(
      res,
      400,
      `sub must be 1 to 200 printable characters without spaces, got "${sub.slice(0, 40)}"\n`,
    );
    return;
  }
  const token = await options.devLogin.sign(sub, "user", DEV_LOGIN_EXPIRES_IN);
  const account = url.searchParams.get("account");
  const search = account === null || account === "" ? "" : `?account=${encodeURIComponent(account)}`;
  // The token goes in the fragment: browsers never send it to a server or in a Referer.
  res
    .writeHead(303, { location: `${BASE_PATH}/${search}#token=${token}`, "cache-control": "no-store" })
    .end();
}

async function serveFile(
  req: IncomingMessage,
  res: ServerResponse,
  distDir: string,
  relative: string,
): Promise<void> {
  let decoded: string;
  try {
    decoded = decodeURIComponent(relative);
  } catch {
    sendText(res, 400, "Bad path\n");
    return;
  }
  const root = normalize(distDir.endsWith(sep) ? distDir : `${distDir}${sep}`);
  const file = normalize(join(root, decoded));
  if (decoded.includes("\0") || !file.startsWith(root)) {
    sendText(res, 404, "Not found\n");
    return;
  }
  let body: Buffer;
  try {
    body = await readFile(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (relative === "index.html" && code === "ENOENT") {
      sendText(res, 503, "The dashboard is not built: run `npm run build:dashboard`, then reload.\n");
    } else if (code === "ENOENT" || code === "EISDIR" || code === "ENOTDIR") {
      sendText(res, 404, "Not found\n");
    } else {
      // An unreadable file is the operator's problem, not the visitor's: say little, keep serving.
      sendText(res, 500, "Could not read the dashboard\n");
    }
    return;
  }
  // Built assets carry a content hash in their names, so they never change; the page itself always may.
  const immutable = relative.startsWith("assets/");
  res.writeHead(200, {
    ...SECURITY_HEADERS,
    "content-type": CONTENT_TYPES[extname(file)] ?? "application/octet-stream",
    "content-length": body.length,
    "cache-control": immutable ? "public, max-age=31536000, immutable" : "no-cache",
  });
  res.end(req.method === "HEAD" ? undefined : body);
}

function sendText(res: ServerResponse, status: number, text: string): void {
  res
    .writeHead(status, { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" })
    .end(text);
}
