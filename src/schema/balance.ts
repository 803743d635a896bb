import { type BalanceSnapshot, loadBalance } from "../domain/balance.ts";
import { builder } from "./builder.ts";
import { globalId, localId } from "./ids.ts";

export const CreditExpiryRef = builder.objectRef<{ amount: bigint; at: Date }>("CreditExpiry").implement({
  description: "The next credits due to expire: the unheld remainder of the grants that expire soonest.",
  fields: (t) => ({
    amount: t.expose("amount", {
      type: "Credits",
      description:
        "Credits that expire at `at` unless spent first (the remainder of every grant expiring then).",
    }),
    at: t.expose("at", {
      type: "DateTime",
      description: "When they expire; the reaper writes them off within 5 seconds after, as an EXPIRY entry.",
    }),
  }),
});

export const BalanceRef = builder.objectRef<BalanceSnapshot>("Balance").implement({
  description: "An account's credits at one moment. available = the sum of all its ledger entries.",
  fields: (t) => ({
    accountId: t.id({
      description: "The account's global id.",
      resolve: (balance) => globalId("Account", balance.accountId),
    }),
    available: t.expose("available", {
      type: "Credits",
      description:
        "Credits that can be reserved now: the sum of the account's ledger entry amounts, never below 0.",
    }),
    held: t.expose("held", {
      type: "Credits",
      description: "Credits reserved by generations in progress: charged or given back when their items end.",
    }),
    total: t.expose("total", { type: "Credits", description: "available + held." }),
    subscription: t.expose("subscription", {
      type: "Credits",
      description: "The part of `available` in SUBSCRIPTION grants (spent first).",
    }),
    wallet: t.expose("wallet", { type: "Credits", description: "The part of `available` in WALLET grants." }),
    nextExpiry: t.field({
      type: CreditExpiryRef,
      nullable: true,
      description: "The next credits due to expire; null when no grant with credits left has an expiry.",
      resolve: (balance) => balance.nextExpiry,
    }),
    sequence: t.exposeInt("sequence", {
      description:
        "Sequence of the account's latest ledger entry (0 before the first): resume `ledgerEntryAdded` with `afterSequence` from here.",
    }),
    updatedAt: t.expose("updatedAt", { type: "DateTime", description: "When the balance last changed." }),
  }),
});

builder.queryField("balance", (t) =>
  t.field({
    type: BalanceRef,
    nullable: true,
    description: "An account's balance; null when it does not exist or the caller is not a member (users).",
    args: { accountId: t.arg.id({ required: true, description: "The account's global id." }) },
    resolve: async (_root, { accountId }, context) => {
      const id = localId(accountId, "Account");
      if (id === null || !(await context.access.canRead(id))) return null;
      return loadBalance(context.db, id);
    },
  }),
);
