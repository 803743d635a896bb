import { loadBalance } from "../domain/balance.ts";
import { IdempotencyKeyReusedError } from "../domain/errors.ts";
import { BalanceRef } from "./balance.ts";
import { builder } from "./builder.ts";
import { IDEMPOTENCY_KEY, REPLAYED, resultDescription } from "./descriptions.ts";
import { AccountKindEnum, MemberRoleEnum } from "./enums.ts";
import { inputId, localId } from "./ids.ts";
import { requirePlatform, requireUnscoped, requireVisible, unwrap } from "./support.ts";
import { visibleAccount } from "./visibility.ts";

export const AccountMemberRef = builder.prismaObject("AccountMember", {
  description: "A user who belongs to an account, and their role in it.",
  fields: (t) => ({
    userId: t.exposeString("userId", { description: "The user's id: the `sub` of their tokens." }),
    role: t.expose("role", { type: MemberRoleEnum, description: "OWNER or MEMBER." }),
  }),
});

export const AccountRef = builder.prismaNode("Account", {
  description:
    "Holds credits: one person's (PERSONAL) or a team's (WORKSPACE). A user sees only the accounts they are a member of; service and admin tokens see all.",
  id: { field: "id", description: "The account's global id." },
  nullable: true,
  findUnique: (id, context) => ({ id, ...visibleAccount(context) }),
  fields: (t) => ({
    kind: t.expose("kind", {
      type: AccountKindEnum,
      description: "PERSONAL or WORKSPACE; fixed at creation.",
    }),
    name: t.exposeString("name", { description: "Display name, at most 200 characters." }),
    balance: t.field({
      type: BalanceRef,
      description: "The account's credits now.",
      resolve: async (account, _args, context) => {
        const balance = await loadBalance(context.db, account.id);
        if (balance === null) throw new Error(`account ${account.id} has no balance row`);
        return balance;
      },
    }),
    members: t.relation("members", {
      description: "Who belongs to the account, in the order they were added.",
      query: { orderBy: [{ createdAt: "asc" }, { userId: "asc" }] },
    }),
  }),
});

builder.queryField("account", (t) =>
  t.prismaField({
    type: AccountRef,
    nullable: true,
    description: "An account by id; null when it does not exist or the caller is not a member (users).",
    args: { id: t.arg.id({ required: true, description: "The account's global id." }) },
    resolve: async (query, _root, args, context) => {
      const id = localId(args.id, "Account");
      if (id === null || !(await context.access.canRead(id))) return null;
      return context.prisma.account.findUnique({ ...query, where: { id } });
    },
  }),
);

const CreateAccountInput = builder.inputType("CreateAccountInput", {
  description: "A new account and its first member, its OWNER.",
  fields: (t) => ({
    idempotencyKey: t.string({ required: true, description: IDEMPOTENCY_KEY }),
    kind: t.field({ type: AccountKindEnum, required: true, description: "PERSONAL or WORKSPACE." }),
    name: t.string({ required: true, description: "Display name: 1 to 200 characters." }),
    ownerId: t.string({
      required: true,
      description: "The user id (token `sub`) who becomes the account's OWNER: 1 to 200 characters.",
    }),
  }),
});

const AddAccountMemberInput = builder.inputType("AddAccountMemberInput", {
  description: "A member to add to an account, or whose role to change (an upsert).",
  fields: (t) => ({
    accountId: t.id({ required: true, description: "The account's global id." }),
    userId: t.string({ required: true, description: "The user id (token `sub`): 1 to 200 characters." }),
    role: t.field({
      type: MemberRoleEnum,
      required: true,
      description: "The role the member has from now on.",
    }),
  }),
});

/** A payload field that loads an account by id with the selection GraphQL asked for. */
const accountField = (t: PayloadFieldBuilder<{ accountId: string }>, description: string) =>
  t.prismaField({
    type: AccountRef,
    description,
    resolve: (query, parent, _args, context) =>
      context.prisma.account.findUniqueOrThrow({ ...query, where: { id: parent.accountId } }),
  });

type PayloadFieldBuilder<Parent> = PothosSchemaTypes.ObjectFieldBuilder<
  typeof builder extends PothosSchemaTypes.SchemaBuilder<infer T> ? T : never,
  Parent
>;

const CreateAccountSuccess = builder
  .objectRef<{ accountId: string; replayed: boolean }>("CreateAccountSuccess")
  .implement({
    description: "The account was created (or, replayed, had been by an earlier call with this key).",
    fields: (t) => ({
      account: accountField(t, "The account created."),
      replayed: t.exposeBoolean("replayed", { description: REPLAYED }),
    }),
  });

const AddAccountMemberSuccess = builder
  .objectRef<{ accountId: string }>("AddAccountMemberSuccess")
  .implement({
    description: "The member was added, or their role set.",
    fields: (t) => ({ account: accountField(t, "The account, with its members as they are now.") }),
  });

builder.mutationField("createAccount", (t) =>
  t.field({
    type: CreateAccountSuccess,
    description: "Creates an account with its owner (service, admin).",
    args: {
      input: t.arg({ type: CreateAccountInput, required: true, description: "The account to create." }),
    },
    errors: {
      types: [IdempotencyKeyReusedError],
      union: { name: "CreateAccountResult", description: resultDescription("createAccount") },
    },
    resolve: async (_root, { input }, context) => {
      requirePlatform(context, "createAccount");
      requireUnscoped(context, "createAccount");
      const { value, replayed } = unwrap(
        await context.ledger.createAccount(context.principal?.sub ?? "", input),
      );
      return { accountId: value.accountId, replayed };
    },
  }),
);

builder.mutationField("addAccountMember", (t) =>
  t.field({
    type: AddAccountMemberSuccess,
    description: "Adds a member to an account, or changes their role (service, admin).",
    args: {
      input: t.arg({
        type: AddAccountMemberInput,
        required: true,
        description: "The member and their role.",
      }),
    },
    errors: { union: { name: "AddAccountMemberResult", description: resultDescription("addAccountMember") } },
    resolve: async (_root, { input }, context) => {
      requirePlatform(context, "addAccountMember");
      const accountId = inputId("accountId", input.accountId, "Account");
      await requireVisible(context, accountId);
      const result = await context.ledger.addAccountMember({
        accountId,
        userId: input.userId,
        role: input.role,
      });
      if (!result.ok) throw result.error;
      return { accountId };
    },
  }),
);

const RemoveAccountMemberInput = builder.inputType("RemoveAccountMemberInput", {
  description: "A member to remove from an account.",
  fields: (t) => ({
    accountId: t.id({ required: true, description: "The account's global id." }),
    userId: t.string({ required: true, description: "The member's user id (token `sub`)." }),
  }),
});

const RemoveAccountMemberSuccess = builder
  .objectRef<{ accountId: string }>("RemoveAccountMemberSuccess")
  .implement({
    description:
      "The user is no member of the account (now, or already before): their tokens no longer see it, and their open subscriptions to it are closed on every instance within 1 s.",
    fields: (t) => ({ account: accountField(t, "The account, with its members as they are now.") }),
  });

builder.mutationField("removeAccountMember", (t) =>
  t.field({
    type: RemoveAccountMemberSuccess,
    description:
      "Removes a member from an account (service, admin); removing a user who is no member changes nothing, so a retry answers the same.",
    args: {
      input: t.arg({
        type: RemoveAccountMemberInput,
        required: true,
        description: "The account and the member.",
      }),
    },
    errors: {
      union: { name: "RemoveAccountMemberResult", description: resultDescription("removeAccountMember") },
    },
    resolve: async (_root, { input }, context) => {
      requirePlatform(context, "removeAccountMember");
      const accountId = inputId("accountId", input.accountId, "Account");
      await requireVisible(context, accountId);
      const result = await context.ledger.removeAccountMember({ accountId, userId: input.userId });
      if (!result.ok) throw result.error;
      context.revocations.announce({ kind: "member", accountId, userId: input.userId });
      return { accountId };
    },
  }),
);
