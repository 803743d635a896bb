import { lookup } from "node:dns/promises";
import { BlockList, isIP } from "node:net";
import { InvalidInputError } from "./errors.ts";

/**
 * Where webhooks may go (SPEC §8.4): https URLs whose host resolves only to
 * public addresses, so an endpoint cannot make this service call into its
 * own network (SSRF). Checked when an endpoint is created and again at every
 * attempt, on the addresses the request then connects to (a name may resolve
 * elsewhere later). `allowPrivate` (WEBHOOK_ALLOW_PRIVATE=true) lifts both
 * rules, for development and tests against a local receiver.
 */

/** Longest endpoint URL. */
export const WEBHOOK_URL_LENGTH_MAX = 2_000;

const BLOCKED = new BlockList();
for (const [network, prefix] of [
  ["0.0.0.0", 8], // "this network"
  ["10.0.0.0", 8], // private
  ["100.64.0.0", 10], // carrier-grade NAT
  ["127.0.0.0", 8], // loopback
  ["169.254.0.0", 16], // link-local (cloud metadata services live here)
  ["172.16.0.0", 12], // private
  ["192.0.0.0", 24], // IETF protocol assignments
  ["192.168.0.0", 16], // private
  ["198.18.0.0", 15], // benchmarking
  ["224.0.0.0", 4], // multicast
  ["240.0.0.0", 4], // reserved, broadcast
] as const) {
  BLOCKED.addSubnet(network, prefix, "ipv4");
}
for (const [network, prefix] of [
  ["::", 128], // unspecified
  ["::1", 128], // loopback
  ["fc00::", 7], // unique local
  ["fe80::", 10], // link-local
  ["ff00::", 8], // multicast
] as const) {
  BLOCKED.addSubnet(network, prefix, "ipv6");
}

/** The IPv4 address inside an IPv4-mapped or NAT64 IPv6 address, if it is one. */
function embeddedIpv4(address: string): string | null {
  const match = /^(?:::ffff:|64:ff9b::)(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (match?.[1] !== undefined) return match[1];
  const hex = /^(?:::ffff:|64:ff9b::)([0-9a-f]{1,4}):([0-9a-f]{1,4})$/i.exec(address);
  if (hex?.[1] === undefined || hex[2] === undefined) return null;
  const high = Number.parseInt(hex[1], 16);
  const low = Number.parseInt(hex[2], 16);
  return [high >> 8, high & 255, low >> 8, low & 255].join(".");
}

/** Whether an IP address is one webhooks may reach: not loopback, private, link-local or reserved. */
export function isPublicAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 0) return false;
  if (family === 4) return !BLOCKED.check(address, "ipv4");
  const v4 = embeddedIpv4(address);
  if (v4 !== null) return !BLOCKED.check(v4, "ipv4");
  return !BLOCKED.check(address, "ipv6");
}

/** The URL parsed, or the reason it cannot be an endpoint (without looking its host up). */
export function parseWebhookUrl(raw: string, allowPrivate: boolean): URL | InvalidInputError {
  if (raw.length > WEBHOOK_URL_LENGTH_MAX)
    return new InvalidInputError("url", `must be at most ${WEBHOOK_URL_LENGTH_MAX} characters`);
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return new InvalidInputError("url", "must be an absolute URL such as https://example.com/webhooks");
  }
  if (url.username !== "" || url.password !== "")
    return new InvalidInputError("url", "must not carry a user name or password");
  const protocols = allowPrivate ? ["https:", "http:"] : ["https:"];
  if (!protocols.includes(url.protocol))
    return new InvalidInputError("url", `must start with https://, got "${url.protocol}//"`);
  return url;
}

/** The host of a URL as an address or a name to look up (brackets of IPv6 literals removed). */
export function hostOf(url: URL): string {
  return url.hostname.replace(/^\[(.*)\]$/, "$1");
}

/**
 * Resolves `host` and returns its addresses, or an error naming the first
 * one webhooks may not reach (every address must be public, since a client
 * may connect to any of them).
 */
export async function resolvePublic(
  host: string,
  allowPrivate: boolean,
): Promise<{ address: string; family: number }[] | InvalidInputError> {
  let addresses: { address: string; family: number }[];
  try {
    addresses =
      isIP(host) !== 0 ? [{ address: host, family: isIP(host) }] : await lookup(host, { all: true });
  } catch (error) {
    return new InvalidInputError("url", `host ${host} does not resolve (${(error as Error).message})`);
  }
  if (allowPrivate) return addresses;
  const blocked = addresses.find(({ address }) => !isPublicAddress(address));
  if (blocked !== undefined) {
    return new InvalidInputError(
      "url",
      `host ${host} resolves to ${blocked.address}, a loopback, private or link-local address`,
    );
  }
  return addresses;
}

/** The whole check of an endpoint URL: form, then every address its host resolves to. */
export async function checkWebhookUrl(raw: string, allowPrivate: boolean): Promise<URL | InvalidInputError> {
  const url = parseWebhookUrl(raw, allowPrivate);
  if (url instanceof InvalidInputError) return url;
  const resolved = await resolvePublic(hostOf(url), allowPrivate);
  return resolved instanceof InvalidInputError ? resolved : url;
}
