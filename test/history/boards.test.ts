import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAccount, grant } from "../support/fixtures.ts";
import { dataOf, startServer, type TestServer } from "../support/harness.ts";
import { readLedger, refund, reserve, settle } from "./helpers.ts";

/**
 * Boards: a canvas of generations whose cost is what the generations on it
 * now were charged. Adding and removing never touches money (SPEC §1.2).
 */

const CREATE_BOARD = `mutation($input: CreateBoardInput!) {
  createBoard(input: $input) {
    __typename
    ... on CreateBoardSuccess { board { id name cost generations { id } } }
    ... on InvalidInputError { field }
    ... on Error { code message }
  }
}`;

const BOARD_ITEM = (
  mutation: "addToBoard" | "removeFromBoard",
  success: string,
) => `mutation($input: BoardItemInput!) {
  ${mutation}(input: $input) {
    __typename
    ... on ${success} { board { id cost generations { id charged } } }
    ... on InvalidInputError { field }
    ... on Error { code message }
  }
}`;
const ADD = BOARD_ITEM("addToBoard", "AddToBoardSuccess");
const REMOVE = BOARD_ITEM("removeFromBoard", "RemoveFromBoardSuccess");

const BOARD = `query($id: ID!) {
  node(id: $id) { ... on Board { id name cost generations { id charged status board { id } } } }
}`;

const STATE = `query($id: ID!) {
  balance(accountId: $id) { available held sequence }
  spending(accountId: $id) { charged net generations }
  account(id: $id) { boards { id name cost } }
}`;

describe("boards", () => {
  let server: TestServer;
  let service: string;
  let owner: string;
  let ownerId: string;
  let accountId: string;

  beforeAll(async () => {
    server = await startServer();
    service = await server.token("platform", "service");
    const account = await createAccount(server, service);
    accountId = account.id;
    ownerId = account.ownerId;
    owner = await server.token(ownerId, "user");
    await grant(server, service, accountId, 500);
  });
  afterAll(() => server.close());

  const createBoard = async (token: string, name: string, forAccount = accountId) =>
    dataOf(await server.gql(token, CREATE_BOARD, { input: { accountId: forAccount, name } })).createBoard;
  const mutate = async (token: string, document: string, boardId: string, generationId: string) => {
    const data = dataOf(await server.gql(token, document, { input: { boardId, generationId } }));
    return data.addToBoard ?? data.removeFromBoard;
  };
  const state = async () => dataOf(await server.gql(owner, STATE, { id: accountId }));

  it("costs what its generations were charged, and removing one refunds nothing", async () => {
    const created = await createBoard(owner, "Launch video");
    expect(created).toMatchObject({
      __typename: "CreateBoardSuccess",
      board: { name: "Launch video", cost: 0 },
    });
    const boardId: string = created.board.id;

    // Reserved straight onto the board (boardId), or added by the user afterwards.
    const full = await reserve(server, service, accountId, { feature: "Quick Video", unitCost: 40, boardId });
    const cheap = await reserve(server, service, accountId, { feature: "Quick Video", unitCost: 40 });
    const batch = await reserve(server, service, accountId, { feature: "Image", unitCost: 10, quantity: 4 });
    const failed = await reserve(server, service, accountId, { feature: "Image", unitCost: 10 });
    for (const id of [cheap, batch, failed]) {
      expect((await mutate(owner, ADD, boardId, id)).__typename).toBe("AddToBoardSuccess");
    }
    // In progress, nothing is charged yet.
    expect(dataOf(await server.gql(owner, BOARD, { id: boardId })).node.cost).toBe(0);
    await settle(server, service, full);
    await settle(server, service, cheap, [{ index: 0, succeeded: true, cost: 25 }]);
    await settle(server, service, batch, [
      { index: 0, succeeded: true },
      { index: 1, succeeded: false, reason: "GENERATION_FAILED" },
      { index: 2, succeeded: true },
      { index: 3, succeeded: true },
    ]);
    await refund(server, service, failed, "PROVIDER_ERROR");

    const board = dataOf(await server.gql(owner, BOARD, { id: boardId })).node;
    expect(board.cost).toBe(40 + 25 + 30 + 0);
    expect(board.generations.map((g: { id: string }) => g.id)).toEqual([full, cheap, batch, failed]);
    expect(board.generations.every((g: { board: { id: string } }) => g.board.id === boardId)).toBe(true);

    const before = await state();
    const ledgerBefore = await readLedger(server, owner, accountId);
    const removed = await mutate(owner, REMOVE, boardId, cheap);
    expect(removed).toMatchObject({
      __typename: "RemoveFromBoardSuccess",
      board: { id: boardId, cost: 40 + 30 },
    });
    expect(removed.board.generations.map((g: { id: string }) => g.id)).toEqual([full, batch, failed]);

    // The seed's story: the board total is now lower than what was actually spent,
    // and neither the balance nor the ledger moved.
    const after = await state();
    expect(after.balance).toEqual(before.balance);
    expect(after.spending).toEqual(before.spending);
    expect(after.spending.charged).toBe(40 + 25 + 30);
    expect(after.account.boards).toEqual([{ id: boardId, name: "Launch video", cost: 70 }]);
    expect(after.account.boards[0].cost).toBeLessThan(after.spending.charged);
    expect(await readLedger(server, owner, accountId)).toEqual(ledgerBefore);

    // The removed generation is still in the history, charged, and no longer on a board.
    const generation = dataOf(
      await server.gql(owner, "query($id: ID!) { generation(id: $id) { charged status board { id } } }", {
        id: cheap,
      }),
    ).generation;
    expect(generation).toEqual({ charged: 25, status: "SUCCEEDED", board: null });

    // Removing again and adding back are harmless.
    expect((await mutate(owner, REMOVE, boardId, cheap)).board.cost).toBe(70);
    expect((await mutate(owner, ADD, boardId, cheap)).board.cost).toBe(95);
    expect((await mutate(owner, ADD, boardId, cheap)).board.cost).toBe(95);
    expect((await state()).balance).toEqual(before.balance);
  });

  it("counts a generation on two boards on each", async () => {
    const first = (await createBoard(owner, "First")).board.id;
    const second = (await createBoard(owner, "Second")).board.id;
    const id = await reserve(server, service, accountId, { unitCost: 9, boardId: first });
    await settle(server, service, id);
    await mutate(owner, ADD, second, id);
    const cost = async (boardId: string) => dataOf(await server.gql(owner, BOARD, { id: boardId })).node.cost;
    expect([await cost(first), await cost(second)]).toEqual([9, 9]);
    // Generation.board is the board it was first added to, while it is on it.
    const boardOf = async () =>
      dataOf(await server.gql(owner, "query($id: ID!) { generation(id: $id) { board { id } } }", { id }))
        .generation.board?.id ?? null;
    expect(await boardOf()).toBe(first);
    await mutate(owner, REMOVE, first, id);
    expect(await boardOf()).toBe(second);
    expect([await cost(first), await cost(second)]).toEqual([0, 9]);
  });

  it("rejects bad input as InvalidInputError values", async () => {
    expect(await createBoard(owner, "   ")).toMatchObject({ __typename: "InvalidInputError", field: "name" });
    expect(await createBoard(owner, "x".repeat(201))).toMatchObject({ __typename: "InvalidInputError" });
    expect(await createBoard(owner, "ok", "not-an-id")).toMatchObject({
      __typename: "InvalidInputError",
      field: "accountId",
    });
    const boardId = (await createBoard(owner, "Inputs")).board.id;
    expect(await mutate(owner, ADD, boardId, "nope")).toMatchObject({
      __typename: "InvalidInputError",
      field: "generationId",
    });
    expect(await mutate(owner, ADD, "nope", boardId)).toMatchObject({
      __typename: "InvalidInputError",
      field: "boardId",
    });
  });

  it("is visible and manageable only by the account's members", async () => {
    const boardId = (await createBoard(owner, "Private")).board.id;
    const mine = await reserve(server, service, accountId, { unitCost: 3 });
    const other = await createAccount(server, service);
    await grant(server, service, other.id, 10);
    const theirs = await reserve(server, service, other.id, { unitCost: 3 });
    const stranger = await server.token(other.ownerId, "user");

    expect(await createBoard(stranger, "Intruder")).toMatchObject({ __typename: "NotFoundError" });
    expect(await mutate(stranger, ADD, boardId, mine)).toMatchObject({ __typename: "NotFoundError" });
    expect(await mutate(stranger, REMOVE, boardId, mine)).toMatchObject({ __typename: "NotFoundError" });
    expect(dataOf(await server.gql(stranger, BOARD, { id: boardId })).node).toBeNull();
    // A generation of another account cannot be put on the board, even by a service.
    expect(await mutate(service, ADD, boardId, theirs)).toMatchObject({ __typename: "NotFoundError" });
    expect(await mutate(owner, ADD, boardId, theirs)).toMatchObject({ __typename: "NotFoundError" });
    // A workspace member may manage the account's boards.
    const workspace = await createAccount(server, service, { kind: "WORKSPACE" });
    await server.gql(
      service,
      `mutation($input: AddAccountMemberInput!) { addAccountMember(input: $input) { __typename } }`,
      { input: { accountId: workspace.id, userId: ownerId, role: "MEMBER" } },
    );
    expect(await createBoard(owner, "Team board", workspace.id)).toMatchObject({
      __typename: "CreateBoardSuccess",
    });
  });
});
