/**
 * One account on screen: its balance, feed, generations in progress and
 * spending, kept current by the live connection. After every (re)connect it
 * refetches what events could have been missed while offline; the ledger
 * feed itself resumes from its last sequence, so it never needs refetching.
 */
import { type GraphQLClient, isMissingField, RequestError, UnauthorizedError } from "./graphql.ts";
import { InsightsView } from "./insights.ts";
import { LiveAccount } from "./live.ts";
import {
  type Balance,
  type Entry,
  FEED_SIZE_MAX,
  Feed,
  type Generation,
  InProgress,
  newerBalance,
  reasonLabel,
  signedCredits,
  usageStatusOf,
} from "./model.ts";
import {
  balanceQuery,
  generationQuery,
  generationsInProgressQuery,
  IN_PROGRESS_LIST_MAX,
  ledgerPageQuery,
  spendingQuery,
} from "./operations.ts";
import type { Range } from "./range.ts";
import { SettingsView } from "./settings.ts";
import {
  announce,
  FeedView,
  renderBalance,
  renderConnection,
  renderInProgress,
  renderSpending,
  tickDeadlines,
} from "./view.ts";

export interface AccountViewOptions {
  readonly accountId: string;
  readonly client: GraphQLClient;
  /** The ws:// URL of /graphql. */
  readonly wsUrl: string;
  readonly token: () => string | null;
  /** The token was refused: the page goes back to sign-in. */
  readonly onUnauthorized: (message: string) => void;
  /** Something failed that the person should know about; null clears it. */
  readonly onError: (message: string | null) => void;
  /** The date range the spending figures cover. */
  readonly range: () => Range;
  /** Whether the token is an admin's: the operator report across accounts is shown. */
  readonly operator: boolean;
}

/** Entries a "Load more" asks for at once. */
const PAGE_SIZE = 50;
/** Pages read in one "Load more" while they hold only entries already shown. */
const PAGES_PER_CLICK_MAX = 5;

/** How long after the last event the spending chart and status lookups are refreshed. @default 400 // ms */
const SETTLE_DELAY_MS = 400;
/** Most generations looked up one by one in one pass. */
const LOOKUPS_MAX = 20;

export class AccountView {
  private readonly feed = new Feed(FEED_SIZE_MAX);
  private readonly inProgress = new InProgress();
  private readonly feedView = new FeedView();
  private balance: Balance | null = null;
  /** Entries after this sequence arrived while the page was open; they are highlighted. */
  private openedAtSequence = 0;
  private live: LiveAccount | null = null;
  /** Whether the server has the `generations` / `spending` queries; learnt from the first answer. */
  private hasGenerationsQuery = true;
  private hasSpendingQuery = true;
  private closed = false;
  private readonly debounced = new Map<string, ReturnType<typeof setTimeout>>();
  private tick: ReturnType<typeof setInterval> | null = null;
  private readonly settings: SettingsView;
  private readonly insights: InsightsView;
  /** Where the next "Load more" page starts; null: from the newest entry. */
  private pageCursor: string | null = null;
  private hasOlderPages = true;

  constructor(private readonly options: AccountViewOptions) {
    this.settings = new SettingsView(options.accountId, options.client, options.onError);
    this.insights = new InsightsView(options.accountId, options.client, options.operator);
  }

  /** Loads the balance, then goes live; false when the account is not visible. */
  async open(): Promise<boolean> {
    this.feedView.clear();
    renderInProgress([], Date.now());
    const data = await this.guard(() =>
      this.options.client.data(balanceQuery, { accountId: this.options.accountId }),
    );
    if (this.closed || data === undefined) return false;
    if (data.balance === null) {
      this.options.onError("That account does not exist or you are not a member of it.");
      return false;
    }
    this.setBalance(data.balance);
    this.openedAtSequence = data.balance.sequence;
    this.live = new LiveAccount({
      url: this.options.wsUrl,
      accountId: this.options.accountId,
      token: this.options.token,
      // First connect: replay the newest entries; every reconnect: continue after the last one shown.
      afterSequence: () =>
        this.feed.lastSequence > 0
          ? this.feed.lastSequence
          : Math.max(0, this.openedAtSequence - FEED_SIZE_MAX),
      onEntry: (entry) => this.addEntry(entry),
      onBalance: (balance) => this.setBalance(balance),
      onGeneration: (generation) => this.applyGeneration(generation),
      onConnected: () => void this.refresh(),
      onState: (state) => {
        renderConnection(state);
        if (state.kind === "unauthorized")
          this.options.onUnauthorized("Your session ended: the token expired or was refused.");
      },
      onError: (message) => this.options.onError(message),
    });
    this.live.start();
    this.tick = setInterval(() => tickDeadlines(Date.now()), 1_000);
    return true;
  }

  close(): void {
    this.closed = true;
    this.settings.close();
    this.insights.close();
    this.live?.stop();
    if (this.tick !== null) clearInterval(this.tick);
    for (const timer of this.debounced.values()) clearTimeout(timer);
  }

  private addEntry(received: Entry): void {
    // A generation can finish before its usage entry's event is read; its final status wins.
    const finished =
      received.generation === null ? undefined : this.inProgress.finishedStatus(received.generation.id);
    const entry =
      received.type === "USAGE" && finished !== undefined
        ? { ...received, status: usageStatusOf(finished) }
        : received;
    const isNew = this.feed.put(entry);
    if (!this.feed.has(entry.sequence)) return;
    const fresh = isNew && entry.sequence > this.openedAtSequence;
    this.feedView.put(entry, fresh);
    this.feedView.keepOnly(this.feed.sequences());
    if (fresh && entry.type === "REFUND") {
      const why = entry.reason === null ? "" : ` (${reasonLabel(entry.reason)})`;
      announce(`Refund ${signedCredits(entry.amount)} credits for ${entry.title}${why}`);
    }
    if (entry.type === "USAGE" && entry.status === "PENDING" && entry.generation !== null) {
      if (!this.inProgress.has(entry.generation.id)) this.later("lookup", () => void this.lookupPending());
    }
    if (isNew && (entry.type === "USAGE" || entry.type === "REFUND" || entry.type === "RELEASE")) {
      this.later("spending", () => void this.refreshSpending());
    }
  }

  private setBalance(balance: Balance): void {
    if (this.closed) return;
    this.balance = newerBalance(this.balance, balance);
    renderBalance(this.balance);
  }

  private applyGeneration(generation: Generation): void {
    if (this.closed) return;
    if (this.inProgress.apply(generation)) renderInProgress(this.inProgress.list(), Date.now());
    for (const entry of this.feed.applyGeneration(generation)) this.feedView.put(entry, false);
  }

  /** After a (re)connect: whatever changed while no events could arrive. */
  private async refresh(): Promise<void> {
    await Promise.all([
      this.refreshBalance(),
      this.refreshInProgress(),
      this.refreshSpending(),
      this.guard(() => this.settings.refresh()),
    ]);
  }

  /** The figures that depend on the date range, again (the range changed). */
  async rangeChanged(): Promise<void> {
    await this.refreshSpending();
  }

  private refreshInsights(): Promise<void | undefined> {
    return this.guard(() => this.insights.refresh(this.options.range()));
  }

  /**
   * Older entries below the feed, a page at a time (newest first). Pages
   * holding only entries already shown (the live replay's) are skipped.
   * Answers whether older entries remain.
   */
  async loadMore(): Promise<boolean> {
    for (let page = 0; page < PAGES_PER_CLICK_MAX && this.hasOlderPages; page += 1) {
      const data = await this.guard(() =>
        this.options.client.data(ledgerPageQuery, {
          accountId: this.options.accountId,
          first: PAGE_SIZE,
          after: this.pageCursor,
        }),
      );
      if (data === undefined) break;
      this.feed.grow(data.ledger.edges.length);
      let added = 0;
      for (const { node } of data.ledger.edges) {
        if (!this.feed.put(node)) continue;
        this.feedView.put(node, false);
        added += 1;
      }
      this.pageCursor = data.ledger.pageInfo.endCursor ?? null;
      this.hasOlderPages = data.ledger.pageInfo.hasNextPage;
      if (added > 0) break;
    }
    return this.hasOlderPages;
  }

  private async refreshBalance(): Promise<void> {
    const data = await this.guard(() =>
      this.options.client.data(balanceQuery, { accountId: this.options.accountId }),
    );
    if (data?.balance != null) this.setBalance(data.balance);
  }

  /**
   * Lists generations in progress. Those the page showed as running but the
   * answer leaves out finished while the page was offline: they are looked
   * up one by one to learn how they ended.
   */
  private async refreshInProgress(): Promise<void> {
    let running: Set<string> | null = null;
    if (this.hasGenerationsQuery) {
      const result = await this.guard(() =>
        this.options.client.request(generationsInProgressQuery, {
          accountId: this.options.accountId,
          first: IN_PROGRESS_LIST_MAX,
        }),
      );
      if (result === undefined) return;
      if (isMissingField(result.errors, "generations")) {
        this.hasGenerationsQuery = false;
      } else if (result.data == null) {
        this.options.onError(result.errors?.[0]?.message ?? "Could not list generations in progress");
        return;
      } else {
        const nodes = result.data.generations.edges.map((edge) => edge.node);
        for (const generation of nodes) this.applyGeneration(generation);
        running = new Set(nodes.map((generation) => generation.id));
      }
    }
    const known = running;
    const stale = [...new Set([...this.inProgress.ids(), ...this.feed.pendingGenerationIds()])].filter(
      (id) => known === null || !known.has(id),
    );
    await this.lookup(stale);
  }

  /** Usage entries shown as pending whose generation the page does not know yet. */
  private async lookupPending(): Promise<void> {
    await this.lookup(this.feed.pendingGenerationIds().filter((id) => !this.inProgress.has(id)));
  }

  private async lookup(ids: readonly string[]): Promise<void> {
    const answers = await Promise.all(
      ids
        .slice(0, LOOKUPS_MAX)
        .map((id) => this.guard(() => this.options.client.data(generationQuery, { id }))),
    );
    for (const answer of answers) {
      if (answer?.generation != null) this.applyGeneration(answer.generation);
    }
  }

  private async refreshSpending(): Promise<void> {
    if (!this.hasSpendingQuery) return;
    const result = await this.guard(() =>
      this.options.client.request(spendingQuery, {
        accountId: this.options.accountId,
        ...this.options.range(),
      }),
    );
    if (result === undefined || this.closed) return;
    if (isMissingField(result.errors, "spending")) {
      this.hasSpendingQuery = false;
      renderSpending(null);
    } else if (result.data != null) {
      renderSpending(result.data.spending);
      await this.refreshInsights();
    } else {
      this.options.onError(result.errors?.[0]?.message ?? "Could not load spending");
    }
  }

  /** Runs `work` once, `SETTLE_DELAY_MS` after the last call with the same name. */
  private later(name: "spending" | "lookup", work: () => void): void {
    clearTimeout(this.debounced.get(name));
    this.debounced.set(
      name,
      setTimeout(() => {
        this.debounced.delete(name);
        if (!this.closed) work();
      }, SETTLE_DELAY_MS),
    );
  }

  /** Runs a request; a refused token signs out, other failures are shown. Undefined when it failed or the view closed. */
  private async guard<T>(request: () => Promise<T>): Promise<T | undefined> {
    try {
      const value = await request();
      return this.closed ? undefined : value;
    } catch (error) {
      if (this.closed) return undefined;
      if (error instanceof UnauthorizedError) {
        this.options.onUnauthorized("Your session ended: the token expired or was refused.");
      } else if (error instanceof RequestError) {
        this.options.onError(error.message);
      } else {
        throw error;
      }
      return undefined;
    }
  }
}
