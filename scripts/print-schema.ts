import { readFileSync, writeFileSync } from "node:fs";
import { printSchema } from "graphql";
import { printableSchema } from "../src/schema/index.ts";

/**
 * Prints the Pothos schema to schema.graphql, or with --check fails when the
 * committed file differs from what the code builds (schema drift).
 */
const path = new URL("../schema.graphql", import.meta.url).pathname;
const printed = `${printSchema(printableSchema())}\n`;
if (process.argv.includes("--check")) {
  const committed = readFileSync(path, "utf8");
  if (committed !== printed) {
    process.stderr.write("schema.graphql is stale: run `npm run schema` and commit the result\n");
    process.exit(1);
  }
  process.stdout.write("schema.graphql matches the code\n");
} else {
  writeFileSync(path, printed);
  process.stdout.write(`wrote ${path}\n`);
}
