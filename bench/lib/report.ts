/**
 * Results of a run: figures (what the report table shows), per-phase details
 * (what results.json keeps), and the Markdown report.
 */
import type { MachineFacts } from "./machine.ts";
import type { ProfileSummary } from "./profile.ts";

/** One row of the report table. */
export interface Figure {
  /** Stable key, e.g. "B1.cyclesPerSecond". */
  readonly id: string;
  readonly label: string;
  readonly value: number | null;
  readonly unit: string;
  /** The target as the report states it, e.g. "≥ 115% of B0 spread"; absent for informational figures. */
  readonly target?: string;
  /** value ÷ reference (the B0/B1 figure a relative target names, or the absolute target). */
  readonly ratio?: number | null;
  /** What the ratio divides by, e.g. "B0 spread", "target". */
  readonly ratioOf?: string;
  /** true / false against the target; null when informational or not measured. */
  readonly pass: boolean | null;
  readonly note?: string;
}

export interface PhaseRecord {
  readonly id: string;
  readonly title: string;
  readonly status: "ok" | "failed" | "skipped";
  readonly seconds: number;
  readonly error?: string;
  /** Free-form measurements kept in results.json. */
  readonly details: Record<string, unknown>;
  /** Sentences for the report: how this phase measured, what it saw. */
  readonly notes: string[];
}

export interface RunResults {
  readonly mode: "quick" | "full";
  readonly machine: MachineFacts;
  readonly database: string;
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly figures: Figure[];
  readonly phases: PhaseRecord[];
  readonly profile: ProfileSummary | null;
}

/** A figure checked against "value ≥ target" (higher is better). */
export function atLeast(
  base: Omit<Figure, "pass" | "ratio" | "ratioOf">,
  threshold: number,
  reference?: { value: number; of: string },
): Figure {
  if (base.value === null || !Number.isFinite(base.value)) return { ...base, pass: false, ratio: null };
  const ratio = reference === undefined ? base.value / threshold : base.value / reference.value;
  return { ...base, ratio, ratioOf: reference?.of ?? "target", pass: base.value >= threshold };
}

/** A figure checked against "value ≤ target" (lower is better). */
export function atMost(base: Omit<Figure, "pass" | "ratio" | "ratioOf">, threshold: number): Figure {
  if (base.value === null || !Number.isFinite(base.value)) return { ...base, pass: false, ratio: null };
  return {
    ...base,
    ratio: threshold === 0 ? null : base.value / threshold,
    ratioOf: "target",
    pass: base.value <= threshold,
  };
}

/** A count that must be exactly zero (errors, lost events, audit problems). */
export function zero(base: Omit<Figure, "pass" | "ratio" | "ratioOf" | "target">, target = "0"): Figure {
  return { ...base, target, pass: base.value === 0 };
}

/** A figure with no target. */
export function info(base: Omit<Figure, "pass">): Figure {
  return { ...base, pass: null };
}

function formatNumber(value: number | null, unit: string): string {
  if (value === null || !Number.isFinite(value)) return "—";
  const digits = Math.abs(value) >= 100 || Number.isInteger(value) ? 0 : Math.abs(value) >= 10 ? 1 : 2;
  const text = value.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: 0 });
  return unit === "" ? text : `${text} ${unit}`;
}

function formatRatio(figure: Figure): string {
  if (figure.ratio === undefined || figure.ratio === null || !Number.isFinite(figure.ratio)) return "";
  if (figure.ratioOf === "target") return `${figure.ratio.toFixed(2)}× target`;
  return `${(figure.ratio * 100).toFixed(0)}% of ${figure.ratioOf}`;
}

function verdict(figure: Figure): string {
  if (figure.pass === null) return "info";
  return figure.pass ? "**pass**" : "**FAIL**";
}

const cell = (text: string) => text.replace(/\|/g, "\\|");

/** An earlier run's figures, shown beside this run's (`npm run bench -- --compare`). */
export interface Previous {
  readonly figures: readonly Figure[];
  readonly startedAt: string;
  readonly commit: string;
  readonly mode: RunResults["mode"];
}

function change(figure: Figure, before: Figure | undefined): string {
  if (before === undefined) return "";
  const was = formatNumber(before.value, before.unit);
  if (figure.value === null || before.value === null || before.value === 0) return was;
  const percent = ((figure.value - before.value) / Math.abs(before.value)) * 100;
  return `${was} (${percent >= 0 ? "+" : ""}${percent.toFixed(0)}%)`;
}

/** The figures as a Markdown table, with an earlier run's value beside each when given. */
export function figuresTable(figures: readonly Figure[], previous?: Previous): string {
  const byId = new Map((previous?.figures ?? []).map((figure) => [figure.id, figure]));
  const head = previous === undefined ? "" : " previous |";
  const lines = [
    `| figure | value |${head} target | ratio | result |`,
    `| --- | ---: |${previous === undefined ? "" : " ---: |"} --- | --- | --- |`,
  ];
  for (const figure of figures) {
    const was = previous === undefined ? "" : ` ${change(figure, byId.get(figure.id))} |`;
    lines.push(
      `| ${cell(figure.label)}${figure.note === undefined ? "" : ` <br><sub>${cell(figure.note)}</sub>`} | ${formatNumber(figure.value, figure.unit)} |${was} ${cell(figure.target ?? "")} | ${formatRatio(figure)} | ${verdict(figure)} |`,
    );
  }
  return lines.join("\n");
}

/** Whether other work was loading the machine when the run started (more than a quarter busy, or load above the cores). */
export function isBusy(machine: MachineFacts): boolean {
  return (machine.busyBeforeRunPercent ?? 0) > 25 || (machine.loadAverageAtStart[0] ?? 0) > machine.cores;
}

/** The whole REPORT.md. */
export function renderReport(results: RunResults, previous?: Previous): string {
  const m = results.machine;
  const failed = results.figures.filter((figure) => figure.pass === false).length;
  const passed = results.figures.filter((figure) => figure.pass === true).length;
  const out: string[] = [];
  out.push(`# Creditbook benchmark report (${results.mode} mode)`);
  out.push("");
  out.push(
    `Run ${results.startedAt} → ${results.finishedAt} on database \`${results.database}\` (dropped after the run). ` +
      `${passed} figure(s) met their target, ${failed} did not. ` +
      (results.mode === "quick"
        ? "Quick mode uses small sizes and short windows: its figures are for development, not for judging the targets."
        : "Full mode: the sizes of SPEC §7."),
  );
  out.push("");
  if (isBusy(m)) {
    out.push(
      `> **Warning:** the machine was already busy before the run (${m.busyBeforeRunPercent ?? "?"}% CPU over 2 s, load average ${m.loadAverageAtStart.join(", ")} on ${m.cores} cores): other processes competed for the CPU, so throughput is understated and latencies overstated. Re-run on an idle machine before judging the targets.`,
    );
    out.push("");
  }
  out.push("## Machine");
  out.push("");
  out.push("| fact | value |");
  out.push("| --- | --- |");
  out.push(`| date | ${m.date} |`);
  out.push(`| CPU | ${cell(m.cpuModel)} |`);
  out.push(`| cores | ${m.cores} |`);
  out.push(`| RAM | ${m.ramGiB} GiB |`);
  out.push(`| Node.js | ${m.node} |`);
  out.push(
    `| PostgreSQL | ${m.postgres} (${Object.entries(m.postgresSettings)
      .map(([k, v]) => `${k}=${v}`)
      .join(", ")}) |`,
  );
  out.push(`| Redis | ${m.redis} |`);
  out.push(`| pgbench | ${m.pgbench} |`);
  out.push(`| commit | ${m.gitCommit} |`);
  out.push(`| load average at start | ${m.loadAverageAtStart.join(", ")} |`);
  out.push(`| CPU busy before the run (2 s, all cores) | ${m.busyBeforeRunPercent ?? "?"}% |`);
  const overrides = Object.entries(m.serverEnvOverrides);
  if (overrides.length > 0) {
    out.push(
      `| server environment overrides (BENCH_SERVER_ENV) | ${cell(overrides.map(([k, v]) => `${k}=${v}`).join(" "))} |`,
    );
  }
  out.push("");
  out.push("## Figures");
  out.push("");
  if (previous !== undefined) {
    out.push(
      `"previous" is the run of ${previous.startedAt} (${previous.mode} mode, commit ${previous.commit}), with this run's change from it.`,
    );
    out.push("");
  }
  out.push(figuresTable(results.figures, previous));
  out.push("");
  out.push(
    "Ratio: for a relative target, the value as a share of the figure it names; for an absolute target, value ÷ target (≤ 1 is good for a ceiling, ≥ 1 for a floor).",
  );
  out.push("");
  out.push("## Phases");
  out.push("");
  for (const phase of results.phases) {
    out.push(`### ${phase.id} — ${phase.title} (${phase.status}, ${phase.seconds.toFixed(1)} s)`);
    out.push("");
    if (phase.error !== undefined) {
      out.push("```");
      out.push(phase.error);
      out.push("```");
      out.push("");
    }
    for (const note of phase.notes) out.push(`- ${note}`);
    if (phase.notes.length > 0) out.push("");
  }
  if (results.profile !== null) {
    const p = results.profile;
    out.push("## Where the server's CPU goes (B1 load, `node --cpu-prof`)");
    out.push("");
    out.push(
      `Profile \`${p.file}\` (main thread), ${p.totalMs.toLocaleString("en-US")} ms of steady load sampled, ${p.busyMs.toLocaleString("en-US")} ms of it busy (${p.totalMs === 0 ? 0 : Math.round((p.busyMs / p.totalMs) * 100)}% of one core). Percentages are shares of the busy time; self time excludes callees.`,
    );
    out.push("");
    out.push("| busy time by package (native and Node-internal work charged to its caller) | ms | % |");
    out.push("| --- | ---: | ---: |");
    for (const line of p.byPackageAttributed) {
      out.push(`| ${cell(line.name)} | ${line.selfMs} | ${line.selfPercent} |`);
    }
    out.push("");
    out.push("| self time by package (strict) | ms | % |");
    out.push("| --- | ---: | ---: |");
    for (const line of p.byPackage) out.push(`| ${cell(line.name)} | ${line.selfMs} | ${line.selfPercent} |`);
    out.push("");
    out.push("| top functions by self time | where | ms | % |");
    out.push("| --- | --- | ---: | ---: |");
    for (const line of p.topFunctions) {
      out.push(`| ${cell(line.name)} | ${cell(line.where)} | ${line.selfMs} | ${line.selfPercent} |`);
    }
    out.push("");
  }
  return `${out.join("\n")}\n`;
}
