import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { registerUser, type TestUser } from '../support/factories.js';
import { rlsCanaryProbe } from '../../src/platform/database/database.service.js';
import { CANARY_SAMPLE_PAGES, RlsCanary } from '../../src/platform/health/rls-canary.js';

/**
 * The row-level-security canary on a table too large to read whole each check: its read is a sample of a bounded
 * number of pages, which still sees a policy that lets rows through; what needs no row to be seen (RLS off or not
 * forced, a policy `true`, a view that reads as its owner) the catalog shows, on an empty table too.
 * (observability.test.ts: readiness and the metrics of the canary.)
 */
const PROBE = { sub: '00000000-0000-4000-8000-00000000c4a7' };
const ROWS = 30_000;

interface PlanNode { 'Node Type': string; 'Relation Name'?: string; 'Actual Rows': number; 'Rows Removed by Filter'?: number; Plans?: PlanNode[] }
const nodes = (p: PlanNode): PlanNode[] => [p, ...(p.Plans ?? []).flatMap(nodes)];

describe('RLS canary', () => {
  let t: TestApp;
  let user: TestUser;
  let pages: number;
  /** core.notifications' rows: ROWS and any the registration made */
  let total: number;
  const canary = () => t.app.get(RlsCanary).run();
  /**
   * The scan of core.notifications in `statement` run as the canary runs it (a person of no organization), with the rows
   * it looked at (the filter, the policies, removed them all). Rows, not buffers: the policies' functions read buffers too.
   */
  const scanned = async (statement: string): Promise<{ type: string; rows: number }> => {
    const [row] = await t.db.asApi(PROBE, 'authenticated', `EXPLAIN (ANALYZE, FORMAT JSON) ${statement}`);
    const scan = nodes((row['QUERY PLAN'] as { Plan: PlanNode }[])[0].Plan).find((n) => n['Relation Name'] === 'notifications');
    return { type: scan!['Node Type'], rows: scan!['Actual Rows'] + (scan!['Rows Removed by Filter'] ?? 0) };
  };

  beforeAll(async () => {
    t = await createTestApp();
    user = await registerUser(t, 'reader');
    // core.notifications: a table whose policies (the reader's own rows) give a person of no organization no index to
    // read by, so that a read of it the policies hide every row of scans all of it
    await t.db.admin.query(
      `INSERT INTO core.notifications (org_id, user_id, event_id, event_type, category, title, body, to_person)
       SELECT $1, $2, g, 'invoice.paid', 'finance', 'Invoice paid', 'Invoice INV-' || g || ' was paid in full', true FROM generate_series(1, $3::int) g`,
      [user.personalOrgId, user.id, ROWS]);
    const [size] = (await t.db.admin.query(
      `SELECT pg_relation_size('core.notifications') / current_setting('block_size')::int AS pages, (SELECT count(*)::int FROM core.notifications) AS rows`)).rows;
    pages = Number(size.pages);
    total = size.rows;
  });
  afterAll(() => t.close());

  it('reads about CANARY_SAMPLE_PAGES pages of a large table, not the whole table the policies hide every row of', async () => {
    expect(pages).toBeGreaterThan(4 * CANARY_SAMPLE_PAGES);
    const perPage = total / pages;
    const sampled = await scanned(rlsCanaryProbe('core.notifications', pages, CANARY_SAMPLE_PAGES));
    expect(sampled.type).toBe('Sample Scan');
    // the rows of a binomial number of pages around CANARY_SAMPLE_PAGES (each page has that chance in `pages`): the rows
    // of twice as many are out of reach
    expect(sampled.rows).toBeLessThanOrEqual(2 * CANARY_SAMPLE_PAGES * perPage);
    // the whole read, as the canary did before: every row, to find none
    expect(await scanned(rlsCanaryProbe('core.notifications', pages, Infinity))).toEqual({ type: 'Seq Scan', rows: total });
    // a table of at most CANARY_SAMPLE_PAGES pages is read whole
    expect(rlsCanaryProbe('core.workspaces', CANARY_SAMPLE_PAGES, CANARY_SAMPLE_PAGES)).not.toContain('TABLESAMPLE');

    expect(await canary()).toMatchObject({ ok: true, leaks: [] });
  });

  it('still sees a policy that lets the rows of the large table through, and in a table the probe may read some columns of', async () => {
    // not `USING (true)`, which the catalog shows: rows only the read can see
    await t.db.admin.query(`CREATE POLICY canary_leak ON core.notifications FOR SELECT TO authenticated USING (event_id > 0)`);
    try {
      const leaking = await canary();
      expect(leaking).toMatchObject({ ok: false, leaks: [{ table: 'core.notifications', rows: 1, reason: 'rows_visible' }] });
      expect((await t.http.get('/health/ready').expect(503)).body.checks.rls).toBe('down');
    } finally {
      await t.db.admin.query(`DROP POLICY canary_leak ON core.notifications`);
    }
    // core.api_keys: the probe may select some of its columns only
    await t.db.admin.query(`INSERT INTO core.api_keys (org_id, name, prefix, secret_hash, scopes, created_by) VALUES ($1, 'canary', 'ozk_live_canary', repeat('0', 64), '{org:read}', NULL)`, [user.personalOrgId]);
    await t.db.admin.query(`CREATE POLICY canary_leak ON core.api_keys FOR SELECT TO authenticated USING (org_id IS NOT NULL)`);
    try {
      expect(await canary()).toMatchObject({ ok: false, leaks: [{ table: 'core.api_keys', rows: 1, reason: 'rows_visible' }] });
    } finally {
      await t.db.admin.query(`DROP POLICY canary_leak ON core.api_keys`);
    }
    expect(await canary()).toMatchObject({ ok: true, leaks: [] });
    // the checks wrote nothing
    expect((await t.db.admin.query(`SELECT count(*)::int AS n FROM core.notifications`)).rows[0].n).toBe(total);
    expect((await t.db.admin.query(`SELECT count(*)::int AS n FROM pg_policy WHERE polname = 'canary_leak'`)).rows[0].n).toBe(0);
  });

  it('sees from the catalog a table left open whatever it holds: RLS off or not forced, a policy `true`, a view that reads as its owner', async () => {
    // finance.bill_payment_refunds holds no row: no read could see it open
    expect((await t.db.admin.query(`SELECT count(*)::int AS n FROM finance.bill_payment_refunds`)).rows[0].n).toBe(0);
    const cases: [string, string, string, string][] = [
      ['finance.bill_payment_refunds', 'rls_disabled', 'ALTER TABLE finance.bill_payment_refunds DISABLE ROW LEVEL SECURITY', 'ALTER TABLE finance.bill_payment_refunds ENABLE ROW LEVEL SECURITY'],
      ['finance.bill_payment_refunds', 'rls_not_forced', 'ALTER TABLE finance.bill_payment_refunds NO FORCE ROW LEVEL SECURITY', 'ALTER TABLE finance.bill_payment_refunds FORCE ROW LEVEL SECURITY'],
      ['finance.bill_payment_refunds', 'policy_allows_all', 'CREATE POLICY canary_open ON finance.bill_payment_refunds FOR SELECT TO PUBLIC USING (true)', 'DROP POLICY canary_open ON finance.bill_payment_refunds'],
      ['semantic.v_gl_fact', 'view_not_invoker', 'ALTER VIEW semantic.v_gl_fact SET (security_invoker = false)', 'ALTER VIEW semantic.v_gl_fact SET (security_invoker = true)'],
    ];
    for (const [table, reason, open, close] of cases) {
      await t.db.admin.query(open);
      try {
        expect({ reason, result: await canary() }).toMatchObject({ reason, result: { ok: false, leaks: [{ table, rows: 0, reason }] } });
      } finally {
        await t.db.admin.query(close);
      }
    }
    expect(await canary()).toMatchObject({ ok: true, leaks: [] });
    const [state] = (await t.db.admin.query(
      `SELECT c.relrowsecurity, c.relforcerowsecurity, (SELECT count(*)::int FROM pg_policy p WHERE p.polrelid = c.oid AND p.polname = 'canary_open') AS open
       FROM pg_class c WHERE c.oid = 'finance.bill_payment_refunds'::regclass`)).rows;
    expect(state).toEqual({ relrowsecurity: true, relforcerowsecurity: true, open: 0 });
  });
});
