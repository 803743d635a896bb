import { randomUUID } from "node:crypto";
import type { Database, Sql } from "../db/database.ts";
import { loadBalance } from "./balance.ts";
import type { Credits } from "./credits.ts";
import { type DomainError, IdempotencyKeyReusedError, InvalidInputError, NotFoundError } from "./errors.ts";
import {
  type CommittedBatch,
  Executor,
  type ExecutorOptions,
  type Operation,
  type Outcome,
  type Success,
} from "./executor.ts";
import { adjustBalance, grantCredits } from "./grants.ts";
import { type IdempotencyRequest, requestHash } from "./idempotency.ts";
import type { AccountKind, GrantSource, MemberRole, RefundReason } from "./model.ts";
import { holdAmount, pricedUnitCost } from "./prices.ts";
import { reserveGeneration } from "./reserve.ts";
import { refundGeneration, settleGeneration, supportRefund } from "./settle.ts";
import { settleItems } from "./settle-items.ts";
import {
  type Check,
  QUANTITY_MAX,
  TIMEOUT_SECONDS_DEFAULT,
  TIMEOUT_SECONDS_MAX,
  validate,
} from "./validate.ts";

/** Who asks: the token's subject. Idempotency keys are scoped by it. */
export type Principal = string;

export interface CreateAccountInput {
  readonly idempotencyKey: string;
  readonly kind: AccountKind;
  readonly name: string;
  readonly ownerId: string;
}
export interface GrantInput {
  readonly idempotencyKey: string;
  readonly accountId: string;
  readonly source: GrantSource;
  readonly amount: Credits | number;
  readonly expiresAt?: Date | null;
  readonly reference?: string | null;
  readonly title?: string | null;
}
export interface ReserveRequest {
  readonly idempotencyKey: string;
  readonly accountId: string;
  readonly requestedBy?: string | null;
  readonly feature: string;
  readonly model?: string | null;
  /** Omitted: the rate card's current price (prices.ts). */
  readonly unitCost?: Credits | number | null;
  readonly quantity?: number | null;
  readonly timeoutSeconds?: number | null;
  readonly boardId?: string | null;
  readonly metadata?: unknown;
}
export interface ItemOutcomeRequest {
  readonly index: number;
  readonly succeeded: boolean;
  readonly cost?: Credits | number | null;
  readonly reason?: RefundReason | null;
  readonly message?: string | null;
}
export interface SettleRequest {
  readonly idempotencyKey: string;
  readonly generationId: string;
  readonly items?: readonly ItemOutcomeRequest[] | null;
}
export interface RefundRequest {
  readonly idempotencyKey: string;
  readonly generationId: string;
  readonly reason: RefundReason;
  readonly message?: string | null;
}
export interface CancelRequest {
  readonly idempotencyKey: string;
  readonly generationId: string;
}
export interface SupportRefundRequest {
  readonly idempotencyKey: string;
  readonly generationId: string;
  readonly amount: Credits | number;
  readonly reason: RefundReason;
  readonly note?: string | null;
}
export interface AdjustRequest {
  readonly idempotencyKey: string;
  readonly accountId: string;
  readonly amount: Credits | number;
  readonly note: string;
}

export { SETTLE_ITEMS_MAX } from "./settle-items.ts";

export type Result<T> = Outcome<T> | { readonly ok: false; readonly error: DomainError };

/** An operation refused before it ran (input, a missing generation or board). */
export type Failure = { readonly ok: false; readonly error: DomainError };

const fail = (error: DomainError): Failure => ({ ok: false as const, error });

/** A validated reserve, ready to run (see Ledger.prepareReserve). */
export interface PreparedReserve {
  readonly operation: Operation<{ generationId: string } | DomainError>;
  readonly generationId: string;
  readonly owner: GenerationOwner;
}

/** The immutable facts of a generation that authorization and routing need. */
export interface GenerationOwner {
  readonly accountId: string;
  readonly requestedBy: string | null;
}

/**
 * The ledger's operations: validate input, route each money operation to its
 * account's transaction (group commit, see Executor), and return typed
 * outcomes. Knows nothing of GraphQL or HTTP.
 */
export class Ledger {
  readonly executor: Executor;
  private readonly owners = new Map<string, GenerationOwner>();
  private readonly clock: () => Date;
  private readonly idempotencyTtlHours: number;

  constructor(
    private readonly db: Database,
    options: ExecutorOptions = {},
  ) {
    this.executor = new Executor(db, options);
    this.clock = options.clock ?? (() => new Date());
    this.idempotencyTtlHours = options.idempotencyTtlHours ?? 24;
  }

  /**
   * The account and requester of a generation. Both never change, so they are
   * cached (bounded) to keep settle/refund at one transaction.
   */
  async generationOwner(generationId: string): Promise<GenerationOwner | null> {
    const cached = this.owners.get(generationId);
    if (cached !== undefined) return cached;
    const rows = await this.db.query<{ account_id: string; requested_by: string | null }>(
      "SELECT account_id, requested_by FROM generation WHERE id = $1",
      [generationId],
    );
    const row = rows[0];
    if (row === undefined) return null;
    const owner = { accountId: row.account_id, requestedBy: row.requested_by };
    this.rememberOwner(generationId, owner);
    return owner;
  }

  private idempotency(
    principal: Principal,
    operation: string,
    key: string,
    input: object,
  ): IdempotencyRequest {
    return { principal, key, requestHash: requestHash({ operation, ...input, idempotencyKey: undefined }) };
  }

  /**
   * Creates an account with its owner as first member. Idempotent without an
   * account lock: the idempotency row is inserted first, so a concurrent
   * duplicate waits on it and then reads the stored answer.
   */
  async createAccount(
    principal: Principal,
    input: CreateAccountInput,
  ): Promise<Result<{ accountId: string }>> {
    const checked = validate((c) => ({
      key: c.idempotencyKey("idempotencyKey", input.idempotencyKey),
      name: c.requiredText("name", input.name),
      ownerId: c.requiredText("ownerId", input.ownerId),
    }));
    if (checked instanceof InvalidInputError) return fail(checked);
    const request = this.idempotency(principal, "createAccount", checked.key, input);
    const accountId = randomUUID();
    const now = this.clock();
    return this.db.transaction({ isolation: "READ COMMITTED", timeoutMs: 10_000 }, async (tx) => {
      const inserted = await tx.query<{ key: string }>(
        `INSERT INTO idempotency_record (principal, operation, key, request_hash, account_id, result, created_at, expires_at)
         VALUES ($1, 'createAccount', $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING RETURNING key`,
        [
          principal,
          checked.key,
          request.requestHash,
          accountId,
          JSON.stringify({ accountId }),
          now,
          new Date(now.getTime() + this.idempotencyTtlHours * 3_600_000),
        ],
      );
      if (inserted.length === 0) {
        const [stored] = await tx.query<{ request_hash: string; result: { accountId: string } }>(
          `SELECT request_hash, result FROM idempotency_record WHERE principal = $1 AND operation = 'createAccount' AND key = $2`,
          [principal, checked.key],
        );
        if (stored === undefined)
          throw new Error("the conflicting idempotency record is visible after the conflict");
        if (stored.request_hash !== request.requestHash)
          return fail(new IdempotencyKeyReusedError("createAccount"));
        return {
          ok: true as const,
          value: stored.result,
          replayed: true,
          balance: await this.balanceIn(tx, stored.result.accountId),
        };
      }
      await tx.query(
        `INSERT INTO account (id, kind, name, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)`,
        [accountId, input.kind, checked.name, now],
      );
      await tx.query(
        `INSERT INTO account_member (account_id, user_id, role, created_at) VALUES ($1, $2, 'OWNER', $3)`,
        [accountId, checked.ownerId, now],
      );
      return {
        ok: true as const,
        value: { accountId },
        replayed: false,
        balance: await this.balanceIn(tx, accountId),
      };
    });
  }

  private async balanceIn(tx: Sql, accountId: string) {
    const balance = await loadBalance(tx, accountId, this.clock());
    if (balance === null) throw new Error(`account ${accountId} exists after it was created`);
    return balance;
  }

  /** Adds a member or changes their role (upsert). */
  async addAccountMember(input: {
    accountId: string;
    userId: string;
    role: MemberRole;
  }): Promise<{ ok: true } | { ok: false; error: DomainError }> {
    const checked = validate((c) => c.requiredText("userId", input.userId));
    if (checked instanceof InvalidInputError) return fail(checked);
    const rows = await this.db.query<{ account_id: string }>(
      `INSERT INTO account_member (account_id, user_id, role)
       SELECT id, $2, $3::"MemberRole" FROM account WHERE id = $1
       ON CONFLICT (account_id, user_id) DO UPDATE SET role = EXCLUDED.role
       RETURNING account_id`,
      [input.accountId, checked, input.role],
    );
    return rows.length === 0 ? fail(new NotFoundError("Account")) : { ok: true };
  }

  /**
   * Removes a member from an account; a user who is no member is left as
   * they are, so a retried removal answers the same. NotFound when the
   * account does not exist. Their access ends with it: callers announce the
   * removal so open subscriptions close (revocations.ts).
   */
  async removeAccountMember(input: {
    accountId: string;
    userId: string;
  }): Promise<{ ok: true } | { ok: false; error: DomainError }> {
    const checked = validate((c) => c.requiredText("userId", input.userId));
    if (checked instanceof InvalidInputError) return fail(checked);
    const rows = await this.db.query<{ account: boolean }>(
      `WITH removed AS (DELETE FROM account_member WHERE account_id = $1 AND user_id = $2 RETURNING 1)
       SELECT EXISTS (SELECT 1 FROM account WHERE id = $1) AS account, (SELECT count(*) FROM removed) AS removed`,
      [input.accountId, checked],
    );
    return rows[0]?.account === true ? { ok: true } : fail(new NotFoundError("Account"));
  }

  async grantCredits(principal: Principal, input: GrantInput): Promise<Result<{ grantId: string }>> {
    const checked = validate((c) => ({
      key: c.idempotencyKey("idempotencyKey", input.idempotencyKey),
      amount: c.positiveCredits("amount", input.amount),
      // Whether it is still in the future is decided in the transaction, after the
      // idempotency check: a retry of a stored grant is answered even once it has expired.
      expiresAt: input.expiresAt == null ? null : c.validDate("expiresAt", input.expiresAt),
      reference: c.optionalText("reference", input.reference),
      title: c.optionalText("title", input.title),
    }));
    if (checked instanceof InvalidInputError) return fail(checked);
    const { key, ...grant } = checked;
    return this.executor.run({
      operation: "grantCredits",
      accountId: input.accountId,
      generationIds: [],
      actor: principal,
      idempotency: this.idempotency(principal, "grantCredits", key, input),
      apply: (book) => grantCredits(book, { accountId: input.accountId, source: input.source, ...grant }),
    });
  }

  async adjustBalance(principal: Principal, input: AdjustRequest): Promise<Result<{ entryId: string }>> {
    const checked = validate((c) => ({
      key: c.idempotencyKey("idempotencyKey", input.idempotencyKey),
      amount: c.nonZeroCredits("amount", input.amount),
      note: c.requiredText("note", input.note),
    }));
    if (checked instanceof InvalidInputError) return fail(checked);
    return this.executor.run({
      operation: "adjustBalance",
      accountId: input.accountId,
      generationIds: [],
      actor: principal,
      idempotency: this.idempotency(principal, "adjustBalance", checked.key, input),
      apply: (book) =>
        adjustBalance(book, { accountId: input.accountId, amount: checked.amount, note: checked.note }),
    });
  }

  /** Checks that a board exists on the account (boards never move between accounts). */
  private async boardOnAccount(boardId: string, accountId: string): Promise<boolean> {
    const rows = await this.db.query<{ account_id: string }>("SELECT account_id FROM board WHERE id = $1", [
      boardId,
    ]);
    return rows[0]?.account_id === accountId;
  }

  async reserveGeneration(
    principal: Principal,
    input: ReserveRequest,
  ): Promise<Result<{ generationId: string }>> {
    const prepared = await this.prepareReserve(principal, input);
    if (!("operation" in prepared)) return prepared;
    if (input.boardId != null && !(await this.boardOnAccount(input.boardId, input.accountId))) {
      return fail(new NotFoundError("Board"));
    }
    const result = await this.executor.run(prepared.operation);
    this.reserved(prepared, result);
    return result;
  }

  /**
   * Validates a reserve and builds its operation, without running it (a
   * bulk request runs many together). The board is checked by the caller.
   */
  async prepareReserve(principal: Principal, input: ReserveRequest): Promise<PreparedReserve | Failure> {
    const checked = validate((c: Check) => ({
      key: c.idempotencyKey("idempotencyKey", input.idempotencyKey),
      requestedBy: c.optionalText("requestedBy", input.requestedBy),
      feature: c.requiredText("feature", input.feature),
      model: c.optionalText("model", input.model),
      unitCost: input.unitCost == null ? null : c.positiveCredits("unitCost", input.unitCost),
      quantity: c.integer("quantity", input.quantity ?? 1, 1, QUANTITY_MAX),
      timeoutSeconds: c.integer(
        "timeoutSeconds",
        input.timeoutSeconds ?? TIMEOUT_SECONDS_DEFAULT,
        1,
        TIMEOUT_SECONDS_MAX,
      ),
      metadata: c.metadata("metadata", input.metadata),
    }));
    if (checked instanceof InvalidInputError) return fail(checked);
    const unitCost = await pricedUnitCost(this.db, checked.feature, checked.model, checked.unitCost);
    if (unitCost instanceof InvalidInputError) return fail(unitCost);
    // The hold is an amount the API reports (reserved, InsufficientCreditsError.required), so
    // it must be a safe integer too, not only each factor.
    const reserved = holdAmount(unitCost, checked.quantity);
    if (reserved instanceof InvalidInputError) return fail(reserved);
    const generationId = randomUUID();
    const owner = { accountId: input.accountId, requestedBy: checked.requestedBy };
    const operation: Operation<{ generationId: string } | DomainError> = {
      operation: "reserveGeneration",
      accountId: input.accountId,
      generationIds: [],
      actor: principal,
      idempotency: this.idempotency(principal, "reserveGeneration", checked.key, input),
      capMember: checked.requestedBy,
      apply: (book) =>
        reserveGeneration(book, {
          generationId,
          accountId: input.accountId,
          requestedBy: checked.requestedBy,
          feature: checked.feature,
          model: checked.model,
          unitCost,
          quantity: checked.quantity,
          timeoutSeconds: checked.timeoutSeconds,
          boardId: input.boardId ?? null,
          metadata: checked.metadata,
        }),
    };
    return { operation, generationId, owner };
  }

  /** Remembers the owner of a generation a prepared reserve created (not of a replay). */
  reserved(prepared: PreparedReserve, result: Result<{ generationId: string }>): void {
    if (result.ok && !result.replayed) this.rememberOwner(prepared.generationId, prepared.owner);
  }

  private rememberOwner(generationId: string, owner: GenerationOwner): void {
    if (this.owners.size >= 100_000) this.owners.clear();
    this.owners.set(generationId, owner);
  }

  /**
   * The owners of many generations, from the cache and one query for the
   * rest; a generation that does not exist is absent.
   */
  async generationOwners(generationIds: readonly string[]): Promise<Map<string, GenerationOwner>> {
    const found = new Map<string, GenerationOwner>();
    const missing: string[] = [];
    for (const id of new Set(generationIds)) {
      const cached = this.owners.get(id);
      if (cached === undefined) missing.push(id);
      else found.set(id, cached);
    }
    if (missing.length === 0) return found;
    const rows = await this.db.query<{ id: string; account_id: string; requested_by: string | null }>(
      "SELECT id, account_id, requested_by FROM generation WHERE id = ANY($1::uuid[])",
      [missing],
    );
    for (const row of rows) {
      const owner = { accountId: row.account_id, requestedBy: row.requested_by };
      this.rememberOwner(row.id, owner);
      found.set(row.id, owner);
    }
    return found;
  }

  /** The account of each board that exists, in one query (boards never move between accounts). */
  async boardAccounts(boardIds: readonly string[]): Promise<Map<string, string>> {
    if (boardIds.length === 0) return new Map();
    const rows = await this.db.query<{ id: string; account_id: string }>(
      "SELECT id, account_id FROM board WHERE id = ANY($1::uuid[])",
      [[...new Set(boardIds)]],
    );
    return new Map(rows.map((row) => [row.id, row.account_id]));
  }

  /** Runs an operation on the account that owns a generation. */
  private async onGeneration<T>(
    generationId: string,
    build: (owner: GenerationOwner) => Omit<Operation<T>, "accountId" | "generationIds">,
  ): Promise<Result<Success<T>>> {
    const owner = await this.generationOwner(generationId);
    if (owner === null) return fail(new NotFoundError("Generation"));
    return this.executor.run({ ...build(owner), accountId: owner.accountId, generationIds: [generationId] });
  }

  async settleGeneration(
    principal: Principal,
    input: SettleRequest,
  ): Promise<Result<{ generationId: string }>> {
    const prepared = this.prepareSettle(principal, input);
    if (typeof prepared !== "function") return prepared;
    const owner = await this.generationOwner(input.generationId);
    if (owner === null) return fail(new NotFoundError("Generation"));
    return this.executor.run(prepared(owner));
  }

  /**
   * Validates a settle and returns the builder of its operation, which
   * needs the generation's owner (a bulk request looks owners up together).
   */
  prepareSettle(
    principal: Principal,
    input: SettleRequest,
  ): ((owner: GenerationOwner) => Operation<{ generationId: string } | DomainError>) | Failure {
    const checked = validate((c) => {
      const key = c.idempotencyKey("idempotencyKey", input.idempotencyKey);
      if (input.items == null) return { key, items: null };
      return { key, items: settleItems(c, input.items) };
    });
    if (checked instanceof InvalidInputError) return fail(checked);
    return (owner) => ({
      operation: "settleGeneration",
      accountId: owner.accountId,
      generationIds: [input.generationId],
      actor: principal,
      idempotency: this.idempotency(principal, "settleGeneration", checked.key, input),
      apply: (book) => {
        const generation = book.generation(input.generationId);
        // An omitted cost means the item's reserved cost, known once the generation is loaded.
        const items =
          checked.items?.map((item) =>
            item.succeeded && item.cost === -1n && generation !== undefined
              ? { ...item, cost: generation.unitCost }
              : item,
          ) ?? null;
        return settleGeneration(book, { generationId: input.generationId, items });
      },
    });
  }

  async refundGeneration(
    principal: Principal,
    input: RefundRequest,
  ): Promise<Result<{ generationId: string }>> {
    const checked = validate((c) => ({
      key: c.idempotencyKey("idempotencyKey", input.idempotencyKey),
      message: c.optionalText("message", input.message),
    }));
    if (checked instanceof InvalidInputError) return fail(checked);
    return this.onGeneration(input.generationId, () => ({
      operation: "refundGeneration",
      actor: principal,
      idempotency: this.idempotency(principal, "refundGeneration", checked.key, input),
      apply: (book) =>
        refundGeneration(book, {
          generationId: input.generationId,
          reason: input.reason,
          message: checked.message,
        }),
    }));
  }

  async cancelGeneration(
    principal: Principal,
    input: CancelRequest,
  ): Promise<Result<{ generationId: string }>> {
    const checked = validate((c) => c.idempotencyKey("idempotencyKey", input.idempotencyKey));
    if (checked instanceof InvalidInputError) return fail(checked);
    return this.onGeneration(input.generationId, () => ({
      operation: "cancelGeneration",
      actor: principal,
      idempotency: this.idempotency(principal, "cancelGeneration", checked, input),
      apply: (book) =>
        refundGeneration(book, {
          generationId: input.generationId,
          reason: "CANCELLED",
          message: `Cancelled by ${principal}`,
        }),
    }));
  }

  async supportRefund(
    principal: Principal,
    input: SupportRefundRequest,
  ): Promise<Result<{ generationId: string }>> {
    const checked = validate((c) => ({
      key: c.idempotencyKey("idempotencyKey", input.idempotencyKey),
      amount: c.positiveCredits("amount", input.amount),
      note: c.optionalText("note", input.note),
    }));
    if (checked instanceof InvalidInputError) return fail(checked);
    return this.onGeneration(input.generationId, () => ({
      operation: "supportRefund",
      actor: principal,
      idempotency: this.idempotency(principal, "supportRefund", checked.key, input),
      apply: (book) =>
        supportRefund(book, {
          generationId: input.generationId,
          amount: checked.amount,
          reason: input.reason,
          note: checked.note,
        }),
    }));
  }

  /** Stops taking new work once the queued operations are done (graceful shutdown). */
  drained(): Promise<void> {
    return this.executor.drained();
  }
}

export type { CommittedBatch };
