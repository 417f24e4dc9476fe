import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from '@jest/globals';
import { listAmendments, listMigrations, migrate } from '../../src/platform/database/migrator.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';

/** The migration runner, each case on a fresh empty database (not the template). */
describe('migration runner', () => {
  const all = listMigrations().map((m) => m.name);
  const quiet = () => undefined;
  let dbs: TestDatabase[] = [];
  const emptyDb = async () => {
    const db = await createTestDatabase({ template: null });
    dbs.push(db);
    return db;
  };
  afterEach(async () => {
    await Promise.all(dbs.map((db) => db.drop()));
    dbs = [];
  });
  const recorded = async (db: TestDatabase) =>
    (await db.admin.query('SELECT name, checksum FROM omnizen_migrations.applied ORDER BY name')).rows;

  it('lists the compatibility layer first, then the stream in timestamp order', () => {
    expect(all[0]).toBe('supabase/0000_supabase_compat');
    const stream = all.filter((n) => !n.startsWith('supabase/'));
    expect(stream).toEqual([...stream].sort());
    expect(stream).toContain('20260101000100_core');
  });

  it('applies every migration in order, records each with its checksum and logs what it did', async () => {
    const db = await emptyDb();
    const lines: string[] = [];
    const applied = await migrate(db.url, { log: (l) => lines.push(l) });
    expect(applied).toEqual(all);
    const rows = await recorded(db);
    const checksums = new Map(listMigrations().map((m) => [m.name, m.checksum]));
    expect(rows.map((r) => r.name).sort()).toEqual([...all].sort());
    for (const r of rows) expect(r.checksum).toBe(checksums.get(r.name));
    expect(lines).toContain(`${all.length} migration(s) applied`);
    expect(lines.filter((l) => l.startsWith('applied ')).map((l) => l.split(' ')[1])).toEqual(all);
    // the result is a working schema
    const { rows: [t] } = await db.admin.query(`SELECT to_regclass('core.organizations') IS NOT NULL AS ok`);
    expect(t.ok).toBe(true);
  });

  it('applies nothing on a second run', async () => {
    const db = await emptyDb();
    await migrate(db.url, { log: quiet });
    const lines: string[] = [];
    expect(await migrate(db.url, { log: (l) => lines.push(l) })).toEqual([]);
    expect(lines).toEqual(['database is up to date']);
    expect((await recorded(db)).length).toBe(all.length);
  });

  it('lets two concurrent runs through the advisory lock with each migration applied once', async () => {
    const db = await emptyDb();
    const [a, b] = await Promise.all([migrate(db.url, { log: quiet }), migrate(db.url, { log: quiet })]);
    expect([...a, ...b].sort()).toEqual([...all].sort());
    expect(a.length === 0 || b.length === 0).toBe(true); // one did everything, the other found it done
    const { rows } = await db.admin.query('SELECT name, count(*)::int AS n FROM omnizen_migrations.applied GROUP BY name HAVING count(*) > 1');
    expect(rows).toEqual([]);
  });

  it('refuses to run when an applied migration was edited, and names it', async () => {
    const db = await emptyDb();
    await migrate(db.url, { log: quiet });
    // as if the file had been edited after it was applied
    await db.admin.query(`UPDATE omnizen_migrations.applied SET checksum = 'edited' WHERE name = '20260101000100_core'`);
    await expect(migrate(db.url, { log: quiet })).rejects.toThrow(/migration 20260101000100_core was edited after it was applied/);
  });

  it('stops after the migration named by `until`, and the next run continues from there', async () => {
    const db = await emptyDb();
    const until = all[1];
    expect(await migrate(db.url, { until, log: quiet })).toEqual(all.slice(0, 2));
    expect((await recorded(db)).map((r) => r.name).sort()).toEqual(all.slice(0, 2).sort());
    expect(await migrate(db.url, { log: quiet })).toEqual(all.slice(2));
  });

  it('stops after the compatibility layer on a fresh database, the runtime login\'s password set by the run that creates it', async () => {
    const db = await emptyDb();
    expect(await migrate(db.url, { until: 'supabase/0000_supabase_compat', apiPassword: 'pw-1', log: quiet })).toEqual([all[0]]);
    const hasPassword = async () => (await db.admin.query(
      `SELECT count(*)::int AS n FROM pg_authid WHERE rolname = 'omnizen_api' AND rolpassword IS NOT NULL`)).rows[0].n;
    await migrate(db.url, { apiPassword: 'pw-2', log: quiet });
    expect(await hasPassword()).toBe(1);
  });

  it('accepts a migration applied in an earlier version its amendment replaces (amended.json), and records the amendment', async () => {
    const db = await emptyDb();
    await migrate(db.url, { log: quiet });
    const [name, amendment] = Object.entries(listAmendments())[0];
    await db.admin.query('UPDATE omnizen_migrations.applied SET checksum = $2 WHERE name = $1', [name, amendment.replaces[0]]);
    const lines: string[] = [];
    expect(await migrate(db.url, { log: (l) => lines.push(l) })).toEqual([]);
    expect(lines).toContain(`migration ${name} was applied in an earlier version that its amendment replaces (${amendment.why}); recorded as amended`);
    const current = listMigrations().find((m) => m.name === name)!.checksum;
    expect((await recorded(db)).find((r) => r.name === name)?.checksum).toBe(current);
  });

  it('refuses a migration older than one the database has applied (it could undo later ones), unless told to', async () => {
    const db = await emptyDb();
    const n = all.length;
    await migrate(db.url, { until: all[n - 3], log: quiet });
    // as if the branch that added all[n - 2] was merged after all[n - 1] had been deployed
    const newest = listMigrations().find((m) => m.name === all[n - 1])!;
    await db.admin.query('INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ($1, $2, 0)', [newest.name, newest.checksum]);
    await expect(migrate(db.url, { log: quiet }))
      .rejects.toThrow(`migration ${all[n - 2]} comes before ${all[n - 1]}, which this database has already applied`);
    expect((await recorded(db)).map((r) => r.name)).not.toContain(all[n - 2]);
    expect(await migrate(db.url, { outOfOrder: true, log: quiet })).toEqual([all[n - 2]]);
  });

  it('rolls back a failing migration and names it', async () => {
    const db = await emptyDb();
    // a database where the core tables already exist in a conflicting shape: the core migration fails
    await migrate(db.url, { until: all[0], log: quiet });
    await db.admin.query('CREATE SCHEMA core; CREATE TABLE core."User" (id int)');
    await expect(migrate(db.url, { log: quiet })).rejects.toThrow(/migration 20260101000100_core failed: .*"User" already exists/);
    expect((await recorded(db)).map((r) => r.name)).toEqual([all[0]]);
    const { rows: [t] } = await db.admin.query(`SELECT to_regclass('core.organizations') IS NULL AS rolled_back`);
    expect(t.rolled_back).toBe(true);
  });
  it('logs what a migration reports with RAISE NOTICE or WARNING, named by the migration, and not the server\'s own notices', async () => {
    const db = await emptyDb();
    const root = mkdtempSync(join(tmpdir(), 'omnizen-migrator-'));
    try {
      mkdirSync(join(root, 'supabase', 'compat'), { recursive: true });
      writeFileSync(join(root, 'supabase', 'compat', '0000_compat.sql'), 'CREATE SCHEMA IF NOT EXISTS public;');
      mkdirSync(join(root, 'prisma', 'migrations', '20990101000100_reports'), { recursive: true });
      writeFileSync(join(root, 'prisma', 'migrations', '20990101000100_reports', 'migration.sql'), `
        CREATE SCHEMA IF NOT EXISTS public;
        DROP TABLE IF EXISTS public.nothing_here;
        DO $$ BEGIN
          RAISE NOTICE 'organization %: needs a look', 42;
          RAISE WARNING 'left as it was';
        END $$;`);
      const lines: string[] = [];
      expect(await migrate(db.url, { root, log: (l) => lines.push(l) })).toEqual(['supabase/0000_compat', '20990101000100_reports']);
      expect(lines.filter((l) => !l.startsWith('applied ') && !l.endsWith('applied'))).toEqual([
        '20990101000100_reports: NOTICE: organization 42: needs a look',
        '20990101000100_reports: WARNING: left as it was',
      ]);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
