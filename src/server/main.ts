import { createApp } from "./app.ts";
import { ConfigError, loadConfig } from "./config.ts";

/** Entry point of `npm start`. */
async function main(): Promise<void> {
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      for (const problem of error.problems) process.stderr.write(`creditbook: ${problem}\n`);
      process.exit(78);
    }
    throw error;
  }
  const app = await createApp(config);
  await app.listen();
  let signals = 0;
  const shutdown = (signal: string) => {
    signals += 1;
    if (signals > 1) process.exit(1);
    app.log.info("shutting down", { signal, timeoutMs: config.shutdownTimeoutMs });
    // The bound holds even if a transaction never ends (a lock held elsewhere): exit 1, not hang.
    setTimeout(() => {
      app.log.error("shutdown timed out", { timeoutMs: config.shutdownTimeoutMs });
      process.exit(1);
    }, config.shutdownTimeoutMs).unref();
    app.close().then(
      () => process.exit(0),
      (error: unknown) => {
        app.log.error("shutdown failed", { err: error });
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  process.on("SIGINT", () => shutdown("SIGINT"));
}

main().catch((error: unknown) => {
  process.stderr.write(`creditbook: failed to start: ${(error as Error).message}\n`);
  process.exit(1);
});
