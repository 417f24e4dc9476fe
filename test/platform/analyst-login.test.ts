import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes, randomUUID } from 'node:crypto';
import pg from 'pg';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, registerUser } from '../support/factories.js';
import { booksWithEntry } from '../agents/agents-support.js';

/** A new connection as `login` to the test database at `dbUrl`. */
async function connectAs(dbUrl: string, login: string, password: string): Promise<pg.Client> {
  const url = new URL(dbUrl);
  url.username = login;
  url.password = password;
  const c = new pg.Client({ connectionString: url.toString() });
  await c.connect();
  return c;
}

/** Drops cluster-wide roles a test made (its database is dropped first, so nothing of theirs is left in it). */
async function dropRoles(...logins: string[]): Promise<void> {
  const root = new pg.Client({ connectionString: process.env.OMNIZEN_TEST_SERVER_URL });
  await root.connect();
  for (const login of logins) await root.query(`DROP ROLE IF EXISTS ${login}`);
  await root.end();
}

/** The schemas of ours an analyst could reach. */
const SCHEMAS = `ARRAY['core', 'hub', 'finance', 'ai', 'public', 'semantic']`;

/**
 * An analyst's real database login (a new connection, not SET ROLE): granted omnizen_analyst and
 * mapped to one organization, it resolves auth_org_id() from session_user. The SQL test
 * supabase/tests/003_analyst_login.sql covers the same with SET SESSION AUTHORIZATION.
 */
describe('analyst database login', () => {
  let db: TestDatabase;
  const login = `omnizen_t_analyst_${randomBytes(4).toString('hex')}`;
  const orgId = randomUUID();
  let userId: string;
  let analyst: pg.Client;

  beforeAll(async () => {
    db = await createTestDatabase();
    userId = randomUUID();
    await db.admin.query(`INSERT INTO core."User" (id, email) VALUES ($1, $2)`, [userId, `${userId}@example.test`]);
    await db.admin.query(`INSERT INTO core.organizations (id, name, owner_user_id) VALUES ($1, 'Analysed', $2)`, [orgId, userId]);
    await db.admin.query(`INSERT INTO core.memberships (org_id, user_id, role) VALUES ($1, $2, 'owner')`, [orgId, userId]);
    await db.admin.query(`CREATE ROLE ${login} LOGIN PASSWORD 'analyst-test' IN ROLE omnizen_analyst`);
    await db.admin.query(`INSERT INTO core.analyst_logins (login, org_id) VALUES ($1, $2)`, [login, orgId]);
    const url = new URL(db.url);
    url.username = login;
    url.password = 'analyst-test';
    analyst = new pg.Client({ connectionString: url.toString() });
    await analyst.connect();
  });
  afterAll(async () => {
    await analyst?.end();
    await db.drop();
    const root = new pg.Client({ connectionString: process.env.OMNIZEN_TEST_SERVER_URL });
    await root.connect();
    await root.query(`DROP ROLE IF EXISTS ${login}`);
    await root.end();
  });

  it('is in its mapped organization, as analyst', async () => {
    const { rows: [r] } = await analyst.query('SELECT session_user::text AS who, public.auth_org_id()::text AS org, public.auth_role() AS role');
    expect(r).toEqual({ who: login, org: orgId, role: 'analyst' });
  });

  it('cannot claim another, existing organization through request.jwt.claims', async () => {
    const otherOrg = randomUUID();
    await db.admin.query(`INSERT INTO core.organizations (id, name, owner_user_id) VALUES ($1, 'Other', $2)`, [otherOrg, userId]);
    await db.admin.query(`INSERT INTO core.memberships (org_id, user_id, role) VALUES ($1, $2, 'owner')`, [otherOrg, userId]);
    for (const claims of [{ org_id: otherOrg, role: 'service_role' }, { org_id: otherOrg, sub: userId, role: 'authenticated' }]) {
      await analyst.query('BEGIN');
      try {
        await analyst.query(`SELECT set_config('request.jwt.claims', $1, true)`, [JSON.stringify(claims)]);
        const { rows: [r] } = await analyst.query('SELECT public.auth_org_id()::text AS org, public.auth_role() AS role');
        expect(r).toEqual({ org: orgId, role: 'analyst' });
      } finally {
        await analyst.query('ROLLBACK');
      }
    }
  });

  it('cannot read base tables or become a request role', async () => {
    await expect(analyst.query('SELECT count(*) FROM core.memberships')).rejects.toMatchObject({ code: '42501' });
    await expect(analyst.query('SET ROLE authenticated')).rejects.toMatchObject({ code: '42501' });
    await expect(analyst.query('SET ROLE service_role')).rejects.toMatchObject({ code: '42501' });
  });

  it('is in no organization once unmapped', async () => {
    await db.admin.query('DELETE FROM core.analyst_logins WHERE login = $1', [login]);
    const { rows: [r] } = await analyst.query('SELECT public.auth_org_id() AS org, public.auth_role() AS role');
    expect(r).toEqual({ org: null, role: null });
  });
});

/**
 * An analyst of A against the rest of the database (20270211003800): every table and view it can read (from the
 * catalog) shows only A's rows, it can write nowhere, it reads only what the semantic views need, and the planner's
 * estimates tell it nothing of B's values (no statistics on the text-like columns it can read).
 */
describe('analyst database login, next to another organization', () => {
  let t: TestApp;
  let orgA: string;
  let orgB: string;
  let analyst: pg.Client;
  const login = `omnizen_t_analyst_${randomBytes(4).toString('hex')}`;
  const secretMemo = `B quarterly secret ${randomBytes(3).toString('hex')}`;
  const secretVendor = `b secret vendor ${randomBytes(3).toString('hex')}`;

  beforeAll(async () => {
    t = await createTestApp();
    const ownerA = await registerUser(t, 'analysed-a');
    const ownerB = await registerUser(t, 'analysed-b');
    orgA = await createOrg(t, ownerA, 'Analysed A');
    orgB = await createOrg(t, ownerB, 'Analysed B');
    await booksWithEntry(t, orgA, ownerA, '100.00', 'A capital');
    await booksWithEntry(t, orgB, ownerB, '999.00', 'B capital');
    // B's frequent memo (250 entries) among 250 other entries of B: what ANALYZE puts in the memo's most common
    // values; and as many of A's, so that the planner's share for A's rows (the policy's org_id = auth_org_id(),
    // estimated from org_id's statistics) does not round every estimate down to 1 row. Loaded as a restore would
    // (replica mode: no per-row triggers), each organization in its first period.
    const c = await t.db.admin.connect();
    try {
      await c.query('BEGIN');
      await c.query('SET LOCAL session_replication_role = replica');
      for (const [org, memo] of [[orgB, secretMemo], [orgA, 'A bulk']]) {
        await c.query(`INSERT INTO finance.journal_entries (org_id, id, entry_date, period_id, memo, source, request_hash, base_currency, total_base, created_by)
          SELECT $1::uuid, gen_random_uuid(), p.start_date, p.id, CASE WHEN g % 2 = 0 THEN $2 ELSE $2 || ' other ' || g END, 'manual', md5(g::text), 'EUR', 1, 'bulk'
          FROM generate_series(1, 500) g, LATERAL (SELECT id, start_date FROM finance.fiscal_periods WHERE org_id = $1 ORDER BY start_date LIMIT 1) p`, [org, memo]);
        // and a vendor name used often: what ANALYZE keeps for the expression index on lower(name)
        await c.query(`INSERT INTO finance.vendors (org_id, name) SELECT $1, CASE WHEN g % 2 = 0 THEN $2 ELSE $2 || ' other ' || g END
          FROM generate_series(1, 400) g`, [org, org === orgB ? secretVendor : 'a vendor']);
      }
      await c.query('COMMIT');
    } finally {
      c.release();
    }
    await t.db.admin.query('ANALYZE');
    await t.db.admin.query(`CREATE ROLE ${login} LOGIN PASSWORD 'analyst-test' IN ROLE omnizen_analyst`);
    await t.db.admin.query('INSERT INTO core.analyst_logins (login, org_id) VALUES ($1, $2)', [login, orgA]);
    analyst = await connectAs(t.db.url, login, 'analyst-test');
  });
  afterAll(async () => {
    await analyst?.end();
    await t?.close();
    await dropRoles(login);
  });

  /** Every table and view of ours the analyst can read, with whether it can read an org_id column. */
  async function readable(): Promise<{ rel: string; kind: string; has_org: boolean }[]> {
    const { rows } = await analyst.query(`
      SELECT format('%I.%I', n.nspname, c.relname) AS rel, c.relkind AS kind,
             EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'org_id' AND NOT a.attisdropped
                     AND has_column_privilege(c.oid, a.attnum, 'SELECT')) AS has_org
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND n.nspname = ANY (${SCHEMAS})
        AND (has_table_privilege(c.oid, 'SELECT') OR has_any_column_privilege(c.oid, 'SELECT'))`);
    return rows.sort((a, b) => (a.rel < b.rel ? -1 : 1));
  }

  it('reads the semantic views and only the tables under them', async () => {
    expect((await readable()).map((r) => r.rel)).toEqual([
      'finance.accounts', 'finance.bill_allocations', 'finance.bills', 'finance.cash_flow_split', 'finance.currencies',
      'finance.customers', 'finance.fiscal_periods', 'finance.fx_revaluation_items', 'finance.invoices', 'finance.journal_entries',
      'finance.journal_lines', 'finance.settings', 'finance.vendors',
      'semantic.v_ap_open', 'semantic.v_ar_open', 'semantic.v_cash_flow', 'semantic.v_gl_fact', 'semantic.v_revenue_by_customer',
    ]);
    // what the views need: each base table under a readable security_invoker view is readable (else the view fails)
    for (const v of ['semantic.v_ap_open', 'semantic.v_ar_open', 'semantic.v_cash_flow', 'semantic.v_gl_fact', 'semantic.v_revenue_by_customer']) {
      await analyst.query(`SELECT * FROM ${v} LIMIT 1`);
    }
  });

  it('sees no row of another organization in any table or view it can read', async () => {
    const rels = await readable();
    // only the currency catalog (no org_id: shared reference data) carries no organization
    expect(rels.filter((r) => !r.has_org).map((r) => r.rel)).toEqual(['finance.currencies']);
    const seen: Record<string, { own: number; other: number }> = {};
    for (const { rel } of rels.filter((r) => r.has_org)) {
      const { rows: [r] } = await analyst.query(`SELECT count(*) FILTER (WHERE org_id = $1)::int AS own,
        count(*) FILTER (WHERE org_id IS DISTINCT FROM $1)::int AS other FROM ${rel}`, [orgA]);
      seen[rel] = r;
    }
    expect(Object.entries(seen).filter(([, r]) => r.other > 0)).toEqual([]);
    // not vacuous: B has rows where A's analyst looked, and A's own are there
    const { rows: [b] } = await t.db.admin.query(`SELECT (SELECT count(*) FROM finance.journal_entries WHERE org_id = $1)::int AS entries,
      (SELECT count(*) FROM finance.journal_lines WHERE org_id = $1)::int AS lines, (SELECT count(*) FROM finance.accounts WHERE org_id = $1)::int AS accounts`, [orgB]);
    expect(b.entries).toBe(501);
    expect(b.lines).toBeGreaterThan(0);
    expect(b.accounts).toBeGreaterThan(0);
    expect(seen['finance.journal_entries']).toEqual({ own: 501, other: 0 });
    expect(seen['semantic.v_gl_fact']).toEqual({ own: 2, other: 0 });
  });

  it('can write nowhere', async () => {
    const { rows } = await analyst.query(`
      SELECT format('%s %I.%I', c.relkind, n.nspname, c.relname) AS rel FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = ANY (${SCHEMAS}) AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
        AND CASE WHEN c.relkind = 'S' THEN has_sequence_privilege(c.oid, 'USAGE,UPDATE')
                 ELSE has_table_privilege(c.oid, 'INSERT,UPDATE,DELETE,TRUNCATE,REFERENCES,TRIGGER')
                      OR has_any_column_privilege(c.oid, 'INSERT,UPDATE,REFERENCES') END
      UNION ALL
      SELECT 'schema ' || nspname FROM pg_namespace WHERE nspname = ANY (${SCHEMAS}) AND has_schema_privilege(oid, 'CREATE')`);
    expect(rows).toEqual([]);
    // the tables themselves (a view that is not updatable is refused before its privileges are checked)
    for (const { rel } of (await readable()).filter((r) => r.kind === 'r')) {
      await expect(analyst.query(`DELETE FROM ${rel}`)).rejects.toMatchObject({ code: '42501' });
    }
    await expect(analyst.query(`UPDATE finance.journal_entries SET memo = 'x'`)).rejects.toMatchObject({ code: '42501' });
    await expect(analyst.query(`INSERT INTO core.analyst_logins (login, org_id) VALUES ('x', $1)`, [orgB])).rejects.toMatchObject({ code: '42501' });
  });

  it("learns nothing of B's values from the planner's estimates", async () => {
    const estimate = async (sql: string, value: string) => {
      const { rows: [r] } = await analyst.query(`EXPLAIN (FORMAT JSON) ${sql.replace('$v', `'${value.replace(/'/g, "''")}'`)}`);
      return r['QUERY PLAN'][0].Plan['Plan Rows'] as number;
    };
    for (const sql of ['SELECT * FROM finance.journal_entries WHERE memo = $v', 'SELECT * FROM semantic.v_gl_fact WHERE memo = $v',
      'SELECT id FROM finance.vendors WHERE lower(name) = $v', 'SELECT * FROM semantic.v_ap_open WHERE party_name = $v']) {
      const value = sql.includes('vendor') || sql.includes('v_ap_open') ? secretVendor : secretMemo;
      expect({ sql, estimate: await estimate(sql, value) }).toEqual({ sql, estimate: await estimate(sql, 'never used by anyone') });
    }
    // and the statistics views show an analyst nothing of a table under row-level security
    const { rows: [v] } = await analyst.query(`SELECT (SELECT count(*) FROM pg_stats WHERE schemaname = ANY (${SCHEMAS}))::int AS stats,
      (SELECT count(*) FROM pg_stats_ext WHERE schemaname = ANY (${SCHEMAS}))::int AS ext`);
    expect(v).toEqual({ stats: 0, ext: 0 });
  });

  it('keeps no statistics on a text-like column an analyst can read, but for the closed sets allowed', async () => {
    // closed sets (values fixed by a CHECK constraint, public in the schema) and the shared currency catalog:
    // 20270211003800 explains why each may keep its statistics. A new column an analyst can read needs SET STATISTICS 0.
    const allowed = ['finance.accounts.cash_flow_class', 'finance.accounts.type', 'finance.bills.kind', 'finance.bills.status',
      'finance.currencies.code', 'finance.currencies.name', 'finance.fiscal_periods.status', 'finance.fx_revaluation_items.subledger',
      'finance.invoices.kind', 'finance.invoices.status', 'finance.journal_lines.counterparty_id', 'finance.journal_lines.counterparty_type'];
    const { rows } = await t.db.admin.query(`
      WITH RECURSIVE readable AS (
        SELECT c.oid FROM pg_class c WHERE c.relnamespace::regnamespace::text = ANY (${SCHEMAS})
          AND (has_table_privilege('omnizen_analyst', c.oid, 'SELECT') OR has_any_column_privilege('omnizen_analyst', c.oid, 'SELECT'))
      ), under(oid, attnum) AS (
        -- the columns of every relation under a readable view, however deep
        SELECT d.refobjid, d.refobjsubid FROM readable r JOIN pg_rewrite w ON w.ev_class = r.oid
          JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = w.oid AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> r.oid
        UNION
        SELECT d.refobjid, d.refobjsubid FROM under u JOIN pg_rewrite w ON w.ev_class = u.oid
          JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = w.oid AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> u.oid
      ), cols AS (
        SELECT a.attrelid, a.attnum FROM readable r JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0
        WHERE has_column_privilege('omnizen_analyst', a.attrelid, a.attnum, 'SELECT')
        UNION SELECT oid, attnum FROM under WHERE attnum > 0
      )
      SELECT format('%s.%s.%s', c.relnamespace::regnamespace, c.relname, a.attname) AS col
      FROM cols JOIN pg_attribute a ON a.attrelid = cols.attrelid AND a.attnum = cols.attnum AND NOT a.attisdropped
      JOIN pg_class c ON c.oid = a.attrelid AND c.relkind IN ('r', 'p')
      JOIN pg_type ty ON ty.oid = a.atttypid LEFT JOIN pg_type e ON e.oid = ty.typelem AND ty.typcategory = 'A'
      WHERE (coalesce(e.typcategory, ty.typcategory) = 'S' OR coalesce(e.typname, ty.typname) IN ('json', 'jsonb'))
        AND coalesce(a.attstattarget, -1) <> 0
`);
    expect(rows.map((r) => r.col).sort()).toEqual(allowed);
    // nor on an expression index over such a column (lower(name)): ANALYZE keeps statistics per index expression
    const { rows: indexes } = await t.db.admin.query(`
      SELECT format('%s.%s', i.indexrelid::regclass, a.attname) AS col FROM pg_index i
      JOIN pg_attribute a ON a.attrelid = i.indexrelid AND a.attnum <= i.indnkeyatts AND i.indkey[a.attnum - 1] = 0
      WHERE coalesce(a.attstattarget, -1) <> 0 AND EXISTS (
        SELECT 1 FROM pg_depend d JOIN pg_attribute c ON c.attrelid = d.refobjid AND c.attnum = d.refobjsubid JOIN pg_type ty ON ty.oid = c.atttypid
        WHERE d.classid = 'pg_class'::regclass AND d.objid = i.indexrelid AND d.refclassid = 'pg_class'::regclass
          AND has_column_privilege('omnizen_analyst', c.attrelid, c.attnum, 'SELECT') AND ty.typcategory = 'S'
          AND format('%s.%s', c.attrelid::regclass, c.attname) <> ALL ($1))`, [allowed]);
    expect(indexes).toEqual([]);
    // and ANALYZE (run in beforeAll) stored none for them
    const { rows: stored } = await t.db.admin.query(`SELECT format('%s.%s.%s', schemaname, tablename, attname) AS col FROM pg_stats
      WHERE schemaname = 'finance' AND tablename = 'journal_entries' AND attname IN ('memo', 'source_ref', 'base_currency')`);
    expect(stored).toEqual([]);
    // nor through an extended statistics object (CREATE STATISTICS … ON lower(memo) is computed whatever the column's
    // target): none may stand on a table an analyst can read
    const { rows: extended } = await t.db.admin.query(`SELECT s.stxname AS name FROM pg_statistic_ext s
      WHERE has_table_privilege('omnizen_analyst', s.stxrelid, 'SELECT') OR has_any_column_privilege('omnizen_analyst', s.stxrelid, 'SELECT')`);
    expect(extended).toEqual([]);
  });
});

/** core.create_analyst_login (20270211003800): the operators' one way to make a login, bounded and audited. */
describe('core.create_analyst_login', () => {
  let db: TestDatabase;
  const login = `omnizen_t_analyst_${randomBytes(4).toString('hex')}`;
  const orgId = randomUUID();
  const clients: pg.Client[] = [];

  beforeAll(async () => {
    db = await createTestDatabase();
    const userId = randomUUID();
    await db.admin.query(`INSERT INTO core."User" (id, email) VALUES ($1, $2)`, [userId, `${userId}@example.test`]);
    await db.admin.query(`INSERT INTO core.organizations (id, name, owner_user_id) VALUES ($1, 'Analysed', $2)`, [orgId, userId]);
  });
  afterAll(async () => {
    for (const c of clients) await c.end().catch(() => undefined);
    await db.drop();
    await dropRoles(login);
  });

  it('makes a mapped login with a connection limit, timeouts and an audit row', async () => {
    await db.admin.query('SELECT core.create_analyst_login($1, $2, $3, 2)', [login, 'analyst-test', orgId]);
    const { rows: [role] } = await db.admin.query(`SELECT r.rolconnlimit AS limit, r.rolcanlogin AS login, r.rolsuper OR r.rolcreaterole OR r.rolcreatedb OR r.rolbypassrls AS elevated,
      (SELECT a.org_id::text FROM core.analyst_logins a WHERE a.login = r.rolname) AS org FROM pg_roles r WHERE r.rolname = $1`, [login]);
    expect(role).toEqual({ limit: 2, login: true, elevated: false, org: orgId });
    const { rows: audit } = await db.admin.query(`SELECT actor_id, principal_type, action, entity_type, entity_id, after FROM core.audit_logs WHERE org_id = $1`, [orgId]);
    expect(audit).toEqual([{ actor_id: expect.stringMatching(/^operator:/), principal_type: 'system', action: 'analyst_login.created', entity_type: 'analyst_login',
      entity_id: login, after: { login, maxConnections: 2, statementTimeout: '60s', idleInTransactionSessionTimeout: '60s', idleSessionTimeout: '15min', lockTimeout: '5s' } }]);

    const first = await connectAs(db.url, login, 'analyst-test');
    clients.push(first);
    const { rows: [s] } = await first.query(`SELECT current_setting('statement_timeout') AS statement, current_setting('idle_in_transaction_session_timeout') AS idle_tx,
      current_setting('idle_session_timeout') AS idle, current_setting('lock_timeout') AS lock, public.auth_org_id()::text AS org, public.auth_role() AS role`);
    expect(s).toEqual({ statement: '1min', idle_tx: '1min', idle: '15min', lock: '5s', org: orgId, role: 'analyst' });
    clients.push(await connectAs(db.url, login, 'analyst-test'));
    // the third connection is refused: the one bound an analyst cannot SET away
    await expect(connectAs(db.url, login, 'analyst-test')).rejects.toMatchObject({ code: '53300' });
  });

  it('is for operators only: no API-facing role, analyst or login may run it', async () => {
    const { rows } = await db.admin.query(`SELECT r AS role FROM unnest(ARRAY['PUBLIC', 'anon', 'authenticated', 'service_role', 'omnizen_analyst', 'omnizen_api', $1]) r
      WHERE r <> 'PUBLIC' AND has_function_privilege(r, 'core.create_analyst_login(name, text, uuid, integer)', 'EXECUTE')`, [login]);
    expect(rows).toEqual([]);
    await expect(clients[0].query(`SELECT core.create_analyst_login('omnizen_t_evil', 'x', $1)`, [orgId])).rejects.toMatchObject({ code: '42501' });
  });

  it('refuses a bad name, limit or organization with nothing made', async () => {
    const other = `omnizen_t_analyst_${randomBytes(4).toString('hex')}`;
    await expect(db.admin.query(`SELECT core.create_analyst_login('Robert"; DROP', 'x', $1)`, [orgId])).rejects.toMatchObject({ code: '22023' });
    await expect(db.admin.query('SELECT core.create_analyst_login($1, $2, $3, 0)', [other, 'x', orgId])).rejects.toMatchObject({ code: '22023' });
    await expect(db.admin.query('SELECT core.create_analyst_login($1, $2, $3)', [other, 'x', randomUUID()])).rejects.toMatchObject({ code: '23503' });
    const { rows: [n] } = await db.admin.query(`SELECT (SELECT count(*) FROM pg_roles WHERE rolname = $1)::int AS roles,
      (SELECT count(*) FROM core.analyst_logins WHERE login = $1)::int AS mapped`, [other]);
    expect(n).toEqual({ roles: 0, mapped: 0 });
  });
});
