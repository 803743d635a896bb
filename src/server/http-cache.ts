import type { Plugin } from "graphql-yoga";

/**
 * What GET answers of /graphql say to caches. Every answer depends on the
 * caller's token (balances, ledgers, accounts the caller may see), so a
 * shared cache (CDN, proxy) must never store one: `private`. And the data
 * is money that changes with every operation, with no validator to
 * revalidate against: a browser keeping a copy (even with `max-age=0`)
 * would only leave balances in its disk cache, so `no-store`. POST answers
 * are not cacheable without explicit freshness and are left alone.
 */
export const GET_CACHE_CONTROL = "private, no-store";

/** Yoga plugin: `Cache-Control` on GraphQL answers to GET (not on the GraphiQL page). */
export function cacheControlPlugin(): Plugin {
  return {
    onResponse({ request, response }) {
      if (request.method !== "GET") return;
      const type = response.headers.get("content-type") ?? "";
      // GraphQL answers (application/json, application/graphql-response+json) and event streams.
      if (type.startsWith("text/html")) return;
      if (!response.headers.has("cache-control")) response.headers.set("cache-control", GET_CACHE_CONTROL);
    },
  };
}
