/**
 * Access that ends while a connection is open (SPEC §8.6): a revoked API key,
 * or a member removed from an account, loses access on every instance within
 * 1 s, open subscriptions included. A revocation is announced once, reaches
 * every instance through the transport (Redis, or in process), and ends there
 * every subscription and socket it concerns. Requests need nothing from here:
 * memberships are read per request, API key lookups live ≤ 500 ms and are
 * dropped at once when a revocation arrives.
 */
import type { Principal } from "./access.ts";

export type Revocation =
  | { readonly kind: "apiKey"; readonly apiKeyId: string }
  | { readonly kind: "member"; readonly accountId: string; readonly userId: string };

/** Carries revocations between instances; `publish` must reach this instance's own listener too. */
export interface RevocationTransport {
  publish(revocation: Revocation): void;
  /** Registers the one listener (the Revocations of this instance). */
  listen(listener: (revocation: Revocation) => void): void;
  close(): Promise<void>;
}

/** Delivers revocations within this process (one instance, no REDIS_URL). */
export class InProcessRevocationTransport implements RevocationTransport {
  private listener: (revocation: Revocation) => void = () => {};

  publish(revocation: Revocation): void {
    // Asynchronous, like a transport between instances: the announcing request finishes first.
    queueMicrotask(() => this.listener(revocation));
  }

  listen(listener: (revocation: Revocation) => void): void {
    this.listener = listener;
  }

  async close(): Promise<void> {}
}

interface Watcher {
  readonly principal: Principal;
  /** The account a subscription follows; null for a whole connection (ended only with its credential). */
  readonly accountId: string | null;
  readonly end: (reason: string) => void;
}

/** Whether a revocation takes away what a watcher holds. */
function concerns(revocation: Revocation, watcher: Watcher): boolean {
  if (revocation.kind === "apiKey") return watcher.principal.apiKeyId === revocation.apiKeyId;
  return (
    watcher.principal.role === "user" &&
    watcher.principal.sub === revocation.userId &&
    watcher.accountId === revocation.accountId
  );
}

function reasonOf(revocation: Revocation): string {
  return revocation.kind === "apiKey"
    ? "Forbidden: the API key was revoked"
    : "Forbidden: no longer a member of the account";
}

/** One instance's view: what is open here, and what to end when a revocation arrives. */
export class Revocations {
  private readonly watchers = new Set<Watcher>();
  private readonly listeners: ((revocation: Revocation) => void)[] = [];

  constructor(private readonly transport: RevocationTransport) {
    transport.listen((revocation) => this.arrived(revocation));
  }

  /** Announces a revocation to every instance, this one included. */
  announce(revocation: Revocation): void {
    this.transport.publish(revocation);
  }

  /** Calls `listener` for every revocation that arrives (API key caches drop the key). */
  onRevocation(listener: (revocation: Revocation) => void): void {
    this.listeners.push(listener);
  }

  /**
   * Ends something open (a subscription on `accountId`, or with null a whole
   * connection) when its access is revoked; returns the function that stops
   * watching. Only principals that can be revoked are watched.
   */
  watch(principal: Principal, accountId: string | null, end: (reason: string) => void): () => void {
    const revocable = principal.apiKeyId !== undefined || (principal.role === "user" && accountId !== null);
    if (!revocable) return () => {};
    const watcher: Watcher = { principal, accountId, end };
    this.watchers.add(watcher);
    return () => this.watchers.delete(watcher);
  }

  /** How many subscriptions and connections are watched (for tests and metrics). */
  get watchedCount(): number {
    return this.watchers.size;
  }

  private arrived(revocation: Revocation): void {
    for (const listener of this.listeners) listener(revocation);
    const reason = reasonOf(revocation);
    for (const watcher of [...this.watchers]) {
      if (!concerns(revocation, watcher)) continue;
      this.watchers.delete(watcher);
      watcher.end(reason);
    }
  }

  close(): Promise<void> {
    return this.transport.close();
  }
}
