import { defineConfig } from 'prisma/config';

// Prisma's migrate engine is not used: migrations are plain SQL applied by scripts/db-migrate.ts.
// The client is generated from prisma/schema.prisma and talks to PostgreSQL through @prisma/adapter-pg.
export default defineConfig({
  schema: 'prisma/schema.prisma',
  datasource: { url: process.env.DATABASE_URL ?? 'postgresql://localhost/omnizen' },
});
