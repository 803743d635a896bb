/** The configuration of the HTTP conventions: SHUTDOWN_TIMEOUT_MS, CORS_ORIGINS, field suggestions from NODE_ENV. */
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/server/config.ts";

describe("HTTP configuration", () => {
  it("has the documented defaults", () => {
    expect(loadConfig({})).toMatchObject({
      shutdownTimeoutMs: 10_000,
      corsOrigins: null,
      fieldSuggestions: true,
    });
    expect(loadConfig({ NODE_ENV: "production" }).fieldSuggestions).toBe(false);
    expect(loadConfig({ NODE_ENV: "development" }).fieldSuggestions).toBe(true);
  });

  it("reads SHUTDOWN_TIMEOUT_MS and CORS_ORIGINS", () => {
    const config = loadConfig({
      SHUTDOWN_TIMEOUT_MS: "2500",
      CORS_ORIGINS: " https://app.example.com ,http://localhost:5173/,",
    });
    expect(config.shutdownTimeoutMs).toBe(2_500);
    expect(config.corsOrigins).toEqual(["https://app.example.com", "http://localhost:5173"]);
    expect(loadConfig({ CORS_ORIGINS: "*" }).corsOrigins).toBeNull();
  });

  it("names the variable of a bad value", () => {
    expect(() => loadConfig({ SHUTDOWN_TIMEOUT_MS: "soon" })).toThrow(
      'SHUTDOWN_TIMEOUT_MS must be an integer from 0 to 600000, got "soon"',
    );
    expect(() => loadConfig({ CORS_ORIGINS: "app.example.com" })).toThrow(
      'CORS_ORIGINS must be a comma list of origins such as https://app.example.com, got "app.example.com"',
    );
  });
});
