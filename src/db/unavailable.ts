/**
 * What a dead or unreachable database looks like, whichever layer saw it:
 * the pg driver (SQLSTATE or socket errno on the error itself), Prisma over
 * its driver adapter (a `PrismaClientKnownRequestError` whose `code` is a
 * Prisma code and whose SQLSTATE sits under `meta.driverAdapterError.cause`),
 * or anything that wraps one of those in `cause` / `originalError` (GraphQL,
 * the ledger). The server maps every such error to one answer.
 */

/** SQLSTATEs of a database that is down, restarting, or refusing connections (class 08 is matched whole). */
const UNAVAILABLE_SQLSTATES = new Set(["57P01", "57P02", "57P03", "53300"]);

/** Socket errors of a connection that could not be made or was cut. */
const UNAVAILABLE_ERRNOS = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENOTFOUND",
]);

/**
 * Prisma's codes for a connection problem: can't reach (P1001), timed out
 * reaching (P1002), socket timeout (P1008), server closed the connection
 * (P1017), too many connections (P2037), no connection from the pool in time
 * (P2024). P2039 (a database error) is not among them: its SQLSTATE
 * underneath decides.
 */
const UNAVAILABLE_PRISMA_CODES = new Set(["P1001", "P1002", "P1008", "P1017", "P2024", "P2037"]);

/** Prisma driver adapters' error kinds for a connection problem. */
const UNAVAILABLE_ADAPTER_KINDS = new Set([
  "DatabaseNotReachable",
  "ConnectionClosed",
  "SocketTimeout",
  "TooManyConnections",
]);

/** Messages of the pg driver and pool that carry no code. */
const UNAVAILABLE_MESSAGES = [
  "Connection terminated",
  "connection error and is not queryable",
  "timeout exceeded when trying to connect",
  "Connection ended unexpectedly",
];

/** How many wrapped errors are followed at most: wrappers are a few deep, and a cycle must end. */
const LINKS_MAX = 16;

interface ErrorLike {
  readonly code?: unknown;
  readonly kind?: unknown;
  readonly message?: unknown;
  readonly cause?: unknown;
  readonly originalError?: unknown;
  readonly meta?: { readonly driverAdapterError?: unknown } | null;
}

/** Whether this one error (not what it wraps) says the connection is gone. */
function saysUnavailable(error: ErrorLike): boolean {
  const { code, kind, message } = error;
  if (typeof code === "string") {
    if (code.startsWith("08") || UNAVAILABLE_SQLSTATES.has(code)) return true;
    if (UNAVAILABLE_ERRNOS.has(code) || UNAVAILABLE_PRISMA_CODES.has(code)) return true;
  }
  if (typeof kind === "string" && UNAVAILABLE_ADAPTER_KINDS.has(kind)) return true;
  return typeof message === "string" && UNAVAILABLE_MESSAGES.some((text) => message.includes(text));
}

/** The errors one error wraps, in the shapes the driver, Prisma and GraphQL use. */
function wrapped(error: ErrorLike): unknown[] {
  const meta = typeof error.meta === "object" && error.meta !== null ? error.meta : undefined;
  return [error.cause, error.originalError, meta?.driverAdapterError];
}

/**
 * Whether an error means the database could not be reached (connection
 * refused or cut, server shutting down or starting up, no connection slots
 * or none from the pool in time), looking through every wrapper.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  const queue: unknown[] = [error];
  const seen = new Set<unknown>();
  for (let links = 0; links < LINKS_MAX && queue.length > 0; links += 1) {
    const current = queue.shift();
    if (typeof current !== "object" || current === null || seen.has(current)) continue;
    seen.add(current);
    if (saysUnavailable(current as ErrorLike)) return true;
    queue.push(...wrapped(current as ErrorLike));
  }
  return false;
}

/**
 * The connection failed while COMMIT was in flight: the transaction may or
 * may not have committed, and nothing on this side can tell which. Unlike
 * any error before COMMIT, this one must never be answered as "nothing was
 * written", and the work must not be run again as if it had not happened;
 * only a retry that the idempotency key deduplicates is safe.
 */
export class OutcomeUnknownError extends Error {
  constructor(cause: unknown) {
    super(
      "The connection to the database failed during COMMIT: the transaction may or may not have committed",
      {
        cause,
      },
    );
    this.name = "OutcomeUnknownError";
  }
}

/** Whether an error is, or wraps, an OutcomeUnknownError. */
export function isOutcomeUnknown(error: unknown): boolean {
  let current: unknown = error;
  for (let links = 0; links < LINKS_MAX && typeof current === "object" && current !== null; links += 1) {
    if (current instanceof OutcomeUnknownError) return true;
    current = (current as ErrorLike).originalError ?? (current as ErrorLike).cause;
  }
  return false;
}
