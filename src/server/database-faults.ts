import { GraphQLError } from "graphql";
import { isDatabaseUnavailable, isOutcomeUnknown } from "../db/unavailable.ts";

/** What a client is told about a fault of the database, and the log line for it. */
export interface DatabaseFaultAnswer {
  readonly error: GraphQLError;
  /** Log message: an outage is a warning, not a bug. */
  readonly logMessage: string;
}

/**
 * The answer for an error that is a database fault rather than a bug, or
 * null for any other error. Two cases, both HTTP 503:
 * - OUTCOME_UNKNOWN: the connection failed during COMMIT, so the change may
 *   have been written; only a retry with the same idempotency key is safe
 *   (it replays the committed answer or performs the change once).
 * - SERVICE_UNAVAILABLE: the database could not be reached before anything
 *   was committed; nothing was written and the same request succeeds once
 *   the database is back.
 */
export function databaseFaultAnswer(
  original: unknown,
  path: readonly (string | number)[] | undefined,
  requestId: unknown,
): DatabaseFaultAnswer | null {
  if (isOutcomeUnknown(original)) {
    return {
      logMessage: "database connection lost during commit; outcome unknown",
      error: new GraphQLError(
        "The ledger lost its database connection while committing: the outcome is unknown, it may or may not have been written. Only a retry with the same idempotency key is safe; it returns the committed answer or performs the change once.",
        { path, extensions: { code: "OUTCOME_UNKNOWN", requestId, http: { status: 503 } } },
      ),
    };
  }
  if (isDatabaseUnavailable(original)) {
    return {
      logMessage: "database unavailable",
      error: new GraphQLError(
        "The ledger's database is unavailable; nothing was written. Retry shortly with the same idempotency key.",
        { path, extensions: { code: "SERVICE_UNAVAILABLE", requestId, http: { status: 503 } } },
      ),
    };
  }
  return null;
}
