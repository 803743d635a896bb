import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, isAbsolute, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

/** The documents a reader of the repository is sent to: the README and everything in docs/. */
function documents(): string[] {
  const docs = readdirSync(join(ROOT, "docs"))
    .filter((name) => name.endsWith(".md"))
    .map((name) => join(ROOT, "docs", name));
  return [join(ROOT, "README.md"), ...docs];
}

/** The text a reader sees as prose: fenced code blocks and inline code hold no links. */
function prose(markdown: string): string {
  return markdown.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, "").replace(/`[^`\n]*`/g, "");
}

/** Every link target in a Markdown text: inline `[text](target)` and reference `[label]: target`. */
function linkTargets(markdown: string): string[] {
  const text = prose(markdown);
  const inline = [...text.matchAll(/!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)].map(
    (m) => m[1] ?? "",
  );
  const reference = [...text.matchAll(/^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$/gm)].map(
    (m) => m[1] ?? "",
  );
  return [...inline, ...reference];
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/`/g, "")
    .replace(/[^\p{L}\p{N}\s_-]/gu, "")
    .replace(/\s/g, "-");
}

function anchors(markdown: string): Set<string> {
  return new Set([...prose(markdown).matchAll(/^#{1,6}\s+(.+?)\s*#*\s*$/gm)].map((m) => slug(m[1] ?? "")));
}

/**
 * Why a relative link from `from` does not resolve, or null when it does:
 * it must name a file or folder inside the repository, and an anchor into a
 * Markdown file must name one of its headings. Links with a scheme
 * (https:, mailto:) point outside on purpose and are not checked.
 */
function brokenLink(root: string, from: string, target: string): string | null {
  if (/^[a-z][a-z0-9+.-]*:/i.test(target)) return null;
  const [path = "", anchor] = target.split("#", 2);
  const file = path === "" ? from : resolve(dirname(from), decodeURIComponent(path));
  const inside = relative(root, file);
  if (inside === ".." || inside.startsWith(`..${sep}`) || isAbsolute(inside)) {
    return `${target}: outside the repository`;
  }
  if (!existsSync(file)) return `${target}: no such file`;
  if (anchor !== undefined && anchor !== "" && file.endsWith(".md") && statSync(file).isFile()) {
    if (!anchors(readFileSync(file, "utf8")).has(anchor)) return `${target}: no heading #${anchor}`;
  }
  return null;
}

describe("documentation links: every relative link resolves inside the repository", () => {
  it("README.md and docs/*.md link only to files that exist in the repository", () => {
    const problems = documents().flatMap((document) =>
      linkTargets(readFileSync(document, "utf8"))
        .map((target) => brokenLink(ROOT, document, target))
        .filter((problem): problem is string => problem !== null)
        .map((problem) => `${relative(ROOT, document)}: ${problem}`),
    );
    expect(problems).toEqual([]);
  });

  it("the README links the contract, the errors and the schema", () => {
    const targets = linkTargets(readFileSync(join(ROOT, "README.md"), "utf8"));
    expect(targets).toEqual(expect.arrayContaining(["docs/API.md", "docs/ERRORS.md", "schema.graphql"]));
  });

  it("finds links that leave the repository, name missing files or missing headings", () => {
    const from = join(ROOT, "README.md");
    const sample = [
      "See [the spec](../shared/SPEC.md), [gone](docs/NOPE.md), [bad anchor](docs/API.md#no-such-heading),",
      "[fine](docs/API.md#the-rules), [site](https://example.com), [self](#creditbook).",
      "`[code](../ignored.md)`",
      "```",
      "[fenced](../ignored-too.md)",
      "```",
      "[ref]: ../../etc/passwd",
    ].join("\n");
    const problems = linkTargets(sample)
      .map((target) => brokenLink(ROOT, from, target))
      .filter((problem) => problem !== null);
    expect(problems).toEqual([
      "../shared/SPEC.md: outside the repository",
      "docs/NOPE.md: no such file",
      "docs/API.md#no-such-heading: no heading #no-such-heading",
      "../../etc/passwd: outside the repository",
    ]);
  });
});
