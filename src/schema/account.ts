import { loadBalance } from "../domain/balance.ts";
import { IdempotencyKeyReusedError } from "../domain/errors.ts";
import { BalanceRef } from "./balance.ts";
import { builder } from "./builder.ts";
import { AccountKindEnum, MemberRoleEnum } from "./enums.ts";
import { inputId, localId } from "./ids.ts";
import { requirePlatform, requireVisible, unwrap } from "./support.ts";
import { visibleAccount } from "./visibility.ts";

export const AccountMemberRef = builder.prismaObject("AccountMember", {
  fields: (t) => ({
    userId: t.exposeString("userId"),
    role: t.expose("role", { type: MemberRoleEnum }),
  }),
});

export const AccountRef = builder.prismaNode("Account", {
  id: { field: "id" },
  nullable: true,
  findUnique: (id, context) => ({ id, ...visibleAccount(context) }),
  fields: (t) => ({
    kind: t.expose("kind", { type: AccountKindEnum }),
    name: t.exposeString("name"),
    balance: t.field({
      type: BalanceRef,
      resolve: async (account, _args, context) => {
        const balance = await loadBalance(context.db, account.id);
        if (balance === null) throw new Error(`account ${account.id} has no balance row`);
        return balance;
      },
    }),
    members: t.relation("members", { query: { orderBy: [{ createdAt: "asc" }, { userId: "asc" }] } }),
  }),
});

builder.queryField("account", (t) =>
  t.prismaField({
    type: AccountRef,
    nullable: true,
    args: { id: t.arg.id({ required: true }) },
    resolve: async (query, _root, args, context) => {
      const id = localId(args.id, "Account");
      if (id === null || !(await context.access.canRead(id))) return null;
      return context.prisma.account.findUnique({ ...query, where: { id } });
    },
  }),
);

const CreateAccountInput = builder.inputType("CreateAccountInput", {
  fields: (t) => ({
    idempotencyKey: t.string({ required: true }),
    kind: t.field({ type: AccountKindEnum, required: true }),
    name: t.string({ required: true }),
    ownerId: t.string({ required: true }),
  }),
});

const AddAccountMemberInput = builder.inputType("AddAccountMemberInput", {
  fields: (t) => ({
    accountId: t.id({ required: true }),
    userId: t.string({ required: true }),
    role: t.field({ type: MemberRoleEnum, required: true }),
  }),
});

/** A payload field that loads an account by id with the selection GraphQL asked for. */
const accountField = (t: PayloadFieldBuilder<{ accountId: string }>) =>
  t.prismaField({
    type: AccountRef,
    resolve: (query, parent, _args, context) =>
      context.prisma.account.findUniqueOrThrow({ ...query, where: { id: parent.accountId } }),
  });

type PayloadFieldBuilder<Parent> = PothosSchemaTypes.ObjectFieldBuilder<
  typeof builder extends PothosSchemaTypes.SchemaBuilder<infer T> ? T : never,
  Parent
>;

const CreateAccountSuccess = builder
  .objectRef<{ accountId: string; replayed: boolean }>("CreateAccountSuccess")
  .implement({ fields: (t) => ({ account: accountField(t), replayed: t.exposeBoolean("replayed") }) });

const AddAccountMemberSuccess = builder
  .objectRef<{ accountId: string }>("AddAccountMemberSuccess")
  .implement({ fields: (t) => ({ account: accountField(t) }) });

builder.mutationField("createAccount", (t) =>
  t.field({
    type: CreateAccountSuccess,
    args: { input: t.arg({ type: CreateAccountInput, required: true }) },
    errors: { types: [IdempotencyKeyReusedError], union: { name: "CreateAccountResult" } },
    resolve: async (_root, { input }, context) => {
      requirePlatform(context, "createAccount");
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
    args: { input: t.arg({ type: AddAccountMemberInput, required: true }) },
    errors: { union: { name: "AddAccountMemberResult" } },
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
