import {
  type GraphQLNamedType,
  getNamedType,
  isInterfaceType,
  isLeafType,
  isObjectType,
  isRequiredArgument,
  isUnionType,
} from "graphql";

/**
 * The selection set of every field of `type` a client can select without
 * arguments, `depth` object levels deep; a type already on the path is not
 * entered again (cycles add nothing a shallower copy does not cover).
 */
export function selectionOf(type: GraphQLNamedType, depth: number, path: readonly string[]): string {
  const inner = [...path, type.name];
  if (isUnionType(type)) {
    return `__typename ${type
      .getTypes()
      .map((member) => `... on ${member.name} { ${selectionOf(member, depth, path)} }`)
      .join(" ")}`;
  }
  if (!isObjectType(type) && !isInterfaceType(type)) return "";
  const fields: string[] = ["__typename"];
  for (const field of Object.values(type.getFields())) {
    if (field.args.some(isRequiredArgument)) continue;
    const named = getNamedType(field.type);
    if (isLeafType(named)) fields.push(field.name);
    else if (depth > 0 && !inner.includes(named.name)) {
      fields.push(`${field.name} { ${selectionOf(named, depth - 1, inner)} }`);
    }
  }
  return fields.join(" ");
}
