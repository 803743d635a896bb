import { GraphQLError } from "graphql";
import type { BalanceSnapshot } from "../domain/balance.ts";
import { Channel } from "../server/channel.ts";
import {
  CLOSE_TOO_SLOW,
  type LiveEntry,
  REPLAY_PAGE_SIZE,
  readEntries,
  SUBSCRIBER_QUEUE_MAX,
} from "../server/realtime.ts";
import { BalanceRef } from "./balance.ts";
import { builder } from "./builder.ts";
import type { Context } from "./context.ts";
import { GenerationRef } from "./generation.ts";
import { localId } from "./ids.ts";
import { LedgerEntryRef } from "./ledger-entry.ts";

builder.subscriptionType({ authScopes: { authenticated: true } });

/** The account a subscription follows, after the same visibility rule as queries. */
async function followedAccount(context: Context, accountId: string): Promise<string> {
  const id = localId(accountId, "Account");
  if (id === null || !(await context.access.canRead(id))) {
    throw new GraphQLError("Account not found", { extensions: { code: "NOT_FOUND" } });
  }
  const exists = await context.db.query("SELECT 1 FROM account WHERE id = $1", [id]);
  if (exists.length === 0) throw new GraphQLError("Account not found", { extensions: { code: "NOT_FOUND" } });
  return id;
}

/** The error a too-slow subscriber ends with; over WebSocket its socket is also closed with CLOSE_TOO_SLOW. */
function tooSlow(context: Context, resumeAfter: () => number): () => Error {
  return () => {
    const after = resumeAfter();
    context.closeTransport?.(CLOSE_TOO_SLOW, `Too slow: resubscribe with afterSequence: ${after}`);
    return new GraphQLError(`Subscriber fell too far behind; resubscribe with afterSequence: ${after}`, {
      extensions: { code: "SLOW_CONSUMER", afterSequence: after },
    });
  };
}

builder.subscriptionField("ledgerEntryAdded", (t) =>
  t.field({
    type: LedgerEntryRef,
    description:
      "Every new ledger entry of the account, in sequence order, each once. With afterSequence: n, entries after n are replayed from the ledger first, then live ones follow with no gap and no duplicate.",
    args: { accountId: t.arg.id({ required: true }), afterSequence: t.arg.int() },
    subscribe: async (_root, args, context) => {
      const accountId = await followedAccount(context, args.accountId);
      if (args.afterSequence != null && args.afterSequence < 0) {
        throw new GraphQLError(`afterSequence must be 0 or more, got ${args.afterSequence}`, {
          extensions: { code: "BAD_USER_INPUT" },
        });
      }
      let delivered = 0;
      let stop = () => {};
      const channel = new Channel<LiveEntry>(
        SUBSCRIBER_QUEUE_MAX,
        () => stop(),
        tooSlow(context, () => delivered),
      );
      // Live entries wait here while the replay runs; the seam drops what the replay already sent.
      let buffered: LiveEntry[] | null = [];
      const deliver = (entry: LiveEntry) => {
        if (entry.sequence <= delivered) return;
        delivered = entry.sequence;
        channel.push(entry);
      };
      const listening = await context.realtime.listen(accountId, {
        entry: (entry) => (buffered === null ? deliver(entry) : buffered.push(entry)),
      });
      stop = listening.stop;
      delivered = args.afterSequence ?? listening.startAfter;
      if (args.afterSequence != null) {
        void (async () => {
          try {
            for (;;) {
              const page = await readEntries(
                context.db,
                accountId,
                delivered,
                Number.MAX_SAFE_INTEGER,
                REPLAY_PAGE_SIZE,
              );
              for (const entry of page) {
                delivered = entry.sequence;
                await channel.pushWhenRoom(entry);
              }
              if (page.length < REPLAY_PAGE_SIZE || channel.closed) break;
            }
            const live = buffered ?? [];
            buffered = null;
            for (const entry of live) deliver(entry);
          } catch (error) {
            channel.fail(error instanceof Error ? error : new Error(String(error)));
          }
        })();
      } else {
        buffered = null;
      }
      return channel;
    },
    resolve: (entry) => entry as never,
  }),
);

builder.subscriptionField("balanceChanged", (t) =>
  t.field({
    type: BalanceRef,
    description:
      "The account's balance after each change (a slow subscriber gets the newest one, never a stale one).",
    args: { accountId: t.arg.id({ required: true }) },
    subscribe: async (_root, args, context) => {
      const accountId = await followedAccount(context, args.accountId);
      let stop = () => {};
      const channel = new Channel<BalanceSnapshot>(
        SUBSCRIBER_QUEUE_MAX,
        () => stop(),
        tooSlow(context, () => 0),
      );
      const listening = await context.realtime.listen(accountId, {
        balance: (balance) => channel.pushLatest(balance, () => true),
      });
      stop = listening.stop;
      return channel;
    },
    resolve: (balance) => balance,
  }),
);

builder.subscriptionField("generationUpdated", (t) =>
  t.prismaField({
    type: GenerationRef,
    description: "A generation of the account after each change (reserve, item outcome, refund, timeout).",
    args: { accountId: t.arg.id({ required: true }), generationId: t.arg.id() },
    subscribe: async (_root, args, context) => {
      const accountId = await followedAccount(context, args.accountId);
      const only = args.generationId == null ? null : localId(args.generationId, "Generation");
      if (args.generationId != null && only === null) {
        throw new GraphQLError("generationId must be the id of a Generation", {
          extensions: { code: "BAD_USER_INPUT" },
        });
      }
      let stop = () => {};
      const channel = new Channel<string>(
        SUBSCRIBER_QUEUE_MAX,
        () => stop(),
        tooSlow(context, () => 0),
      );
      const listening = await context.realtime.listen(accountId, {
        generations: (ids) => {
          for (const id of ids)
            if (only === null || id === only) channel.pushLatest(id, (queued) => queued === id);
        },
      });
      stop = listening.stop;
      return channel;
    },
    resolve: (query, generationId, _args, context) =>
      context.prisma.generation.findUniqueOrThrow({ ...query, where: { id: generationId } }),
  }),
);
