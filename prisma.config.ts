import { defineConfig } from 'prisma/config';

// Prisma's migrate engine is not used: migrations are plain SQL applied by scripts/db-migrate.ts.
// The client is generated from prisma/schema.prisma (typed models); the API runs its SQL through node-postgres
// (src/platform/database/sql.ts).
export default defineConfig({
  schema: 'prisma/schema.prisma',
  datasource: { url: process.env.DATABASE_URL ?? 'postgresql://localhost/omnizen' },
});
