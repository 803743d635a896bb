/**
 * Global setup for the pglite project: creates one embedded database, applies
 * the migrations, and dumps its data directory to a temporary tarball that
 * every test file then loads (test-database.ts). Loading a dump takes about a
 * second; creating and migrating a fresh PGlite takes several (initdb runs in
 * WebAssembly), once per test file.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PGlite } from "@electric-sql/pglite";
import type { TestProject } from "vitest/node";
import { embeddedDatabase } from "../../src/db/database.ts";
import { applyMigrations } from "../../src/db/migrate.ts";

/** The environment variable naming the migrated template tarball. */
export const TEMPLATE_ENV = "CREDITBOOK_PGLITE_TEMPLATE";

export default async function setup(project: TestProject): Promise<(() => void) | undefined> {
  // Only when the pglite project is part of this run (`--project postgres` skips it).
  if (!project.vitest.projects.some((candidate) => candidate.name === "pglite")) return undefined;
  const dir = mkdtempSync(join(tmpdir(), "creditbook-pglite-template-"));
  const pglite = await PGlite.create();
  const db = embeddedDatabase(pglite);
  try {
    await db.withSession((session) => applyMigrations(session));
    const dump = await pglite.dumpDataDir("none");
    const path = join(dir, "migrated.tar");
    writeFileSync(path, Buffer.from(await dump.arrayBuffer()));
    process.env[TEMPLATE_ENV] = path;
  } finally {
    await db.close();
  }
  return () => rmSync(dir, { recursive: true, force: true });
}
