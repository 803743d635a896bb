/**
 * A UUID as PostgreSQL prints it: lowercase, hyphenated. Ids from outside may
 * come in any letter case; test `id.toLowerCase()` against it to accept them.
 */
export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
