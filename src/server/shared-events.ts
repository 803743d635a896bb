import { createRequire } from "node:module";
import type * as GraphQL from "graphql";
import { type DocumentNode, type ExecutionArgs, type ExecutionResult, Kind, visit } from "graphql";
import type { Plugin } from "graphql-yoga";
import type { Context } from "../schema/context.ts";
import { operationOf } from "./hardening.ts";

/**
 * Subscriptions that execute each event once per selection, not once per
 * subscriber.
 *
 * A live feed hands the same event object (a ledger entry, a balance, a
 * generation reference) to every local subscriber of an account. What a
 * subscriber receives for it depends only on that event and on the
 * operation below its root field: the root field's arguments (`accountId`,
 * `afterSequence`) choose the stream, not what an event resolves to, and no
 * field of the payload types depends on who asks beyond the account
 * visibility every subscriber has already passed (the role is still part of
 * the key, to be safe). So subscribers of one event with the same document,
 * operation name, role and values of the variables used below the root
 * share one execution: the result is computed by the first and reused by
 * the others, cached against the event object for as long as it lives.
 * Events that are not shared objects (a replay reads entries per
 * subscriber) are executed per subscriber as usual.
 */

/**
 * The executor from the copy of graphql the schema was built with. graphql
 * ships a CommonJS and an ES module build; Node loads the CommonJS one for
 * the libraries (Pothos, yoga), while test runners and bundlers may hand
 * this module the other, whose `execute` rejects a schema "from another
 * module or realm". `require` always gets the copy the libraries use.
 */
const { createSourceEventStream, execute } = createRequire(import.meta.url)("graphql") as typeof GraphQL;

/** Results per event object, then per selection key. */
const shared = new WeakMap<object, Map<string, Promise<ExecutionResult>>>();
/** Per document and operation: the variables used below the root fields. */
const variablesBelowRoot = new WeakMap<DocumentNode, Map<string, readonly string[]>>();

/**
 * The variables an operation uses anywhere but in its root fields' own
 * arguments (fragments included: a variable used in any fragment counts).
 */
function variablesUsedBelowRoot(
  document: DocumentNode,
  operationName: string | null | undefined,
): readonly string[] {
  let byOperation = variablesBelowRoot.get(document);
  if (byOperation === undefined) {
    byOperation = new Map();
    variablesBelowRoot.set(document, byOperation);
  }
  const cacheKey = operationName ?? "";
  const cached = byOperation.get(cacheKey);
  if (cached !== undefined) return cached;
  const operation = operationOf(document, operationName);
  const used = new Set<string>();
  const rootArguments = new Set(
    operation?.selectionSet.selections.flatMap((selection) =>
      selection.kind === Kind.FIELD ? (selection.arguments ?? []) : [],
    ) ?? [],
  );
  const collect = (node: object) =>
    visit(node as DocumentNode, {
      Argument: (argument) => (rootArguments.has(argument) ? false : undefined),
      Variable: (variable) => {
        used.add(variable.name.value);
      },
      VariableDefinition: () => false,
    });
  if (operation !== undefined) collect(operation.selectionSet);
  for (const definition of document.definitions) {
    if (definition.kind === Kind.FRAGMENT_DEFINITION) collect(definition);
  }
  const names = [...used].sort();
  byOperation.set(cacheKey, names);
  return names;
}

/** What makes two subscribers' results for one event the same. */
function selectionKey(args: ExecutionArgs): string {
  const variables = (args.variableValues ?? {}) as Record<string, unknown>;
  const role = (args.contextValue as Context | undefined)?.principal?.role ?? null;
  const values = variablesUsedBelowRoot(args.document, args.operationName).map((name) => [
    name,
    variables[name],
  ]);
  return JSON.stringify([args.operationName ?? null, role, values]);
}

function resultFor(args: ExecutionArgs, payload: unknown, key: string): Promise<ExecutionResult> {
  const run = async () => execute({ ...args, rootValue: payload });
  if (typeof payload !== "object" || payload === null) return run();
  let byKey = shared.get(payload);
  if (byKey === undefined) {
    byKey = new Map();
    shared.set(payload, byKey);
  }
  let result = byKey.get(key);
  if (result === undefined) {
    result = run();
    byKey.set(key, result);
  }
  return result;
}

/** A subscription whose events are executed once per event and selection (see above). */
export async function subscribeShared(
  args: ExecutionArgs,
): Promise<AsyncIterableIterator<ExecutionResult> | ExecutionResult> {
  const source = await createSourceEventStream(args);
  if (!(Symbol.asyncIterator in (source as object))) return source as ExecutionResult;
  // The same document object for the same text comes from the parse cache; sharing needs it.
  return new SharedIterator(
    args,
    (source as AsyncIterable<unknown>)[Symbol.asyncIterator](),
    selectionKey(args),
  );
}

/** A class: its methods cost a long-lived subscription nothing (see log.ts). */
class SharedIterator implements AsyncIterableIterator<ExecutionResult> {
  constructor(
    private readonly args: ExecutionArgs,
    private readonly iterator: AsyncIterator<unknown>,
    private readonly key: string,
  ) {}

  [Symbol.asyncIterator](): this {
    return this;
  }

  async next(): Promise<IteratorResult<ExecutionResult>> {
    const step = await this.iterator.next();
    if (step.done === true) return { done: true, value: undefined };
    return { done: false, value: await resultFor(this.args, step.value, this.key) };
  }

  return(): Promise<IteratorResult<ExecutionResult>> {
    return (this.iterator.return?.() ?? Promise.resolve({ done: true, value: undefined })) as Promise<
      IteratorResult<ExecutionResult>
    >;
  }

  throw(error?: unknown): Promise<IteratorResult<ExecutionResult>> {
    return (this.iterator.throw?.(error) ?? Promise.reject(error)) as Promise<
      IteratorResult<ExecutionResult>
    >;
  }
}

/** Makes every subscription (WebSocket and SSE) use `subscribeShared`. */
export function sharedEventsPlugin(): Plugin {
  return {
    onSubscribe: ({ setSubscribeFn }) => {
      setSubscribeFn(subscribeShared as never);
    },
  };
}
