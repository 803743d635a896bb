import { auditLedger } from "../domain/audit.ts";
import { builder } from "./builder.ts";
import { localId } from "./ids.ts";

const AuditReportRef = builder
  .objectRef<{ ok: boolean; accountsChecked: number; problems: readonly string[] }>("AuditReport")
  .implement({
    description:
      "The outcome of checking the ledger's invariants: available = the sum of entries, every transaction balanced, grants and holds consistent, sequences gapless.",
    fields: (t) => ({
      ok: t.exposeBoolean("ok", { description: "True when no problem was found." }),
      accountsChecked: t.exposeInt("accountsChecked", { description: "How many accounts were checked." }),
      problems: t.exposeStringList("problems", {
        description:
          "One sentence per broken invariant, naming the account (at most 200, then a count of the rest); empty when ok.",
      }),
    }),
  });

builder.queryField("ledgerAudit", (t) =>
  t.field({
    type: AuditReportRef,
    description: "Checks the ledger's invariants for one account or all of them (admin).",
    authScopes: { admin: true },
    args: {
      accountId: t.arg.id({ description: "The account to check (a global id); omitted: every account." }),
    },
    resolve: async (_root, { accountId }, context) => {
      if (accountId == null) return auditLedger(context.db, null);
      const id = localId(accountId, "Account");
      if (id === null)
        return { ok: false, accountsChecked: 0, problems: [`${accountId} is not an Account id`] };
      return auditLedger(context.db, id);
    },
  }),
);
