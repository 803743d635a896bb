/**
 * GraphQL documents and helpers for the billing tests: reserve, settle,
 * refund, cancel, support refund and adjust over real HTTP, plus direct SQL
 * reads of the test database for what the API does not show (postings, REFUND
 * counts per generation). Results are loosely typed on purpose: tests assert
 * on the JSON the API returns.
 */
import { connectPostgres, type Database } from "../../src/db/database.ts";
import { auditLedger } from "../../src/domain/audit.ts";
import type { Config } from "../../src/server/config.ts";
import { testDatabaseUrl } from "../support/env.ts";
import { CREATE_ACCOUNT, GRANT } from "../support/fixtures.ts";
import { dataOf, startServer, type TestServer, unique } from "../support/harness.ts";
import { onPglite, startedEmbeddedTestDatabase } from "../support/test-database.ts";

// biome-ignore lint/suspicious/noExplicitAny: tests read the API's JSON as it comes.
export type Json = any;

export const BALANCE_FIELDS = "available held total subscription wallet sequence";

export const ITEM_FIELDS = "index status reserved charged refunded reason message";

export const ENTRY_FIELDS =
  "id sequence type amount status title balanceBefore balanceAfter reason message createdAt";

export const GENERATION_FIELDS = `id status feature requestedBy quantity unitCost reserved charged refunded released
  failureReason failureMessage deadline createdAt finishedAt
  items { ${ITEM_FIELDS} }
  ledgerEntries { ${ENTRY_FIELDS} }`;

/** The fields bulk race tests read back: no items or entries, so a thousand answers stay cheap. */
export const GENERATION_SLIM_FIELDS = "id status reserved charged refunded released deadline createdAt";

const COMMON_ERRORS = `... on Error { code message }
    ... on InvalidInputError { field }`;

/** The billing mutations, selecting `generationFields` on every generation they return. */
function mutations(generationFields: string) {
  const success = `generation { ${generationFields} } balance { ${BALANCE_FIELDS} } replayed`;
  return {
    reserve: `mutation Reserve($input: ReserveGenerationInput!) {
  reserveGeneration(input: $input) {
    __typename
    ... on ReserveGenerationSuccess { ${success} }
    ... on InsufficientCreditsError { available required }
    ... on SpendCapExceededError { cap { memberId period amount spent remaining resetsAt } }
    ${COMMON_ERRORS}
  }
}`,
    settle: `mutation Settle($input: SettleGenerationInput!) {
  settleGeneration(input: $input) {
    __typename
    ... on SettleGenerationSuccess { ${success} }
    ... on AlreadyFinalizedError { generation { id status } }
    ${COMMON_ERRORS}
  }
}`,
    refund: `mutation Refund($input: RefundGenerationInput!) {
  refundGeneration(input: $input) {
    __typename
    ... on RefundGenerationSuccess { ${success} }
    ... on AlreadyFinalizedError { generation { id status } }
    ${COMMON_ERRORS}
  }
}`,
    cancel: `mutation Cancel($input: CancelGenerationInput!) {
  cancelGeneration(input: $input) {
    __typename
    ... on CancelGenerationSuccess { ${success} }
    ... on AlreadyFinalizedError { generation { id status } }
    ${COMMON_ERRORS}
  }
}`,
    supportRefund: `mutation SupportRefund($input: SupportRefundInput!) {
  supportRefund(input: $input) {
    __typename
    ... on SupportRefundSuccess { ${success} }
    ... on RefundExceedsChargeError { refundable }
    ${COMMON_ERRORS}
  }
}`,
  };
}

const FULL = mutations(GENERATION_FIELDS);
const SLIM = mutations(GENERATION_SLIM_FIELDS);

export const RESERVE = FULL.reserve;
export const SETTLE = FULL.settle;
export const REFUND = FULL.refund;
export const CANCEL = FULL.cancel;
export const SUPPORT_REFUND = FULL.supportRefund;
export const RESERVE_SLIM = SLIM.reserve;

export const ADJUST = `mutation Adjust($input: AdjustBalanceInput!) {
  adjustBalance(input: $input) {
    __typename
    ... on AdjustBalanceSuccess { entry { ${ENTRY_FIELDS} } balance { ${BALANCE_FIELDS} } replayed }
    ... on InsufficientCreditsError { available required }
    ${COMMON_ERRORS}
  }
}`;

export const GENERATION = `query Generation($id: ID!) { generation(id: $id) { ${GENERATION_FIELDS} } }`;

export const ACCOUNT = `query Account($id: ID!, $includeExpired: Boolean) {
  account(id: $id) {
    id kind
    balance { ${BALANCE_FIELDS} }
    grants(includeExpired: $includeExpired) { id source amount remaining held expiresAt }
  }
}`;

export interface ReserveOptions {
  readonly key?: string;
  readonly feature?: string;
  /** Default 10; null omits it (the rate card's price). */
  readonly unitCost?: number | null;
  readonly quantity?: number;
  readonly timeoutSeconds?: number;
  readonly requestedBy?: string;
  readonly metadata?: unknown;
  readonly model?: string;
}

export interface ItemOutcome {
  readonly index: number;
  readonly succeeded: boolean;
  readonly cost?: number;
  readonly reason?: string;
  readonly message?: string;
}

/** Connections per test server (in-process or spawned). */
export const POOL_SIZE_MAX = 5;

/** The local uuid inside a Relay global id ("Type:uuid", base64). */
export function localIdOf(globalId: string): string {
  const decoded = Buffer.from(globalId, "base64").toString("utf8");
  const id = decoded.slice(decoded.indexOf(":") + 1);
  if (!/^[0-9a-f-]{36}$/i.test(id)) throw new Error(`not a global id: ${globalId}`);
  return id;
}

/** The single field of a GraphQL answer's `data`, failing on GraphQL errors. */
function field(response: Json, name: string): Json {
  return dataOf<Json>(response)[name];
}

/**
 * A started server with a service and an admin token, and one method per
 * billing mutation. Every method returns the mutation's union member as JSON.
 */
export class Billing {
  private constructor(
    readonly server: TestServer,
    readonly service: string,
    readonly admin: string,
    private readonly documents: typeof FULL,
  ) {}

  /**
   * Starts a server. With `slim`, mutations read back only GENERATION_SLIM_FIELDS of the
   * generation (for tests that fire hundreds of requests and check the outcome by other means).
   */
  static async start(overrides: Partial<Config> = {}, options: { slim?: boolean } = {}): Promise<Billing> {
    // A small pool: group commit needs few connections, and PostgreSQL's 100 are shared by
    // every test file (and every developer) running at once.
    const server = await startServer({ databasePoolSizeMax: POOL_SIZE_MAX, ...overrides });
    return new Billing(
      server,
      await server.token("platform", "service"),
      await server.token("support", "admin"),
      options.slim === true ? SLIM : FULL,
    );
  }

  close(): Promise<void> {
    return this.server.close();
  }

  /**
   * Posts a request, sending it again when the connection was reset before an answer came
   * (a keep-alive socket closed under us on a busy machine). Safe because every mutation here
   * carries an idempotency key: a request that did run answers the same the second time.
   */
  async call(token: string | null, query: string, variables: Record<string, unknown>): Promise<Json> {
    for (let attempt = 1; ; attempt += 1) {
      try {
        return await this.server.gql(token, query, variables);
      } catch (error) {
        const code = (error as { cause?: { code?: string } }).cause?.code;
        if (attempt >= 3 || (code !== "ECONNRESET" && code !== "UND_ERR_SOCKET")) throw error;
      }
    }
  }

  /** A new account holding `credits` wallet credits (none when 0). */
  async account(
    credits = 0,
    options: { kind?: "PERSONAL" | "WORKSPACE"; ownerId?: string } = {},
  ): Promise<string> {
    const created = field(
      await this.call(this.service, CREATE_ACCOUNT, {
        input: {
          idempotencyKey: unique("acct"),
          kind: options.kind ?? "PERSONAL",
          name: "Billing test account",
          ownerId: options.ownerId ?? unique("user"),
        },
      }),
      "createAccount",
    );
    if (created.__typename !== "CreateAccountSuccess") throw new Error(JSON.stringify(created));
    if (credits > 0) await this.grant(created.account.id, credits);
    return created.account.id;
  }

  /** Grants credits; fails the test unless the grant succeeded. */
  async grant(
    accountId: string,
    amount: number,
    options: { source?: "SUBSCRIPTION" | "WALLET"; expiresAt?: string } = {},
  ): Promise<Json> {
    const granted = field(
      await this.call(this.service, GRANT, {
        input: {
          idempotencyKey: unique("grant"),
          accountId,
          source: options.source ?? "WALLET",
          amount,
          expiresAt: options.expiresAt,
        },
      }),
      "grantCredits",
    );
    if (granted.__typename !== "GrantCreditsSuccess") throw new Error(JSON.stringify(granted));
    return granted;
  }

  async reserve(accountId: string, options: ReserveOptions = {}, token = this.service): Promise<Json> {
    const input = {
      idempotencyKey: options.key ?? unique("reserve"),
      accountId,
      feature: options.feature ?? "Image",
      unitCost: options.unitCost === null ? undefined : (options.unitCost ?? 10),
      quantity: options.quantity ?? 1,
      timeoutSeconds: options.timeoutSeconds,
      requestedBy: options.requestedBy,
      metadata: options.metadata,
      model: options.model,
    };
    return field(await this.call(token, this.documents.reserve, { input }), "reserveGeneration");
  }

  /** Reserves and fails the test unless the reserve succeeded; returns the generation. */
  async reserveOk(accountId: string, options: ReserveOptions = {}): Promise<Json> {
    const result = await this.reserve(accountId, options);
    if (result.__typename !== "ReserveGenerationSuccess") throw new Error(JSON.stringify(result));
    return result.generation;
  }

  async settle(generationId: string, items?: readonly ItemOutcome[], key = unique("settle")): Promise<Json> {
    return field(
      await this.call(this.service, this.documents.settle, {
        input: { idempotencyKey: key, generationId, items },
      }),
      "settleGeneration",
    );
  }

  async refund(
    generationId: string,
    reason = "GENERATION_FAILED",
    options: { key?: string; message?: string } = {},
  ): Promise<Json> {
    return field(
      await this.call(this.service, this.documents.refund, {
        input: {
          idempotencyKey: options.key ?? unique("refund"),
          generationId,
          reason,
          message: options.message,
        },
      }),
      "refundGeneration",
    );
  }

  async cancel(generationId: string, key = unique("cancel"), token = this.service): Promise<Json> {
    return field(
      await this.call(token, this.documents.cancel, { input: { idempotencyKey: key, generationId } }),
      "cancelGeneration",
    );
  }

  async supportRefund(
    generationId: string,
    amount: number,
    options: { key?: string; reason?: string; note?: string } = {},
  ): Promise<Json> {
    return field(
      await this.call(this.admin, this.documents.supportRefund, {
        input: {
          idempotencyKey: options.key ?? unique("support"),
          generationId,
          amount,
          reason: options.reason ?? "BILLING_ERROR",
          note: options.note,
        },
      }),
      "supportRefund",
    );
  }

  async adjust(accountId: string, amount: number, note = "Goodwill", key = unique("adjust")): Promise<Json> {
    return field(
      await this.call(this.admin, ADJUST, {
        input: { idempotencyKey: key, accountId, amount, note },
      }),
      "adjustBalance",
    );
  }

  async generation(id: string): Promise<Json> {
    return field(await this.call(this.service, GENERATION, { id }), "generation");
  }

  /** The account with its balance and grants (oldest first). */
  async accountState(id: string, includeExpired = false): Promise<Json> {
    return field(await this.call(this.service, ACCOUNT, { id, includeExpired }), "account");
  }

  async balance(accountId: string): Promise<Json> {
    return (await this.accountState(accountId)).balance;
  }
}

let shared: Database | null = null;

/**
 * A small pool on the test database for direct reads; closed by `closeSql`.
 * On PGlite, the file's embedded database, which a server started in the file opened.
 */
export function sql(): Database {
  if (onPglite()) return startedEmbeddedTestDatabase();
  shared ??= connectPostgres({ url: testDatabaseUrl(), poolSizeMax: 2 });
  return shared;
}

export async function closeSql(): Promise<void> {
  const db = shared;
  shared = null;
  await db?.close();
}

/** Ledger entries of an account in sequence order, amounts as numbers. */
export async function entriesOf(accountGlobalId: string): Promise<Json[]> {
  const rows = await sql().query<Json>(
    `SELECT sequence, type, amount, balance_before, balance_after, reason, title, generation_id, created_at
       FROM ledger_entry WHERE account_id = $1 ORDER BY sequence`,
    [localIdOf(accountGlobalId)],
  );
  return rows.map((row: Json) => ({
    ...row,
    amount: Number(row.amount),
    balance_before: Number(row.balance_before),
    balance_after: Number(row.balance_after),
  }));
}

/** Entries of one generation by type, e.g. { USAGE: [-12], REFUND: [12] }. */
export async function entryAmountsOf(generationGlobalId: string): Promise<Record<string, number[]>> {
  const rows = await sql().query<{ type: string; amount: bigint }>(
    "SELECT type, amount FROM ledger_entry WHERE generation_id = $1 ORDER BY sequence",
    [localIdOf(generationGlobalId)],
  );
  const byType: Record<string, number[]> = {};
  for (const row of rows) byType[row.type] = [...(byType[row.type] ?? []), Number(row.amount)];
  return byType;
}

/** Audits one account; returns the problems (empty when clean). */
export async function auditAccount(accountGlobalId: string): Promise<readonly string[]> {
  return (await auditLedger(sql(), localIdOf(accountGlobalId))).problems;
}

/** Polls `check` until it returns a value other than undefined, or fails after `timeoutMs`. */
export async function waitFor<T>(
  check: () => Promise<T | undefined>,
  timeoutMs: number,
  what: string,
  intervalMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** An ISO instant `ms` milliseconds from now. */
export function inMs(ms: number): string {
  return new Date(Date.now() + ms).toISOString();
}

/** Counts occurrences of each value. */
export function tally(values: readonly string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const value of values) counts[value] = (counts[value] ?? 0) + 1;
  return counts;
}
