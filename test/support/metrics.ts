/** Reading /metrics in tests: the token test servers use, and a parser of the Prometheus text format. */
import { expect } from "vitest";

/** The METRICS_TOKEN of test servers that scrape /metrics (`startServer({ metricsToken })`). */
export const METRICS_TEST_TOKEN = "creditbook-metrics-test-token-0123";

/** One scrape: `name{label="value",…}` (labels sorted) → value. */
export type Scrape = ReadonlyMap<string, number>;

export function seriesKey(name: string, labels: Record<string, string> = {}): string {
  const pairs = Object.entries(labels)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([label, value]) => `${label}="${value}"`);
  return pairs.length === 0 ? name : `${name}{${pairs.join(",")}}`;
}

/** Parses the Prometheus text format (the subset prom-client writes) into its samples. */
export function parseMetrics(text: string): Scrape {
  const series = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (match === null) throw new Error(`not a Prometheus sample line: ${line}`);
    const [, name = "", labelText = "", value = ""] = match;
    const labels = Object.fromEntries(
      [...labelText.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], m[2]]),
    );
    series.set(seriesKey(name, labels), Number(value));
  }
  return series;
}

/** The `# TYPE` lines: metric name → counter, gauge, histogram, summary. */
export function metricTypes(text: string): ReadonlyMap<string, string> {
  const types = new Map<string, string>();
  for (const match of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) types.set(match[1] ?? "", match[2] ?? "");
  return types;
}

/** GETs a /metrics URL with the test token and returns its text (expecting 200). */
export async function scrapeText(url: string | URL, token = METRICS_TEST_TOKEN): Promise<string> {
  const response = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
  expect(response.status).toBe(200);
  expect(response.headers.get("content-type")).toMatch(/^text\/plain/);
  return response.text();
}
