import { randomUUID } from "node:crypto";
import { NotFoundError } from "../domain/errors.ts";
import { validate } from "../domain/validate.ts";
import { builder } from "./builder.ts";
import type { Context } from "./context.ts";
import { resultDescription } from "./descriptions.ts";
import { GenerationRef } from "./generation.ts";
import { inputId } from "./ids.ts";
import { requireVisible } from "./support.ts";
import { onVisibleAccount } from "./visibility.ts";

/**
 * Boards are a user's canvas: adding or removing a generation never touches
 * the ledger (SPEC §1.2). `cost` is what the generations on it now were charged.
 */
export const BoardRef = builder.prismaNode("Board", {
  description:
    "A user's canvas of an account's generations. Adding or removing a generation never changes a balance: deleting delivered output refunds nothing.",
  id: { field: "id", description: "The board's global id." },
  nullable: true,
  findUnique: (id, context) => ({ id, ...onVisibleAccount(context) }),
  fields: (t) => ({
    name: t.exposeString("name", { description: "Display name, 1 to 200 characters." }),
    cost: t.field({
      type: "Credits",
      description:
        "Charged cost of the generations on this board now; removing one lowers it, and refunds nothing.",
      resolve: async (board, _args, context) => {
        const [row] = await context.db.query<{ cost: bigint }>(
          `SELECT coalesce(sum(g.charged), 0)::bigint AS cost
             FROM board_item b JOIN generation g ON g.id = b.generation_id WHERE b.board_id = $1`,
          [board.id],
        );
        return row?.cost ?? 0n;
      },
    }),
    generations: t.field({
      type: [GenerationRef],
      description: "The generations on the board, in the order they were added.",
      // Planned into the board's own query with what the client selects on
      // each generation, so a board of n generations is not n+1 queries.
      select: (_args, _context, nestedSelection) => ({
        items: {
          orderBy: [{ addedAt: "asc" }, { generationId: "asc" }],
          select: { generation: nestedSelection(true) },
        },
      }),
      resolve: (board) => board.items.map((item) => item.generation),
    }),
  }),
});

builder.prismaObjectField("Account", "boards", (t) =>
  t.relation("boards", {
    description: "The account's boards, oldest first.",
    query: { orderBy: [{ createdAt: "asc" }, { id: "asc" }] },
  }),
);

builder.prismaObjectField("Generation", "board", (t) =>
  t.field({
    type: BoardRef,
    nullable: true,
    description: "The board the generation was first added to, while it is still on it.",
    // Planned into the generation's query (one query for a page of generations, not one each).
    select: (_args, _context, nestedSelection) => ({
      boardItems: {
        orderBy: [{ addedAt: "asc" }, { boardId: "asc" }],
        take: 1,
        select: { board: nestedSelection(true) },
      },
    }),
    resolve: (generation) => generation.boardItems[0]?.board ?? null,
  }),
);

const CreateBoardInput = builder.inputType("CreateBoardInput", {
  description: "A new, empty board on an account.",
  fields: (t) => ({
    accountId: t.id({ required: true, description: "The account's global id." }),
    name: t.string({ required: true, description: "Display name, 1 to 200 characters." }),
  }),
});
const BoardItemInput = builder.inputType("BoardItemInput", {
  description: "A board and a generation of the same account.",
  fields: (t) => ({
    boardId: t.id({ required: true, description: "The board's global id." }),
    generationId: t.id({ required: true, description: "The generation's global id." }),
  }),
});

const boardPayload = (name: string) =>
  builder.objectRef<{ boardId: string }>(name).implement({
    description: "The board as the change left it.",
    fields: (t) => ({
      board: t.prismaField({
        type: BoardRef,
        description: "The board, with its generations and cost as they are now.",
        resolve: (query, parent, _args, context) =>
          context.prisma.board.findUniqueOrThrow({ ...query, where: { id: parent.boardId } }),
      }),
    }),
  });

/** Loads a board and a generation the caller may manage, on the same account. */
async function boardAndGeneration(context: Context, input: { boardId: string; generationId: string }) {
  const boardId = inputId("boardId", input.boardId, "Board");
  const generationId = inputId("generationId", input.generationId, "Generation");
  const board = await context.prisma.board.findUnique({ where: { id: boardId } });
  if (board === null || !(await context.access.canRead(board.accountId))) throw new NotFoundError("Board");
  const generation = await context.prisma.generation.findUnique({ where: { id: generationId } });
  if (generation === null || generation.accountId !== board.accountId) throw new NotFoundError("Generation");
  return { boardId, generationId, accountId: board.accountId };
}

builder.mutationField("createBoard", (t) =>
  t.field({
    type: boardPayload("CreateBoardSuccess"),
    description:
      "Creates an empty board on an account the caller can see (any role; users on their own accounts).",
    args: { input: t.arg({ type: CreateBoardInput, required: true, description: "The board to create." }) },
    errors: { union: { name: "CreateBoardResult", description: resultDescription("createBoard") } },
    resolve: async (_root, { input }, context) => {
      const accountId = inputId("accountId", input.accountId, "Account");
      const name = validate((c) => c.requiredText("name", input.name));
      if (name instanceof Error) throw name;
      await requireVisible(context, accountId);
      const exists = await context.prisma.account.findUnique({
        where: { id: accountId },
        select: { id: true },
      });
      if (exists === null) throw new NotFoundError("Account");
      const board = await context.prisma.board.create({
        data: { id: randomUUID(), accountId, name, createdBy: context.principal?.sub ?? null },
      });
      return { boardId: board.id };
    },
  }),
);

builder.mutationField("addToBoard", (t) =>
  t.field({
    type: boardPayload("AddToBoardSuccess"),
    description:
      "Puts a generation on a board of the same account; already there is a no-op. No balance changes.",
    args: {
      input: t.arg({ type: BoardItemInput, required: true, description: "The board and the generation." }),
    },
    errors: { union: { name: "AddToBoardResult", description: resultDescription("addToBoard") } },
    resolve: async (_root, { input }, context) => {
      const item = await boardAndGeneration(context, input);
      await context.db.query(
        `INSERT INTO board_item (board_id, generation_id, account_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
        [item.boardId, item.generationId, item.accountId],
      );
      return { boardId: item.boardId };
    },
  }),
);

builder.mutationField("removeFromBoard", (t) =>
  t.field({
    type: boardPayload("RemoveFromBoardSuccess"),
    description:
      "Takes a generation off a board; not there is a no-op. Refunds nothing: what was delivered stays charged.",
    args: {
      input: t.arg({ type: BoardItemInput, required: true, description: "The board and the generation." }),
    },
    errors: { union: { name: "RemoveFromBoardResult", description: resultDescription("removeFromBoard") } },
    resolve: async (_root, { input }, context) => {
      const item = await boardAndGeneration(context, input);
      await context.db.query("DELETE FROM board_item WHERE board_id = $1 AND generation_id = $2", [
        item.boardId,
        item.generationId,
      ]);
      return { boardId: item.boardId };
    },
  }),
);
