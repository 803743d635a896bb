import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const ERRORS = readFileSync(join(ROOT, "docs/ERRORS.md"), "utf8");

/** Every TypeScript file under src/, except generated code. */
function sources(folder = join(ROOT, "src")): string[] {
  return readdirSync(folder, { withFileTypes: true }).flatMap((entry) => {
    const path = join(folder, entry.name);
    if (entry.isDirectory()) return entry.name === "generated" ? [] : sources(path);
    return entry.name.endsWith(".ts") ? [path] : [];
  });
}

const sourceTexts = () => sources().map((path) => readFileSync(path, "utf8"));

/** Every `extensions.code` the server sets: each `code: "SOME_CODE"` literal in src/. */
function extensionCodes(): string[] {
  const codes = sourceTexts().flatMap((text) =>
    [...text.matchAll(/\bcode:\s*"([A-Z][A-Z_]+)"/g)].map((match) => match[1] ?? ""),
  );
  return [...new Set(codes)].sort();
}

/** The values of the schema's `ErrorCode` enum, from the committed schema.graphql. */
function errorCodeValues(): string[] {
  const sdl = readFileSync(join(ROOT, "schema.graphql"), "utf8");
  const body = /\benum ErrorCode\s*\{([^}]*)\}/.exec(sdl)?.[1] ?? "";
  return body
    .replace(/"""[\s\S]*?"""|"[^"\n]*"/g, "")
    .split(/\s+/)
    .filter((word) => /^[A-Z][A-Z_]+$/.test(word));
}

/** WebSocket close codes the server sends: `CLOSE_… = 4xxx` constants and `.close(NNNN, …)` calls. */
function closeCodes(): string[] {
  const codes = sourceTexts().flatMap((text) => [
    ...[...text.matchAll(/\bCLOSE_[A-Z_]+\s*=\s*(\d{4})\b/g)].map((match) => match[1] ?? ""),
    ...[...text.matchAll(/\.close\(\s*(\d{4})\b/g)].map((match) => match[1] ?? ""),
  ]);
  return [...new Set(codes)].sort();
}

/** The section of ERRORS.md that starts at the heading containing `title`. */
function section(title: string): string {
  const start = ERRORS.indexOf(title);
  const next = ERRORS.indexOf("\n## ", start + 1);
  return start < 0 ? "" : ERRORS.slice(start, next < 0 ? undefined : next);
}

/** The first column of each row of the section's tables. */
function firstCells(text: string): string[] {
  return [...text.matchAll(/^\|([^|\n]*)\|/gm)].map((match) => match[1] ?? "");
}

describe("docs/ERRORS.md lists every error a client can meet", () => {
  it("finds the codes it checks (a scan that finds nothing would pass vacuously)", () => {
    expect(extensionCodes()).toEqual(expect.arrayContaining(["UNAUTHENTICATED", "RATE_LIMITED"]));
    expect(errorCodeValues()).toEqual(expect.arrayContaining(["INSUFFICIENT_CREDITS", "ALREADY_FINALIZED"]));
    expect(closeCodes()).toEqual(expect.arrayContaining(["4401", "1001"]));
  });

  it("documents every ErrorCode value in the table of operating errors", () => {
    const rows = section("## 1.")
      .split("\n")
      .filter((line) => line.startsWith("|"));
    const missing = errorCodeValues().filter((code) => !rows.some((row) => row.includes(`| \`${code}\` |`)));
    expect(missing).toEqual([]);
  });

  it("documents every extensions.code set in src/ in the table of GraphQL errors", () => {
    const cells = firstCells(section("## 2."));
    const missing = extensionCodes().filter((code) => !cells.some((cell) => cell.includes(`\`${code}\``)));
    expect(missing).toEqual([]);
  });

  it("documents every WebSocket close code the server sends", () => {
    const cells = firstCells(section("## 3."));
    const missing = closeCodes().filter(
      (code) => !cells.some((cell) => new RegExp(`\\b${code}\\b`).test(cell)),
    );
    expect(missing).toEqual([]);
  });
});
