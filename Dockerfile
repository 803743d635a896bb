# syntax=docker/dockerfile:1
#
# The production install of SPEC §6, in two stages:
#   build:   npm ci && npm run build && npm prune --omit=dev
#   runtime: NODE_ENV=production npm start, as a non-root user, with no dev
#            dependency installed.
#
#   docker build -t creditbook .
#   docker run -p 4000:4000 -e DATABASE_URL=... -e AUTH_JWT_SECRET=... creditbook
#   docker run -p 4000:4000 -v creditbook-data:/data creditbook   # embedded PGlite in /data

FROM node:20-slim AS build
WORKDIR /app
# The whole tree first: `npm ci` runs the postinstall build, which needs the
# sources. @prisma/client names the Prisma CLI and TypeScript as optional
# peers, so `--omit=dev` keeps them; the second prune drops them too (nothing
# at start needs them, nor the two optional production packages pg-cloudflare
# and graphql-armor-types).
COPY . .
RUN npm ci --no-audit --no-fund \
 && npm run build \
 && npm prune --omit=dev --no-audit --no-fund \
 && npm prune --omit=dev --omit=optional --no-audit --no-fund

FROM node:20-slim AS runtime
ENV NODE_ENV=production \
    PORT=4000 \
    DATA_DIR=/data \
    NPM_CONFIG_UPDATE_NOTIFIER=false
WORKDIR /app
# Owned by root and read-only to the service: it writes only to DATA_DIR.
COPY --from=build /app /app
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
EXPOSE 4000
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch(`http://127.0.0.1:${process.env.PORT}/readyz`).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# The start script execs node, so `docker stop`'s SIGTERM reaches the server
# and it shuts down cleanly.
CMD ["npm", "start"]
