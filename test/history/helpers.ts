import { expect } from "vitest";
import {
  LedgerPageDocument,
  RefundGenerationDocument,
  type RefundReason,
  ReserveGenerationDocument,
  SettleGenerationDocument,
  SupportRefundDocument,
} from "../../src/generated/graphql/graphql.ts";
import { expectTypename, gqlData, gqlDoc, sourceOf } from "../support/documents.ts";
import { dataOf, type GraphQLResponse, type TestServer, unique } from "../support/harness.ts";

/** Helpers of the history tests: money moved through the real API, pages read to the end. */

export interface ReserveOptions {
  readonly feature?: string;
  readonly unitCost?: number;
  readonly quantity?: number;
  readonly boardId?: string;
}

/** Reserves a generation through the API; returns its global id. */
export async function reserve(
  server: TestServer,
  service: string,
  accountId: string,
  options: ReserveOptions = {},
): Promise<string> {
  const data = await gqlData(server, service, ReserveGenerationDocument, {
    input: {
      idempotencyKey: unique("reserve"),
      accountId,
      feature: options.feature ?? "Quick Video",
      unitCost: options.unitCost ?? 10,
      quantity: options.quantity ?? 1,
      boardId: options.boardId,
    },
  });
  return expectTypename(data.reserveGeneration, "ReserveGenerationSuccess").generation.id;
}

/** One item outcome of a settle (index from 0). */
export interface ItemOutcome {
  readonly index: number;
  readonly succeeded: boolean;
  readonly cost?: number;
  readonly reason?: RefundReason;
  readonly message?: string;
}

/** Settles a generation; `items` omitted means every item succeeded at its reserved cost. */
export async function settle(
  server: TestServer,
  service: string,
  generationId: string,
  items?: readonly ItemOutcome[],
): Promise<string> {
  const data = await gqlData(server, service, SettleGenerationDocument, {
    input: {
      idempotencyKey: unique("settle"),
      generationId,
      items: items === undefined ? undefined : [...items],
    },
  });
  return expectTypename(data.settleGeneration, "SettleGenerationSuccess").generation.status;
}

/** Refunds every unfinished item of a generation. */
export async function refund(
  server: TestServer,
  service: string,
  generationId: string,
  reason: RefundReason = "PROVIDER_ERROR",
  message?: string,
): Promise<void> {
  const data = await gqlData(server, service, RefundGenerationDocument, {
    input: { idempotencyKey: unique("refund"), generationId, reason, message },
  });
  expectTypename(data.refundGeneration, "RefundGenerationSuccess");
}

/** A support refund (admin token) of part of what a generation was charged. */
export async function supportRefund(
  server: TestServer,
  admin: string,
  generationId: string,
  amount: number,
): Promise<void> {
  const data = await gqlData(server, admin, SupportRefundDocument, {
    input: { idempotencyKey: unique("support"), generationId, amount, reason: "BILLING_ERROR" },
  });
  expectTypename(data.supportRefund, "SupportRefundSuccess");
}

/** Runs `work` over `items`, at most `parallel` at a time, keeping the order of results. */
export async function inBatches<T, R>(
  items: readonly T[],
  parallel: number,
  work: (item: T) => Promise<R>,
): Promise<R[]> {
  const results: R[] = [];
  for (let i = 0; i < items.length; i += parallel) {
    results.push(...(await Promise.all(items.slice(i, i + parallel).map(work))));
  }
  return results;
}

export const PAGE_INFO = "pageInfo { hasNextPage hasPreviousPage startCursor endCursor }";

export const ENTRY_FIELDS = `id sequence type amount status title balanceBefore balanceAfter reason message createdAt
  generation { id feature status }`;

export interface EntryNode {
  id: string;
  sequence: number;
  type: string;
  amount: number;
  status: string;
  title: string;
  balanceBefore: number;
  balanceAfter: number;
  reason: string | null;
  message: string | null;
  createdAt: string;
  generation: { id: string; feature: string; status: string } | null;
}

/** The ledger page document (operations/history.graphql): ENTRY_FIELDS and PAGE_INFO, as text. */
export const LEDGER_PAGE = sourceOf(LedgerPageDocument);

interface Connection<Node> {
  edges: { cursor: string; node: Node }[];
  pageInfo: {
    hasNextPage: boolean;
    hasPreviousPage: boolean;
    startCursor: string | null;
    endCursor: string | null;
  };
}

/**
 * Reads a connection to its end with `first` per page, checking the Relay
 * page info of every page on the way; returns every node in order.
 */
export async function readAll<Node>(
  fetchPage: (after: string | null) => Promise<GraphQLResponse>,
  field: string,
  first: number,
): Promise<Node[]> {
  const nodes: Node[] = [];
  let after: string | null = null;
  for (let pages = 0; ; pages += 1) {
    expect(pages, "a connection ends").toBeLessThan(10_000);
    const connection = dataOf(await fetchPage(after))[field] as Connection<Node>;
    const { edges, pageInfo } = connection;
    expect(edges.length).toBeLessThanOrEqual(first);
    expect(pageInfo.hasPreviousPage).toBe(after !== null);
    expect(pageInfo.startCursor).toBe(edges[0]?.cursor ?? null);
    expect(pageInfo.endCursor).toBe(edges.at(-1)?.cursor ?? null);
    if (pageInfo.hasNextPage) expect(edges.length).toBe(first);
    nodes.push(...edges.map((edge) => edge.node));
    if (!pageInfo.hasNextPage) return nodes;
    after = pageInfo.endCursor;
  }
}

/** Every ledger entry of an account matching `filter`, newest first. */
export function readLedger(
  server: TestServer,
  token: string,
  accountId: string,
  filter: Record<string, unknown> | null = null,
  first = 100,
): Promise<EntryNode[]> {
  return readAll<EntryNode>(
    (after) => gqlDoc(server, token, LedgerPageDocument, { accountId, filter, first, after }),
    "ledger",
    first,
  );
}

/** The first GraphQL error of a response, which must have one. */
export function firstError(response: GraphQLResponse): {
  message: string;
  extensions?: Record<string, unknown>;
} {
  expect(response.errors, JSON.stringify(response.data)).toBeDefined();
  const [error] = response.errors ?? [];
  if (error === undefined) throw new Error("no error");
  return error;
}
