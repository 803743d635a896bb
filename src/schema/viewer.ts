import { AccountRef } from "./account.ts";
import { builder } from "./builder.ts";

const ViewerRef = builder.objectRef<{ sub: string; role: string }>("Viewer").implement({
  description: "Whoever the request's token names.",
  fields: (t) => ({
    id: t.id({ description: "The token's subject.", resolve: (viewer) => viewer.sub }),
    role: t.exposeString("role", { description: "The token's role: `user`, `service` or `admin`." }),
    accounts: t.prismaField({
      type: [AccountRef],
      description:
        "Accounts the viewer is a member of, oldest first (empty for service and admin tokens, which have no memberships).",
      resolve: (query, viewer, _args, context) =>
        context.prisma.account.findMany({
          ...query,
          where: { members: { some: { userId: viewer.sub } } },
          orderBy: [{ createdAt: "asc" }, { id: "asc" }],
        }),
    }),
  }),
});

builder.queryField("viewer", (t) =>
  t.field({
    type: ViewerRef,
    description: "The caller: the token's subject and role, and the accounts they belong to.",
    resolve: (_root, _args, context) => {
      if (context.principal === null) throw new Error("viewer is only reached with a principal (type scope)");
      return { sub: context.principal.sub, role: context.principal.role };
    },
  }),
);
