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
# Never --omit=optional: native bindings are optional packages picked by platform, and the API loads one at start
# (@node-rs/argon2-linux-x64-gnu, password hashing); without it the process exits. What that flag kept out goes by
# hand instead: @prisma/client (and with it the Prisma CLI and TypeScript) is an optional peer of @nestjs/terminus,
# so npm installs it; the API never loads it. Those are exactly the packages the lock file marks devOptional (a
# development dependency, else only an optional one): they are deleted, then the optional packages no package left
# names (the platform binding of a deleted one: @napi-rs/canvas's, 30 MB), and the command links left dangling.
# The last step loads and runs the binding, so an image without it fails to build rather than to start.
RUN (npm ci --omit=dev --ignore-scripts --no-audit --no-fund || npm install --omit=dev --ignore-scripts --no-audit --no-fund) \
    && node -e 'const fs = require("node:fs"); const { packages } = require("./package-lock.json"); \
      const drop = (path) => fs.rmSync(path, { recursive: true, force: true }); \
      const installed = Object.entries(packages).filter(([path]) => path && fs.existsSync(path)); \
      for (const [path, p] of installed) if (p.devOptional) drop(path); \
      const kept = installed.filter(([, p]) => !p.devOptional); \
      const named = new Set(kept.flatMap(([, p]) => Object.keys({ ...p.dependencies, ...p.optionalDependencies, ...p.peerDependencies }))); \
      for (const [path, p] of kept) if (p.optional && !named.has(path.slice(path.lastIndexOf("node_modules/") + 13))) drop(path)' \
    && find node_modules/.bin -xtype l -delete \
    && npm cache clean --force \
    && node -e 'import("@node-rs/argon2").then((m) => m.hash("smoke")).then((h) => { if (!h.startsWith("$argon2")) process.exit(1); }, (e) => { console.error(e); process.exit(1); })'
COPY --from=build /app/dist ./dist
COPY prisma/migrations ./prisma/migrations
COPY supabase/compat ./supabase/compat
# /app is root's: the data exports' directory (DATA_EXPORT_DIR's default, .data/exports; compose mounts a volume
# there) is made the runtime user's, else every export fails at its mkdir (EACCES)
RUN mkdir -p /app/.data/exports && chown -R node:node /app/.data
USER node
EXPOSE 3000
# `node dist/scripts/db-migrate.js` applies migrations on its own; compose sets MIGRATE_ON_START=true instead.
# a larger young generation: less GC work per request under load (bench/README.md)
CMD ["node", "--max-semi-space-size=64", "dist/src/main.js"]
