# One image for every Parley service; the command picks the service:
#   docker run parley node --import @parley/telemetry/register services/gateway/dist/main.js
# (--import loads the tracing hook before the service; it does nothing without OTEL_EXPORTER_OTLP_ENDPOINT)
# Multi-stage: dependencies and the TypeScript build happen in `build`; the runtime stage carries
# only production dependencies and compiled output, and runs as the unprivileged `node` user.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json turbo.json tsconfig.base.json ./
COPY packages ./packages
COPY services ./services
COPY clients ./clients
COPY bin ./bin
COPY scripts/start.mjs scripts/rebuild.mjs scripts/schedule.mjs ./scripts/
RUN npm ci --no-audit --no-fund
RUN npx turbo run build --output-logs=errors-only
RUN npm prune --omit=dev

FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
# pg_dump and pg_restore for the backup job (Debian 12's client matches PostgreSQL 15).
RUN apt-get update && apt-get install -y --no-install-recommends postgresql-client-15 \
  && rm -rf /var/lib/apt/lists/*
COPY --from=build --chown=node:node /app/package.json ./
COPY --from=build --chown=node:node /app/node_modules ./node_modules
COPY --from=build --chown=node:node /app/packages ./packages
COPY --from=build --chown=node:node /app/services ./services
# The built web client only (WEB_CLIENT_DIR's default resolves here).
COPY --from=build --chown=node:node /app/clients/web/dist ./clients/web/dist
# `parley <command>` (bin/parley.mjs): every service and job from the compiled output, e.g.
# `docker compose run --rm backup parley verify /backups/<archive>`.
COPY --from=build --chown=node:node /app/bin ./bin
COPY --from=build --chown=node:node /app/scripts ./scripts
RUN ln -s /app/bin/parley.mjs /usr/local/bin/parley
# /backups exists (owned by node) so that a fresh named volume mounted there is writable by the backup job.
RUN mkdir -p /app/data/attachments /app/data/mail /backups && chown -R node:node /app/data /backups
USER node
EXPOSE 8080 9090 9091 9092
CMD ["node", "--import", "@parley/telemetry/register", "services/gateway/dist/main.js"]
