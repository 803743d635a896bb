/**
 * B3 / B3b: graphql-ws subscribers on two server instances sharing Redis,
 * balance changes from a separate driver process, and a check that every
 * subscriber received every ledger entry exactly once.
 *
 * Latency is reported three ways (all on this machine's one clock):
 * - published → received (judged against the target): the time the bench's
 *   Redis tap saw the server publish the entry's event, which the server does
 *   right after COMMIT — commit → client, less the tap's own sub-millisecond
 *   delay;
 * - entry createdAt → received: createdAt is the time the server's
 *   transaction started (the executor's clock before BEGIN), so this also
 *   includes the transaction itself — an upper bound;
 * - mutation answered → received: from the driver receiving the HTTP
 *   response that made the entry (after commit, and after the response's own
 *   reads) — negative when the event beats the response.
 */
import { readFileSync } from "node:fs";
import type { ChangesConfig, ChangesResult } from "../load.ts";
import type { SubscribersConfig, SubscribersResult } from "../subscribers.ts";
import { ACCOUNT_CREDITS, type BenchContext, type PhaseRecorder, runLoad, UNIT_COST } from "./context.ts";
import { globalId, seedAccounts } from "./db.ts";
import { GraphQLHttpClient, mapLimit } from "./http.ts";
import { waitExit } from "./proc.ts";
import { RedisTap } from "./redis-tap.ts";
import { atMost, info, zero } from "./report.ts";
import { type ServerInstance, sampleRss, startServer } from "./server.ts";
import { round, summarize } from "./stats.ts";
import { PRIMER, type SubscriberProcess, spawnSubscribers, waitFor } from "./subscriber-procs.ts";

export interface RealtimeCase {
  readonly id: "B3" | "B3b";
  readonly prefix: string;
  readonly accounts: number;
  readonly subscribersPerAccount: number;
  readonly ratePerSecond: number;
  readonly durationMs: number;
  readonly p99TargetMs: number;
}

async function startPair(ctx: BenchContext, id: string): Promise<ServerInstance[]> {
  return Promise.all(
    ["a", "b"].map((suffix) =>
      startServer({
        name: `${id}-${suffix}`,
        databaseUrl: ctx.databaseUrl,
        secret: ctx.secret,
        redisUrl: ctx.redisUrl,
      }),
    ),
  );
}

export async function runRealtime(
  ctx: BenchContext,
  record: PhaseRecorder,
  spec: RealtimeCase,
): Promise<void> {
  const uuids = await seedAccounts(ctx.db, spec.prefix, spec.accounts, ACCOUNT_CREDITS, spec.id);
  const accounts = uuids.map((id) => globalId("Account", id));
  const afterSequence = 1; // seed-accounts.sql leaves every account at sequence 1 (its GRANT entry).
  const servers = await startPair(ctx, spec.id);
  const startRss = servers.map((instance) => instance.rssMb() ?? 0);
  const procs: SubscriberProcess[] = [];
  let tap: RedisTap | null = null;
  try {
    // Subscriber g = account i's j-th goes to instance g % 2: every account has subscribers on both.
    const assignments: SubscribersConfig["subscriptions"][number][][] = [[], []];
    const tokens = await Promise.all(accounts.map((_, i) => ctx.dashboardToken(i)));
    accounts.forEach((accountId, i) => {
      for (let j = 0; j < spec.subscribersPerAccount; j += 1) {
        assignments[(i * spec.subscribersPerAccount + j) % 2]?.push({
          accountId,
          accountIndex: i,
          afterSequence,
          token: tokens[i],
        });
      }
    });
    const total = accounts.length * spec.subscribersPerAccount;
    ctx.log(
      `  ${total} subscribers (${spec.subscribersPerAccount} per account on ${accounts.length} accounts) over 2 instances`,
    );
    servers.forEach((instance, k) => {
      procs.push(
        spawnSubscribers(ctx, `${spec.id}-subscribers-${k}`, {
          wsUrl: instance.wsUrl,
          token: ctx.serviceToken,
          subscriptions: assignments[k] ?? [],
          resultPath: `${ctx.workDir}/${spec.id}-subscribers-${k}.result.json`,
        }),
      );
    });
    const connectStarted = performance.now();
    await waitFor(
      procs,
      "every socket to connect and subscribe",
      (s) => s.subscribed + s.dead >= s.total,
      180_000,
    );
    const connectSeconds = (performance.now() - connectStarted) / 1000;

    // Primer: one reserve per account; when every subscriber has received it, every subscription is live.
    const client = new GraphQLHttpClient(servers[0]?.url ?? "", ctx.serviceToken, 16);
    const open: Record<number, string[]> = {};
    let primerFailures = 0;
    await mapLimit(accounts, 16, async (accountId, i) => {
      // A failed primer is retried (and counted): without it the account's subscribers never go live.
      for (let attempt = 1; ; attempt += 1) {
        const response = await client.execute<{
          reserveGeneration: { __typename: string; generation?: { id: string } };
        }>(PRIMER, {
          input: {
            idempotencyKey: `${ctx.runId}-${spec.id}-primer-${i}-${attempt}`,
            accountId,
            feature: "Bench",
            unitCost: UNIT_COST,
            quantity: 1,
          },
        });
        const id = response.data?.reserveGeneration.generation?.id;
        if (id !== undefined) {
          open[i] = [id];
          return;
        }
        primerFailures += 1;
        if (attempt >= 3) {
          throw new Error(
            `primer reserve failed 3 times: ${JSON.stringify(response)}\nserver log:\n${servers[0]?.output.slice(-10).join("\n")}`,
          );
        }
      }
    });
    client.close();
    // A subscription that died counts as lost events below; waiting for it would only hang the run.
    await waitFor(
      procs,
      "every subscriber to receive the primer entry",
      (s) => s.live + s.dead >= s.total,
      120_000,
    );
    const idleRss = servers.map((instance) => instance.rssMb() ?? 0);
    ctx.log(
      `  all live after ${round(connectSeconds)} s to connect; RSS ${idleRss.map((mb) => `${round(mb)} MB`).join(" / ")}; driving ${spec.ratePerSecond} changes/s for ${spec.durationMs / 1000} s`,
    );

    const liveTap = await RedisTap.open(ctx.redisUrl);
    tap = liveTap;
    const rss = sampleRss(servers);
    const driver: ChangesConfig = {
      mode: "changes",
      urls: servers.map((instance) => instance.url),
      token: ctx.serviceToken,
      accounts,
      open,
      ratePerSecond: spec.ratePerSecond,
      durationMs: spec.durationMs,
      unitCost: UNIT_COST,
      runId: `${ctx.runId}-${spec.id}`,
      resultPath: `${ctx.workDir}/${spec.id}-driver.result.json`,
    };
    const changes = await runLoad<ChangesResult>(ctx, `${spec.id}-driver`, driver, spec.durationMs + 120_000);

    // Everything the ledger holds after the primer is what every subscriber must get.
    const finals = await ctx.db.query<{ id: string; sequence: number }>(
      "SELECT id, sequence FROM account WHERE id = ANY($1::uuid[])",
      [uuids],
    );
    const finalByIndex = new Map(finals.map((row) => [uuids.indexOf(row.id), row.sequence]));
    let expectedDeliveries = 0;
    for (const list of assignments) {
      for (const sub of list)
        expectedDeliveries += (finalByIndex.get(sub.accountIndex) ?? 0) - sub.afterSequence;
    }
    const drainStarted = performance.now();
    try {
      await waitFor(
        procs,
        "the last events",
        () => procs.reduce((sum, proc) => sum + (proc.status?.received ?? 0), 0) >= expectedDeliveries,
        15_000,
      );
    } catch {
      // Reported below as lost events.
    }
    const drainMs = performance.now() - drainStarted;
    const maxRss = rss.stop();
    liveTap.close();
    for (const proc of procs) {
      if (proc.child.exitCode !== null || !proc.child.connected) {
        throw new Error(`a subscriber process ended early:\n${proc.output.slice(-10).join("\n")}`);
      }
      proc.child.send({ type: "finish" });
    }
    await Promise.all(procs.map((proc) => waitExit(proc.child, 60_000, "subscriber process")));
    const results = procs.map(
      (proc) => JSON.parse(readFileSync(proc.resultPath, "utf8")) as SubscribersResult,
    );

    // Exactly once, in order, per subscriber.
    let lost = 0;
    let duplicated = 0;
    let outOfOrder = 0;
    let unexpected = 0;
    let delivered = 0;
    const publishedLatency: number[] = [];
    const createdLatency: number[] = [];
    const answeredLatency: number[] = [];
    const answeredAt = new Map<string, number>();
    for (const change of changes.changes) answeredAt.set(`${change.a}:${change.seq}`, change.answeredMs);
    const primerSequence = afterSequence + 1;
    for (const result of results) {
      for (const rec of result.recordings) {
        const final = finalByIndex.get(rec.a) ?? 0;
        const seen = new Set<number>();
        rec.s.forEach((seq, i) => {
          delivered += 1;
          if (i > 0 && seq <= (rec.s[i - 1] ?? 0)) outOfOrder += 1;
          if (seq <= rec.afterSequence || seq > final) unexpected += 1;
          else if (seen.has(seq)) duplicated += 1;
          else seen.add(seq);
          if (seq > primerSequence) {
            const receivedMs = rec.r[i] ?? Number.NaN;
            createdLatency.push(receivedMs - (rec.c[i] ?? Number.NaN));
            const published = liveTap.publishedAt.get(`${uuids[rec.a]}:${seq}`);
            if (published !== undefined) publishedLatency.push(receivedMs - published);
            const answered = answeredAt.get(`${rec.a}:${seq}`);
            if (answered !== undefined) answeredLatency.push(receivedMs - answered);
          }
        });
        lost += Math.max(0, final - rec.afterSequence - seen.size);
      }
    }
    const publishedSummary = summarize(publishedLatency);
    const created = summarize(createdLatency);
    // Judge on publish → received when the tap saw (nearly) every event; else on the upper bound.
    const tapUsable = created.count > 0 && publishedSummary.count >= created.count * 0.99;
    const judged = tapUsable ? publishedSummary : created;
    const answered = summarize(answeredLatency);
    const subscriberErrors = results.reduce((sum, r) => sum + r.errors, 0);
    const closed = results.reduce((sum, r) => sum + r.closedUnexpectedly, 0);
    const deadSubscriptions = results.reduce((sum, r) => sum + r.dead, 0);
    const lag = summarize(changes.sendLagMs);
    const achievedRate = changes.changes.length / (spec.durationMs / 1000);
    ctx.log(
      `  ${changes.changes.length} changes (${round(achievedRate)}/s), ${delivered} deliveries; commit→client p50 ${round(judged.p50)} ms, p99 ${round(judged.p99)} ms; lost ${lost}, duplicated ${duplicated}`,
    );

    record.details.subscribers = total;
    record.details.connectSeconds = connectSeconds;
    record.details.changesScheduled = changes.scheduled;
    record.details.changesApplied = changes.changes.length;
    record.details.driverErrors = changes.errors;
    record.details.driverSendLagMs = lag;
    record.details.expectedDeliveries = expectedDeliveries;
    record.details.deliveries = delivered;
    record.details.drainMs = drainMs;
    record.details.latencyPublishedToReceivedMs = publishedSummary;
    record.details.redisTap = {
      messages: liveTap.messages,
      undecodable: liveTap.undecodable,
      entries: liveTap.publishedAt.size,
    };
    record.details.latencyCreatedToReceivedMs = created;
    record.details.latencyAnsweredToReceivedMs = answered;
    record.details.lost = lost;
    record.details.duplicated = duplicated;
    record.details.outOfOrder = outOfOrder;
    record.details.unexpected = unexpected;
    record.details.subscriberErrors = subscriberErrors;
    record.details.subscriberSamples = results.flatMap((r) => r.samples).slice(0, 10);
    record.details.closedUnexpectedly = closed;
    record.details.deadSubscriptions = deadSubscriptions;
    record.details.primerFailures = primerFailures;
    record.details.rssAtStartMb = startRss;
    record.details.rssIdleMb = idleRss;
    record.details.rssMaxMb = maxRss;

    const scope =
      spec.accounts === 1
        ? `${total} subscribers on ONE account, ${spec.ratePerSecond} changes/s (${total * spec.ratePerSecond} deliveries/s)`
        : `${total.toLocaleString("en-US")} subscribers, ${spec.ratePerSecond} changes/s`;
    record.figure(
      atMost(
        {
          id: `${spec.id}.p99`,
          label: `${spec.id} commit→client p99 (${scope})`,
          value: judged.p99,
          unit: "ms",
          target: `≤ ${spec.p99TargetMs} ms`,
          note: tapUsable
            ? "from the server's Redis publish (right after COMMIT) to the subscriber"
            : "Redis tap saw too few events: entry createdAt → received (an upper bound)",
        },
        spec.p99TargetMs,
      ),
    );
    record.figure(
      info({ id: `${spec.id}.p50`, label: `${spec.id} commit→client p50`, value: judged.p50, unit: "ms" }),
    );
    record.figure(
      info({
        id: `${spec.id}.createdP99`,
        label: `${spec.id} transaction start→client p99 (upper bound)`,
        value: created.p99,
        unit: "ms",
        note: `entry createdAt → received; p50 ${round(created.p50)} ms`,
      }),
    );
    record.figure(
      info({
        id: `${spec.id}.answeredP99`,
        label: `${spec.id} mutation answered→client p99`,
        value: answered.p99,
        unit: "ms",
        note: `p50 ${round(answered.p50)} ms (negative: the event beat the HTTP answer)`,
      }),
    );
    record.figure(zero({ id: `${spec.id}.lost`, label: `${spec.id} lost events`, value: lost, unit: "" }));
    record.figure(
      zero({
        id: `${spec.id}.duplicated`,
        label: `${spec.id} duplicated events`,
        value: duplicated,
        unit: "",
      }),
    );
    if (spec.id === "B3") {
      record.figure(
        info({
          id: "B3.rssMb",
          label: `B3 server RSS under load with ${total.toLocaleString("en-US")} subscribers (largest of the 2 instances)`,
          value: Math.max(...maxRss),
          unit: "MB",
          note: `instances ${maxRss.map((mb) => `${round(mb)} MB`).join(" / ")} (max during the run); ${idleRss.map((mb) => `${round(mb)} MB`).join(" / ")} idle with subscribers; ${startRss.map((mb) => `${round(mb)} MB`).join(" / ")} just started`,
        }),
      );
    }
    record.note(
      `Each subscriber is its own WebSocket (graphql-transport-ws) subscribed to ledgerEntryAdded(accountId, afterSequence: ${afterSequence}); half the subscribers of every account are on each instance, so events cross instances through Redis. ${total} sockets connected and subscribed in ${round(connectSeconds)} s; then one reserve per account (the primer, retried on failure: ${primerFailures} failed) proved every subscription live before the clock started.`,
    );
    record.note(
      `Changes: an open-loop driver (bench/load.ts) sent ${changes.changes.length} of ${changes.scheduled} scheduled changes (${round(achievedRate)}/s, alternating instances): a reserve, or the refund of a generation it reserved before on that account — each writes one ledger entry. Driver send lag p99 ${round(lag.p99)} ms; driver errors ${changes.errors.total}${changes.errors.total > 0 ? ` (${changes.errors.samples.slice(0, 2).join(" / ")})` : ""}.`,
    );
    record.note(
      `Deliveries: ${delivered} received of ${expectedDeliveries} expected (every sequence after ${afterSequence} up to the account's final sequence, per subscriber); lost ${lost}, duplicated ${duplicated}, out of order ${outOfOrder}, outside the expected range ${unexpected}; subscriber errors ${subscriberErrors}, subscriptions ended early ${deadSubscriptions}, unexpected closes ${closed}${
        subscriberErrors > 0
          ? ` (e.g. ${results
              .flatMap((r) => r.samples)
              .slice(0, 2)
              .join(" / ")})`
          : ""
      }. Waited ${round(drainMs)} ms after the driver's last answer for the tail.`,
    );
    record.note(
      `Latency over ${created.count} deliveries after the primer entry: Redis publish → received p50 ${round(publishedSummary.p50)} / p90 ${round(publishedSummary.p90)} / p99 ${round(publishedSummary.p99)} / max ${round(publishedSummary.max)} ms (${publishedSummary.count} matched to ${liveTap.messages} published events); createdAt → received p50 ${round(created.p50)} / p90 ${round(created.p90)} / p99 ${round(created.p99)} / max ${round(created.max)} ms; mutation answered → received p50 ${round(answered.p50)} / p99 ${round(answered.p99)} ms (${answered.count} matched).`,
    );
  } finally {
    tap?.close();
    for (const proc of procs) if (proc.child.exitCode === null) proc.child.kill("SIGKILL");
    await Promise.all(servers.map((instance) => instance.stop()));
  }
}
