import { auditLedger } from "../domain/audit.ts";
import { builder } from "./builder.ts";
import { localId } from "./ids.ts";

const AuditReportRef = builder
  .objectRef<{ ok: boolean; accountsChecked: number; problems: readonly string[] }>("AuditReport")
  .implement({
    fields: (t) => ({
      ok: t.exposeBoolean("ok"),
      accountsChecked: t.exposeInt("accountsChecked"),
      problems: t.exposeStringList("problems"),
    }),
  });

builder.queryField("ledgerAudit", (t) =>
  t.field({
    type: AuditReportRef,
    description: "Checks the ledger's invariants for one account or all of them (admin).",
    authScopes: { admin: true },
    args: { accountId: t.arg.id() },
    resolve: async (_root, { accountId }, context) => {
      if (accountId == null) return auditLedger(context.db, null);
      const id = localId(accountId, "Account");
      if (id === null)
        return { ok: false, accountsChecked: 0, problems: [`${accountId} is not an Account id`] };
      return auditLedger(context.db, id);
    },
  }),
);
