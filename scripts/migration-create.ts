/**
 * Creates the next migration, like `prisma migrate dev --create-only`, on
 * machines where Prisma's CLI cannot download its native schema engine.
 *
 *   npx tsx scripts/migration-create.ts <name>            write prisma/migrations/<UTC timestamp>_<name>/migration.sql
 *   npx tsx scripts/migration-create.ts <name> --print    only print the SQL
 *   npx tsx scripts/migration-create.ts <name> --dir <prismaDir>
 *
 * It drives `@prisma/schema-engine-wasm` (the same engine build as prisma
 * 7.10.0) with an in-memory PGlite as the shadow database: the engine replays
 * every `migrations/<dir>/migration.sql`, in name order, on the shadow
 * database, reads the resulting schema back, and diffs it against
 * `schema.prisma`. Nothing connects to a real database.
 *
 * Set DEBUG=1 to see the engine's log on stderr.
 */
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { PGlite } from "@electric-sql/pglite";
// A transitive dependency (of @prisma/adapter-pg, pinned to 7.10.0 like the
// engine): the engine expects adapters wrapped by this exact helper, which
// turns thrown errors into the `{ ok, value | error }` results it reads.
import {
  bindMigrationAwareSqlAdapterFactory,
  DriverAdapterError,
  type SqlDriverAdapter,
  type SqlMigrationAwareDriverAdapterFactory,
} from "@prisma/driver-adapter-utils";
import type { MigrationDirectory, MigrationList, SchemaEngine } from "@prisma/schema-engine-wasm";
import { PrismaPGlite } from "pglite-prisma-adapter";

/** The prisma directory of this repository, whatever the working directory. */
const DEFAULT_PRISMA_DIR = fileURLToPath(new URL("../prisma/", import.meta.url));
const SCHEMA_FILE = "schema.prisma";
const MIGRATIONS_DIR = "migrations";
const MIGRATION_FILE = "migration.sql";
const LOCKFILE = "migration_lock.toml";
/** Prisma caps migration names at 200 characters (after slugging). */
const MAX_NAME_LENGTH = 200;

// tsconfig's lib (ES2023, no DOM) and @types/node 20 do not declare the
// WebAssembly global; this is the part of it used below.
declare const WebAssembly: {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (
    module: object,
    imports: Record<string, Record<string, unknown>>,
  ) => { exports: Record<string, unknown> };
};

/** A failure the user can fix; reported as one line, without a stack. */
class ExpectedError extends Error {
  override name = "ExpectedError";
}

/** What the command line asks for. */
interface Options {
  readonly name: string;
  readonly print: boolean;
  readonly prismaDir: string;
}

const USAGE = "usage: tsx scripts/migration-create.ts <name> [--print] [--dir <prismaDir>]";

/**
 * Slugs a migration name the way `prisma migrate dev --name` does
 * (camelCase and punctuation become `_`, lower case), so names made here and
 * by the CLI look alike.
 */
function slugMigrationName(raw: string): string {
  return raw
    .replace(/([a-z0-9])([A-Z])/g, "$1_$2")
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "_")
    .replace(/^_+|_+$/g, "")
    .slice(0, MAX_NAME_LENGTH);
}

/** Reads `<name> [--print] [--dir <prismaDir>]`; bad usage is an expected error. */
function parseOptions(argv: readonly string[]): Options {
  let parsed: ReturnType<typeof parseCommandLine>;
  try {
    parsed = parseCommandLine(argv);
  } catch (error) {
    throw new ExpectedError(`${(error as Error).message} (${USAGE})`);
  }
  const [rawName, ...extra] = parsed.positionals;
  if (rawName === undefined || extra.length > 0) throw new ExpectedError(USAGE);
  const name = slugMigrationName(rawName);
  if (name === "") throw new ExpectedError(`invalid migration name "${rawName}": use letters, digits and _`);
  const dir = parsed.values.dir;
  return {
    name,
    print: parsed.values.print === true,
    prismaDir: dir === undefined ? DEFAULT_PRISMA_DIR : path.resolve(dir),
  };
}

function parseCommandLine(argv: readonly string[]) {
  return parseArgs({
    args: [...argv],
    allowPositionals: true,
    strict: true,
    options: { print: { type: "boolean" }, dir: { type: "string" } },
  });
}

/** Reads a file, turning "it is not there" into an expected error. */
async function readRequired(file: string): Promise<string> {
  try {
    return await readFile(file, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") throw new ExpectedError(`${file} not found`);
    throw error;
  }
}

/**
 * Loads the migrations folder in the shape the engine expects, as Prisma's
 * CLI does: every sub-directory, sorted by name, with its migration.sql.
 * The engine needs the lockfile to know the provider of the history.
 */
async function readMigrationList(migrationsDir: string): Promise<MigrationList> {
  const lockfileContent = await readFile(path.join(migrationsDir, LOCKFILE), "utf8").catch(() => null);
  const entries = await readdir(migrationsDir, { withFileTypes: true }).catch(
    (error: NodeJS.ErrnoException) => {
      // No folder yet simply means no history: the first migration creates everything.
      if (error.code === "ENOENT") return [];
      throw error;
    },
  );
  const directories: MigrationDirectory[] = [];
  for (const entry of entries.filter((e) => e.isDirectory()).sort((a, b) => compare(a.name, b.name))) {
    const content = await readFile(path.join(migrationsDir, entry.name, MIGRATION_FILE), "utf8").then(
      (value) => ({ tag: "ok" as const, value }),
      (error: Error) => ({ tag: "error" as const, value: error.message }),
    );
    directories.push({ path: entry.name, migrationFile: { path: MIGRATION_FILE, content } });
  }
  return {
    baseDir: migrationsDir,
    lockfile: { path: LOCKFILE, content: lockfileContent },
    shadowDbInitScript: "",
    migrationDirectories: directories,
  };
}

/** Code-point order, the order src/db/migrate.ts applies migrations in. */
function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * The engine's panic hook reports the panic's reason by calling
 * `global.PRISMA_WASM_PANIC_REGISTRY.set_message` (Prisma's CLI defines it);
 * without it a panic surfaces as a TypeError from the hook and the reason is lost.
 */
const panic: { message?: string } = {};
Object.assign(globalThis, {
  PRISMA_WASM_PANIC_REGISTRY: {
    set_message(message: string): void {
      panic.message = message;
    },
  },
});

/**
 * Instantiates the schema engine from its installed .wasm file. The
 * package's main entry imports the .wasm as an ES module, which Node cannot
 * do without a flag, so we wire the wasm-bindgen glue by hand — the same way
 * Prisma's own loader (`@prisma/internals` WasmSchemaEngineLoader) does.
 */
async function loadSchemaEngineClass(): Promise<typeof SchemaEngine> {
  const glue = await import("@prisma/schema-engine-wasm/schema_engine_bg");
  // The package does not export the .wasm itself; it sits next to the glue.
  const wasmUrl = new URL(
    "schema_engine_bg.wasm",
    import.meta.resolve("@prisma/schema-engine-wasm/schema_engine_bg"),
  );
  const module = new WebAssembly.Module(await readFile(wasmUrl));
  const instance = new WebAssembly.Instance(module, {
    "./schema_engine_bg.js": glue,
  });
  glue.__wbg_set_wasm(instance.exports);
  (instance.exports.__wbindgen_start as () => void)();
  return glue.SchemaEngine;
}

/**
 * Hands the engine in-memory PGlite databases, for both its main and its
 * shadow connection: diffing the migration history against the schema only
 * needs the shadow database, but `SchemaEngine.new` connects to the main one
 * right away, so it gets an empty one and nothing real is ever touched.
 * {@link close} closes whatever the engine did not dispose of itself.
 */
class InMemoryPostgresFactory implements SqlMigrationAwareDriverAdapterFactory {
  readonly provider = "postgres";
  readonly adapterName = "pglite-prisma-adapter";
  readonly #open = new Set<PGlite>();

  connect(): Promise<SqlDriverAdapter> {
    return this.#openDatabase();
  }

  connectToShadowDb(): Promise<SqlDriverAdapter> {
    return this.#openDatabase();
  }

  async close(): Promise<void> {
    const open = [...this.#open];
    this.#open.clear();
    await Promise.all(open.map((db) => db.close()));
  }

  /**
   * Opens a fresh PGlite behind pglite-prisma-adapter, except for
   * executeScript: the adapter's (0.7.2) fires `exec()` without awaiting it,
   * so a failing migration would look applied — the engine then reports a
   * wrong diff and the process dies of an unhandled rejection. We run
   * scripts ourselves and hand their errors to the engine.
   */
  async #openDatabase(): Promise<SqlDriverAdapter> {
    const db = await PGlite.create();
    this.#open.add(db);
    const adapter = await new PrismaPGlite(db).connect();
    return {
      provider: adapter.provider,
      adapterName: adapter.adapterName,
      queryRaw: (query) => adapter.queryRaw(query),
      executeRaw: (query) => adapter.executeRaw(query),
      startTransaction: (isolationLevel) => adapter.startTransaction(isolationLevel),
      getConnectionInfo: adapter.getConnectionInfo?.bind(adapter),
      async executeScript(script) {
        try {
          await db.exec(script);
        } catch (error) {
          throw toDriverAdapterError(error);
        }
      },
      dispose: async () => {
        await adapter.dispose();
        if (this.#open.delete(db)) await db.close();
      },
    };
  }
}

/** Lets the engine print PostgreSQL's own error (code, message, detail). */
function toDriverAdapterError(error: unknown): unknown {
  if (!(error instanceof Error) || !("severity" in error) || !("code" in error)) return error;
  const field = (key: string): string | undefined => {
    const value: unknown = (error as unknown as Record<string, unknown>)[key];
    return typeof value === "string" ? value : undefined;
  };
  return new DriverAdapterError({
    kind: "postgres",
    code: field("code") ?? "N/A",
    severity: field("severity") ?? "N/A",
    message: error.message,
    detail: field("detail"),
    column: field("column"),
    hint: field("hint"),
  });
}

/**
 * Computes the SQL of the next migration: the engine replays the existing
 * migrations on a shadow database and diffs the result against the schema.
 *
 * This uses the engine's `diff` (migrations -> datamodel), which is what
 * `prisma migrate diff --from-migrations --to-schema --script` runs, and not
 * `createMigration`: in the Wasm build, only `diff` and the diagnostics are
 * handed the adapter factory's shadow database; `createMigration` fails with
 * "PostgreSQL shadow DB must be provided through an external factory".
 *
 * @param schemaFile path to schema.prisma
 * @param migrationsList the existing migrations, as read by {@link readMigrationList}
 * @returns the migration script, or null when the schema needs no change
 */
async function computeNextMigration(
  schemaFile: string,
  migrationsList: MigrationList,
): Promise<string | null> {
  const schema = await readRequired(schemaFile);
  const SchemaEngineClass = await loadSchemaEngineClass();
  const log = (line: string): void => {
    if (process.env.DEBUG) process.stderr.write(`[schema-engine] ${line}\n`);
  };
  const databases = new InMemoryPostgresFactory();
  try {
    const engine = await SchemaEngineClass.new(
      { datamodels: [[schemaFile, schema]] },
      log,
      bindMigrationAwareSqlAdapterFactory(databases),
    );
    try {
      const result = await engine.diff({
        from: { tag: "migrations", ...migrationsList },
        to: { tag: "schemaDatamodel", files: [{ path: schemaFile, content: schema }] },
        script: true,
        // With exitCode, the engine tells "no change" (0) from a diff (2) for
        // us, rather than us recognising its "empty migration" comment.
        exitCode: true,
        filters: { externalTables: [], externalEnums: [] },
      });
      return result.exitCode === 2 ? (result.stdout ?? "") : null;
    } finally {
      engine.free();
    }
  } finally {
    await databases.close();
  }
}

/** `YYYYMMDDHHMMSS` in UTC, the prefix Prisma gives migration folders. */
function migrationTimestamp(now: Date = new Date()): string {
  return now.toISOString().replace(/[-:T]/g, "").slice(0, 14);
}

/**
 * Writes `<migrationsDir>/<migrationName>/migration.sql`. Refuses a name
 * that would not sort after the existing migrations, since src/db/migrate.ts
 * applies them in name order.
 */
async function writeMigration(
  migrations: MigrationList,
  migrationName: string,
  script: string,
): Promise<string> {
  const last = migrations.migrationDirectories.at(-1)?.path;
  if (last !== undefined && compare(migrationName, last) <= 0) {
    throw new ExpectedError(`${migrationName} would not sort after the latest migration ${last}`);
  }
  const dir = path.join(migrations.baseDir, migrationName);
  // No `recursive`: an existing folder of that name is an error, never overwritten.
  await mkdir(dir).catch((error: NodeJS.ErrnoException) => {
    if (error.code === "EEXIST") throw new ExpectedError(`${dir} already exists`);
    throw error;
  });
  const file = path.join(dir, MIGRATION_FILE);
  await writeFile(file, script, "utf8");
  return file;
}

/**
 * Engine errors about the user's input (schema validation, a migration that
 * fails on the shadow database, a missing lockfile) are SchemaConnectorErrors,
 * most with a Prisma error code; a panic is a RuntimeError, and anything else
 * is a bug worth its stack.
 */
function isExpected(error: unknown): error is Error & { code?: unknown } {
  return error instanceof ExpectedError || (error instanceof Error && error.name === "SchemaConnectorError");
}

/**
 * Collapses a multi-line engine message into one line, dropping the span
 * trace the engine appends ("0: schema_engine_wasm::… at …engine.rs:242"),
 * which locates the engine's code, not the user's problem.
 */
function oneLine(message: string): string {
  const lines = message.split("\n").map((line) => line.trim());
  const trace = lines.findIndex((line) => /^\d+: \w+::/.test(line));
  return (trace === -1 ? lines : lines.slice(0, trace)).filter((line) => line !== "").join(" ");
}

/** Entry point: parse arguments, compute the diff, print or write it. */
async function main(argv: readonly string[]): Promise<void> {
  const options = parseOptions(argv);
  const schemaFile = path.join(options.prismaDir, SCHEMA_FILE);
  const migrations = await readMigrationList(path.join(options.prismaDir, MIGRATIONS_DIR));
  // The engine would report this without saying which migration it is.
  for (const { path: name, migrationFile } of migrations.migrationDirectories) {
    if (migrationFile.content.tag === "error") {
      throw new ExpectedError(
        `cannot read ${MIGRATIONS_DIR}/${name}/${MIGRATION_FILE}: ${migrationFile.content.value}`,
      );
    }
  }
  const script = await computeNextMigration(schemaFile, migrations);
  if (script === null) {
    process.stdout.write("No schema changes: nothing to create.\n");
    return;
  }
  if (options.print) {
    process.stdout.write(script);
    return;
  }
  const file = await writeMigration(migrations, `${migrationTimestamp()}_${options.name}`, script);
  const relative = path.relative(process.cwd(), file);
  process.stdout.write(`Created ${relative.startsWith("..") ? file : relative}\n`);
}

main(process.argv.slice(2)).catch((error: unknown) => {
  if (isExpected(error)) {
    const code = typeof error.code === "string" ? `${error.code}: ` : "";
    process.stderr.write(`migration-create: ${code}${oneLine(error.message)}\n`);
  } else if (panic.message !== undefined) {
    process.stderr.write(`migration-create: the schema engine panicked: ${oneLine(panic.message)}\n`);
  } else {
    process.stderr.write("migration-create: unexpected error\n");
    console.error(error);
  }
  process.exitCode = 1;
});
