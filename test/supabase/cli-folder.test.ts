import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot, supabaseCliMigrations } from '../../src/platform/database/migrator.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';

/** The Supabase CLI's view of the project: supabase/migrations, config.toml, seed.sql. */
describe('the Supabase CLI folder', () => {
  const root = projectRoot();
  const config = readFileSync(join(root, 'supabase', 'config.toml'), 'utf8');
  let db: TestDatabase;

  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(() => db.drop());

  it('holds exactly the migration stream (run `npm run supabase:migrations` after adding or amending a migration)', () => {
    const dir = join(root, 'supabase', 'migrations');
    const expected = supabaseCliMigrations();
    expect(readdirSync(dir).filter((f) => f.endsWith('.sql')).sort()).toEqual(expected.map((f) => f.file).sort());
    const stale = expected.filter((f) => readFileSync(join(dir, f.file), 'utf8') !== f.content).map((f) => `${f.file} is out of date`);
    expect(stale).toEqual([]);
  });

  it('exposes through PostgREST only schemas the migrations create', async () => {
    const schemas = JSON.parse(/^schemas\s*=\s*(\[[^\]]*\])/m.exec(config)![1]) as string[];
    expect(schemas).toContain('public');
    const { rows } = await db.admin.query(`SELECT s FROM unnest($1::text[]) s WHERE to_regnamespace(s) IS NULL`, [schemas]);
    expect(rows.map((r) => `${r.s} is exposed but no migration creates it`)).toEqual([]);
  });

  it('seeds supabase/seed.sql on `supabase db reset` (the CLI migrates first)', () => {
    const seed = /\[db\.seed\]([\s\S]*?)(?=\n\[|$)/.exec(config)![1];
    expect(seed).toMatch(/^enabled\s*=\s*true/m);
    const paths = JSON.parse(/^sql_paths\s*=\s*(\[[^\]]*\])/m.exec(seed)![1]) as string[];
    expect(paths.map((p) => existsSync(join(root, 'supabase', p)))).toEqual(paths.map(() => true));
  });
});
