/**
 * The analytics cards: a daily chart of charged against refunded credits
 * (Chart.js), the range's figures by model and by member, and for admins the
 * operator report across every account, so an operator sees which provider
 * or model is failing. All follow the date range.
 */
import { BarController, BarElement, CategoryScale, Chart, Legend, LinearScale, Tooltip } from "chart.js";
import type {
  DashboardOperatorReportQuery,
  SpendingGroupFieldsFragment,
} from "../../src/generated/graphql/graphql.ts";
import { byId, el, show } from "./dom.ts";
import type { GraphQLClient } from "./graphql.ts";
import { reasonLabel } from "./model.ts";
import { insightsQuery, operatorReportQuery } from "./operations.ts";
import type { Range } from "./range.ts";

Chart.register(BarController, BarElement, CategoryScale, LinearScale, Legend, Tooltip);

type Group = SpendingGroupFieldsFragment;
type Report = DashboardOperatorReportQuery["operatorReport"];

const credits = (amount: number) => amount.toLocaleString("en-US");
const percent = new Intl.NumberFormat(undefined, { style: "percent", maximumFractionDigits: 1 });

/** A table of groups: key, charged, refunded, net, generations, failed. */
function groupTable(groups: readonly Group[], keyLabel: string, empty: string, none: string): HTMLElement {
  if (groups.length === 0) return el("p", { class: "empty" }, empty);
  const head = ["charged", "refunded", "net", "runs", "failed"];
  return el(
    "div",
    { class: "table-wrap" },
    el(
      "table",
      { class: "groups" },
      el(
        "thead",
        {},
        el("tr", {}, el("th", { scope: "col" }, keyLabel), ...head.map((h) => el("th", { scope: "col" }, h))),
      ),
      el(
        "tbody",
        {},
        ...groups.map((group) =>
          el(
            "tr",
            { "data-key": group.key ?? "" },
            el("td", {}, group.key ?? none),
            el("td", {}, credits(group.charged)),
            el("td", { class: "refunded" }, credits(group.refunded)),
            el("td", {}, credits(group.net)),
            el("td", {}, String(group.generations)),
            el("td", {}, String(group.failedGenerations)),
          ),
        ),
      ),
    ),
  );
}

/** The daily chart, redrawn in place when the figures change. */
class DailyChart {
  private chart: Chart<"bar"> | null = null;

  render(days: readonly Group[]): void {
    const canvas = byId<HTMLCanvasElement>("daily-chart");
    const labels = days.map((day) => day.key ?? "");
    const charged = days.map((day) => day.charged);
    const refunded = days.map((day) => day.refunded);
    canvas.dataset.days = String(days.length);
    canvas.dataset.charged = String(charged.reduce((a, b) => a + b, 0));
    canvas.dataset.refunded = String(refunded.reduce((a, b) => a + b, 0));
    show(byId("daily-empty"), days.length === 0);
    if (this.chart !== null) {
      this.chart.data.labels = labels;
      const [chargedSet, refundedSet] = this.chart.data.datasets;
      if (chargedSet !== undefined) chargedSet.data = charged;
      if (refundedSet !== undefined) refundedSet.data = refunded;
      this.chart.update();
      return;
    }
    this.chart = new Chart(canvas, {
      type: "bar",
      data: {
        labels,
        datasets: [
          { label: "Charged", data: charged, backgroundColor: "#0969da" },
          { label: "Refunded", data: refunded, backgroundColor: "#137333" },
        ],
      },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        scales: { y: { beginAtZero: true, ticks: { precision: 0 } } },
        plugins: { legend: { position: "bottom" } },
      },
    });
  }

  destroy(): void {
    this.chart?.destroy();
    this.chart = null;
  }
}

export class InsightsView {
  private readonly daily = new DailyChart();

  constructor(
    private readonly accountId: string,
    private readonly client: GraphQLClient,
    private readonly operator: boolean,
  ) {
    show(byId("operator"), operator);
  }

  close(): void {
    this.daily.destroy();
  }

  async refresh(range: Range): Promise<void> {
    const [insights] = await Promise.all([
      this.client.data(insightsQuery, { accountId: this.accountId, ...range }),
      this.operator ? this.refreshOperator(range) : undefined,
    ]);
    const spending = insights.spending;
    this.daily.render(spending.byDay);
    byId("by-model").replaceChildren(
      groupTable(spending.byModel, "model", "No generations in this range.", "no model"),
    );
    byId("by-member").replaceChildren(
      groupTable(spending.byMember, "member", "No generations in this range.", "no member"),
    );
  }

  private async refreshOperator(range: Range): Promise<void> {
    const report = (await this.client.data(operatorReportQuery, range)).operatorReport;
    renderOperator(report);
  }
}

function renderOperator(report: Report): void {
  const figure = (label: string, value: string, key: string) =>
    el("div", { "data-figure": key }, el("dt", {}, label), el("dd", {}, value));
  byId("operator-figures").replaceChildren(
    figure("Generations", String(report.generations), "generations"),
    figure("Failed", String(report.failedGenerations), "failed"),
    figure("Refund rate", percent.format(report.refundRate), "refund-rate"),
    figure("Overdue, still running", String(report.overdueInProgress), "overdue"),
  );
  byId("operator-reasons").replaceChildren(
    report.byReason.length === 0
      ? el("p", { class: "empty" }, "No refunds in this range.")
      : el(
          "ul",
          { class: "reasons" },
          ...report.byReason.map((row) =>
            el(
              "li",
              { "data-reason": row.reason },
              `${reasonLabel(row.reason)}: ${row.generations} generations, ${credits(row.refunded)} credits refunded`,
            ),
          ),
        ),
  );
  byId("operator-models").replaceChildren(
    groupTable(report.byModel, "model", "No generations in this range.", "no model"),
  );
  byId("operator-features").replaceChildren(
    groupTable(report.byFeature, "feature", "No generations in this range.", "no feature"),
  );
}
