import type { CodegenConfig } from "@graphql-codegen/cli";

/**
 * Typed documents for first-party clients, partners and the tests, generated
 * from the committed schema.graphql and the documents in operations/, plus
 * the persisted-documents manifest (hash → document) the server accepts.
 */
const config: CodegenConfig = {
  schema: "schema.graphql",
  documents: ["operations/**/*.graphql"],
  ignoreNoDocuments: false,
  generates: {
    "src/generated/graphql/": {
      preset: "client",
      config: {
        useTypeImports: true,
        enumsAsTypes: true,
        scalars: {
          Credits: { input: "number", output: "number" },
          DateTime: { input: "string", output: "string" },
          JSON: { input: "unknown", output: "unknown" },
        },
      },
      presetConfig: {
        fragmentMasking: false,
        persistedDocuments: { mode: "embedHashInDocument", hashAlgorithm: "sha256" },
      },
    },
  },
};

export default config;
