import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAccount, grant } from "./support/fixtures.ts";
import { startServer, type TestServer } from "./support/harness.ts";

describe("smoke", () => {
  let server: TestServer;
  let service: string;
  beforeAll(async () => {
    server = await startServer();
    service = await server.token("platform", "service");
  });
  afterAll(() => server.close());

  it("creates an account and grants credits", async () => {
    const account = await createAccount(server, service);
    const result = await grant(server, service, account.id, 100);
    expect(result.balance).toMatchObject({ available: 100, held: 0, wallet: 100, sequence: 1 });
  });
});
