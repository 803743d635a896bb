/**
 * Cheap checks of a parsed document's shape, run before graphql's validation
 * rules. Those rules are not all linear: OverlappingFieldsCanBeMerged compares
 * every pair of fields of one response name, so 740× `viewer { id }` (3,000
 * tokens, all limits passed) cost 150–600 ms of CPU to validate. And the
 * depth and cost limits leave `__schema` out, so 30 aliased `__schema`
 * selections answered 1.9 MB for a request of 1.2 KB. One linear walk of the
 * document refuses both before any rule runs.
 */
import {
  type ASTNode,
  type DocumentNode,
  type FragmentDefinitionNode,
  type GraphQLError,
  Kind,
  type SelectionSetNode,
} from "graphql";
import { createGraphQLError, type Plugin } from "graphql-yoga";

/** Most field selections written in one document (the largest in operations/ has 46, GraphiQL's introspection 72). */
export const FIELDS_MAX = 250;
/** Most fields of one response name in one selection set (`a a a`, or `viewer { … }` repeated). */
export const FIELD_REPEATS_MAX = 5;
/** Most `__schema` selections in one document, and most `__type` selections. */
export const INTROSPECTION_ROOTS_MAX = 1;
/**
 * Deepest nesting under `__schema` or `__type` (that field is 1), through
 * fragments. GraphiQL's introspection query (graphql's getIntrospectionQuery)
 * reaches 15: nine `ofType` levels under `__schema.types.fields.args.type`;
 * the rest is headroom for tools that ask deeper. Deep `ofType` chains cost
 * little (no lists); lists inside introspection are bounded by graphql's own
 * MaxIntrospectionDepthRule.
 */
export const INTROSPECTION_DEPTH_MAX = 20;

const INTROSPECTION_ROOTS = ["__schema", "__type"] as const;

/**
 * The shape errors of `document`, empty if it may go on to validation. Each
 * fragment is walked once (its depth memoized), so the work is linear in the
 * document; cycles are left for validation to report.
 */
export function documentShapeErrors(document: DocumentNode): GraphQLError[] {
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const definition of document.definitions) {
    if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments.set(definition.name.value, definition);
  }
  const errors: GraphQLError[] = [];
  const roots = new Map<string, number>();
  let fields = 0;
  const depthOf = selectionDepth(fragments);
  const walk = (set: SelectionSetNode) => {
    const repeats = new Map<string, number>();
    for (const selection of set.selections) {
      if (selection.kind !== Kind.FIELD) {
        if (selection.kind === Kind.INLINE_FRAGMENT) walk(selection.selectionSet);
        continue;
      }
      fields += 1;
      const key = selection.alias?.value ?? selection.name.value;
      const repeated = (repeats.get(key) ?? 0) + 1;
      repeats.set(key, repeated);
      if (repeated === FIELD_REPEATS_MAX + 1) {
        errors.push(
          shapeError(`Field "${key}" is selected more than ${FIELD_REPEATS_MAX} times in one selection set`, [
            selection,
          ]),
        );
      }
      const name = selection.name.value;
      if (name === "__schema" || name === "__type") {
        roots.set(name, (roots.get(name) ?? 0) + 1);
        const depth = 1 + depthOf(selection.selectionSet);
        if (depth > INTROSPECTION_DEPTH_MAX) {
          errors.push(
            shapeError(`Introspection depth limit of ${INTROSPECTION_DEPTH_MAX} exceeded, found ${depth}`, [
              selection,
            ]),
          );
        }
      }
      if (selection.selectionSet !== undefined) walk(selection.selectionSet);
    }
  };
  for (const definition of document.definitions) {
    if (definition.kind === Kind.OPERATION_DEFINITION || definition.kind === Kind.FRAGMENT_DEFINITION)
      walk(definition.selectionSet);
  }
  for (const root of INTROSPECTION_ROOTS) {
    const count = roots.get(root) ?? 0;
    if (count > INTROSPECTION_ROOTS_MAX) {
      errors.push(
        shapeError(`At most ${INTROSPECTION_ROOTS_MAX} "${root}" selection per document, found ${count}`),
      );
    }
  }
  if (fields > FIELDS_MAX) errors.push(shapeError(`Field limit of ${FIELDS_MAX} exceeded, found ${fields}`));
  return errors;
}

/**
 * A function giving the depth of the deepest field under a selection set (1
 * for a set of leaves), through fragments. Each fragment's depth is computed
 * once; a fragment spread inside itself counts as nothing here (validation
 * refuses the cycle).
 */
function selectionDepth(
  fragments: ReadonlyMap<string, FragmentDefinitionNode>,
): (set: SelectionSetNode | undefined) => number {
  const depths = new Map<string, number>();
  const visiting = new Set<string>();
  const depthOf = (set: SelectionSetNode | undefined): number => {
    let deepest = 0;
    for (const selection of set?.selections ?? []) {
      if (selection.kind === Kind.FIELD) deepest = Math.max(deepest, 1 + depthOf(selection.selectionSet));
      else if (selection.kind === Kind.INLINE_FRAGMENT)
        deepest = Math.max(deepest, depthOf(selection.selectionSet));
      else {
        const name = selection.name.value;
        if (visiting.has(name)) continue;
        let depth = depths.get(name);
        if (depth === undefined) {
          visiting.add(name);
          depth = depthOf(fragments.get(name)?.selectionSet);
          visiting.delete(name);
          depths.set(name, depth);
        }
        deepest = Math.max(deepest, depth);
      }
    }
    return deepest;
  };
  return depthOf;
}

function shapeError(message: string, nodes?: readonly ASTNode[]): GraphQLError {
  // createGraphQLError: graphql-ws accepts validation errors only from its own copy of graphql.
  return createGraphQLError(message, { nodes });
}

/**
 * Yoga plugin: refuses a document whose shape is over a limit with those
 * errors as its validation result, so graphql's rules never run on it. The
 * client sees ordinary validation errors (GRAPHQL_VALIDATION_FAILED).
 */
export function documentShapePlugin(): Plugin {
  return {
    onValidate({ params, setResult }) {
      const errors = documentShapeErrors(params.documentAST);
      if (errors.length > 0) setResult(errors);
    },
  };
}
