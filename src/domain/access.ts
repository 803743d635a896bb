import type { Sql } from "../db/database.ts";
import type { MemberRole } from "./model.ts";

/** What a token may do: a user acts on its own accounts, a service or an admin on every account. */
export type Role = "user" | "service" | "admin";
/** Every role, in the order tokens and errors list them. */
export const ROLES: readonly Role[] = ["user", "service", "admin"];

/** Who a request acts for, from a verified token. */
export interface Principal {
  readonly sub: string;
  readonly role: Role;
  /** Token expiry, seconds since the epoch (subscriptions close at it). */
  readonly exp: number | null;
  /** Set for an API key (`sub` is then `apikey:<id>`): the key's id, by which it is revoked. */
  readonly apiKeyId?: string;
  /** Set for an API key limited to one account: every other account looks as if it did not exist. */
  readonly accountId?: string | null;
  /** An API key's own mutation rate limit (SPEC §8.6); unset → the role's limit. */
  readonly rateLimitPerSecond?: number | null;
}

/**
 * What one request may see. Users see the accounts they are members of
 * (loaded once per request); services and admins see every account.
 */
export class Access {
  private memberships: Promise<Map<string, MemberRole>> | null = null;

  constructor(
    readonly principal: Principal | null,
    private readonly sql: Sql,
  ) {}

  get isPlatform(): boolean {
    return this.principal?.role === "service" || this.principal?.role === "admin";
  }

  get isAdmin(): boolean {
    return this.principal?.role === "admin";
  }

  /** The one account an API key is limited to; null when the principal is not limited so. */
  get accountScope(): string | null {
    return this.principal?.accountId ?? null;
  }

  /** Whether every account is visible: a service or admin not limited to one account. */
  get seesEveryAccount(): boolean {
    return this.isPlatform && this.accountScope === null;
  }

  /** The user's accounts and roles (empty for services and admins, who have no memberships). */
  userMemberships(): Promise<Map<string, MemberRole>> {
    const sub = this.principal?.sub;
    if (sub === undefined) return Promise.resolve(new Map());
    this.memberships ??= this.sql
      .query<{ account_id: string; role: MemberRole }>(
        "SELECT account_id, role FROM account_member WHERE user_id = $1 ORDER BY created_at, account_id",
        [sub],
      )
      .then((rows) => new Map(rows.map((row) => [row.account_id, row.role])));
    return this.memberships;
  }

  /** Whether the principal may read the account (existence is checked by the caller). */
  async canRead(accountId: string): Promise<boolean> {
    if (this.principal === null) return false;
    const scope = this.accountScope;
    if (scope !== null) return accountId === scope;
    if (this.isPlatform) return true;
    return (await this.userMemberships()).has(accountId);
  }

  /** The user's role in the account, or null. */
  async memberRole(accountId: string): Promise<MemberRole | null> {
    return (await this.userMemberships()).get(accountId) ?? null;
  }

  /** A Prisma `where` fragment limiting rows to visible accounts. */
  visibleAccountsWhere(): { accountId?: { in: string[] } } | Promise<{ accountId?: { in: string[] } }> {
    const scope = this.accountScope;
    if (scope !== null) return { accountId: { in: [scope] } };
    if (this.isPlatform) return {};
    return this.userMemberships().then((m) => ({ accountId: { in: [...m.keys()] } }));
  }
}
