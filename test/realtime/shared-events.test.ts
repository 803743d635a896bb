/**
 * One execution per event and selection: subscribers handed the same event
 * object with the same selection share one result; what they select or pass
 * below the root still tells them apart. A small schema built with the same
 * copy of graphql the server uses, whose resolvers count their calls.
 */
import { createRequire } from "node:module";
import type * as GraphQL from "graphql";
import { describe, expect, it } from "vitest";
import { subscribeShared } from "../../src/server/shared-events.ts";

const graphql = createRequire(import.meta.url)("graphql") as typeof GraphQL;

interface Event {
  readonly sequence: number;
}

/** A topic whose subscribers all receive the same event objects. */
class Topic {
  private readonly queues = new Set<{ push: (event: Event) => void }>();

  subscribe(): AsyncIterableIterator<Event> {
    const pending: Event[] = [];
    let wake: (() => void) | null = null;
    const entry = {
      push: (event: Event) => {
        pending.push(event);
        wake?.();
      },
    };
    this.queues.add(entry);
    const queues = this.queues;
    return {
      [Symbol.asyncIterator]() {
        return this;
      },
      async next() {
        while (pending.length === 0) await new Promise<void>((resolve) => (wake = resolve));
        return { done: false, value: pending.shift() as Event };
      },
      async return() {
        queues.delete(entry);
        return { done: true, value: undefined };
      },
    };
  }

  publish(event: Event): void {
    for (const queue of this.queues) queue.push(event);
  }

  /** Equal but distinct objects, one per subscriber, as a replay reads them. */
  publishCopies(sequence: number): void {
    for (const queue of this.queues) queue.push({ sequence });
  }
}

function fixture() {
  const topic = new Topic();
  const calls = { root: 0, label: 0 };
  const Entry = new graphql.GraphQLObjectType<Event>({
    name: "Entry",
    fields: {
      sequence: { type: graphql.GraphQLInt },
      label: {
        type: graphql.GraphQLString,
        args: { prefix: { type: graphql.GraphQLString } },
        resolve: (event, args: { prefix?: string | null }) => {
          calls.label += 1;
          return `${args.prefix ?? ""}${event.sequence}`;
        },
      },
    },
  });
  const schema = new graphql.GraphQLSchema({
    query: new graphql.GraphQLObjectType({ name: "Query", fields: { ok: { type: graphql.GraphQLBoolean } } }),
    subscription: new graphql.GraphQLObjectType({
      name: "Subscription",
      fields: {
        entryAdded: {
          type: Entry,
          args: { accountId: { type: graphql.GraphQLID }, afterSequence: { type: graphql.GraphQLInt } },
          subscribe: () => topic.subscribe(),
          resolve: (event: Event) => {
            calls.root += 1;
            return event;
          },
        },
      },
    }),
  });
  // One document object per text, as the server's parse cache hands out.
  const documents = new Map<string, GraphQL.DocumentNode>();
  const parsed = (query: string) => {
    let document = documents.get(query);
    if (document === undefined) {
      document = graphql.parse(query);
      documents.set(query, document);
    }
    return document;
  };
  const subscribe = async (query: string, variables: Record<string, unknown>, role = "user") => {
    const stream = await subscribeShared({
      schema,
      document: parsed(query),
      variableValues: variables,
      contextValue: { principal: { role } },
    });
    if (!(Symbol.asyncIterator in stream)) throw new Error(JSON.stringify(stream));
    return stream as AsyncIterableIterator<GraphQL.ExecutionResult>;
  };
  return { topic, calls, subscribe };
}

const ENTRY = `subscription($a: ID, $after: Int) { entryAdded(accountId: $a, afterSequence: $after) { sequence label } }`;
const PREFIXED = `subscription($a: ID, $p: String) { entryAdded(accountId: $a) { sequence label(prefix: $p) } }`;

describe("shared subscription execution", () => {
  it("executes an event once for 50 subscribers of one selection, whatever their root arguments", async () => {
    const { topic, calls, subscribe } = fixture();
    const streams = await Promise.all(
      Array.from({ length: 50 }, (_, i) => subscribe(ENTRY, { a: "account-1", after: i })),
    );
    for (const sequence of [1, 2, 3]) {
      const pending = streams.map((stream) => stream.next());
      topic.publish({ sequence });
      const results = await Promise.all(pending);
      for (const result of results) {
        expect(result.value).toEqual({ data: { entryAdded: { sequence, label: String(sequence) } } });
      }
    }
    expect(calls).toEqual({ root: 3, label: 3 });
    await Promise.all(streams.map((stream) => stream.return?.()));
  });

  it("executes separately what differs below the root: variables there, the document, the role", async () => {
    const { topic, calls, subscribe } = fixture();
    const streams = await Promise.all([
      subscribe(PREFIXED, { a: "account-1", p: "x:" }),
      subscribe(PREFIXED, { a: "account-2", p: "x:" }),
      subscribe(PREFIXED, { a: "account-1", p: "y:" }),
      subscribe(ENTRY, { a: "account-1" }),
      subscribe(ENTRY, { a: "account-1" }, "admin"),
    ]);
    const pending = streams.map((stream) => stream.next());
    topic.publish({ sequence: 7 });
    const labels = (await Promise.all(pending)).map(
      (result) => (result.value as { data: { entryAdded: { label: string } } }).data.entryAdded.label,
    );
    expect(labels).toEqual(["x:7", "x:7", "y:7", "7", "7"]);
    // x: shared by the first two (their only difference is a root argument); y:, plain, admin apart.
    expect(calls).toEqual({ root: 4, label: 4 });
    await Promise.all(streams.map((stream) => stream.return?.()));
  });

  it("executes per subscriber events that are not shared objects", async () => {
    const { calls, subscribe, topic } = fixture();
    const streams = await Promise.all([subscribe(ENTRY, {}), subscribe(ENTRY, {})]);
    const pending = streams.map((stream) => stream.next());
    topic.publishCopies(9);
    await Promise.all(pending);
    expect(calls).toEqual({ root: 2, label: 2 });
  });
});
