import { readFileSync } from "node:fs";
import { buildSchema } from "graphql";
import { describe, expect, it } from "vitest";
import { schema } from "../../src/schema/index.ts";

/**
 * The walk below is duck-typed on purpose: graphql ships a CommonJS and an
 * ES module build, and under vitest the schema Pothos builds can come from
 * the other one than this file's import, which makes graphql's own
 * `isObjectType` & co. throw ("from another module or realm").
 */
interface Described {
  readonly name: string;
  readonly description?: string | null | undefined;
}
interface Field extends Described {
  readonly args?: readonly Described[];
}
interface NamedType extends Described {
  readonly getFields?: () => Record<string, Field>;
  readonly getValues?: () => readonly Described[];
}
interface Walkable {
  getTypeMap(): Record<string, NamedType>;
  getDirectives(): readonly (Described & { readonly args: readonly Described[] })[];
}

/** The directives GraphQL itself specifies, described by graphql-js, not ours to describe. */
const SPECIFIED_DIRECTIVES = new Set(["include", "skip", "deprecated", "specifiedBy", "oneOf"]);

const hasText = (element: Described) => (element.description ?? "").trim().length > 0;

/** Coordinates (`Type.field(arg:)`) of every argument without a description. */
function undocumentedArgs(owner: string, args: readonly Described[] | undefined): string[] {
  return (args ?? []).filter((arg) => !hasText(arg)).map((arg) => `${owner}(${arg.name}:)`);
}

/**
 * Every element a client reads in the schema — type, field, argument, enum
 * value, input field, directive — that has no description, named by its
 * schema coordinate. Introspection types (`__Type`, …) are excluded.
 */
function undocumented(walkable: Walkable): string[] {
  const missing: string[] = [];
  for (const type of Object.values(walkable.getTypeMap())) {
    if (type.name.startsWith("__")) continue;
    if (!hasText(type)) missing.push(type.name);
    for (const field of Object.values(type.getFields?.() ?? {})) {
      const coordinate = `${type.name}.${field.name}`;
      if (!hasText(field)) missing.push(coordinate);
      missing.push(...undocumentedArgs(coordinate, field.args));
    }
    for (const value of type.getValues?.() ?? []) {
      if (!hasText(value)) missing.push(`${type.name}.${value.name}`);
    }
  }
  for (const directive of walkable.getDirectives()) {
    if (SPECIFIED_DIRECTIVES.has(directive.name)) continue;
    if (!hasText(directive)) missing.push(`@${directive.name}`);
    missing.push(...undocumentedArgs(`@${directive.name}`, directive.args));
  }
  return missing.sort();
}

describe("schema descriptions: every element a client sees is documented", () => {
  it("the schema built from the code describes every type, field, argument and enum value", () => {
    expect(undocumented(schema as unknown as Walkable)).toEqual([]);
  });

  it("the committed schema.graphql does too", () => {
    const sdl = readFileSync(new URL("../../schema.graphql", import.meta.url), "utf8");
    expect(undocumented(buildSchema(sdl))).toEqual([]);
  });

  it("names what lacks a description, by schema coordinate", () => {
    const sample = buildSchema(`
      "Documented."
      type Query { "Documented." a(x: Int): B }
      type B { b: E }
      "Documented." enum E { "Documented." ONE TWO }
      "Documented." input I { "Documented." ok: Int bare: Int }
      "Documented." directive @tag(name: String) on FIELD_DEFINITION
      scalar S
      union U = B
      interface N { "Documented." id: ID }
    `);
    expect(undocumented(sample)).toEqual([
      "@tag(name:)",
      "B",
      "B.b",
      "E.TWO",
      "I.bare",
      "N",
      "Query.a(x:)",
      "S",
      "U",
    ]);
  });
});
