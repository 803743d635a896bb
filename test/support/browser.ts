/**
 * The headless Chromium the browser tests drive: the one npm installs
 * (`@sparticuz/chromium`, unpacked on first use into the temp folder), never a
 * system browser, so `npm test` needs nothing outside npm for it.
 */
import { mkdirSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sparticuz from "@sparticuz/chromium";
import { type BrowserContext, chromium } from "playwright-core";

/**
 * Flags that run it here: headless without a sandbox or GPU, and with every
 * background service off. The network is closed, and without those it keeps
 * retrying refused connections (updates, sync, field trials).
 */
const CHROMIUM_FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** How long one test file waits for another to finish unpacking the browser. @default 120_000 // 2 minutes */
const UNPACK_WAIT_MAX_MS = 120_000;

/** A browser with a fresh profile; `close()` ends it and deletes the profile. */
export interface TestBrowser {
  readonly context: BrowserContext;
  /** The executable that runs (inside the temp folder, from npm). */
  readonly executablePath: string;
  close(): Promise<void>;
}

/** Launches the npm-installed Chromium, headless, with a fresh user-data dir. */
export async function launchBrowser(viewport = { width: 1280, height: 1000 }): Promise<TestBrowser> {
  const executablePath = await unpackedChromium();
  const profileDir = mkdtempSync(join(tmpdir(), "creditbook-chromium-"));
  try {
    const context = await chromium.launchPersistentContext(profileDir, {
      executablePath,
      viewport,
      args: CHROMIUM_FLAGS,
    });
    return {
      context,
      executablePath,
      async close() {
        await context.close();
        rmSync(profileDir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    rmSync(profileDir, { recursive: true, force: true });
    throw error;
  }
}

/**
 * `executablePath()` unpacks the binary when it is missing and answers at
 * once when the file exists, even half-written: two test files starting
 * together must not both unpack, so the first takes a lock (an atomic mkdir)
 * and the others wait for it.
 */
async function unpackedChromium(): Promise<string> {
  const lockDir = join(tmpdir(), "creditbook-chromium-unpack.lock");
  const deadline = Date.now() + UNPACK_WAIT_MAX_MS;
  for (;;) {
    try {
      mkdirSync(lockDir);
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      // A lock older than the longest unpack is left by a killed run.
      if (Date.now() - lockAgeStart(lockDir) > UNPACK_WAIT_MAX_MS)
        rmSync(lockDir, { recursive: true, force: true });
      if (Date.now() > deadline) throw new Error(`Chromium is still being unpacked (lock ${lockDir})`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
  try {
    return await sparticuz.executablePath();
  } finally {
    rmSync(lockDir, { recursive: true, force: true });
  }
}

/** When the lock was taken; now when it is already gone. */
function lockAgeStart(lockDir: string): number {
  try {
    return statSync(lockDir).mtimeMs;
  } catch {
    // Released between our mkdir and this stat: not stale, retry at once.
    return Date.now();
  }
}
