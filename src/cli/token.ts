import { parseArgs } from "node:util";
import { ROLES, type Role } from "../domain/access.ts";
import { resolveSecret, TokenService } from "../server/auth.ts";

/** `npm run token -- --sub alice --role user [--expires 30d]`: prints a token for the configured secret. */
const { values } = parseArgs({
  options: {
    sub: { type: "string" },
    role: { type: "string", default: "user" },
    expires: { type: "string", default: "30d" },
  },
});
if (values.sub === undefined || values.sub === "") {
  process.stderr.write("usage: npm run token -- --sub <subject> --role user|service|admin [--expires 30d]\n");
  process.exit(2);
}
if (!(ROLES as readonly string[]).includes(values.role)) {
  process.stderr.write(`--role must be one of ${ROLES.join(", ")}, got "${values.role}"\n`);
  process.exit(2);
}
try {
  const secret = resolveSecret(
    process.env.AUTH_JWT_SECRET?.trim() || undefined,
    process.env.DATA_DIR?.trim() || "./.data",
    false,
  );
  process.stdout.write(
    `${await new TokenService(secret).sign(values.sub, values.role as Role, values.expires)}\n`,
  );
} catch (error) {
  process.stderr.write(`${(error as Error).message}\n`);
  process.exit(1);
}
