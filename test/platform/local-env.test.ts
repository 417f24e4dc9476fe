import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { listMigrations, projectRoot } from '../../src/platform/database/migrator.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';

/**
 * The entry points read the project's .env before anything reads the environment, and the migrator never migrates
 * a server it did not start when it meant to use the embedded one. `npm run db:migrate` runs for real, in a
 * project directory of its own (links to this checkout's migrations) with its own .env.
 */
describe('.env and the embedded server', () => {
  const root = projectRoot();
  let project: string;
  // the test run's server: from the throwaway project directory (no .data/postgres of its own) it is a server
  // that project did not start
  const server = new URL(process.env.OMNIZEN_TEST_SERVER_URL!);
  const foreign = { port: server.port || '5432', local: ['127.0.0.1', 'localhost'].includes(server.hostname) };
  let db: TestDatabase;

  beforeAll(async () => {
    project = mkdtempSync(join(tmpdir(), 'omnizen-env-'));
    for (const dir of ['prisma', 'supabase', 'node_modules', 'package.json', 'tsconfig.json', '.swcrc']) symlinkSync(join(root, dir), join(project, dir));
    db = await createTestDatabase({ template: null });
  });
  afterAll(async () => {
    await db?.drop();
    rmSync(project, { recursive: true, force: true });
  });

  function dbMigrate(env: string): { status: number | null; out: string } {
    writeFileSync(join(project, '.env'), env);
    const childEnv = { ...process.env };
    for (const name of ['DATABASE_URL', 'EMBEDDED_PG_PORT', 'API_DATABASE_URL', 'API_DATABASE_PASSWORD', 'NODE_OPTIONS']) delete childEnv[name];
    const r = spawnSync(process.execPath, ['--import', join(root, 'scripts', 'register-ts.mjs'), join(root, 'scripts', 'db-migrate.ts')],
      { cwd: project, env: childEnv, encoding: 'utf8', timeout: 120_000 });
    return { status: r.status, out: `${r.stdout}${r.stderr}` };
  }

  // (a test server on another host is not on any local port the embedded server could use)
  (foreign.local ? it : it.skip)('db:migrate takes EMBEDDED_PG_PORT from .env, and refuses a server it did not start on that port', () => {
    const r = dbMigrate(`EMBEDDED_PG_PORT=${foreign.port}\n`);
    expect(r.out).toContain(`a PostgreSQL server this project did not start answers on 127.0.0.1:${foreign.port}`);
    expect(r.out).toContain(`not ${join(project, '.data', 'postgres')}`);
    expect(r.out).not.toMatch(/applied|up to date/);
    expect(r.status).toBe(1);
  });

  it('db:migrate takes DATABASE_URL and the API password from .env', async () => {
    const r = dbMigrate(`DATABASE_URL=${db.url}\nAPI_DATABASE_PASSWORD=from-dotenv\n`);
    expect(r.out).toContain(`${listMigrations().length} migration(s) applied`);
    expect(r.status).toBe(0);
    const { rows } = await db.admin.query('SELECT count(*)::int AS n FROM omnizen_migrations.applied');
    expect(rows[0].n).toBe(listMigrations().length);
  });

  it('is called by every entry point before it reads the environment', () => {
    const scripts = Object.values(JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).scripts as Record<string, string>);
    const entryPoints = ['src/main.ts', ...new Set(scripts.flatMap((s) => s.match(/\S+\.ts\b/g) ?? []))];
    expect(entryPoints).toEqual(expect.arrayContaining(['scripts/db-migrate.ts', 'scripts/secrets-rotate.ts', 'bench/api.bench.ts']));
    const readsEnvironment = (code: string) => /process\.env|loadConfig\(\)|ensureDatabaseUrl\(/.test(code);
    const missing = entryPoints.map((f) => [f, readFileSync(join(root, f), 'utf8')] as const)
      .filter(([, code]) => readsEnvironment(code) && !code.includes('loadLocalEnv(')).map(([f]) => f);
    expect(missing).toEqual([]);
  });
});
