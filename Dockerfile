# syntax=docker/dockerfile:1
# Build: install everything, generate the Prisma client, compile to dist/.
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# Install scripts are skipped: the one we need (prisma generate) runs explicitly below, once the schema is
# copied; the others would only download engines or binaries the image does not use.
# `npm install` stands in when `npm ci` refuses a lock file that lacks other platforms' optional packages
# (see .ci/run); it keeps the locked versions.
RUN npm ci --ignore-scripts --no-audit --no-fund || npm install --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json nest-cli.json prisma.config.ts ./
COPY prisma ./prisma
COPY supabase ./supabase
COPY scripts ./scripts
COPY src ./src
RUN npm run prisma:generate && npm run build

# Runtime: production dependencies, the compiled API and the SQL it migrates with.
FROM node:24-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
# --omit=optional too: @prisma/client (and with it the Prisma CLI and TypeScript) is an optional peer of
# @nestjs/terminus, so npm would install it; the API never loads it (node_modules: 538 MB before, 159 MB now)
RUN (npm ci --omit=dev --omit=optional --ignore-scripts --no-audit --no-fund || npm install --omit=dev --omit=optional --ignore-scripts --no-audit --no-fund) \
    && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY prisma/migrations ./prisma/migrations
COPY supabase/compat ./supabase/compat
USER node
EXPOSE 3000
# `node dist/scripts/db-migrate.js` applies migrations on its own; compose sets MIGRATE_ON_START=true instead.
# a larger young generation: less GC work per request under load (bench/README.md)
CMD ["node", "--max-semi-space-size=64", "dist/src/main.js"]
