import type { GraphiQLOptions } from "graphql-yoga";

/**
 * GraphiQL with its scripts, styles and workers inlined in the page
 * (`@graphql-yoga/render-graphiql`), so it works on a network that cannot
 * reach a CDN. Yoga's default page loads them from unpkg.com. The bundle is
 * large (megabytes of JavaScript), so it is loaded on the first page view,
 * never in a server that does not serve GraphiQL.
 */
export async function renderLocalGraphiQL(options?: GraphiQLOptions): Promise<string> {
  const { renderGraphiQL } = await import("@graphql-yoga/render-graphiql");
  return renderGraphiQL(options);
}
