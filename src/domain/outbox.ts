import { randomUUID } from "node:crypto";
import type { Book } from "./book.ts";
import type { GenerationState, LedgerEntryRecord } from "./model.ts";
import type { Notice, NoticeType } from "./notices.ts";

/**
 * The webhook events one account transaction causes (SPEC §8.4), built from
 * its book: one `ledger_entry.added` per entry, one `generation.finished` per
 * generation that ended in it, and its notices. The store writes them into
 * the outbox in the transaction's own write statement, one delivery per
 * endpoint that listens, so an event exists exactly when its change does.
 */

/** Event types as the body's `type` names them. */
export const WEBHOOK_EVENT_TYPES = [
  "ledger_entry.added",
  "generation.finished",
  "balance.low",
  "grant.expiring",
] as const satisfies readonly (string | NoticeType)[];

export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];

/** One event as the outbox statement takes it. */
export interface OutboxEvent {
  /** The `webhook-id` header of every attempt of every delivery of this event. */
  readonly eventId: string;
  readonly accountId: string;
  readonly type: WebhookEventType;
  /** The request body: `{type, timestamp, data: {accountId, sequence, …}}`. */
  readonly payload: WebhookBody;
  readonly createdAt: Date;
}

export interface WebhookBody {
  readonly type: WebhookEventType;
  readonly timestamp: string;
  readonly data: Readonly<Record<string, unknown>>;
}

/**
 * A Relay global id, as the API gives it (base64 of "Type:id"): receivers
 * match the body's ids against the ids they read over GraphQL.
 */
export function nodeId(typename: "Account" | "Generation" | "LedgerEntry" | "Grant", id: string): string {
  return Buffer.from(`${typename}:${id}`).toString("base64");
}

/** A new event id: "msg_" and a uuid without dashes, as Standard Webhooks ids look. */
export function newEventId(): string {
  return `msg_${randomUUID().replaceAll("-", "")}`;
}

const amount = (credits: bigint): number => Number(credits);

function entryData(entry: LedgerEntryRecord): Record<string, unknown> {
  return {
    entryId: nodeId("LedgerEntry", entry.id),
    type: entry.type,
    amount: amount(entry.amount),
    balanceBefore: amount(entry.balanceBefore),
    balanceAfter: amount(entry.balanceAfter),
    title: entry.title,
    reason: entry.reason,
    message: entry.message,
    generationId: entry.generationId === null ? null : nodeId("Generation", entry.generationId),
    createdAt: entry.createdAt.toISOString(),
  };
}

function generationData(generation: GenerationState): Record<string, unknown> {
  return {
    generationId: nodeId("Generation", generation.id),
    status: generation.status,
    feature: generation.feature,
    quantity: generation.quantity,
    reserved: amount(generation.reserved),
    charged: amount(generation.charged),
    refunded: amount(generation.refunded),
    released: amount(generation.released),
    failureReason: generation.failureReason,
    finishedAt: generation.finishedAt?.toISOString() ?? null,
  };
}

/** Fields of notices' data that hold Credits as decimal strings (notices.ts) or a grant's database id. */
const NOTICE_CREDITS = new Set(["threshold", "available", "remaining", "amount"]);

/**
 * A notice's data as the body carries it: Credits as JSON numbers and ids as
 * the API's global ids, like every other event (notices keep Credits as
 * strings and ids as uuids so they stay exact and layer-free until here).
 */
function noticeData(notice: Notice): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(notice.data).map(([key, value]) => {
      if (NOTICE_CREDITS.has(key) && typeof value === "string" && /^-?\d+$/.test(value))
        return [key, Number(value)];
      if (key === "grantId" && typeof value === "string") return [key, nodeId("Grant", value)];
      return [key, value];
    }),
  );
}

/** The generations that ended in this transaction: new or open when loaded, finished now. */
function finishedGenerations(book: Book): GenerationState[] {
  const ids = new Set([...book.newGenerations, ...book.dirtyGenerations]);
  return [...ids]
    .filter((id) => book.newGenerations.has(id) || book.openAtLoad.has(id))
    .map((id) => book.generation(id))
    .filter((g): g is GenerationState => g !== undefined && g.status !== "IN_PROGRESS");
}

/** Every event of the book's transaction, in the order its changes happened. */
export function outboxEvents(book: Book): OutboxEvent[] {
  const accountId = book.account.id;
  const timestamp = book.now.toISOString();
  const event = (type: WebhookEventType, sequence: number | null, data: Record<string, unknown>) => ({
    eventId: newEventId(),
    accountId,
    type,
    payload: { type, timestamp, data: { accountId: nodeId("Account", accountId), sequence, ...data } },
    createdAt: book.now,
  });
  const events: OutboxEvent[] = book.entries.map((entry) =>
    event("ledger_entry.added", entry.sequence, entryData(entry)),
  );
  for (const generation of finishedGenerations(book)) {
    const last = book.entries.findLast((entry) => entry.generationId === generation.id);
    events.push(
      event("generation.finished", last?.sequence ?? book.account.sequence, generationData(generation)),
    );
  }
  for (const notice of book.notices) events.push(event(notice.type, notice.sequence, noticeData(notice)));
  return events;
}
