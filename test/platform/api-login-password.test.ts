import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { loadConfig } from '../../src/platform/config/config.js';
import { migrate, projectRoot } from '../../src/platform/database/migrator.js';
import { ThrowawayPostgres } from '../support/throwaway-servers.js';

/**
 * The migrator sets the runtime login's password (ALTER ROLE omnizen_api) from the API's database URL, and the API's
 * pool logs in with the same URL. A password with characters a URL must encode (/ = @ : # ? % and a space) was set
 * still percent-encoded, and the pool, which decodes it, could not log in. `npm run db:migrate` runs for real, on a
 * PostgreSQL of this file's own that checks passwords (the run's shared server trusts every local login).
 */
describe('the runtime login\'s password, set by db:migrate', () => {
  const root = projectRoot();
  let server: ThrowawayPostgres;

  beforeAll(async () => {
    server = await ThrowawayPostgres.create();
    // passwords checked for every TCP login but the bootstrap superuser's (the test's own setup)
    await server.stop();
    writeFileSync(join(server.dir, 'pg_hba.conf'), [
      'local all all trust',
      `host all ${server.superuser} 127.0.0.1/32 trust`,
      'host all all 127.0.0.1/32 scram-sha-256',
      '',
    ].join('\n'));
    await server.start();
    const admin = new pg.Client({ connectionString: server.url() });
    await admin.connect();
    await admin.query('CREATE DATABASE omnizen');
    await admin.end();
    await migrate(server.url('omnizen'), { log: () => undefined });
  }, 120_000);
  afterAll(async () => {
    await server?.destroy();
  });

  /** `npm run db:migrate` with these variables (and none of the test run's database settings). */
  async function dbMigrate(env: Record<string, string>): Promise<string> {
    const childEnv: NodeJS.ProcessEnv = { ...process.env, NODE_ENV: 'test', DATABASE_URL: server.url('omnizen'), ...env };
    for (const name of ['NODE_OPTIONS', 'EMBEDDED_PG_PORT']) delete childEnv[name];
    const { stdout, stderr } = await promisify(execFile)(process.execPath, ['--import', join(root, 'scripts', 'register-ts.mjs'), join(root, 'scripts', 'db-migrate.ts')],
      { cwd: root, env: childEnv, encoding: 'utf8', timeout: 120_000 });
    return `${stdout}${stderr}`;
  }

  /** Logs in with `url` as the API's pool does and says who it is. */
  async function loginAs(url: string): Promise<{ who: string; ok: number }> {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      const { rows: [row] } = await client.query('SELECT current_user::text AS who, 1 AS ok');
      return row;
    } finally {
      await client.end();
    }
  }

  /** Logs in as the runtime login with `password` itself, given without a URL: it is the password that was set. */
  async function loginWith(password: string): Promise<void> {
    const client = new pg.Client({ host: '127.0.0.1', port: server.port, user: 'omnizen_api', password, database: 'omnizen' });
    await client.connect();
    await client.end();
  }

  it('sets API_DATABASE_PASSWORD so that the derived runtime URL logs in', async () => {
    // a '%' too: the derivation encodes it, or a%41 would be read back as aA
    const env = { API_DATABASE_URL: '', API_DATABASE_PASSWORD: 'Zx3/k9+Qw= @:#?a%41' };
    expect(await dbMigrate(env)).toContain('database is up to date');
    const { apiDatabaseUrl } = loadConfig({ NODE_ENV: 'test', DATABASE_URL: server.url('omnizen'), ...env });
    expect(await loginAs(apiDatabaseUrl)).toEqual({ who: 'omnizen_api', ok: 1 });
    await loginWith(env.API_DATABASE_PASSWORD);
  });

  it('sets the password of an API_DATABASE_URL that percent-encodes it, so that the URL logs in', async () => {
    const password = 'p/=@:#?% x+y';
    const url = `postgresql://omnizen_api:${encodeURIComponent(password)}@127.0.0.1:${server.port}/omnizen`;
    expect(await dbMigrate({ API_DATABASE_URL: url, API_DATABASE_PASSWORD: '' })).toContain('database is up to date');
    expect(await loginAs(url)).toEqual({ who: 'omnizen_api', ok: 1 });
    await loginWith(password);
  });
});
