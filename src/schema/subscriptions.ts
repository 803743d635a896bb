import { GraphQLError } from "graphql";
import { accountExists } from "../db/accounts.ts";
import type { BalanceLowEvent } from "../domain/alerts.ts";
import type { BalanceSnapshot } from "../domain/balance.ts";
import { BalanceLowEventRef } from "./alerts.ts";
import { BalanceRef } from "./balance.ts";
import { builder } from "./builder.ts";
import type { Context } from "./context.ts";
import { ACCOUNT_TO_FOLLOW } from "./descriptions.ts";
import { GenerationRef } from "./generation.ts";
import { localId } from "./ids.ts";
import { LedgerEntryRef } from "./ledger-entry.ts";
import { Channel } from "./live/channel.ts";
import {
  atExpiry,
  type ChangedGeneration,
  CLOSE_FORBIDDEN,
  CLOSE_TOO_SLOW,
  type LiveEntry,
} from "./live/realtime.ts";
import { replayPaged } from "./live/replay.ts";
import { createLoaders } from "./loaders.ts";

builder.subscriptionType({
  description:
    "Live events of one account, published after each commit, on every server instance: over WebSocket (`graphql-transport-ws`, token in `connectionParams.authorization`) or Server-Sent Events (token in the Authorization header). An account the caller may not see is a GraphQL error with code NOT_FOUND. A subscriber that falls too far behind is closed (WebSocket close code 1013, Try Again Later) and resumes with `ledgerEntryAdded(afterSequence:)`.",
  authScopes: { authenticated: true },
});

/** The account a subscription follows, after the same visibility rule as queries. */
async function followedAccount(context: Context, accountId: string): Promise<string> {
  // The type's authScopes are checked when an event resolves, not at subscribe: say it here, as queries do.
  if (context.principal === null) {
    throw new GraphQLError("Authentication required: send Authorization: Bearer <token>", {
      extensions: { code: "UNAUTHENTICATED" },
    });
  }
  const id = localId(accountId, "Account");
  if (id === null || !(await context.access.canRead(id))) {
    throw new GraphQLError("Account not found", { extensions: { code: "NOT_FOUND" } });
  }
  if (!(await accountExists(context.db, id)))
    throw new GraphQLError("Account not found", { extensions: { code: "NOT_FOUND" } });
  return id;
}

/**
 * The bounded queue of one subscriber, ended in two ways besides the client
 * leaving:
 * - too slow: the queue is full; over WebSocket the socket is closed with
 *   CLOSE_TOO_SLOW, its reason saying where to resume (`resumeAfter`);
 * - token expiry, over SSE: the stream ends with UNAUTHENTICATED (a WebSocket
 *   is closed with 4401 by the server itself at expiry);
 * - access revoked (an API key revoked, the member removed from the account):
 *   the WebSocket is closed with CLOSE_FORBIDDEN, an SSE stream ends with
 *   FORBIDDEN (see domain/revocations.ts).
 * `stop` is called once when the channel ends, whichever way.
 */
function subscriberChannel<T>(
  context: Context,
  accountId: string,
  resumeAfter: (channel: Channel<T>) => number,
): { channel: Channel<T>; onEnd: (stop: () => void) => void } {
  let stop = () => {};
  let cancelExpiry = () => {};
  let stopWatching = () => {};
  const channel: Channel<T> = new Channel<T>(
    context.realtime.subscriberQueueMax,
    () => {
      cancelExpiry();
      stopWatching();
      stop();
    },
    () => {
      const after = resumeAfter(channel);
      context.realtime.tooSlow(accountId, after);
      context.closeTransport?.(CLOSE_TOO_SLOW, `Too slow: resubscribe with afterSequence: ${after}`);
      return new GraphQLError(`Subscriber fell too far behind; resubscribe with afterSequence: ${after}`, {
        extensions: { code: "SLOW_CONSUMER", afterSequence: after },
      });
    },
  );
  const exp = context.principal?.exp ?? null;
  if (context.closeTransport === undefined && exp !== null) {
    cancelExpiry = atExpiry(exp, () =>
      channel.fail(new GraphQLError("Token expired", { extensions: { code: "UNAUTHENTICATED" } })),
    );
  }
  if (context.principal !== null) {
    stopWatching = context.revocations.watch(context.principal, accountId, (reason) => {
      // Closing the socket ends its subscriptions; over SSE the stream ends with the error.
      if (context.closeTransport !== undefined) context.closeTransport(CLOSE_FORBIDDEN, reason);
      else channel.fail(new GraphQLError(reason, { extensions: { code: "FORBIDDEN" } }));
    });
  }
  return {
    channel,
    onEnd: (stopListening) => {
      stop = stopListening;
      if (channel.closed) stopListening();
    },
  };
}

/**
 * A subscription's context lives as long as the subscription, but its
 * loaders cache what they read for the life of a request: each event gets
 * fresh ones, or a USAGE entry read at reserve would stay PENDING in every
 * later event of the same subscription.
 */
function freshLoaders(context: Context): void {
  Object.assign(context, { loaders: createLoaders(context.db) });
}

builder.subscriptionField("ledgerEntryAdded", (t) =>
  t.field({
    type: LedgerEntryRef,
    description:
      "Every new ledger entry of the account, in sequence order, each once. With afterSequence: n, entries after n are replayed from the ledger first, then live ones follow with no gap and no duplicate.",
    args: {
      accountId: t.arg.id({ required: true, description: ACCOUNT_TO_FOLLOW }),
      afterSequence: t.arg.int({
        description:
          "Replay the entries after this sequence first (0: all of them), then continue live. Omitted: live entries only. After a dropped connection pass the last sequence received.",
      }),
    },
    subscribe: async (_root, args, context) => {
      const accountId = await followedAccount(context, args.accountId);
      const afterSequence = args.afterSequence ?? null;
      if (afterSequence !== null && afterSequence < 0) {
        throw new GraphQLError(`afterSequence must be 0 or more, got ${afterSequence}`, {
          extensions: { code: "BAD_USER_INPUT" },
        });
      }
      // The sequence of the last entry handed to the channel; every later one is delivered exactly once.
      let delivered = 0;
      // Until the replay has caught up with the live feed, live entries are ignored: the replay reads them
      // from the ledger itself. That keeps memory bounded however long the replay takes.
      let live = afterSequence === null;
      // Where this subscription started; a subscriber closed before taking anything resumes from here.
      let startedAfter = afterSequence ?? 0;
      const { channel, onEnd } = subscriberChannel<LiveEntry>(
        context,
        accountId,
        (queue) => queue.lastConsumed?.sequence ?? startedAfter,
      );
      const listening = await context.realtime.listen(accountId, {
        entry: (entry) => {
          if (!live || entry.sequence <= delivered) return;
          delivered = entry.sequence;
          channel.push(entry);
        },
      });
      onEnd(listening.stop);
      if (afterSequence === null) {
        // Entries the feed emitted since it added the listener are already delivered (and after startAfter).
        delivered = Math.max(delivered, listening.startAfter);
        startedAfter = listening.startAfter;
        return channel;
      }
      delivered = afterSequence;
      // Paged, in turns shared by the instance's replays, and stopped when the channel ends (see replay.ts).
      replayPaged({
        db: context.db,
        gate: context.realtime.replays,
        accountId,
        after: afterSequence,
        channel,
        feed: listening.feed,
        goLive: (upTo) => {
          delivered = upTo;
          live = true;
        },
      }).catch((error: unknown) => channel.fail(error instanceof Error ? error : new Error(String(error))));
      return channel;
    },
    resolve: (entry, _args, context) => {
      freshLoaders(context);
      return entry as never;
    },
  }),
);

builder.subscriptionField("balanceChanged", (t) =>
  t.field({
    type: BalanceRef,
    description:
      "The account's balance after each change (a slow subscriber gets the newest one, never a stale one).",
    args: { accountId: t.arg.id({ required: true, description: ACCOUNT_TO_FOLLOW }) },
    subscribe: async (_root, args, context) => {
      const accountId = await followedAccount(context, args.accountId);
      // Only the newest balance waits (pushLatest), so this queue never overflows.
      const { channel, onEnd } = subscriberChannel<BalanceSnapshot>(context, accountId, () => 0);
      const listening = await context.realtime.listen(accountId, {
        balance: (balance) => channel.pushLatest(balance, () => true),
      });
      onEnd(listening.stop);
      return channel;
    },
    resolve: (balance) => balance,
  }),
);

builder.subscriptionField("generationUpdated", (t) =>
  t.prismaField({
    type: GenerationRef,
    description: "A generation of the account after each change (reserve, item outcome, refund, timeout).",
    args: {
      accountId: t.arg.id({ required: true, description: ACCOUNT_TO_FOLLOW }),
      generationId: t.arg.id({
        description: "Only this generation of the account (a global id); omitted: all of them.",
      }),
    },
    subscribe: async (_root, args, context) => {
      const accountId = await followedAccount(context, args.accountId);
      const only = args.generationId == null ? null : localId(args.generationId, "Generation");
      if (args.generationId != null && only === null) {
        throw new GraphQLError("generationId must be the id of a Generation", {
          extensions: { code: "BAD_USER_INPUT" },
        });
      }
      // One waiting update per generation (pushLatest): it overflows only with that many distinct generations.
      const { channel, onEnd } = subscriberChannel<ChangedGeneration>(context, accountId, () => 0);
      const listening = await context.realtime.listen(accountId, {
        generations: (refs) => {
          for (const ref of refs)
            if (only === null || ref.id === only) channel.pushLatest(ref, (queued) => queued.id === ref.id);
        },
      });
      onEnd(listening.stop);
      return channel;
    },
    resolve: (query, ref, _args, context) => {
      freshLoaders(context);
      return context.prisma.generation.findUniqueOrThrow({ ...query, where: { id: ref.id } });
    },
  }),
);

builder.subscriptionField("balanceLow", (t) =>
  t.field({
    type: BalanceLowEventRef,
    description:
      "Each time the account's `available` falls from at or above its alert threshold to below it (see `setBalanceAlert`), once per fall, on every instance. Live only: a fall while not subscribed is not replayed.",
    args: { accountId: t.arg.id({ required: true, description: ACCOUNT_TO_FOLLOW }) },
    subscribe: async (_root, args, context) => {
      const accountId = await followedAccount(context, args.accountId);
      const { channel, onEnd } = subscriberChannel<BalanceLowEvent>(context, accountId, () => 0);
      const listening = await context.realtime.listen(accountId, {
        balanceLow: (event) => channel.push(event),
      });
      onEnd(listening.stop);
      return channel;
    },
    resolve: (event) => event,
  }),
);
