/** What every phase of a run shares: sizes, connections, tokens, and where results go. */
import { readFileSync, writeFileSync } from "node:fs";
import type { Database } from "../../src/db/database.ts";
import type { AuditReport } from "../../src/domain/audit.ts";
import { auditLedger } from "../../src/domain/audit.ts";
import type { LoadConfig } from "../load.ts";
import { captureOutput, spawnNodeTs, trackCpu, waitExit } from "./proc.ts";
import type { Figure } from "./report.ts";

/** Sizes of one run. Full mode uses SPEC §7's; quick mode small ones (about a minute in all). */
export interface Sizes {
  /** pgbench run length per B0 case. */
  readonly b0Seconds: number;
  readonly b0Accounts: number;
  readonly b0Clients: number;
  readonly httpClients: number;
  readonly b1Accounts: number;
  readonly httpWarmupMs: number;
  readonly httpDurationMs: number;
  readonly b3Accounts: number;
  readonly b3PerAccount: number;
  readonly b3RatePerSecond: number;
  readonly b3DurationMs: number;
  readonly b3bSubscribers: number;
  readonly b3bRatePerSecond: number;
  readonly b3bDurationMs: number;
  /** M1: idle subscribers on one instance. */
  readonly m1Subscribers: number;
  readonly b4Generations: number;
  readonly b4Accounts: number;
  readonly b5Entries: number;
  readonly b5Requests: number;
  readonly profileMs: number;
}

export const FULL: Sizes = {
  b0Seconds: 30,
  b0Accounts: 1_000,
  b0Clients: 64,
  httpClients: 64,
  b1Accounts: 1_000,
  httpWarmupMs: 5_000,
  httpDurationMs: 30_000,
  b3Accounts: 2_000,
  b3PerAccount: 5,
  b3RatePerSecond: 200,
  b3DurationMs: 30_000,
  b3bSubscribers: 500,
  b3bRatePerSecond: 20,
  b3bDurationMs: 30_000,
  m1Subscribers: 10_000,
  b4Generations: 100_000,
  b4Accounts: 1_000,
  b5Entries: 1_000_000,
  b5Requests: 500,
  profileMs: 15_000,
};

export const QUICK: Sizes = {
  b0Seconds: 4,
  b0Accounts: 1_000,
  b0Clients: 64,
  httpClients: 64,
  b1Accounts: 1_000,
  httpWarmupMs: 1_000,
  httpDurationMs: 4_000,
  b3Accounts: 200,
  b3PerAccount: 5,
  b3RatePerSecond: 200,
  b3DurationMs: 10_000,
  b3bSubscribers: 100,
  b3bRatePerSecond: 20,
  b3bDurationMs: 5_000,
  m1Subscribers: 1_000,
  b4Generations: 5_000,
  b4Accounts: 500,
  b5Entries: 50_000,
  b5Requests: 100,
  profileMs: 5_000,
};

/** Credits given to every benchmark account: enough that no phase runs out. */
export const ACCOUNT_CREDITS = 1_000_000_000_000n;
/** Unit cost of every benchmark generation. */
export const UNIT_COST = 10;

export interface BenchContext {
  readonly quick: boolean;
  readonly sizes: Sizes;
  readonly adminUrl: string;
  readonly databaseUrl: string;
  readonly databaseName: string;
  readonly db: Database;
  readonly redisUrl: string;
  readonly pgbench: string;
  readonly secret: string;
  /** A `service` token (all mutations). */
  readonly serviceToken: string;
  /**
   * A `service` token of its own for each account's dashboard backend
   * (subject `bench-dashboard-<index>`), so subscribers count against many
   * principals' subscription caps, as 10,000 dashboards would, not one.
   */
  dashboardToken(accountIndex: number): Promise<string>;
  readonly maxConnections: number;
  /** Scratch folder for child configs and results. */
  readonly workDir: string;
  /** Where CPU profiles go (when --profile). */
  readonly profileDir: string;
  readonly profile: boolean;
  readonly runId: string;
  /** Figures later phases compare with. */
  readonly reference: {
    b0SpreadCyclesPerSecond?: number;
    b0HotCyclesPerSecond?: number;
    b1CyclesPerSecond?: number;
  };
  log(line: string): void;
}

/** What a phase hands back: figures for the table, details for results.json, notes for the report. */
export class PhaseRecorder {
  readonly figures: Figure[] = [];
  readonly details: Record<string, unknown> = {};
  readonly notes: string[] = [];

  figure(figure: Figure): void {
    this.figures.push(figure);
  }

  note(text: string): void {
    this.notes.push(text);
  }
}

/**
 * Tracks the CPU of the PostgreSQL backends serving the bench database (not
 * other databases on the server, nor its shared background processes).
 */
export function trackDatabaseCpu(ctx: BenchContext): { stop(): Promise<number> } {
  return trackCpu("postgres", async () => {
    const rows = await ctx.db.query<{ pid: number }>(
      "SELECT pid FROM pg_stat_activity WHERE datname = current_database()",
    );
    return new Set(rows.map((row) => row.pid));
  });
}

/** Runs the ledger audit (src/domain/audit.ts) over every account, or one. */
export async function audit(ctx: BenchContext, accountId: string | null = null): Promise<AuditReport> {
  return auditLedger(ctx.db, accountId);
}

/** Runs bench/load.ts with a config and returns its parsed result. */
export async function runLoad<R>(
  ctx: BenchContext,
  name: string,
  config: LoadConfig,
  timeoutMs: number,
): Promise<R> {
  const configPath = `${ctx.workDir}/${name}.config.json`;
  writeFileSync(configPath, JSON.stringify(config));
  const child = spawnNodeTs("bench/load.ts", [configPath]);
  const output = captureOutput(child);
  const code = await waitExit(child, timeoutMs, `load generator ${name}`);
  if (code !== 0)
    throw new Error(`load generator ${name} exited with ${code}:\n${output.slice(-20).join("\n")}`);
  return JSON.parse(readFileSync(config.resultPath, "utf8")) as R;
}
