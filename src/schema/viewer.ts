import { AccountRef } from "./account.ts";
import { builder } from "./builder.ts";

const ViewerRef = builder.objectRef<{ sub: string; role: string }>("Viewer").implement({
  fields: (t) => ({
    id: t.id({ description: "The token's subject.", resolve: (viewer) => viewer.sub }),
    role: t.exposeString("role"),
    accounts: t.prismaField({
      type: [AccountRef],
      description: "Accounts the viewer is a member of.",
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
    resolve: (_root, _args, context) => {
      if (context.principal === null) throw new Error("viewer is only reached with a principal (type scope)");
      return { sub: context.principal.sub, role: context.principal.role };
    },
  }),
);
