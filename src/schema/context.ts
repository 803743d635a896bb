import type { Database } from "../db/database.ts";
import type { PrismaClient } from "../db/generated/client.ts";
import type { Access, Principal } from "../domain/access.ts";
import type { ApiKeys } from "../domain/api-keys.ts";
import type { EventBus } from "../domain/events.ts";
import type { Ledger } from "../domain/ledger.ts";
import type { Revocations } from "../domain/revocations.ts";
import type { Realtime } from "./live/realtime.ts";
import type { Loaders } from "./loaders.ts";

/** Everything a resolver may use; built once per request (or per subscription). */
export interface Context {
  readonly requestId: string;
  readonly principal: Principal | null;
  readonly access: Access;
  readonly db: Database;
  readonly prisma: PrismaClient;
  readonly ledger: Ledger;
  readonly events: EventBus;
  readonly realtime: Realtime;
  readonly loaders: Loaders;
  /** WEBHOOK_ALLOW_PRIVATE: endpoints may be http URLs and private addresses (development and tests). */
  readonly webhookAllowPrivate: boolean;
  /** API keys: created, listed and revoked by admins; authenticated by the server. */
  readonly apiKeys: ApiKeys;
  /** Announces revoked access to every instance, and ends what it concerns here. */
  readonly revocations: Revocations;
  /**
   * Closes the transport a subscription runs on (a WebSocket with a close
   * code); undefined over HTTP/SSE, where ending the stream is the close.
   */
  readonly closeTransport?: (code: number, reason: string) => void;
}
