import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import pg from 'pg';

/**
 * The project's migration runner (Prisma's migrate engine is not needed). One ordered stream:
 * supabase/compat/*.sql (the Supabase compatibility layer, a no-op on Supabase) then
 * prisma/migrations/<timestamp>_<name>/migration.sql. Each file runs in its own transaction,
 * under the runner's lock (holdRunLock), and is recorded with its checksum; an applied file that was edited
 * stops the run, unless prisma/migrations/amended.json lists the checksum it was applied with as one
 * the edit amends (a fix to a migration that could not apply somewhere, e.g. on Supabase, whose
 * databases that did apply it reach the same state through a later migration).
 */
export interface Migration {
  name: string;
  sql: string;
  checksum: string;
}

/**
 * The runners' lock: a table of the runner's schema, locked EXCLUSIVE by a second connection in a transaction open for
 * the whole run. Not an advisory lock: any role may take those (an analyst's login holding the runner's key stalled every
 * deploy). Nobody else has a privilege on the schema or the table, so no other role can lock it.
 */
const RUN_LOCK_DDL = `CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.run_lock ();`;

/** Holds the runners' lock on a connection of its own until the returned function releases it. */
async function holdRunLock(databaseUrl: string, log: (line: string) => void): Promise<() => Promise<void>> {
  const lock = new pg.Client({ connectionString: databaseUrl });
  lock.on('error', (err) => log(`migration lock connection lost: ${err.message}`));
  await lock.connect();
  try {
    // two first runs create the schema and table at once: the loser's CREATE fails on the catalog's unique index
    // (23505) or finds it made meanwhile (42P06, 42P07); it tries again and finds them
    for (let attempt = 1; ; attempt++) {
      try {
        await lock.query(RUN_LOCK_DDL);
        break;
      } catch (err) {
        if (attempt >= 3 || !['23505', '42P06', '42P07'].includes((err as { code?: string }).code ?? '')) throw err;
      }
    }
    // the transaction sits idle while the other connection migrates: a server's idle timeout must not end it
    await lock.query('SET idle_in_transaction_session_timeout = 0');
    await lock.query('BEGIN');
    await lock.query('LOCK TABLE omnizen_migrations.run_lock IN EXCLUSIVE MODE');
  } catch (err) {
    await lock.end().catch(() => undefined);
    throw err;
  }
  return async () => {
    await lock.query('ROLLBACK').catch(() => undefined);
    await lock.end().catch(() => undefined);
  };
}

/** Where the runner records what it applied (the Supabase CLI's copies of the migrations record themselves here too). */
export const BOOKKEEPING_DDL = `CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);`;

export function projectRoot(): string {
  let dir = process.cwd();
  while (!existsSync(join(dir, 'prisma', 'migrations'))) {
    const parent = resolve(dir, '..');
    if (parent === dir) throw new Error('cannot find prisma/migrations above the current directory');
    dir = parent;
  }
  return dir;
}

/** prisma/migrations/amended.json: per migration, the earlier checksums its current text amends, and why. */
export interface Amendment {
  replaces: string[];
  why: string;
}

export function listAmendments(root = projectRoot()): Record<string, Amendment> {
  const file = join(root, 'prisma', 'migrations', 'amended.json');
  if (!existsSync(file)) return {};
  return JSON.parse(readFileSync(file, 'utf8')) as Record<string, Amendment>;
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
  /** apply migrations older than one already applied (refused otherwise: they could undo later ones) */
  outOfOrder?: boolean;
  /** sets the runtime login's password after migrating (omnizen_api) */
  apiPassword?: string;
  log?: (line: string) => void;
  /** the folder holding supabase/compat and prisma/migrations (default: found above the current directory) */
  root?: string;
}

export async function migrate(databaseUrl: string, options: MigrateOptions = {}): Promise<string[]> {
  const log = options.log ?? ((line: string) => console.log(line));
  const client = new pg.Client({ connectionString: databaseUrl });
  // a connection the server cuts fails the statement running on it; without a listener its 'error'
  // event would end the process instead
  client.on('error', (err) => log(`migration connection lost: ${err.message}`));
  // what a migration reports with RAISE NOTICE / WARNING (organizations whose data needs a look) reaches the log; the
  // server's own notices ("already exists, skipping") do not
  let running = '';
  client.on('notice', (n) => {
    if (n.severity === 'WARNING' || /\bat RAISE\b/.test(n.where ?? '')) log(`${running}: ${n.severity ?? 'NOTICE'}: ${n.message}`);
  });
  const release = await holdRunLock(databaseUrl, log);
  try {
    await client.connect();
  } catch (err) {
    await release();
    throw err;
  }
  const applied: string[] = [];
  try {
    await client.query(BOOKKEEPING_DDL);
    const done = new Map<string, string>(
      (await client.query('SELECT name, checksum FROM omnizen_migrations.applied')).rows.map((r) => [r.name, r.checksum]),
    );
    const all = listMigrations(options.root);
    const amendments = listAmendments(options.root);
    const known = new Set(all.map((m) => m.name));
    const amended: Migration[] = [];
    for (const m of all) {
      const checksum = done.get(m.name);
      if (!checksum || checksum === m.checksum) continue;
      if (!amendments[m.name]?.replaces.includes(checksum)) {
        throw new Error(`migration ${m.name} was edited after it was applied (checksum differs); add a new migration instead`);
      }
      amended.push(m);
    }
    // A migration older than one already applied (a branch merged after a later one was deployed) would run after
    // the migrations that follow it in the stream and could undo what they did: refused unless checked by hand.
    const lastApplied = all.reduce((last, m, i) => (done.has(m.name) ? i : last), -1);
    const late = all.slice(0, Math.max(lastApplied, 0)).filter((m) => !done.has(m.name)).map((m) => m.name);
    if (late.length && !options.outOfOrder) {
      throw new Error(`migration ${late.join(', ')} comes before ${all[lastApplied].name}, which this database has already applied: `
        + 'applied now, it would run after later migrations and could undo them. Migrate a fresh database, or check it '
        + 'against the later migrations and run with --out-of-order');
    }
    for (const m of amended) {
      await client.query('UPDATE omnizen_migrations.applied SET checksum = $2 WHERE name = $1', [m.name, m.checksum]);
      log(`migration ${m.name} was applied in an earlier version that its amendment replaces (${amendments[m.name].why}); recorded as amended`);
    }
    for (const name of done.keys()) {
      if (!known.has(name)) log(`warning: applied migration ${name} is not in this checkout`);
    }
    for (const m of all) {
      if (done.has(m.name)) continue;
      const started = Date.now();
      running = m.name;
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
      // a run stopped (--until) before 20260101000100_core has no runtime login yet: the run that creates it sets it
      const { rowCount } = await client.query(`SELECT 1 FROM pg_roles WHERE rolname = 'omnizen_api'`);
      if (rowCount) await client.query(`ALTER ROLE omnizen_api PASSWORD ${client.escapeLiteral(options.apiPassword)}`);
    }
    log(applied.length ? `${applied.length} migration(s) applied` : 'database is up to date');
    return applied;
  } finally {
    await client.end();
    await release();
  }
}

/**
 * The migration stream as the Supabase CLI reads it: supabase/migrations/<version>_<name>.sql, one file per
 * migration, generated (`npm run supabase:migrations`) and checked by a test. Each file is the migration's SQL
 * followed by its record in omnizen_migrations.applied, with the runner's checksum: after `supabase db reset`
 * (or `db push`) the runner finds everything applied, and the two never apply a migration twice.
 */
export function supabaseCliMigrations(root = projectRoot()): { file: string; content: string }[] {
  return listMigrations(root).map((m) => {
    const compat = /^supabase\/(\d+)_(.+)$/.exec(m.name);
    const file = compat ? `${compat[1].padStart(14, '0')}_${compat[2]}.sql` : `${m.name}.sql`;
    const source = compat ? `supabase/compat/${m.name.slice('supabase/'.length)}.sql` : `prisma/migrations/${m.name}/migration.sql`;
    const content = `-- Generated from ${source} by \`npm run supabase:migrations\`: edit that file, not this one.\n`
      + `-- The last statements record the migration for the project's runner (npm run db:migrate).\n`
      + `${m.sql.replace(/\s*$/, '')}\n\n${BOOKKEEPING_DDL}\n`
      + `INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('${m.name}', '${m.checksum}', 0)\n`
      + `  ON CONFLICT (name) DO NOTHING;\n`;
    return { file, content };
  });
}
