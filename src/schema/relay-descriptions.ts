/**
 * Descriptions of the types and fields the Relay plugin builds itself (Node,
 * node(id:), PageInfo, every connection's edges and cursors), given to the
 * builder's `relay` options so they read like the rest of the schema.
 */
export const relayDescriptions = {
  nodeTypeOptions: {
    description:
      "An object with a global id. Every id this API returns is one: pass it to `node(id:)` or to any argument that expects an id of that type.",
  },
  idFieldOptions: {
    description: "Global id: opaque, stable, and unique across every type.",
  },
  nodeQueryOptions: {
    nullable: true,
    description:
      "The object with this global id, or null when none exists or the caller may not see it (a user sees only the accounts they are a member of and what belongs to them).",
    args: { id: { description: "A global id returned by this API." } },
  },
  pageInfoTypeOptions: {
    description: "Where a page of a connection sits. Pages are read forwards: pass endCursor as `after`.",
  },
  hasNextPageFieldOptions: {
    description: "True when more items follow this page: ask again with `after: endCursor`.",
  },
  hasPreviousPageFieldOptions: {
    description: "True when this page was read after a cursor, so newer items came before it.",
  },
  startCursorFieldOptions: { description: "The cursor of the page's first edge; null on an empty page." },
  endCursorFieldOptions: {
    description: "The cursor of the page's last edge, to pass as `after`; null on an empty page.",
  },
  pageInfoFieldOptions: { description: "Where this page sits, and whether more follow." },
  edgesFieldOptions: { description: "The page's items, newest first." },
  cursorFieldOptions: {
    description: "Opaque position of this edge: pass it as `after` to read what follows.",
  },
  nodeFieldOptions: { description: "The item at this position." },
  firstArgOptions: { description: "Page size, 1 to 100 (default 20)." },
  afterArgOptions: { description: "The endCursor of the previous page." },
  lastArgOptions: { description: "Page size when reading backwards (with `before`), 1 to 100." },
  beforeArgOptions: { description: "The startCursor of the page after the one wanted, to read backwards." },
} as const;
