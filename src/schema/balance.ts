import { type BalanceSnapshot, loadBalance } from "../domain/balance.ts";
import { builder } from "./builder.ts";
import { globalId, localId } from "./ids.ts";

export const CreditExpiryRef = builder.objectRef<{ amount: bigint; at: Date }>("CreditExpiry").implement({
  fields: (t) => ({
    amount: t.expose("amount", { type: "Credits" }),
    at: t.expose("at", { type: "DateTime" }),
  }),
});

export const BalanceRef = builder.objectRef<BalanceSnapshot>("Balance").implement({
  description: "An account's credits at one moment. available = the sum of all its ledger entries.",
  fields: (t) => ({
    accountId: t.id({ resolve: (balance) => globalId("Account", balance.accountId) }),
    available: t.expose("available", { type: "Credits", description: "Credits that can be reserved now." }),
    held: t.expose("held", { type: "Credits", description: "Credits reserved by generations in progress." }),
    total: t.expose("total", { type: "Credits", description: "available + held" }),
    subscription: t.expose("subscription", {
      type: "Credits",
      description: "Available subscription credits.",
    }),
    wallet: t.expose("wallet", { type: "Credits", description: "Available wallet credits." }),
    nextExpiry: t.field({ type: CreditExpiryRef, nullable: true, resolve: (balance) => balance.nextExpiry }),
    sequence: t.exposeInt("sequence", { description: "Sequence of the account's latest ledger entry." }),
    updatedAt: t.expose("updatedAt", { type: "DateTime" }),
  }),
});

builder.queryField("balance", (t) =>
  t.field({
    type: BalanceRef,
    nullable: true,
    args: { accountId: t.arg.id({ required: true }) },
    resolve: async (_root, { accountId }, context) => {
      const id = localId(accountId, "Account");
      if (id === null || !(await context.access.canRead(id))) return null;
      return loadBalance(context.db, id);
    },
  }),
);
