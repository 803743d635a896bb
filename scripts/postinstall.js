import { buildToolsInstalled, npmRun } from "./npm-run.js";

/**
 * `npm install` / `npm ci`: where the dev dependencies are installed (a
 * developer's checkout, the build stage of the image) it runs `npm run build`,
 * so the Prisma client, dist/ and the dashboard are there for `npm start`,
 * `npm test` and `npm run token`. A production install (`--omit=dev`, or
 * NODE_ENV=production) has no build tools and needs none: it builds nothing.
 */
if (buildToolsInstalled()) {
  npmRun("build");
} else {
  process.stdout.write(
    "creditbook: no build tools installed (production install): skipping `npm run build`\n",
  );
}
