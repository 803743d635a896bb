/**
 * The cache of parsed and validated documents, bounded by the memory it
 * holds. Yoga's own cache keeps 1,024 documents whatever their size, and
 * keeps them as soon as they parse: 1,100 unique documents of 3,000 tokens,
 * sent with no token, held about 1 MB of AST each and took the heap to 2 GB.
 * This one counts the bytes of what it keeps, keeps a document only once it
 * passed validation (so an invalid one is parsed again next time, which the
 * token limit makes cheap), keeps no parse errors, and answers a cached
 * document's validation at once.
 */
import type { DocumentNode } from "graphql";
import type { Plugin } from "graphql-yoga";
import { LRUCache } from "lru-cache";

/** Most bytes the parsed-document cache may hold, by its estimate (`documentBytes`). */
export const DOCUMENT_CACHE_BYTES_MAX = 32 * 1024 * 1024;

/**
 * Heap bytes a parsed document costs per token, an upper bound of what V8
 * measured (graphql 16, Node 20): 365 for 740× `viewer { id }`, 482 for
 * 990× `id` (the densest AST), 111 for a comment line. The tokens are a
 * linked list that the AST's locations keep alive whole, comments included.
 */
const HEAP_BYTES_PER_TOKEN = 500;

/**
 * What a parsed document holds on the heap: its source text (the cache key,
 * which the AST's locations share) and every token with the AST nodes made
 * of them. Walking the token list is linear in a document the token limit
 * has already bounded, and happens once per document kept.
 */
export function documentBytes(document: DocumentNode, source: string): number {
  let tokens = 0;
  for (let token = document.loc?.startToken ?? null; token !== null; token = token.next) tokens += 1;
  return source.length + tokens * HEAP_BYTES_PER_TOKEN;
}

/**
 * Yoga plugin replacing its parser and validation cache (create yoga with
 * `parserAndValidationCache: false`): a parse of a cached source returns the
 * cached document, and that document's validation returns no errors without
 * running the rules — every request runs the same rules against the same
 * schema, so a document valid once is valid for all.
 */
export function documentCachePlugin(bytesMax = DOCUMENT_CACHE_BYTES_MAX): Plugin {
  const cache = new LRUCache<string, DocumentNode>({
    maxSize: bytesMax,
    sizeCalculation: (document, source) => Math.max(1, documentBytes(document, source)),
  });
  // Documents parsed but not yet validated, by the source they came from; weak so a refused one is collected.
  const sources = new WeakMap<DocumentNode, string>();
  const validated = new WeakSet<DocumentNode>();
  return {
    onParse({ params, setParsedDocument }) {
      const source = typeof params.source === "string" ? params.source : params.source.body;
      const cached = cache.get(source);
      if (cached !== undefined) {
        setParsedDocument(cached);
        return;
      }
      return ({ result }) => {
        if (result != null && !(result instanceof Error)) sources.set(result as DocumentNode, source);
      };
    },
    onValidate({ params, setResult }) {
      const document = params.documentAST;
      if (validated.has(document)) {
        setResult([]);
        return;
      }
      return ({ valid }) => {
        const source = sources.get(document);
        if (!valid || source === undefined) return;
        sources.delete(document);
        // A document larger than the whole budget is not kept (lru-cache refuses it) and not marked.
        cache.set(source, document);
        if (cache.has(source)) validated.add(document);
      };
    },
  };
}
