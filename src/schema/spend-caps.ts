import { readSpendCaps, writeSpendCap } from "../db/spend-caps.ts";
import { ForbiddenError, InvalidInputError, NotFoundError } from "../domain/errors.ts";
import {
  CAP_PERIODS,
  type CapPeriod,
  capView,
  periodStart,
  SpendCapExceededError,
  type SpendCapView,
} from "../domain/spend-caps.ts";
import { validate } from "../domain/validate.ts";
import { builder } from "./builder.ts";
import type { Context } from "./context.ts";
import { resultDescription } from "./descriptions.ts";
import { ErrorInterface } from "./errors.ts";
import { inputId } from "./ids.ts";
import { requireVisible } from "./support.ts";

export const CapPeriodEnum = builder.enumType("CapPeriod", {
  description: "The period a spend cap counts over, in UTC.",
  values: {
    DAY: { description: "A UTC calendar day: resets at 00:00 UTC." },
    MONTH: { description: "A UTC calendar month: resets at 00:00 UTC on the 1st." },
  } as const,
});

export const SpendCapRef = builder.objectRef<SpendCapView>("SpendCap").implement({
  description:
    "The most credits one member's generations may take from the account in a period. spent counts what their generations of the period hold or were charged, less refunds and releases.",
  fields: (t) => ({
    memberId: t.exposeString("memberId", { description: "The member (a generation's requestedBy)." }),
    period: t.expose("period", { type: CapPeriodEnum, description: "DAY or MONTH (UTC)." }),
    amount: t.expose("amount", { type: "Credits", description: "The cap." }),
    spent: t.expose("spent", {
      type: "Credits",
      description:
        "Held plus charged this period by the member's generations started in it, less what came back.",
    }),
    remaining: t.expose("remaining", { type: "Credits", description: "max(0, amount − spent)." }),
    resetsAt: t.expose("resetsAt", { type: "DateTime", description: "When the next period starts." }),
  }),
});

builder.objectType(SpendCapExceededError, {
  name: "SpendCapExceededError",
  description:
    "The reserve would take the member past a spend cap on the account. Nothing was held; it can succeed after the cap resets or is raised.",
  interfaces: [ErrorInterface],
  fields: (t) => ({
    cap: t.field({
      type: SpendCapRef,
      description: "The cap it would pass, as it stood.",
      resolve: (e) => e.cap,
    }),
  }),
});

function periods(now: Date) {
  return { day: periodStart("DAY", now), month: periodStart("MONTH", now) };
}

builder.prismaObjectField("Account", "spendCaps", (t) =>
  t.field({
    type: [SpendCapRef],
    description: "The spend caps of the account's members, by member then period, with what each spent.",
    resolve: async (account, _args, context) => {
      const now = new Date();
      const caps = await readSpendCaps(context.db, account.id, null, periods(now));
      return caps.map((cap) => capView(cap, now));
    },
  }),
);

/** Spend caps are set by the platform or by an OWNER of the account. */
async function requireCapSetter(context: Context, accountId: string): Promise<void> {
  // Before the role check: an API key limited to one account sees no other (NotFound).
  await requireVisible(context, accountId);
  if (context.access.isPlatform) return;
  if ((await context.access.memberRole(accountId)) !== "OWNER") {
    throw new ForbiddenError("setSpendCap needs a service or admin token, or the account's OWNER");
  }
}

const SetSpendCapInput = builder.inputType("SetSpendCapInput", {
  description: "A member's cap on an account for one period.",
  fields: (t) => ({
    accountId: t.id({ required: true, description: "The account (a global id)." }),
    memberId: t.string({ required: true, description: "The member: the requestedBy of their generations." }),
    period: t.field({ type: CapPeriodEnum, required: true, description: "DAY or MONTH (UTC)." }),
    amount: t.field({ type: "Credits", description: "The cap, 0 or more; null removes the cap." }),
  }),
});

const SetSpendCapSuccess = builder.objectRef<{ cap: SpendCapView | null }>("SetSpendCapSuccess").implement({
  description: "The cap as it now stands.",
  fields: (t) => ({
    cap: t.field({
      type: SpendCapRef,
      nullable: true,
      description: "The cap; null once removed.",
      resolve: (s) => s.cap,
    }),
  }),
});

builder.mutationField("setSpendCap", (t) =>
  t.field({
    type: SetSpendCapSuccess,
    description:
      "Sets or removes (amount null) a member's spend cap on an account; reserves from then on respect it (service, admin, or the account's OWNER). Generations already held are not touched.",
    args: { input: t.arg({ type: SetSpendCapInput, required: true, description: "The cap." }) },
    errors: {
      types: [],
      union: { name: "SetSpendCapResult", description: resultDescription("setSpendCap") },
    },
    resolve: async (_root, { input }, context) => {
      const accountId = inputId("accountId", input.accountId, "Account");
      await requireCapSetter(context, accountId);
      const checked = validate((c) => ({
        memberId: c.requiredText("memberId", input.memberId),
        amount: input.amount == null ? null : c.nonNegativeCredits("amount", input.amount),
      }));
      if (checked instanceof InvalidInputError) throw checked;
      const period = input.period as CapPeriod;
      if (!CAP_PERIODS.includes(period)) throw new InvalidInputError("period", "must be DAY or MONTH");
      if (!(await writeSpendCap(context.db, { accountId, period, ...checked })))
        throw new NotFoundError("Account");
      if (checked.amount === null) return { cap: null };
      const now = new Date();
      const caps = await readSpendCaps(context.db, accountId, checked.memberId, periods(now));
      const cap = caps.find((c) => c.period === period);
      return { cap: cap === undefined ? null : capView(cap, now) };
    },
  }),
);
