/**
 * Nothing in `dependencies` that production does not load: every package
 * there is imported by the compiled server's sources (src/, generated code
 * included), statically or with import().
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = new URL("../..", import.meta.url).pathname;

/**
 * Declared ahead of the code that loads it, each with the reason. Keep this
 * list empty once that code lands.
 */
const NOT_YET_LOADED = new Map<string, string>();

function sources(folder: string): string[] {
  return readdirSync(folder, { withFileTypes: true }).flatMap((entry) => {
    const path = join(folder, entry.name);
    if (entry.isDirectory()) return sources(path);
    return /\.(ts|js)$/.test(entry.name) ? [path] : [];
  });
}

/** The package names src/ imports: `from "x"`, `import("x")`, subpaths reduced to the package. */
function importedPackages(): Set<string> {
  const names = new Set<string>();
  for (const path of sources(join(ROOT, "src"))) {
    const text = readFileSync(path, "utf8");
    for (const match of text.matchAll(/(?:from\s+|import\s*\(\s*)"([^".][^"]*)"/g)) {
      const specifier = match[1] ?? "";
      if (specifier.startsWith("node:")) continue;
      const parts = specifier.split("/");
      names.add(specifier.startsWith("@") ? parts.slice(0, 2).join("/") : (parts[0] ?? ""));
    }
  }
  return names;
}

describe("production dependencies", () => {
  const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as {
    dependencies: Record<string, string>;
  };

  it("finds the imports it checks (a scan that finds nothing would pass vacuously)", () => {
    expect([...importedPackages()]).toEqual(expect.arrayContaining(["graphql-yoga", "@pothos/core", "pg"]));
  });

  it("every dependency is loaded by the server's code", () => {
    const imported = importedPackages();
    const unused = Object.keys(pkg.dependencies).filter(
      (name) => !imported.has(name) && !NOT_YET_LOADED.has(name),
    );
    expect(unused).toEqual([]);
  });

  it("lists as not yet loaded only dependencies that are declared and still unused", () => {
    const imported = importedPackages();
    for (const name of NOT_YET_LOADED.keys()) {
      expect(pkg.dependencies[name], name).toBeDefined();
      expect(imported.has(name), `${name} is imported now: remove it from NOT_YET_LOADED`).toBe(false);
    }
  });

  it("has no @graphql-yoga/redis-event-target (events go through src/server/events.ts)", () => {
    expect(pkg.dependencies["@graphql-yoga/redis-event-target"]).toBeUndefined();
  });
});
