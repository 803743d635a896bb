import pg from "pg";
import { connectPostgres } from "../../src/db/database.ts";
import { applyMigrations } from "../../src/db/migrate.ts";
import { databaseUrl, serverUrl } from "./env.ts";
import { startTestServices } from "./services.ts";

/** Creates one migrated database for this run; each test makes its own accounts in it. */
export default async function setup(): Promise<() => Promise<void>> {
  const services = await startTestServices();
  const name = `creditbook_test_${process.pid}_${Date.now().toString(36)}`;
  const admin = new pg.Client({ connectionString: serverUrl() });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const db = connectPostgres({ url: databaseUrl(name), poolSizeMax: 2 });
  await db.withSession((session) => applyMigrations(session));
  await db.close();
  process.env.CREDITBOOK_TEST_DB = name;
  return async () => {
    const client = new pg.Client({ connectionString: serverUrl() });
    await client.connect();
    await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await client.end();
    await services.stop();
  };
}
