/**
 * The documentation states the limits as the code sets them: docs/SECURITY.md
 * names every limit's variable and figure, and no page gives another figure
 * for the document limits than the constants in src/server/.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { BULK_ITEMS_MAX } from "../../src/domain/bulk.ts";
import { PAGE_SIZE_MAX } from "../../src/domain/history.ts";
import {
  KEY_LENGTH_MAX,
  METADATA_BYTES_MAX,
  QUANTITY_MAX,
  STRING_LENGTH_MAX,
  TIMEOUT_SECONDS_MAX,
} from "../../src/domain/validate.ts";
import { WEBHOOK_URL_LENGTH_MAX } from "../../src/domain/webhook-url.ts";
import { SUBSCRIBER_QUEUE_MAX } from "../../src/schema/live/realtime.ts";
import { REPLAY_CONCURRENCY_MAX } from "../../src/schema/live/replay.ts";
import { JSON_DEPTH_MAX } from "../../src/schema/scalars.ts";
import { WEBHOOK_DESCRIPTION_LENGTH_MAX } from "../../src/schema/webhook.ts";
import { FIELD_REPEATS_MAX, FIELDS_MAX, INTROSPECTION_DEPTH_MAX } from "../../src/server/document-shape.ts";
import {
  ALIASES_MAX,
  COST_MAX,
  DIRECTIVES_MAX,
  QUERY_DEPTH_MAX,
  TOKENS_MAX,
} from "../../src/server/hardening.ts";
import {
  SUBSCRIPTIONS_PER_CONNECTION_MAX,
  SUBSCRIPTIONS_PER_PRINCIPAL_MAX,
} from "../../src/server/subscription-limits.ts";

const read = (path: string) => readFileSync(new URL(`../../${path}`, import.meta.url), "utf8");
const SECURITY = read("docs/SECURITY.md");

/** The table rows of a page: where its limits are stated. */
const rows = (text: string) => text.split("\n").filter((line) => line.startsWith("|"));
/** A figure as the pages write it: 10,000. */
const figure = (value: number) => value.toLocaleString("en-US");

/** Every variable that sets a limit a client can hit (src/server/config.ts). */
const LIMIT_VARIABLES = [
  "HTTP_HEADERS_TIMEOUT_MS",
  "HTTP_REQUEST_TIMEOUT_MS",
  "MAX_CONNECTIONS",
  "RATE_LIMIT_PER_SECOND",
  "RATE_LIMIT_SERVICE_PER_SECOND",
  "SUBSCRIPTIONS_PER_CONNECTION_MAX",
  "SUBSCRIPTIONS_PER_PRINCIPAL_MAX",
  "SUBSCRIBER_QUEUE_MAX",
  "REPLAY_CONCURRENCY_MAX",
  "PERSISTED_OPERATIONS",
  "METRICS_TOKEN",
  "METRICS_PORT",
  "CORS_ORIGINS",
  "WEBHOOK_ALLOW_PRIVATE",
];

/** Each limit constant, and the words that name its row in docs/SECURITY.md. */
const LIMIT_CONSTANTS: [string, number, RegExp][] = [
  ["TOKENS_MAX", TOKENS_MAX, /^\| tokens per document/],
  ["FIELDS_MAX", FIELDS_MAX, /^\| fields written in one document/],
  ["FIELD_REPEATS_MAX", FIELD_REPEATS_MAX, /^\| fields of one response name/],
  ["INTROSPECTION_DEPTH_MAX", INTROSPECTION_DEPTH_MAX, /^\| depth under `__schema`/],
  ["QUERY_DEPTH_MAX", QUERY_DEPTH_MAX, /^\| query depth/],
  ["ALIASES_MAX", ALIASES_MAX, /^\| aliases per document/],
  ["DIRECTIVES_MAX", DIRECTIVES_MAX, /^\| directives per document/],
  ["COST_MAX", COST_MAX, /^\| estimated cost/],
  [
    "SUBSCRIPTIONS_PER_CONNECTION_MAX",
    SUBSCRIPTIONS_PER_CONNECTION_MAX,
    /^\| subscriptions on one WebSocket/,
  ],
  ["SUBSCRIPTIONS_PER_PRINCIPAL_MAX", SUBSCRIPTIONS_PER_PRINCIPAL_MAX, /^\| subscriptions of one principal/],
  ["SUBSCRIBER_QUEUE_MAX", SUBSCRIBER_QUEUE_MAX, /^\| events waiting for one subscriber/],
  ["REPLAY_CONCURRENCY_MAX", REPLAY_CONCURRENCY_MAX, /^\| replay of `ledgerEntryAdded/],
  ["PAGE_SIZE_MAX", PAGE_SIZE_MAX, /^\| page size/],
  ["QUANTITY_MAX", QUANTITY_MAX, /^\| items of one generation/],
  ["BULK_ITEMS_MAX", BULK_ITEMS_MAX, /^\| items of one bulk call/],
  ["STRING_LENGTH_MAX", STRING_LENGTH_MAX, /^\| a string input/],
  ["KEY_LENGTH_MAX", KEY_LENGTH_MAX, /^\| an idempotency key/],
  ["METADATA_BYTES_MAX", METADATA_BYTES_MAX / 1024, /^\| `metadata` size/],
  ["JSON_DEPTH_MAX", JSON_DEPTH_MAX, /^\| `metadata` nesting/],
  ["TIMEOUT_SECONDS_MAX", TIMEOUT_SECONDS_MAX, /^\| `timeoutSeconds`/],
  ["WEBHOOK_URL_LENGTH_MAX", WEBHOOK_URL_LENGTH_MAX, /^\| a webhook endpoint's `url`/],
  [
    "WEBHOOK_DESCRIPTION_LENGTH_MAX",
    WEBHOOK_DESCRIPTION_LENGTH_MAX,
    /^\| a webhook endpoint's `description`/,
  ],
];

describe("the documented limits", () => {
  it("docs/SECURITY.md names every variable that sets a limit", () => {
    expect(LIMIT_VARIABLES.filter((name) => !SECURITY.includes(`\`${name}\``))).toEqual([]);
  });

  it("docs/SECURITY.md has a row for every limit, with the figure the code uses", () => {
    const table = rows(SECURITY);
    const wrong = LIMIT_CONSTANTS.flatMap(([name, value, title]) => {
      const row = table.find((line) => title.test(line));
      if (row === undefined) return [`${name}: no row`];
      return new RegExp(`(^|[^\\d,])${figure(value).replace(",", "\\,")}([^\\d,]|$)`).test(row)
        ? []
        : [`${name}: row does not say ${figure(value)}`];
    });
    expect(wrong).toEqual([]);
  });

  it("every page gives the token limit the parser enforces", () => {
    for (const path of ["README.md", "docs/API.md", "docs/ERRORS.md", "docs/SECURITY.md"]) {
      const stated = [
        ...read(path).matchAll(
          /more than ([\d,]+) tokens|tokens ≤ ([\d,]+)|\| tokens per document[^|]*\| ([\d,]+)/g,
        ),
      ].map((match) => Number((match[1] ?? match[2] ?? match[3] ?? "").replaceAll(",", "")));
      expect(stated.length, `${path} states the token limit`).toBeGreaterThan(0);
      expect(stated, path).toEqual(stated.map(() => TOKENS_MAX));
    }
  });
});
