import type { GraphiQLOptions } from "graphql-yoga";

/** The last page rendered and the options it was rendered with (they are the same on every request). */
let rendered: { key: string; html: string } | null = null;

/**
 * GraphiQL with its scripts, styles and workers inlined in the page
 * (`@graphql-yoga/render-graphiql`), so it works on a network that cannot
 * reach a CDN. Yoga's default page loads them from unpkg.com. The bundle is
 * large (a 9 MB page), so it is loaded on the first page view, never in a
 * server that does not serve GraphiQL, and the page is rendered once.
 */
export async function renderLocalGraphiQL(options?: GraphiQLOptions): Promise<string> {
  const key = JSON.stringify(options ?? {});
  if (rendered?.key !== key) {
    const { renderGraphiQL } = await import("@graphql-yoga/render-graphiql");
    rendered = { key, html: renderGraphiQL(options) };
  }
  return rendered.html;
}
