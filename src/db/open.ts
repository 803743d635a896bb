import { connectPostgres, type Database, openEmbedded } from "./database.ts";
import { applyMigrations } from "./migrate.ts";

export interface OpenOptions {
  readonly databaseUrl: string | undefined;
  readonly dataDir: string;
  readonly poolSizeMax: number;
}

/**
 * Opens PostgreSQL (DATABASE_URL) or the embedded PGlite in DATA_DIR, and
 * applies pending migrations before anything else uses it.
 */
export async function openDatabase(options: OpenOptions): Promise<{ db: Database; applied: string[] }> {
  const db =
    options.databaseUrl === undefined
      ? await openEmbedded(options.dataDir)
      : connectPostgres({ url: options.databaseUrl, poolSizeMax: options.poolSizeMax });
  try {
    const applied = await db.withSession((session) => applyMigrations(session));
    return { db, applied };
  } catch (error) {
    // The migration's error is the one to report; a failure to close the half-opened database must not hide it.
    await db.close().catch(() => {});
    throw error;
  }
}
