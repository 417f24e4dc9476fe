// `prisma generate` without the schema engine download (it is not needed to generate the
// client): Prisma accepts any executable as PRISMA_SCHEMA_ENGINE_BINARY for this command.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

// a production install (npm install --omit=dev) has no Prisma CLI and needs no client: the API runs its SQL
// through node-postgres, and the generated Prisma client and Kysely types are compile-time only
if (!existsSync('node_modules/prisma/build/index.js') || !existsSync('prisma/schema.prisma')) {
  console.log('prisma-generate: no Prisma CLI or schema here (a production install); skipped');
  process.exit(0);
}

const env = { ...process.env };
if (!env.PRISMA_SCHEMA_ENGINE_BINARY) env.PRISMA_SCHEMA_ENGINE_BINARY = existsSync('/bin/true') ? '/bin/true' : process.execPath;
execFileSync(process.execPath, ['node_modules/prisma/build/index.js', 'generate'], { stdio: 'inherit', env });
