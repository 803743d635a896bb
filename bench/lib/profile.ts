/**
 * Summarises a V8 CPU profile (`node --cpu-prof`): self time per function
 * and per package, so the report can say where the server spends its time.
 */
import { readFileSync } from "node:fs";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface ProfileLine {
  readonly name: string;
  readonly where: string;
  readonly selfMs: number;
  /** Share of the busy (non-idle) time. */
  readonly selfPercent: number;
}

export interface ProfileSummary {
  readonly file: string;
  /** Sampled time inside the window. */
  readonly totalMs: number;
  /** Sampled time that was not idle. */
  readonly busyMs: number;
  readonly topFunctions: ProfileLine[];
  readonly byPackage: ProfileLine[];
  /**
   * Self time of native and Node-internal frames charged to the nearest
   * package or application frame that called them (a socket write made by
   * pg counts for pg): who causes the work.
   */
  readonly byPackageAttributed: ProfileLine[];
}

/** Where a script URL belongs: a package name, "creditbook src/…", "node:internal", or "(v8)". */
function packageOf(url: string): string {
  if (url === "") return "(v8 / native)";
  const nodeModules = url.lastIndexOf("/node_modules/");
  if (nodeModules >= 0) {
    const rest = url.slice(nodeModules + "/node_modules/".length).split("/");
    return rest[0]?.startsWith("@") === true ? `${rest[0]}/${rest[1] ?? ""}` : (rest[0] ?? url);
  }
  if (url.startsWith("node:")) return "node (internals)";
  const src = url.indexOf("/src/");
  if (src >= 0)
    return `creditbook ${url
      .slice(src + 1)
      .split("/")
      .slice(0, 2)
      .join("/")}`;
  return url;
}

function shortUrl(url: string): string {
  const nodeModules = url.lastIndexOf("/node_modules/");
  if (nodeModules >= 0) return url.slice(nodeModules + "/node_modules/".length);
  const src = url.indexOf("/src/");
  if (src >= 0) return url.slice(src + 1);
  return url.replace(/^file:\/\//, "");
}

/**
 * Summarises the samples taken between `fromMs` and `toMs` after the profile
 * started (the process start, near enough), so start-up and shutdown do not
 * drown the steady state.
 */
export function summarizeProfile(
  file: string,
  window: { fromMs: number; toMs: number } = { fromMs: 0, toMs: Number.POSITIVE_INFINITY },
  top = 15,
): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const selfUs = new Map<number, number>();
  let atUs = 0;
  profile.samples.forEach((id, i) => {
    const delta = profile.timeDeltas[i] ?? 0;
    atUs += delta;
    if (atUs < window.fromMs * 1000 || atUs > window.toMs * 1000) return;
    selfUs.set(id, (selfUs.get(id) ?? 0) + delta);
  });
  const totalUs = [...selfUs.values()].reduce((sum, value) => sum + value, 0);
  const parentOf = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parentOf.set(child, node.id);
  const attributed = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const name = byId.get(id)?.callFrame.functionName;
    let owner: string | null =
      name === "(idle)" ? "(idle)" : name === "(garbage collector)" ? "(garbage collector)" : null;
    for (let at: number | undefined = id; owner === null && at !== undefined; at = parentOf.get(at)) {
      const url = byId.get(at)?.callFrame.url ?? "";
      // WebAssembly (Prisma's query compiler) has no package name of its own: charge its JS caller.
      if (url !== "" && !url.startsWith("node:") && !url.startsWith("wasm:")) owner = packageOf(url);
    }
    const key = owner ?? "(node / native, no package on the stack)";
    attributed.set(key, (attributed.get(key) ?? 0) + us);
  }
  const byFunction = new Map<string, { name: string; where: string; us: number }>();
  const byPackage = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const node = byId.get(id);
    if (node === undefined) continue;
    const { functionName, url, lineNumber } = node.callFrame;
    const name = functionName === "" ? "(anonymous)" : functionName;
    const where = url === "" ? "" : `${shortUrl(url)}:${lineNumber + 1}`;
    const key = `${name}@${where}`;
    const entry = byFunction.get(key) ?? { name, where, us: 0 };
    entry.us += us;
    byFunction.set(key, entry);
    const pkg =
      name === "(idle)" ? "(idle)" : name === "(garbage collector)" ? "(garbage collector)" : packageOf(url);
    byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + us);
  }
  const idleUs = [...byFunction.values()]
    .filter((entry) => entry.name === "(idle)")
    .reduce((sum, e) => sum + e.us, 0);
  const line = (name: string, where: string, us: number): ProfileLine => ({
    name,
    where,
    selfMs: Math.round(us / 100) / 10,
    selfPercent: totalUs === idleUs ? 0 : Math.round((us / (totalUs - idleUs)) * 1000) / 10,
  });
  return {
    file,
    totalMs: Math.round(totalUs / 1000),
    busyMs: Math.round((totalUs - idleUs) / 1000),
    topFunctions: [...byFunction.values()]
      .filter((entry) => entry.name !== "(idle)")
      .sort((a, b) => b.us - a.us)
      .slice(0, top)
      .map((entry) => line(entry.name, entry.where, entry.us)),
    byPackage: [...byPackage.entries()]
      .filter(([name]) => name !== "(idle)")
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, us]) => line(name, "", us)),
    byPackageAttributed: [...attributed.entries()]
      .filter(([name]) => name !== "(idle)")
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, us]) => line(name, "", us)),
  };
}
