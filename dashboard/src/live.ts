/**
 * One account's live feeds over graphql-ws, kept alive across dropped
 * connections. Every connection is a fresh client: graphql-ws would resend a
 * subscription with the arguments it started with, but a resumed ledger feed
 * must continue after the last entry this page has, so each reconnect
 * subscribes anew with `afterSequence` read at that moment.
 */
import { type Client, createClient } from "graphql-ws";
import {
  BalanceChangedDocument,
  GenerationUpdatedDocument,
  LedgerEntryAddedDocument,
} from "../../src/generated/graphql/graphql.ts";
import { type Operation, persisted, persistedExtensions } from "./graphql.ts";
import type { Balance, Entry, Generation } from "./model.ts";

export type LiveState =
  | { readonly kind: "connecting" }
  | { readonly kind: "live" }
  | { readonly kind: "reconnecting"; readonly attempt: number; readonly retryAtMs: number }
  | { readonly kind: "unauthorized"; readonly reason: string }
  | { readonly kind: "stopped" };

export interface LiveAccountOptions {
  /** The ws:// or wss:// URL of /graphql. */
  readonly url: string;
  readonly accountId: string;
  readonly token: () => string | null;
  /** The last ledger sequence the page holds, read at each (re)connect. */
  readonly afterSequence: () => number;
  readonly onEntry: (entry: Entry) => void;
  readonly onBalance: (balance: Balance) => void;
  readonly onGeneration: (generation: Generation) => void;
  /** After each (re)connect: the moment to refetch what events may have been missed. */
  readonly onConnected: () => void;
  readonly onState: (state: LiveState) => void;
  /** A subscription failed for a reason other than the connection (e.g. the account is not visible). */
  readonly onError: (message: string) => void;
}

/** Waits before reconnect attempt n (1-based); capped so a returning server is found quickly. */
const RETRY_DELAYS_MS = [500, 1_000, 2_000, 4_000, 8_000] as const;
/** How often a ping checks the connection. @default 15_000 // 15 seconds */
const PING_INTERVAL_MS = 15_000;
/** How long a ping may wait for its pong before the connection counts as dead. @default 5_000 // 5 seconds */
const PONG_TIMEOUT_MS = 5_000;
/** The server closes a socket with this code when the token is missing, bad or expired. */
const CLOSE_UNAUTHORIZED = 4401;

const ledgerEntryAdded = persisted(LedgerEntryAddedDocument);
const balanceChanged = persisted(BalanceChangedDocument);
const generationUpdated = persisted(GenerationUpdatedDocument);

export class LiveAccount {
  private client: Client | null = null;
  private attempt = 0;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private stopped = false;
  private readonly reconnectNow = () => {
    if (this.retryTimer !== null) this.connect();
  };

  constructor(private readonly options: LiveAccountOptions) {}

  start(): void {
    globalThis.addEventListener?.("online", this.reconnectNow);
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    globalThis.removeEventListener?.("online", this.reconnectNow);
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    void this.client?.dispose();
    this.client = null;
    this.options.onState({ kind: "stopped" });
  }

  private connect(): void {
    if (this.stopped) return;
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.options.onState({ kind: "connecting" });
    let pongTimer: ReturnType<typeof setTimeout> | null = null;
    const client: Client = createClient({
      url: this.options.url,
      lazy: false,
      // Reconnecting is ours (see the module comment).
      retryAttempts: 0,
      keepAlive: PING_INTERVAL_MS,
      connectionParams: () => {
        const token = this.options.token();
        return token === null ? {} : { authorization: `Bearer ${token}` };
      },
      onNonLazyError: () => {
        // The `closed` listener below handles every way a connection ends.
      },
      on: {
        connected: () => {
          if (client !== this.client) return;
          this.attempt = 0;
          this.options.onState({ kind: "live" });
          this.options.onConnected();
        },
        ping: (received) => {
          // A half-open connection (a sleeping laptop, a dropped route) never closes by itself.
          if (!received) pongTimer = setTimeout(() => client.terminate(), PONG_TIMEOUT_MS);
        },
        pong: (received) => {
          if (received && pongTimer !== null) clearTimeout(pongTimer);
        },
        closed: (event) => {
          if (pongTimer !== null) clearTimeout(pongTimer);
          if (client === this.client) this.closed(event);
        },
      },
    });
    this.client = client;
    const variables = { accountId: this.options.accountId };
    const afterSequence = this.options.afterSequence();
    this.subscribe(client, ledgerEntryAdded, { ...variables, afterSequence }, (data) =>
      this.options.onEntry(data.ledgerEntryAdded),
    );
    this.subscribe(client, balanceChanged, variables, (data) => this.options.onBalance(data.balanceChanged));
    this.subscribe(client, generationUpdated, variables, (data) =>
      this.options.onGeneration(data.generationUpdated),
    );
  }

  /** Subscribes on `client`; errors other than the socket closing are reported. */
  private subscribe<TData, TVariables extends Record<string, unknown>>(
    client: Client,
    operation: Operation<TData, TVariables>,
    variables: TVariables,
    handle: (data: TData) => void,
  ): void {
    client.subscribe<TData>(
      {
        operationName: operation.name,
        query: operation.text,
        variables,
        extensions: persistedExtensions(operation.hash),
      },
      {
        next: (result) => {
          if (client !== this.client) return;
          if (result.errors !== undefined && result.errors.length > 0) {
            this.options.onError(result.errors.map((e) => e.message).join("; "));
          }
          if (result.data != null) handle(result.data);
        },
        error: (error) => {
          if (client !== this.client || isCloseEvent(error)) return;
          const errors: readonly unknown[] = Array.isArray(error) ? error : [error];
          this.options.onError(
            errors
              .map((e) => (e instanceof Object && "message" in e ? String(e.message) : String(e)))
              .join("; "),
          );
        },
        complete: () => {},
      },
    );
  }

  private closed(event: unknown): void {
    void this.client?.dispose();
    this.client = null;
    if (this.stopped) return;
    const code = isCloseEvent(event) ? event.code : 0;
    if (code === CLOSE_UNAUTHORIZED) {
      this.stopped = true;
      this.options.onState({ kind: "unauthorized", reason: isCloseEvent(event) ? event.reason : "" });
      return;
    }
    this.attempt += 1;
    const base = RETRY_DELAYS_MS[Math.min(this.attempt, RETRY_DELAYS_MS.length) - 1] ?? 8_000;
    // Jitter keeps many dashboards from reconnecting in the same instant after a restart.
    const delayMs = Math.round(base * (0.8 + Math.random() * 0.4));
    this.options.onState({ kind: "reconnecting", attempt: this.attempt, retryAtMs: Date.now() + delayMs });
    this.retryTimer = setTimeout(() => this.connect(), delayMs);
  }
}

function isCloseEvent(value: unknown): value is { code: number; reason: string } {
  return typeof value === "object" && value !== null && "code" in value && "reason" in value;
}
