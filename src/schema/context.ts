import type { Database } from "../db/database.ts";
import type { PrismaClient } from "../db/generated/client.ts";
import type { Access, Principal } from "../domain/access.ts";
import type { EventBus } from "../domain/events.ts";
import type { Ledger } from "../domain/ledger.ts";
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
  /**
   * Closes the transport a subscription runs on (a WebSocket with a close
   * code); undefined over HTTP/SSE, where ending the stream is the close.
   */
  readonly closeTransport?: (code: number, reason: string) => void;
}
