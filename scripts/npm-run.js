import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";

/**
 * Helpers for the npm lifecycle hooks (scripts/prestart.js,
 * scripts/postinstall.js). They are plain JavaScript because they run where
 * nothing is compiled yet, or where no dev dependency is installed.
 */

/** Runs `npm run <script>` with this npm, output shown; exits when it fails. */
export function npmRun(script) {
  const npmCli = process.env.npm_execpath;
  const result =
    npmCli !== undefined && existsSync(npmCli)
      ? spawnSync(process.execPath, [npmCli, "run", script], { stdio: "inherit" })
      : spawnSync("npm", ["run", script], { stdio: "inherit", shell: process.platform === "win32" });
  if (result.status !== 0) process.exit(result.status ?? 1);
}

/** Whether the build tools (dev dependencies) are installed. */
export function buildToolsInstalled() {
  const require = createRequire(import.meta.url);
  try {
    for (const name of ["typescript", "prisma", "vite"]) require.resolve(`${name}/package.json`);
    return true;
  } catch {
    // A module that does not resolve is the answer, not a failure.
    return false;
  }
}
