import { existsSync } from "node:fs";
import { npmRun } from "./npm-run.js";

/**
 * Before `npm start`. In production nothing is built (no dev dependency is
 * installed to build with): dist/ must come from `npm run build`, and a
 * missing one stops the start with one line saying so. Elsewhere it builds
 * first (incremental, a few seconds), so a start always runs the sources as
 * they are.
 */
if (process.env.NODE_ENV === "production") {
  if (!existsSync(new URL("../dist/server/main.js", import.meta.url))) {
    process.stderr.write(
      "creditbook: dist/server/main.js is missing: run `npm run build` (with the dev dependencies installed) before `NODE_ENV=production npm start`\n",
    );
    process.exit(1);
  }
} else {
  npmRun("build");
}
