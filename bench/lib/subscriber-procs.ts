/** Subscriber processes (bench/subscribers.ts) as B3, B3b and M1 drive them. */
import type { ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import type { SubscriberStatus, SubscribersConfig } from "../subscribers.ts";
import type { BenchContext } from "./context.ts";
import { captureOutput, sleep, spawnNodeTs } from "./proc.ts";

/** One reserve per account: when every subscriber has received its entry, every subscription is live. */
export const PRIMER = `mutation BenchPrimer($input: ReserveGenerationInput!) {
  reserveGeneration(input: $input) {
    __typename
    ... on ReserveGenerationSuccess { generation { id } balance { sequence } }
    ... on Error { code message }
  }
}`;

export interface SubscriberProcess {
  readonly child: ChildProcess;
  readonly output: string[];
  readonly resultPath: string;
  status: SubscriberStatus | null;
}

export function spawnSubscribers(
  ctx: BenchContext,
  name: string,
  config: SubscribersConfig,
): SubscriberProcess {
  const configPath = `${ctx.workDir}/${name}.config.json`;
  writeFileSync(configPath, JSON.stringify(config));
  const child = spawnNodeTs("bench/subscribers.ts", [configPath], { ipc: true });
  const output = captureOutput(child);
  const proc: SubscriberProcess = { child, output, resultPath: config.resultPath, status: null };
  child.on("message", (message: SubscriberStatus) => {
    if (message.type === "status") proc.status = message;
  });
  return proc;
}

export async function waitFor(
  procs: readonly SubscriberProcess[],
  what: string,
  done: (status: SubscriberStatus) => boolean,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    for (const proc of procs) {
      if (proc.child.exitCode !== null) {
        throw new Error(
          `a subscriber process exited (${proc.child.exitCode}):\n${proc.output.slice(-10).join("\n")}`,
        );
      }
    }
    if (procs.every((proc) => proc.status !== null && done(proc.status))) return;
    if (Date.now() > deadline) {
      const states = procs.map((proc) => JSON.stringify(proc.status)).join("; ");
      // Each status carries its process's first error messages (samples).
      throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}: ${states}`);
    }
    await sleep(100);
  }
}
