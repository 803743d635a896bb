/**
 * B5b and B5c — analytics on the B5 long-history account (SPEC §8.3):
 * `balanceAt` at random instants of its history (target p99 ≤ 5 ms server
 * time), and `spending` with a `breakdown` over all its generations (target
 * ≤ 50 ms). Both are sequential HTTP requests on the B5 server, timed by the
 * server's Server-Timing header.
 */
import type { BenchContext, PhaseRecorder } from "./context.ts";
import { globalId } from "./db.ts";
import type { GraphQLHttpClient } from "./http.ts";
import { atMost } from "./report.ts";
import { round, type Summary, summarize } from "./stats.ts";

/** SPEC §7 B5's bound, applied to balanceAt (the issue's B5b). */
const BALANCE_AT_TARGET_MS = 5;
/** The issue's B5c bound for a spending summary with its breakdown. */
const SPENDING_TARGET_MS = 50;
const WARM_UP_REQUESTS = 100;
/** Spending reads every generation of the account: fewer requests than the page phases. */
const SPENDING_REQUESTS = 30;

const BALANCE_AT = `query BenchBalanceAt($accountId: ID!, $at: DateTime!) {
  balanceAt(accountId: $accountId, at: $at) { balance sequence }
}`;

const SPENDING = `query BenchSpending($accountId: ID!, $by: SpendingDimension!) {
  spending(accountId: $accountId) {
    charged net generations breakdown(by: $by) { key charged net generations failedGenerations }
  }
}`;

function serverTimingMs(header: string | string[] | undefined): number | null {
  const value = Array.isArray(header) ? header.join(",") : header;
  const match = value === undefined ? null : /(?:^|,)\s*app;dur=([0-9.]+)/.exec(value);
  return match?.[1] === undefined ? null : Number(match[1]);
}

/** Sends `requests` bodies after a warm-up; the server times of the counted ones and how many answers were wrong. */
async function timed(
  client: GraphQLHttpClient,
  bodies: () => string,
  requests: number,
  warmUp: number,
  check: (data: Record<string, unknown> | undefined) => boolean,
): Promise<{ server: Summary; bad: number }> {
  const times: number[] = [];
  let bad = 0;
  for (let i = 0; i < warmUp + requests; i += 1) {
    const { status, text, headers } = await client.postRaw(bodies());
    const parsed = JSON.parse(text) as { data?: Record<string, unknown>; errors?: unknown[] };
    if (status !== 200 || parsed.errors !== undefined || !check(parsed.data)) bad += 1;
    const serverTime = serverTimingMs(headers["server-timing"]);
    if (i >= warmUp && serverTime !== null) times.push(serverTime);
  }
  return { server: summarize(times), bad };
}

/** Runs B5b and B5c against the B5 account (entries one second apart, the last one now). */
export async function runAnalytics(
  ctx: BenchContext,
  record: PhaseRecorder,
  client: GraphQLHttpClient,
  accountId: string,
  entries: number,
): Promise<void> {
  const id = globalId("Account", accountId);
  const now = Date.now();
  const balance = await timed(
    client,
    () => {
      const at = new Date(now - Math.floor(Math.random() * entries * 1_000)).toISOString();
      return JSON.stringify({ query: BALANCE_AT, variables: { accountId: id, at } });
    },
    ctx.sizes.b5Requests,
    WARM_UP_REQUESTS,
    (data) => typeof (data?.balanceAt as { sequence?: unknown } | undefined)?.sequence === "number",
  );
  ctx.log(
    `  balanceAt: server p50 ${round(balance.server.p50, 2)} ms, p99 ${round(balance.server.p99, 2)} ms${balance.bad > 0 ? `, ${balance.bad} bad answers` : ""}`,
  );
  record.details.balanceAt = { ...balance.server, badAnswers: balance.bad };
  record.figure(
    atMost(
      {
        id: "B5b.balanceAt.p99",
        label: `B5b balanceAt p99 at random instants (${entries.toLocaleString("en-US")} entries), server time`,
        value: balance.bad > 0 ? null : balance.server.p99,
        unit: "ms",
        target: `≤ ${BALANCE_AT_TARGET_MS} ms`,
        note: `p50 ${round(balance.server.p50, 2)} ms; ${ctx.sizes.b5Requests} sequential requests after ${WARM_UP_REQUESTS} warm-up ones; one probe of ledger_entry (account_id, created_at, sequence)`,
      },
      BALANCE_AT_TARGET_MS,
    ),
  );

  for (const by of ["FEATURE", "DAY"] as const) {
    const spending = await timed(
      client,
      () => JSON.stringify({ query: SPENDING, variables: { accountId: id, by } }),
      SPENDING_REQUESTS,
      3,
      (data) => Array.isArray((data?.spending as { breakdown?: unknown } | undefined)?.breakdown),
    );
    ctx.log(
      `  spending + breakdown(by: ${by}): server p50 ${round(spending.server.p50, 1)} ms, p99 ${round(spending.server.p99, 1)} ms`,
    );
    record.details[`spending_${by}`] = { ...spending.server, badAnswers: spending.bad };
    record.figure(
      atMost(
        {
          id: `B5c.spending.${by}.p99`,
          label: `B5c spending + breakdown(by: ${by}) over the account's generations, server time`,
          value: spending.bad > 0 ? null : spending.server.p99,
          unit: "ms",
          target: `≤ ${SPENDING_TARGET_MS} ms`,
          note: `p50 ${round(spending.server.p50, 1)} ms; ${SPENDING_REQUESTS} sequential requests; both statements aggregate every generation of the account (no rollup table)`,
        },
        SPENDING_TARGET_MS,
      ),
    );
  }
}
