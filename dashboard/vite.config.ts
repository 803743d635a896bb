import { defineConfig } from "vite";

/**
 * Builds the dashboard into dashboard/dist, which the server serves at
 * /dashboard/ (src/server/dashboard.ts). `npx vite dashboard` serves it with
 * hot reload and forwards /graphql (HTTP and WebSocket) to a server on
 * CREDITBOOK_URL, default http://localhost:4000.
 */
export default defineConfig({
  root: import.meta.dirname,
  base: "/dashboard/",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    // The CSP allows no inline code; keep even tiny assets as files.
    assetsInlineLimit: 0,
  },
  server: {
    fs: { allow: [".."] },
    proxy: {
      "/graphql": { target: process.env.CREDITBOOK_URL ?? "http://localhost:4000", ws: true },
      "/dashboard/config.json": { target: process.env.CREDITBOOK_URL ?? "http://localhost:4000" },
      "/dashboard/dev-login": { target: process.env.CREDITBOOK_URL ?? "http://localhost:4000" },
    },
  },
});
