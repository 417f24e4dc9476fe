// npm run supabase:migrations
// Writes supabase/migrations/ (the Supabase CLI's folder) from the migration stream: supabase/compat/*.sql and
// prisma/migrations/*/migration.sql, the one source. A test fails when the folder is out of date.
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot, supabaseCliMigrations } from '../src/platform/database/migrator.js';

const dir = join(projectRoot(), 'supabase', 'migrations');
mkdirSync(dir, { recursive: true });
const files = supabaseCliMigrations();
const keep = new Set(files.map((f) => f.file));
for (const old of readdirSync(dir)) if (old.endsWith('.sql') && !keep.has(old)) rmSync(join(dir, old));
for (const { file, content } of files) writeFileSync(join(dir, file), content);
console.log(`supabase/migrations: ${files.length} file(s)`);
