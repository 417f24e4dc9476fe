import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { projectRoot } from '../../src/platform/database/migrator.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { onPlan, orgWithRoles, type RoleUsers } from '../support/factories.js';
import { ledgerUrl, startBooks } from '../ledger/ledger-support.js';
import { NOT_FROM_EXTENSION, SCHEMAS_PARAM } from '../platform/schemas.js';

/**
 * An analyst's database login cannot hold another organization's locks (review: any role may take an advisory lock, and
 * the keys were computable, hashtext('finance.posting:' || org_id), and shown by pg_locks; an analyst of organization A
 * holding B's posting key made every posting of B wait out the lock timeout, 503). The locks are rows of core.lock_rows
 * now, reached only through core.xact_lock / xact_lock_shared / try_xact_lock, which analysts cannot execute.
 */
describe('locks: an analyst login cannot hold another organization\'s locks', () => {
  let t: TestApp;
  let orgA: string;
  let orgB: string;
  let usersB: RoleUsers;
  let acc: Record<string, string>;
  const login = `omnizen_t_analyst_${randomBytes(4).toString('hex')}`;
  let analyst: pg.Client;

  /** Every lock name an organization's posting took as an advisory key (the posting functions' and the app's). */
  const postingNames = (org: string) => ['finance.posting:', 'finance.opening_balance:', 'finance.fiscal_years:', 'finance.revaluation:',
    'finance.revenue_recognition:', 'core.invitations.org:', 'core.api_keys:', 'core.webhook_endpoints:', 'core.analytics_event_names:'].map((p) => p + org);

  beforeAll(async () => {
    // a short lock timeout: on the old code the posting waited this long for the analyst's lock, then answered 503
    t = await createTestApp({ DATABASE_LOCK_TIMEOUT_MS: '1500' });
    ({ orgId: orgA } = await orgWithRoles(t, 'Analysed A'));
    ({ orgId: orgB, users: usersB } = await orgWithRoles(t, 'Victim B'));
    await onPlan(t, orgB, 'professional');
    acc = await startBooks(t, orgB, usersB.owner);
    await t.db.admin.query(`CREATE ROLE ${login} LOGIN PASSWORD 'analyst-test' IN ROLE omnizen_analyst`);
    await t.db.admin.query(`INSERT INTO core.analyst_logins (login, org_id) VALUES ($1, $2)`, [login, orgA]);
    const url = new URL(t.db.url);
    url.username = login;
    url.password = 'analyst-test';
    analyst = new pg.Client({ connectionString: url.toString() });
    await analyst.connect();
  });
  afterAll(async () => {
    await analyst?.end();
    await t?.close();
    const root = new pg.Client({ connectionString: process.env.OMNIZEN_TEST_SERVER_URL });
    await root.connect();
    await root.query(`DROP ROLE IF EXISTS ${login}`);
    await root.end();
  });

  it('lets organization B post while A\'s analyst holds every advisory key of B\'s names', async () => {
    for (const name of postingNames(orgB)) await analyst.query(`SELECT pg_advisory_lock(hashtext($1))`, [name]);
    try {
      const res = await t.http.post(ledgerUrl(orgB, 'journal-entries')).set(usersB.owner.auth)
        .send({ date: '2026-03-02', memo: 'posted past the analyst', lines: [{ accountId: acc['1100'], debit: '12.00' }, { accountId: acc['3100'], credit: '12.00' }] });
      expect({ status: res.status, error: res.body.error }).toEqual({ status: 201, error: undefined });
      const { rows } = await t.db.admin.query(
        `SELECT e.memo, sum(l.debit) = 12 AS debit_twelve, count(*)::int AS lines FROM finance.journal_entries e JOIN finance.journal_lines l ON l.entry_id = e.id
         WHERE e.org_id = $1 AND e.id = $2 GROUP BY e.memo`, [orgB, res.body.id]);
      expect(rows).toEqual([{ memo: 'posted past the analyst', debit_twelve: true, lines: 2 }]);
    } finally {
      await analyst.query('SELECT pg_advisory_unlock_all()');
    }
  });

  it('refuses the analyst the lock functions, core.lock_rows and the migration runner\'s lock table (42501)', async () => {
    for (const sql of [`SELECT core.xact_lock('finance.posting:${orgB}')`, `SELECT core.xact_lock_shared('finance.posting:${orgB}')`,
      `SELECT core.try_xact_lock('finance.posting:${orgB}')`, 'SELECT * FROM core.lock_rows', 'SELECT key FROM core.lock_rows FOR UPDATE']) {
      await expect(analyst.query(sql)).rejects.toMatchObject({ code: '42501' });
    }
    for (const table of ['core.lock_rows', 'omnizen_migrations.run_lock']) {
      await analyst.query('BEGIN');
      try {
        await expect(analyst.query(`LOCK TABLE ${table} IN ACCESS SHARE MODE`)).rejects.toMatchObject({ code: '42501' });
      } finally {
        await analyst.query('ROLLBACK');
      }
    }
    // granted to no role an analyst's login is a member of, nor to PUBLIC or anon
    const { rows } = await t.db.admin.query(
      `SELECT r AS role, f AS fn FROM unnest(ARRAY['omnizen_analyst', 'anon', $1]) r,
         unnest(ARRAY['core.xact_lock(text)', 'core.xact_lock_shared(text)', 'core.try_xact_lock(text)']) f
       WHERE has_function_privilege(r, f, 'EXECUTE')`, [login]);
    expect(rows).toEqual([]);
  });

  it('keeps the locks\' semantics: shared with shared, exclusive against both, try at once, waits end at lock_timeout (55P03)', async () => {
    const name = `test.semantics:${orgB}`;
    const [a, b] = [await t.db.admin.connect(), await t.db.admin.connect()];
    try {
      // the name's row made and committed first (a first use's row, uncommitted, makes the next user wait for its commit)
      await a.query('BEGIN');
      await a.query('SELECT core.xact_lock($1)', [name]);
      await a.query('COMMIT');
      for (const c of [a, b]) await c.query(`BEGIN; SET LOCAL lock_timeout = '200ms'`);
      await a.query('SELECT core.xact_lock_shared($1)', [name]);
      await b.query('SELECT core.xact_lock_shared($1)', [name]);
      expect((await b.query('SELECT core.try_xact_lock($1) AS ok', [name])).rows).toEqual([{ ok: false }]);
      await b.query('ROLLBACK');
      await b.query(`BEGIN; SET LOCAL lock_timeout = '200ms'`);
      await expect(b.query('SELECT core.xact_lock($1)', [name])).rejects.toMatchObject({ code: '55P03' });
      await b.query('ROLLBACK');
      await a.query('COMMIT');
      await a.query(`BEGIN; SET LOCAL lock_timeout = '200ms'`);
      expect((await a.query('SELECT core.try_xact_lock($1) AS ok', [name])).rows).toEqual([{ ok: true }]);
      await b.query(`BEGIN; SET LOCAL lock_timeout = '200ms'`);
      await expect(b.query('SELECT core.xact_lock_shared($1)', [name])).rejects.toMatchObject({ code: '55P03' });
      await b.query('ROLLBACK');
      await a.query('COMMIT');
    } finally {
      for (const c of [a, b]) {
        await c.query('ROLLBACK').catch(() => undefined);
        c.release();
      }
    }
  });

  it('leaves no function of our schemas, and no source file, taking an advisory lock', async () => {
    const { rows } = await t.db.admin.query(
      `SELECT p.oid::regprocedure::text AS fn FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
       WHERE n.nspname = ANY($1) AND p.prosrc ILIKE '%pg\\_%advisory%' AND ${NOT_FROM_EXTENSION('p.oid', 'pg_proc')} ORDER BY 1`, SCHEMAS_PARAM);
    expect(rows).toEqual([]);
    const files: string[] = [];
    const walk = (dir: string) => {
      for (const f of readdirSync(dir)) {
        const path = join(dir, f);
        if (f === 'generated') continue;
        if (statSync(path).isDirectory()) walk(path);
        else if (f.endsWith('.ts')) files.push(path);
      }
    };
    walk(join(projectRoot(), 'src'));
    expect(files.length).toBeGreaterThan(10);
    expect(files.filter((f) => /pg_(try_)?advisory/.test(readFileSync(f, 'utf8')))).toEqual([]);
  });
});
