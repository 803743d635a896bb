import type { Plugin, YogaServerOptions } from "graphql-yoga";

type CorsOption = NonNullable<YogaServerOptions<object, object>["cors"]>;

/**
 * Request headers a browser client may send: the token travels in
 * `Authorization`; `x-graphql-event-stream-token` is graphql-sse's
 * single-connection stream token.
 */
export const CORS_ALLOWED_HEADERS = [
  "authorization",
  "content-type",
  "accept",
  "x-request-id",
  "x-graphql-event-stream-token",
] as const;
/** Response headers a browser client may read. */
export const CORS_EXPOSED_HEADERS = ["x-request-id", "server-timing", "retry-after"] as const;
/** Methods of GraphQL over HTTP and of graphql-sse's single-connection mode (PUT reserves, DELETE ends). */
const CORS_METHODS = ["GET", "POST", "PUT", "DELETE", "OPTIONS"];
/** How long a browser may reuse a preflight answer. @default 600 // seconds */
const CORS_MAX_AGE_SECONDS = 600;

/**
 * Yoga's CORS option for `CORS_ORIGINS`. Credentials are never allowed:
 * tokens travel in the Authorization header, never in cookies, so no
 * origin needs the browser to attach its cookies, and without
 * `Access-Control-Allow-Credentials` a page on another origin cannot ride
 * on any ambient credential. With a list, an Origin outside it gets no CORS
 * headers at all (the browser then refuses the response to the page);
 * without one, any origin may call.
 */
export function corsOption(origins: readonly string[] | null): CorsOption {
  const common = {
    credentials: false,
    allowedHeaders: [...CORS_ALLOWED_HEADERS],
    exposedHeaders: [...CORS_EXPOSED_HEADERS],
    methods: CORS_METHODS,
    maxAge: CORS_MAX_AGE_SECONDS,
  };
  if (origins === null) return () => ({ ...common, origin: "*" });
  const allowed = new Set(origins);
  return (request: Request) => {
    const origin = request.headers.get("origin");
    if (origin === null || !allowed.has(origin)) return false;
    // One origin: yoga answers it verbatim; the response still varies by Origin.
    return { ...common, origin: [origin] };
  };
}

/**
 * With a list of origins, an answer differs by the request's Origin (CORS
 * headers or none), so caches must key it by Origin too.
 */
export function corsVaryPlugin(origins: readonly string[] | null): Plugin {
  return {
    onResponse({ response }) {
      if (origins === null) return;
      const vary = response.headers.get("vary");
      if (vary === null) response.headers.set("vary", "Origin");
      else if (!/\borigin\b/i.test(vary)) response.headers.set("vary", `${vary}, Origin`);
    },
  };
}
