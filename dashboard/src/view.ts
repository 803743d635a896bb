/**
 * Rendering: the balance card, the generations in progress, the spending
 * bars and the ledger feed. Functions here only turn data into DOM.
 */
import type { LedgerEntryType } from "../../src/generated/graphql/graphql.ts";
import { byId, el } from "./dom.ts";
import type { LiveState } from "./live.ts";
import {
  type Balance,
  durationUntil,
  type Entry,
  type Generation,
  reasonLabel,
  signedCredits,
} from "./model.ts";
import type { Spending } from "./operations.ts";

const credits = (amount: number) => amount.toLocaleString("en-US");
/** "1 credit", "12 credits". */
const creditsWord = (amount: number) => `${credits(amount)} ${Math.abs(amount) === 1 ? "credit" : "credits"}`;
const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const time = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });

export function renderBalance(balance: Balance): void {
  byId("available").textContent = credits(balance.available);
  byId("held").textContent = credits(balance.held);
  byId("total").textContent = credits(balance.total);
  byId("subscription").textContent = credits(balance.subscription);
  byId("wallet").textContent = credits(balance.wallet);
  // The split bar shows where available credits sit; an empty balance shows an empty bar.
  const sum = balance.subscription + balance.wallet;
  byId("split-subscription").style.width = `${sum === 0 ? 0 : (balance.subscription / sum) * 100}%`;
  byId("split-wallet").style.width = `${sum === 0 ? 0 : (balance.wallet / sum) * 100}%`;
  const expiry = byId("next-expiry");
  if (balance.nextExpiry === null) {
    expiry.replaceChildren("No credits expire.");
  } else {
    const at = new Date(balance.nextExpiry.at);
    expiry.replaceChildren(
      `${credits(balance.nextExpiry.amount)} subscription credits expire `,
      el("time", { datetime: balance.nextExpiry.at }, dateTime.format(at)),
      ".",
    );
  }
}

export function renderConnection(state: LiveState): void {
  const node = byId("connection");
  node.dataset.state = state.kind;
  switch (state.kind) {
    case "connecting":
      node.textContent = "Connecting…";
      break;
    case "live":
      node.textContent = "Live";
      break;
    case "reconnecting":
      node.textContent = `Reconnecting… (attempt ${state.attempt})`;
      break;
    case "unauthorized":
      node.textContent = "Signed out";
      break;
    case "stopped":
      node.textContent = "";
      break;
  }
}

/** Renders generations in progress, each with its deadline counting down from `nowMs`. */
export function renderInProgress(generations: readonly Generation[], nowMs: number): void {
  const list = byId("in-progress");
  byId("in-progress-empty").hidden = generations.length > 0;
  list.replaceChildren(
    ...generations.map((generation) => {
      const done = generation.items.filter((item) => item.status !== "IN_PROGRESS").length;
      return el(
        "li",
        { class: "generation", "data-generation": generation.id },
        el("span", { class: "generation__title" }, generation.feature),
        el(
          "span",
          { class: "generation__detail" },
          generation.quantity > 1
            ? `${generation.quantity} × ${credits(generation.unitCost)} credits · ${done} of ${generation.quantity} done`
            : `${credits(generation.unitCost)} credits`,
          generation.model === null ? "" : ` · ${generation.model}`,
        ),
        el(
          "span",
          { class: "generation__deadline" },
          "times out in ",
          el(
            "time",
            { datetime: generation.deadline, title: dateTime.format(new Date(generation.deadline)) },
            durationUntil(Date.parse(generation.deadline), nowMs),
          ),
        ),
        el(
          "span",
          { class: "generation__held" },
          `${credits(generation.reserved - settled(generation))} held`,
        ),
      );
    }),
  );
}

/** Credits of a generation no longer held: charged, refunded or released. */
function settled(generation: Generation): number {
  return generation.charged + generation.refunded + generation.released;
}

/** Updates the countdowns in place, so a tick does not rebuild the list. */
export function tickDeadlines(nowMs: number): void {
  for (const node of byId("in-progress").querySelectorAll("time[datetime]")) {
    node.textContent = durationUntil(Date.parse(node.getAttribute("datetime") ?? ""), nowMs);
  }
}

/** The per-feature chart; `undefined` while loading, `null` when the server cannot summarize spending. */
export function renderSpending(spending: Spending | null | undefined): void {
  const container = byId("spending");
  if (spending === undefined) {
    container.replaceChildren(el("p", { class: "empty" }, "Loading…"));
    return;
  }
  if (spending === null) {
    container.replaceChildren(
      el("p", { class: "empty" }, "Spending summaries are not available on this server yet."),
    );
    return;
  }
  const features = [...spending.byFeature].sort((a, b) => b.charged - a.charged);
  const largest = Math.max(1, ...features.map((f) => Math.max(f.charged, f.refunded)));
  container.replaceChildren(
    el(
      "p",
      { class: "spending__totals" },
      `Charged ${credits(spending.charged)} · refunded ${credits(spending.refunded)} · ${spending.generations} generations, ${spending.failedGenerations} failed`,
    ),
    features.length === 0
      ? el("p", { class: "empty" }, "No generations yet.")
      : el(
          "ul",
          { class: "bars" },
          ...features.map((feature) =>
            el(
              "li",
              { class: "bar", "data-feature": feature.feature },
              el("span", { class: "bar__label" }, feature.feature),
              el(
                "span",
                { class: "bar__track", "aria-hidden": "true" },
                fill("bar__fill", feature.charged / largest),
                fill("bar__fill bar__fill--refunded", feature.refunded / largest),
              ),
              el(
                "span",
                { class: "bar__value" },
                `${credits(feature.charged)} charged`,
                feature.refunded > 0 ? `, ${credits(feature.refunded)} refunded` : "",
              ),
            ),
          ),
        ),
  );
}

/** A bar segment; widths go through CSSOM because the page's CSP forbids inline style attributes. */
function fill(className: string, fraction: number): HTMLSpanElement {
  const node = el("span", { class: className });
  node.style.width = `${Math.max(0, Math.min(1, fraction)) * 100}%`;
  return node;
}

const TYPE_LABELS: Readonly<Record<LedgerEntryType, string>> = {
  GRANT: "Credits added",
  USAGE: "Usage",
  REFUND: "Refund",
  RELEASE: "Unused credits returned",
  EXPIRY: "Expired",
  ADJUSTMENT: "Adjustment",
};

const STATUS_LABELS = { PENDING: "Pending", COMPLETED: "Completed", FAILED: "Failed" } as const;

/** What happened, in words, for the line under an entry's title. */
function entryAction(entry: Entry): string {
  const amount = creditsWord(Math.abs(entry.amount));
  switch (entry.type) {
    case "REFUND":
      return `Refunded ${amount}${entry.reason === null ? "" : ` · ${reasonLabel(entry.reason)}`}`;
    case "USAGE":
      if (entry.status === "PENDING") return `${amount} held while it runs`;
      if (entry.status === "FAILED") return `Failed · ${amount} refunded`;
      return "Charged for delivered output";
    case "RELEASE":
      return `${amount} reserved but not needed`;
    case "GRANT":
      return `${amount} added`;
    case "EXPIRY":
      return `${amount} expired unused`;
    case "ADJUSTMENT":
      return `Adjusted by ${signedCredits(entry.amount)} credits`;
  }
}

/** One feed row; `fresh` marks an entry that arrived while the page was open. */
export function entryElement(entry: Entry, fresh: boolean): HTMLLIElement {
  const direction = entry.amount > 0 ? "plus" : entry.amount < 0 ? "minus" : "zero";
  return el(
    "li",
    {
      class: `entry entry--${entry.type.toLowerCase()}${fresh ? " entry--fresh" : ""}`,
      "data-sequence": entry.sequence,
      "data-type": entry.type,
      "data-status": entry.status,
      "data-generation": entry.generation?.id,
    },
    el(
      "div",
      { class: "entry__main" },
      el(
        "p",
        { class: "entry__title" },
        el("span", { class: "entry__name" }, entry.title),
        el("span", { class: "entry__type" }, TYPE_LABELS[entry.type]),
      ),
      el(
        "p",
        { class: "entry__action" },
        entryAction(entry),
        entry.message === null ? "" : el("span", { class: "entry__message" }, ` — ${entry.message}`),
      ),
      el(
        "p",
        { class: "entry__balance" },
        "Balance ",
        el("span", { class: "entry__before" }, credits(entry.balanceBefore)),
        " → ",
        el("span", { class: "entry__after" }, credits(entry.balanceAfter)),
      ),
    ),
    el(
      "div",
      { class: "entry__side" },
      el(
        "span",
        { class: `amount amount--${direction}` },
        signedCredits(entry.amount),
        el("span", { class: "visually-hidden" }, " credits"),
      ),
      el("span", { class: `status status--${entry.status.toLowerCase()}` }, STATUS_LABELS[entry.status]),
      el("time", { datetime: entry.createdAt, class: "entry__time" }, time.format(new Date(entry.createdAt))),
    ),
  );
}

/** The feed list, kept in sequence order with one row per entry. */
export class FeedView {
  private readonly list = byId<HTMLOListElement>("feed");
  private readonly rows = new Map<number, HTMLLIElement>();

  clear(): void {
    this.rows.clear();
    this.list.replaceChildren();
    this.updateEmpty();
  }

  /** Inserts or replaces the row of `entry` at its place (newest first). */
  put(entry: Entry, fresh: boolean): void {
    const existing = this.rows.get(entry.sequence);
    const row = entryElement(entry, fresh || (existing?.classList.contains("entry--fresh") ?? false));
    if (existing !== undefined) {
      existing.replaceWith(row);
    } else {
      const after = [...this.rows.entries()]
        .filter(([sequence]) => sequence < entry.sequence)
        .sort(([a], [b]) => b - a)[0];
      if (after === undefined) this.list.append(row);
      else after[1].before(row);
    }
    this.rows.set(entry.sequence, row);
    this.updateEmpty();
  }

  /** Removes rows the model no longer keeps. */
  keepOnly(sequences: ReadonlySet<number>): void {
    for (const [sequence, row] of this.rows) {
      if (sequences.has(sequence)) continue;
      row.remove();
      this.rows.delete(sequence);
    }
  }

  private updateEmpty(): void {
    byId("feed-empty").hidden = this.rows.size > 0;
  }
}

/** Says `message` to screen readers once. */
export function announce(message: string): void {
  byId("announcer").textContent = message;
}
