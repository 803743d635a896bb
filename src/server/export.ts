import type { IncomingMessage, ServerResponse } from "node:http";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { stringify } from "csv-stringify";
import { accountExists } from "../db/accounts.ts";
import type { Database } from "../db/database.ts";
import {
  EXPORT_PAGE_SIZE,
  type ExportedEntry,
  type ExportRange,
  exportPage,
  lastSequence,
} from "../db/ledger-export.ts";
import { Access, type Principal } from "../domain/access.ts";
import type { Logger } from "../log.ts";
import { globalId, localId } from "../schema/ids.ts";
import { parseDateTime } from "../schema/scalars.ts";
import { AuthenticationError } from "./auth.ts";

/** The path of the ledger export (SPEC §8.3). */
export const LEDGER_EXPORT_PATH = "/export/ledger.csv";

/** The CSV header, in SPEC §8.3's order. */
export const LEDGER_EXPORT_COLUMNS = [
  "sequence",
  "created_at",
  "type",
  "status",
  "amount",
  "balance_before",
  "balance_after",
  "reason",
  "message",
  "generation_id",
  "feature",
  "model",
  "requested_by",
  "actor",
] as const;

export interface LedgerExportOptions {
  readonly db: Database;
  /** The request's principal from its Authorization header; throws AuthenticationError for a bad token. */
  readonly principalOf: (authorization: string | undefined) => Promise<Principal | null>;
  readonly log: Logger;
}

/** A request the export refuses before streaming: its HTTP status and message. */
class ExportRefusal {
  constructor(
    readonly status: number,
    readonly message: string,
  ) {}
}

/**
 * Serves `GET /export/ledger.csv?accountId=…&from=…&to=…`: the account's
 * entries created in [from, to), oldest first, as CSV. Same bearer auth and
 * visibility as the `ledger` query: no or a bad token → 401, an account the
 * caller cannot read (or that does not exist) → 404. The rows are read in
 * keyset pages and written with backpressure, so the server holds about one
 * page whatever the ledger's size; entries written after the export started
 * are left out. Returns false for other paths.
 */
export async function handleLedgerExport(
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
  options: LedgerExportOptions,
): Promise<boolean> {
  if (path !== LEDGER_EXPORT_PATH) return false;
  const range = await admit(req, options).catch((error: unknown) => {
    if (error instanceof ExportRefusal) return error;
    throw error;
  });
  if (range instanceof ExportRefusal) {
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (range.status === 401) headers["www-authenticate"] = "Bearer";
    res.writeHead(range.status, headers).end(JSON.stringify({ error: range.message }));
    return true;
  }
  res.writeHead(200, {
    "content-type": "text/csv; charset=utf-8",
    "content-disposition": 'attachment; filename="ledger.csv"',
    "cache-control": "no-store",
  });
  try {
    await pipeline(
      Readable.from(exportRecords(options.db, range)),
      stringify({ header: true, columns: [...LEDGER_EXPORT_COLUMNS] }),
      res,
    );
  } catch (error) {
    // The status line is gone already: the client sees a cut response (no final chunk), not a short file.
    options.log.warn("ledger export aborted", { err: error, accountId: range.accountId });
    res.destroy();
  }
  return true;
}

/** Checks the method, token, visibility and arguments; the range to export, or why not. */
async function admit(req: IncomingMessage, options: LedgerExportOptions): Promise<ExportRange> {
  if (req.method !== "GET") {
    throw new ExportRefusal(405, `${LEDGER_EXPORT_PATH} answers GET only`);
  }
  let principal: Principal | null;
  try {
    principal = await options.principalOf(req.headers.authorization);
  } catch (error) {
    if (error instanceof AuthenticationError) throw new ExportRefusal(401, error.message);
    throw error;
  }
  if (principal === null) {
    throw new ExportRefusal(401, "Authentication required: send Authorization: Bearer <token>");
  }
  const params = new URL(req.url ?? "/", "http://localhost").searchParams;
  const rawAccountId = params.get("accountId");
  if (rawAccountId === null) throw new ExportRefusal(400, "accountId is required: the account's global id");
  const from = instant(params.get("from"), "from");
  const to = instant(params.get("to"), "to");
  if (from !== null && to !== null && from.getTime() > to.getTime()) {
    throw new ExportRefusal(
      400,
      `to must not be before from (${from.toISOString()}), got ${to.toISOString()}`,
    );
  }
  const accountId = localId(rawAccountId, "Account");
  const access = new Access(principal, options.db);
  if (
    accountId === null ||
    !(await access.canRead(accountId)) ||
    !(await accountExists(options.db, accountId))
  ) {
    throw new ExportRefusal(404, "Account not found");
  }
  return { accountId, from, to, upToSequence: await lastSequence(options.db, accountId) };
}

function instant(value: string | null, name: string): Date | null {
  if (value === null) return null;
  try {
    return parseDateTime(value);
  } catch (error) {
    throw new ExportRefusal(400, `${name}: ${(error as Error).message}`);
  }
}

/** The export's records, one page read at a time (the next only once the stream wants more). */
async function* exportRecords(db: Database, range: ExportRange): AsyncGenerator<string[]> {
  let after = 0;
  for (;;) {
    const page = await exportPage(db, range, after, EXPORT_PAGE_SIZE);
    for (const entry of page) yield record(entry);
    const last = page.at(-1);
    if (last === undefined || page.length < EXPORT_PAGE_SIZE) return;
    after = last.sequence;
  }
}

/** One CSV record: amounts as integers, instants in ISO-8601 UTC, ids global like the API's, null empty. */
function record(entry: ExportedEntry): string[] {
  return [
    String(entry.sequence),
    entry.createdAt.toISOString(),
    entry.type,
    entry.status,
    entry.amount.toString(),
    entry.balanceBefore.toString(),
    entry.balanceAfter.toString(),
    entry.reason ?? "",
    entry.message ?? "",
    entry.generationId === null ? "" : globalId("Generation", entry.generationId),
    entry.feature ?? "",
    entry.model ?? "",
    entry.requestedBy ?? "",
    entry.actor,
  ];
}
