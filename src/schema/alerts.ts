import {
  type BalanceAlertState,
  type BalanceLowEvent,
  clearBalanceAlert,
  setBalanceAlert,
} from "../domain/alerts.ts";
import { ForbiddenError, InvalidInputError } from "../domain/errors.ts";
import { validate } from "../domain/validate.ts";
import { AccountRef } from "./account.ts";
import { builder } from "./builder.ts";
import type { Context } from "./context.ts";
import { resultDescription } from "./descriptions.ts";
import { globalId, inputId } from "./ids.ts";
import { requireVisible, unwrap } from "./support.ts";

/**
 * Balance alerts (SPEC §8.5): an account's threshold, set and cleared by the
 * platform or the account's OWNER, and the `balanceLow` event it fires.
 */

export const BalanceAlertRef = builder
  .objectRef<{ threshold: bigint; triggered: boolean }>("BalanceAlert")
  .implement({
    description:
      "An account's low-balance alert. It fires once (a `balanceLow` event and a `balance.low` webhook) when `available` falls from at or above `threshold` to below it, and re-arms when `available` is back at or above it.",
    fields: (t) => ({
      threshold: t.expose("threshold", {
        type: "Credits",
        description: "The alert fires when `available` falls below this (0 or more credits).",
      }),
      triggered: t.exposeBoolean("triggered", {
        description:
          "Whether `available` is below the threshold now: true once the alert fired (or was set while already below), false while it is armed.",
      }),
    }),
  });

export const BalanceLowEventRef = builder.objectRef<BalanceLowEvent>("BalanceLowEvent").implement({
  description: "`available` fell below the account's alert threshold (sent once per fall, after commit).",
  fields: (t) => ({
    accountId: t.id({
      description: "The account's global id.",
      resolve: (event) => globalId("Account", event.accountId),
    }),
    threshold: t.expose("threshold", { type: "Credits", description: "The alert's threshold." }),
    available: t.expose("available", {
      type: "Credits",
      description: "Credits available right after the change that crossed the threshold.",
    }),
    at: t.expose("at", { type: "DateTime", description: "When that change was made." }),
  }),
});

builder.prismaObjectField("Account", "balanceAlert", (t) =>
  t.field({
    type: BalanceAlertRef,
    nullable: true,
    description: "The account's low-balance alert; null when none is set.",
    resolve: (account) =>
      account.alertThreshold === null
        ? null
        : { threshold: account.alertThreshold, triggered: account.alertTriggered },
  }),
);

const SetBalanceAlertInput = builder.inputType("SetBalanceAlertInput", {
  description: "The account and the threshold its alert fires below (replacing any alert it has).",
  fields: (t) => ({
    accountId: t.id({ required: true, description: "The account's global id." }),
    threshold: t.field({
      type: "Credits",
      required: true,
      description:
        "0 or more credits. Setting it sends nothing: if `available` is already below, `triggered` is true and the alert fires after `available` is back at or above the threshold and falls below it again.",
    }),
  }),
});

const ClearBalanceAlertInput = builder.inputType("ClearBalanceAlertInput", {
  description: "The account whose alert to remove.",
  fields: (t) => ({
    accountId: t.id({ required: true, description: "The account's global id." }),
  }),
});

const SetBalanceAlertSuccess = builder.objectRef<BalanceAlertState>("SetBalanceAlertSuccess").implement({
  description: "The alert is set, as `balanceAlert` shows.",
  fields: (t) => ({
    account: t.prismaField({
      type: AccountRef,
      description: "The account, with its alert as it is now.",
      resolve: (query, parent, _args, context) =>
        context.prisma.account.findUniqueOrThrow({ ...query, where: { id: parent.accountId } }),
    }),
    balanceAlert: t.field({
      type: BalanceAlertRef,
      description: "The alert as this call set it.",
      resolve: (parent) => ({ threshold: parent.threshold, triggered: parent.triggered }),
    }),
  }),
});

const ClearBalanceAlertSuccess = builder
  .objectRef<{ accountId: string }>("ClearBalanceAlertSuccess")
  .implement({
    description: "The account has no alert now (clearing one that was not set is a success too).",
    fields: (t) => ({
      account: t.prismaField({
        type: AccountRef,
        description: "The account, without an alert.",
        resolve: (query, parent, _args, context) =>
          context.prisma.account.findUniqueOrThrow({ ...query, where: { id: parent.accountId } }),
      }),
    }),
  });

/**
 * Service and admin tokens manage any account's alert; a user only the alert
 * of an account they are OWNER of (a MEMBER is forbidden, a stranger finds no account).
 */
async function requireAlertManager(context: Context, accountId: string, operation: string): Promise<void> {
  await requireVisible(context, accountId);
  if (context.access.isPlatform) return;
  if ((await context.access.memberRole(accountId)) !== "OWNER") {
    throw new ForbiddenError(`${operation} needs a service or admin token, or the account's OWNER`);
  }
}

builder.mutationField("setBalanceAlert", (t) =>
  t.field({
    type: SetBalanceAlertSuccess,
    description:
      "Sets the account's low-balance alert (service, admin, or the account's OWNER). It fires once when `available` falls from at or above the threshold to below it, and re-arms when it is back at or above.",
    args: {
      input: t.arg({ type: SetBalanceAlertInput, required: true, description: "The account and threshold." }),
    },
    errors: { union: { name: "SetBalanceAlertResult", description: resultDescription("setBalanceAlert") } },
    resolve: async (_root, { input }, context) => {
      const accountId = inputId("accountId", input.accountId, "Account");
      const threshold = validate((c) => c.nonNegativeCredits("threshold", input.threshold));
      if (threshold instanceof InvalidInputError) throw threshold;
      await requireAlertManager(context, accountId, "setBalanceAlert");
      return unwrap(
        await context.ledger.executor.run(
          setBalanceAlert(accountId, threshold, context.principal?.sub ?? ""),
        ),
      ).value;
    },
  }),
);

builder.mutationField("clearBalanceAlert", (t) =>
  t.field({
    type: ClearBalanceAlertSuccess,
    description:
      "Removes the account's low-balance alert (service, admin, or the account's OWNER); nothing fires until one is set again.",
    args: {
      input: t.arg({ type: ClearBalanceAlertInput, required: true, description: "The account." }),
    },
    errors: {
      union: { name: "ClearBalanceAlertResult", description: resultDescription("clearBalanceAlert") },
    },
    resolve: async (_root, { input }, context) => {
      const accountId = inputId("accountId", input.accountId, "Account");
      await requireAlertManager(context, accountId, "clearBalanceAlert");
      return unwrap(
        await context.ledger.executor.run(clearBalanceAlert(accountId, context.principal?.sub ?? "")),
      ).value;
    },
  }),
);
