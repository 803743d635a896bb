import type { Reporter, TestModule } from "vitest/node";

/**
 * Prints one line per vitest project after the run — how many tests ran on
 * PostgreSQL and how many on embedded PGlite — so the split is visible in
 * `npm test`'s output, not only in the per-file prefixes.
 */
export default class ProjectsReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    const byProject = new Map<string, { files: number; passed: number; failed: number; skipped: number }>();
    for (const module of testModules) {
      const name = module.project.name || "default";
      const counts = byProject.get(name) ?? { files: 0, passed: 0, failed: 0, skipped: 0 };
      counts.files += 1;
      for (const test of module.children.allTests()) {
        const state = test.result().state;
        if (state === "passed") counts.passed += 1;
        else if (state === "failed") counts.failed += 1;
        else counts.skipped += 1;
      }
      byProject.set(name, counts);
    }
    for (const [name, counts] of [...byProject].sort()) {
      const ran = counts.passed + counts.failed;
      process.stdout.write(
        ` Tests on ${name}: ${ran} ran in ${counts.files} files (${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped)\n`,
      );
    }
  }
}
