/**
 * Reaper against late results: many generations with a 1 s timeout, each
 * finished by one settle / refund / cancel fired at its deadline ± jitter
 * (sometimes delivered twice at once, once to each instance), while the
 * reaper runs on both of two server processes. Every item ends exactly once:
 * one USAGE and at most one REFUND per reason per generation, what clients
 * were told (success or ALREADY_FINALIZED) is what the ledger shows, results
 * that beat the deadline were applied before it, late ones charged nothing,
 * and the audit is clean.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectPostgres } from "../../src/db/database.ts";
import { auditLedger } from "../../src/domain/audit.ts";
import { localIdOf } from "../billing/ops.ts";
import { testDatabaseUrl } from "../support/env.ts";
import { type ServerProcess, startServerProcess } from "../support/process.ts";
import {
  CANCEL,
  createAccounts,
  newLoadFigures,
  REFUND,
  RESERVE,
  SETTLE,
  serviceTarget,
  type Target,
  untilAnswered,
} from "./load.ts";
import { sleep } from "./processes.ts";

// biome-ignore lint/suspicious/noExplicitAny: the API's JSON is read as it comes.
type Json = any;

const GENERATIONS = Number(process.env.RACE_GENERATIONS ?? 150);
const ACCOUNTS = 10;
const CREDITS = 100_000;
/** Results fire between 600 ms before and 400 ms after the deadline. */
const JITTER_BEFORE_MS = 600;
const JITTER_AFTER_MS = 400;

type Action = "settleAll" | "itemsAll" | "firstItem" | "refund" | "cancel";

interface Race {
  readonly accountId: string;
  readonly quantity: number;
  readonly unitCost: number;
  readonly action: Action;
  readonly duplicate: boolean;
  readonly key: string;
  generationId?: string;
  deadlineMs?: number;
  firedAtOffsetMs?: number;
  answers: Json[];
}

const ACTIONS: readonly Action[] = ["settleAll", "settleAll", "itemsAll", "firstItem", "refund", "cancel"];

/** The items an `itemsAll` settle reports: even indexes succeed at cost 1, odd ones fail. */
function mixedItems(quantity: number) {
  return Array.from({ length: quantity }, (_, index) =>
    index % 2 === 0
      ? { index, succeeded: true, cost: 1 }
      : { index, succeeded: false, reason: "PROVIDER_ERROR" },
  );
}

function request(race: Race): [string, Record<string, unknown>, string] {
  const base = { idempotencyKey: race.key, generationId: race.generationId };
  switch (race.action) {
    case "settleAll":
      return [SETTLE, base, "settleGeneration"];
    case "itemsAll":
      return [SETTLE, { ...base, items: mixedItems(race.quantity) }, "settleGeneration"];
    case "firstItem":
      return [SETTLE, { ...base, items: [{ index: 0, succeeded: true }] }, "settleGeneration"];
    case "refund":
      return [REFUND, { ...base, reason: "GENERATION_FAILED" }, "refundGeneration"];
    case "cancel":
      return [CANCEL, base, "cancelGeneration"];
  }
}

interface ItemRow {
  index: number;
  status: string;
  charged: number;
  reason: string | null;
  finishedMs: number;
}

/** Item statuses and reasons the generation must end with, given the kind of answer its client got. */
function expectedItems(
  race: Race,
  applied: boolean,
): { status: string; reason: string | null; charged: number }[] {
  const timedOut = { status: "TIMED_OUT", reason: "TIMEOUT", charged: 0 };
  return Array.from({ length: race.quantity }, (_, index) => {
    if (!applied) return timedOut;
    switch (race.action) {
      case "settleAll":
        return { status: "SUCCEEDED", reason: null, charged: race.unitCost };
      case "itemsAll":
        return index % 2 === 0
          ? { status: "SUCCEEDED", reason: null, charged: 1 }
          : { status: "FAILED", reason: "PROVIDER_ERROR", charged: 0 };
      case "firstItem":
        return index === 0 ? { status: "SUCCEEDED", reason: null, charged: race.unitCost } : timedOut;
      case "refund":
        return { status: "FAILED", reason: "GENERATION_FAILED", charged: 0 };
      case "cancel":
        return { status: "CANCELLED", reason: "CANCELLED", charged: 0 };
      default:
        throw new Error(`unknown action ${race.action satisfies never}`);
    }
  });
}

describe("reaper on two instances against results at the deadline", () => {
  let a: ServerProcess;
  let b: ServerProcess;
  const db = connectPostgres({ url: testDatabaseUrl(), poolSizeMax: 2 });

  beforeAll(async () => {
    [a, b] = await Promise.all([
      startServerProcess({ REAPER_INTERVAL_MS: "100" }),
      startServerProcess({ REAPER_INTERVAL_MS: "100" }),
    ]);
  }, 120_000);

  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    await db.close();
  });

  it(`ends each item of ${GENERATIONS} generations exactly once`, async () => {
    const figures = newLoadFigures();
    const targetA = await serviceTarget(() => a.url);
    const targetB: Target = { url: () => b.url, service: targetA.service };
    const accounts = await createAccounts(targetA, ACCOUNTS, CREDITS, figures);
    const races: Race[] = Array.from({ length: GENERATIONS }, (_, i) => ({
      accountId: accounts[i % ACCOUNTS] as string,
      quantity: 1 + (i % 3),
      unitCost: 2 + (i % 7),
      action: ACTIONS[Math.floor(Math.random() * ACTIONS.length)] as Action,
      duplicate: Math.random() < 0.35,
      key: `race-${i}-${Math.random().toString(36).slice(2)}`,
      answers: [],
    }));

    // Reserves go out in waves, so deadlines spread over a few seconds; each result is fired at
    // its own deadline ± jitter, by the client's clock (the same machine's as the servers').
    const fired: Promise<void>[] = [];
    for (let wave = 0; wave < races.length; wave += 15) {
      await Promise.all(
        races.slice(wave, wave + 15).map(async (race, i) => {
          const target = i % 2 === 0 ? targetA : targetB;
          const reserved = await untilAnswered(
            target,
            RESERVE,
            {
              input: {
                idempotencyKey: `${race.key}-reserve`,
                accountId: race.accountId,
                feature: "Race",
                unitCost: race.unitCost,
                quantity: race.quantity,
                timeoutSeconds: 1,
              },
            },
            "reserveGeneration",
            figures,
          );
          if (reserved.__typename !== "ReserveGenerationSuccess") throw new Error(JSON.stringify(reserved));
          race.generationId = reserved.generation.id;
          race.deadlineMs = Date.parse(reserved.generation.deadline);
          const offset = -JITTER_BEFORE_MS + Math.random() * (JITTER_BEFORE_MS + JITTER_AFTER_MS);
          const delayMs = Math.max(0, (race.deadlineMs as number) + offset - Date.now());
          fired.push(
            sleep(delayMs).then(async () => {
              race.firedAtOffsetMs = Date.now() - (race.deadlineMs as number);
              const [document, input, field] = request(race);
              const targets = race.duplicate ? [targetA, targetB] : [i % 2 === 0 ? targetB : targetA];
              race.answers = await Promise.all(
                targets.map((to) => untilAnswered(to, document, { input }, field, figures)),
              );
            }),
          );
        }),
      );
      await sleep(150);
    }
    await Promise.all(fired);

    // Both reapers finish what no result ended.
    const ids = races.map((race) => localIdOf(race.generationId as string));
    const deadline = Date.now() + 30_000;
    for (;;) {
      const [row] = await db.query<{ open: number }>(
        "SELECT count(*)::int AS open FROM generation WHERE id = ANY($1::uuid[]) AND status = 'IN_PROGRESS'",
        [ids],
      );
      if (row?.open === 0) break;
      if (Date.now() > deadline) throw new Error(`${row?.open} generations still in progress 30 s later`);
      await sleep(100);
    }
    // A round or two more, in which a second refund would show.
    await sleep(500);

    const rows = await db.query<{
      id: string;
      status: string;
      reserved: bigint;
      charged: bigint;
      refunded: bigint;
      deadline: Date;
      items: ItemRow[];
      usage: number;
      refunds: { reason: string; n: number; amount: number }[] | null;
    }>(
      `SELECT g.id, g.status, g.reserved, g.charged, g.refunded, g.deadline,
              (SELECT json_agg(json_build_object('index', i.index, 'status', i.status, 'charged', i.charged,
                      'reason', i.reason, 'finishedMs', (extract(epoch FROM i.finished_at) * 1000)::bigint) ORDER BY i.index)
                 FROM generation_item i WHERE i.generation_id = g.id) AS items,
              (SELECT count(*)::int FROM ledger_entry e WHERE e.generation_id = g.id AND e.type = 'USAGE') AS usage,
              (SELECT json_agg(json_build_object('reason', r.reason, 'n', r.n, 'amount', r.amount)) FROM (
                 SELECT e.reason, count(*)::int AS n, sum(e.amount)::bigint AS amount FROM ledger_entry e
                  WHERE e.generation_id = g.id AND e.type = 'REFUND' GROUP BY e.reason) r) AS refunds
         FROM generation g WHERE g.id = ANY($1::uuid[])`,
      [ids],
    );
    const byId = new Map(rows.map((row) => [row.id, row]));
    const problems: string[] = [];
    const tally = { applied: 0, finalized: 0, duplicates: 0, timeoutRefunds: 0, maxReapLatenessMs: 0 };
    for (const race of races) {
      const id = localIdOf(race.generationId as string);
      const row = byId.get(id);
      const where = `generation ${id} (${race.action}${race.duplicate ? ", delivered twice" : ""}, fired ${Math.round(race.firedAtOffsetMs ?? 0)} ms from the deadline)`;
      if (row === undefined) {
        problems.push(`${where}: missing`);
        continue;
      }
      const kinds = race.answers.map((answer) =>
        String(answer.__typename).endsWith("Success")
          ? "applied"
          : answer.__typename === "AlreadyFinalizedError"
            ? "finalized"
            : answer.__typename,
      );
      if (new Set(kinds).size !== 1 || !["applied", "finalized"].includes(kinds[0] as string)) {
        problems.push(`${where}: answers ${JSON.stringify(race.answers)}`);
        continue;
      }
      const applied = kinds[0] === "applied";
      if (applied && race.answers.filter((answer) => answer.replayed === false).length !== 1) {
        problems.push(
          `${where}: ${race.answers.length} answers, not exactly one that ran: ${JSON.stringify(race.answers)}`,
        );
      }
      if (applied) tally.applied += 1;
      else tally.finalized += 1;
      if (race.duplicate) tally.duplicates += 1;
      const want = expectedItems(race, applied);
      const got = row.items.map((item) => ({
        status: item.status,
        reason: item.reason,
        charged: Number(item.charged),
      }));
      if (JSON.stringify(got) !== JSON.stringify(want))
        problems.push(`${where}: items ${JSON.stringify(got)}, expected ${JSON.stringify(want)}`);
      const deadlineMs = new Date(row.deadline).getTime();
      for (const item of row.items) {
        const finishedMs = Number(item.finishedMs);
        // A result is applied only before the deadline; a timeout only at or after it.
        if (item.status === "TIMED_OUT") {
          if (finishedMs < deadlineMs)
            problems.push(`${where}: item ${item.index} timed out before its deadline`);
          tally.maxReapLatenessMs = Math.max(tally.maxReapLatenessMs, finishedMs - deadlineMs);
        } else if (finishedMs >= deadlineMs) {
          problems.push(
            `${where}: item ${item.index} ended ${item.status} ${finishedMs - deadlineMs} ms after its deadline`,
          );
        }
      }
      if (row.usage !== 1) problems.push(`${where}: ${row.usage} USAGE entries`);
      for (const refund of row.refunds ?? []) {
        if (refund.n !== 1) problems.push(`${where}: ${refund.n} REFUND entries for ${refund.reason}`);
        if (refund.reason === "TIMEOUT") tally.timeoutRefunds += 1;
      }
      const charged = want.reduce((sum, item) => sum + item.charged, 0);
      if (Number(row.charged) !== charged)
        problems.push(`${where}: charged ${row.charged}, expected ${charged}`);
    }
    expect(problems).toEqual([]);
    expect(tally.maxReapLatenessMs).toBeLessThan(10_000);

    const totals = await db.query<{ available: bigint; held: bigint; charged: bigint }>(
      `SELECT a.available, a.held, coalesce((SELECT sum(g.charged) FROM generation g WHERE g.account_id = a.id), 0) AS charged
         FROM account a WHERE a.id = ANY($1::uuid[])`,
      [accounts.map(localIdOf)],
    );
    for (const row of totals) {
      expect(Number(row.held)).toBe(0);
      expect(Number(row.available)).toBe(CREDITS - Number(row.charged));
    }
    for (const accountId of accounts)
      expect((await auditLedger(db, localIdOf(accountId))).problems).toEqual([]);
    // The storm straddled the deadlines: some results won, some came too late.
    expect(tally.applied).toBeGreaterThan(0);
    expect(tally.finalized).toBeGreaterThan(0);
    console.log(
      `reaper race: ${GENERATIONS} generations on 2 reaping instances, results fired ${JITTER_BEFORE_MS} ms before to ` +
        `${JITTER_AFTER_MS} ms after the deadline; ${tally.applied} applied in time, ${tally.finalized} ALREADY_FINALIZED, ` +
        `${tally.duplicates} delivered twice at once, ${tally.timeoutRefunds} TIMEOUT refunds (one each), ` +
        `latest timeout ${tally.maxReapLatenessMs} ms after its deadline; divergences 0`,
    );
  }, 180_000);
});
