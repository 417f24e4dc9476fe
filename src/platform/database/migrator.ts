import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import pg from 'pg';

/**
 * The project's migration runner (Prisma's migrate engine is not needed). One ordered stream:
 * supabase/compat/*.sql (the Supabase compatibility layer, a no-op on Supabase) then
 * prisma/migrations/<timestamp>_<name>/migration.sql. Each file runs in its own transaction,
 * under an advisory lock, and is recorded with its checksum; an applied file that was edited
 * stops the run.
 */
export interface Migration {
  name: string;
  sql: string;
  checksum: string;
}

const LOCK_KEY = 727_001; // pg_advisory_lock key shared by every runner of this project

export function projectRoot(): string {
  let dir = process.cwd();
  while (!existsSync(join(dir, 'prisma', 'migrations'))) {
    const parent = resolve(dir, '..');
    if (parent === dir) throw new Error('cannot find prisma/migrations above the current directory');
    dir = parent;
  }
  return dir;
}

export function listMigrations(root = projectRoot()): Migration[] {
  const read = (name: string, file: string): Migration => {
    const sql = readFileSync(file, 'utf8');
    return { name, sql, checksum: createHash('sha256').update(sql).digest('hex') };
  };
  const compatDir = join(root, 'supabase', 'compat');
  const compat = readdirSync(compatDir).filter((f) => f.endsWith('.sql')).sort()
    .map((f) => read(`supabase/${f.replace(/\.sql$/, '')}`, join(compatDir, f)));
  const migDir = join(root, 'prisma', 'migrations');
  const stream = readdirSync(migDir, { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(join(migDir, d.name, 'migration.sql')))
    .map((d) => d.name).sort()
    .map((name) => read(name, join(migDir, name, 'migration.sql')));
  return [...compat, ...stream];
}

export interface MigrateOptions {
  /** stop after this migration (inclusive), e.g. to test a data movement */
  until?: string;
  /** sets the runtime login's password after migrating (omnizen_api) */
  apiPassword?: string;
  log?: (line: string) => void;
}

export async function migrate(databaseUrl: string, options: MigrateOptions = {}): Promise<string[]> {
  const log = options.log ?? ((line: string) => console.log(line));
  const client = new pg.Client({ connectionString: databaseUrl });
  // a connection the server cuts fails the statement running on it; without a listener its 'error'
  // event would end the process instead
  client.on('error', (err) => log(`migration connection lost: ${err.message}`));
  await client.connect();
  const applied: string[] = [];
  try {
    await client.query('SELECT pg_advisory_lock($1)', [LOCK_KEY]);
    await client.query(`CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
      CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
        name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL)`);
    const done = new Map<string, string>(
      (await client.query('SELECT name, checksum FROM omnizen_migrations.applied')).rows.map((r) => [r.name, r.checksum]),
    );
    const all = listMigrations();
    const known = new Set(all.map((m) => m.name));
    for (const m of all) {
      const checksum = done.get(m.name);
      if (checksum && checksum !== m.checksum) {
        throw new Error(`migration ${m.name} was edited after it was applied (checksum differs); add a new migration instead`);
      }
    }
    for (const name of done.keys()) {
      if (!known.has(name)) log(`warning: applied migration ${name} is not in this checkout`);
    }
    for (const m of all) {
      if (done.has(m.name)) continue;
      const started = Date.now();
      try {
        await client.query('BEGIN');
        await client.query(m.sql);
        await client.query('INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ($1, $2, $3)', [m.name, m.checksum, Date.now() - started]);
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK');
        throw new Error(`migration ${m.name} failed: ${(err as Error).message}`);
      }
      applied.push(m.name);
      log(`applied ${m.name} (${Date.now() - started} ms)`);
      if (options.until && m.name === options.until) break;
    }
    if (options.apiPassword !== undefined) {
      await client.query(`ALTER ROLE omnizen_api PASSWORD ${client.escapeLiteral(options.apiPassword)}`);
    }
    log(applied.length ? `${applied.length} migration(s) applied` : 'database is up to date');
    return applied;
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [LOCK_KEY]).catch(() => undefined);
    await client.end();
  }
}
