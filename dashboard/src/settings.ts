/**
 * The account's controls: every member's spend cap with what is left, and the
 * low-balance alert, which service and admin tokens and the account's OWNER
 * may set or clear (the server decides; a refusal is shown as it comes).
 */
import type { DashboardAccountSettingsQuery } from "../../src/generated/graphql/graphql.ts";
import { byId, el, show } from "./dom.ts";
import type { GraphQLClient } from "./graphql.ts";
import { accountSettingsQuery, clearBalanceAlertMutation, setBalanceAlertMutation } from "./operations.ts";

type Settings = NonNullable<DashboardAccountSettingsQuery["account"]>;
type Cap = Settings["spendCaps"][number];

const credits = (amount: number) => amount.toLocaleString("en-US");
const day = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

/** One cap row: who, the period, a bar of what is spent, and when it resets. */
function capElement(cap: Cap): HTMLLIElement {
  const used = cap.amount === 0 ? 1 : Math.min(1, cap.spent / cap.amount);
  const bar = el("span", { class: "cap__fill" });
  bar.style.width = `${used * 100}%`;
  return el(
    "li",
    {
      class: `cap${cap.remaining === 0 ? " cap--spent" : ""}`,
      "data-member": cap.memberId,
      "data-period": cap.period,
    },
    el("span", { class: "cap__member" }, cap.memberId),
    el("span", { class: "cap__period" }, cap.period === "DAY" ? "per day" : "per month"),
    el("span", { class: "cap__track", "aria-hidden": "true" }, bar),
    el(
      "span",
      { class: "cap__left" },
      `${credits(cap.remaining)} of ${credits(cap.amount)} left`,
      el("span", { class: "muted" }, ` · resets ${day.format(new Date(cap.resetsAt))}`),
    ),
  );
}

export function renderCaps(caps: readonly Cap[]): void {
  byId("caps").replaceChildren(...caps.map(capElement));
  show(byId("caps-empty"), caps.length === 0);
}

export function renderAlert(alert: Settings["balanceAlert"]): void {
  const status = byId("alert-status");
  if (alert === null) {
    status.textContent = "No alert is set.";
    status.dataset.state = "none";
  } else {
    status.textContent = alert.triggered
      ? `Below ${credits(alert.threshold)} credits now: the alert has fired.`
      : `Alerts when available credits fall below ${credits(alert.threshold)}.`;
    status.dataset.state = alert.triggered ? "triggered" : "armed";
    byId<HTMLInputElement>("alert-threshold").value = String(alert.threshold);
  }
  show(byId("alert-clear"), alert !== null);
}

/** Loads and shows the settings card, and wires its form for one account. */
export class SettingsView {
  private readonly abort = new AbortController();

  constructor(
    private readonly accountId: string,
    private readonly client: GraphQLClient,
    private readonly onError: (message: string | null) => void,
  ) {
    const { signal } = this.abort;
    byId<HTMLFormElement>("alert-form").addEventListener(
      "submit",
      (event) => {
        event.preventDefault();
        void this.setAlert(Number(byId<HTMLInputElement>("alert-threshold").value));
      },
      { signal },
    );
    byId("alert-clear").addEventListener("click", () => void this.clearAlert(), { signal });
  }

  close(): void {
    this.abort.abort();
  }

  async refresh(): Promise<void> {
    const result = await this.client.request(accountSettingsQuery, { accountId: this.accountId });
    const account = result.data?.account;
    if (account == null) return;
    renderCaps(account.spendCaps);
    renderAlert(account.balanceAlert);
  }

  private async setAlert(threshold: number): Promise<void> {
    if (!Number.isSafeInteger(threshold) || threshold < 0) {
      this.onError("The alert threshold is a whole number of credits, 0 or more.");
      return;
    }
    const answer = (
      await this.client.data(setBalanceAlertMutation, { input: { accountId: this.accountId, threshold } })
    ).setBalanceAlert;
    if (answer.__typename === "SetBalanceAlertSuccess") renderAlert(answer.account.balanceAlert);
    else this.onError("message" in answer ? answer.message : "The alert could not be set.");
  }

  private async clearAlert(): Promise<void> {
    const answer = (
      await this.client.data(clearBalanceAlertMutation, { input: { accountId: this.accountId } })
    ).clearBalanceAlert;
    if (answer.__typename === "ClearBalanceAlertSuccess") renderAlert(answer.account.balanceAlert);
    else this.onError("message" in answer ? answer.message : "The alert could not be cleared.");
  }
}
