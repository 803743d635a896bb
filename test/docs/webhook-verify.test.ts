/**
 * docs/WEBHOOKS.md shows how a receiver verifies a signature in Node and in
 * Python. Both examples run here against a request signed the way the
 * delivery worker signs (src/jobs/webhook-delivery.ts): the Python one is
 * taken from the document itself, so the document cannot drift from it.
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Webhook } from "standardwebhooks";
import { afterAll, describe, expect, it } from "vitest";

const DOC = readFileSync(new URL("../../docs/WEBHOOKS.md", import.meta.url), "utf8");
const PYTHON = /```python\n([\s\S]*?)```/.exec(DOC)?.[1];

const secret = `whsec_${randomBytes(24).toString("base64")}`;
const body = JSON.stringify({
  type: "ledger_entry.added",
  timestamp: new Date().toISOString(),
  data: { n: 'é, "x"' },
});

function signed(at: Date, payload = body) {
  const id = `msg_${randomBytes(8).toString("hex")}`;
  return {
    "webhook-id": id,
    "webhook-timestamp": String(Math.floor(at.getTime() / 1000)),
    // What the worker sends: the signature of the body it posts.
    "webhook-signature": new Webhook(secret).sign(id, at, payload),
  };
}

describe("the signature examples of docs/WEBHOOKS.md", () => {
  const dir = mkdtempSync(join(tmpdir(), "creditbook-verify-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  function python(headers: Record<string, string>, payload: string): string {
    const script = join(dir, "verify.py");
    writeFileSync(
      script,
      `${PYTHON}\nimport json, sys\nargs = json.load(sys.stdin)\nprint(verify(args["secret"], args["headers"], args["body"].encode()))\n`,
    );
    return execFileSync("python3", [script], { input: JSON.stringify({ secret, headers, body: payload }) })
      .toString()
      .trim();
  }

  it("has a Python example", () => {
    expect(PYTHON).toContain("def verify(");
  });

  it("the Python example accepts a signed request and refuses a changed body, another secret's signature and an old one", () => {
    expect(python(signed(new Date()), body)).toBe("True");
    expect(python(signed(new Date()), `${body} `)).toBe("False");
    const other = new Webhook(`whsec_${randomBytes(24).toString("base64")}`);
    const headers = signed(new Date());
    expect(
      python({ ...headers, "webhook-signature": other.sign(headers["webhook-id"], new Date(), body) }, body),
    ).toBe("False");
    expect(python(signed(new Date(Date.now() - 3_600_000)), body)).toBe("False");
  });

  it("the Node example (the standardwebhooks package) accepts it and refuses a changed body", () => {
    const webhook = new Webhook(secret);
    const headers = signed(new Date());
    expect(webhook.verify(body, headers)).toEqual(JSON.parse(body));
    expect(() => webhook.verify(`${body} `, headers)).toThrow();
  });
});
