import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { SchedulerRegistry } from '@nestjs/schedule';
import { createTestApp, type TestApp } from '../support/app.js';
import { registerUser, type TestUser } from '../support/factories.js';
import { APP_CONFIG } from '../../src/platform/config/config.js';
import { DatabaseService, rlsCanaryProbe, rlsCanaryRange } from '../../src/platform/database/database.service.js';
import { CANARY_BLOCK_PAGES, RlsCanary, type CanaryResult } from '../../src/platform/health/rls-canary.js';
import { Metrics } from '../../src/platform/observability/metrics.js';

/** METRICS_TOKEN: it opens the checks of /health/ready (an anonymous caller gets its status only) */
const METRICS_TOKEN = 'test-metrics-token-0123456789abcdef0123456789';

/**
 * The row-level-security canary on a table too large to read whole each check: its read is the next block of a bounded
 * number of pages each check (a TID range), so a policy that lets the rows of a few pages through is found within a pass
 * of the table, and stays a finding until a full pass reads clean; what needs no row to be seen (RLS off or not
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
  /** the checks a pass over core.notifications takes */
  let pass: number;
  const canary = () => t.app.get(RlsCanary).run();
  /** a canary of its own (its blocks start at page 0), as a new instance has */
  const fresh = () => new RlsCanary(t.app.get(APP_CONFIG), t.app.get(DatabaseService), t.app.get(Metrics), t.app.get(SchedulerRegistry));
  /** The plan of `statement` run as the canary runs it (a person of no organization). */
  const plan = async (statement: string): Promise<PlanNode> => {
    const [row] = await t.db.asApi(PROBE, 'authenticated', `EXPLAIN (ANALYZE, FORMAT JSON) ${statement}`);
    return (row['QUERY PLAN'] as { Plan: PlanNode }[])[0].Plan;
  };
  /**
   * The scan of core.notifications in `statement`, with the rows it looked at (the filter, the policies, removed them
   * all). Rows, not buffers: the policies' functions read buffers too.
   */
  const scanned = async (statement: string): Promise<{ type: string; rows: number }> => {
    const scan = nodes(await plan(statement)).find((n) => n['Relation Name'] === 'notifications');
    return { type: scan!['Node Type'], rows: scan!['Actual Rows'] + (scan!['Rows Removed by Filter'] ?? 0) };
  };
  const rowsIn = async (from: number, to: number): Promise<number> =>
    (await t.db.admin.query(`SELECT count(*)::int AS n FROM core.notifications WHERE ctid >= $1::tid AND ctid < $2::tid`, [`(${from},0)`, `(${to},0)`])).rows[0].n;
  /** `n` checks of `c`, with the one verdict each */
  const checks = async (c: { run(): Promise<CanaryResult> }, n: number): Promise<CanaryResult[]> => {
    const out: CanaryResult[] = [];
    for (let i = 0; i < n; i++) out.push(await c.run());
    return out;
  };

  beforeAll(async () => {
    t = await createTestApp({ METRICS_TOKEN });
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
    pass = Math.ceil(pages / CANARY_BLOCK_PAGES);
  });
  afterAll(() => t.close());

  it('reads one block of CANARY_BLOCK_PAGES pages of a large table (a TID Range Scan under the policies), the next each check', async () => {
    expect(pages).toBeGreaterThan(4 * CANARY_BLOCK_PAGES);
    // the second block: exactly the rows of its pages, though the policies hide them all
    const block = rlsCanaryRange(pages, CANARY_BLOCK_PAGES, CANARY_BLOCK_PAGES);
    expect(block).toEqual({ from: CANARY_BLOCK_PAGES, to: 2 * CANARY_BLOCK_PAGES });
    const inBlock = await rowsIn(block.from, block.to);
    expect(inBlock).toBeGreaterThan(0);
    expect(inBlock).toBeLessThan(total / 4);
    expect(await scanned(rlsCanaryProbe('core.notifications', block))).toEqual({ type: 'Tid Range Scan', rows: inBlock });
    // the last block ends at the table's end, and past the end (the table shrank) the blocks start again
    expect(rlsCanaryRange(pages, CANARY_BLOCK_PAGES, (pass - 1) * CANARY_BLOCK_PAGES)).toEqual({ from: (pass - 1) * CANARY_BLOCK_PAGES, to: pages });
    expect(rlsCanaryRange(pages, CANARY_BLOCK_PAGES, pages + 5)).toEqual({ from: 0, to: CANARY_BLOCK_PAGES });
    // the whole read, as the canary did once: every row, to find none
    expect(await scanned(rlsCanaryProbe('core.notifications'))).toEqual({ type: 'Seq Scan', rows: total });
    // a table of at most CANARY_BLOCK_PAGES pages is read whole
    expect(rlsCanaryRange(CANARY_BLOCK_PAGES, CANARY_BLOCK_PAGES, 10)).toEqual({ from: 0, to: CANARY_BLOCK_PAGES });
    // a partitioned table (its partitions not granted to the role): read through it, the block of each partition
    const partitioned = nodes(await plan(rlsCanaryProbe('core.analytics_events', block))).filter((n) => n['Relation Name']?.startsWith('analytics_events_'));
    expect(partitioned.length).toBeGreaterThan(0);
    expect(new Set(partitioned.map((n) => n['Node Type']))).toEqual(new Set(['Tid Range Scan']));

    expect(await canary()).toMatchObject({ ok: true, leaks: [] });
  });

  it('finds a policy that lets the rows of one page of the large table through within a pass, and keeps the finding until a full pass reads clean', async () => {
    // not `USING (true)`, which the catalog shows: the rows of one page, near the end, only a read of it can see
    const page = pages - 2;
    const [ids] = (await t.db.admin.query(
      `SELECT min(event_id)::int AS lo, max(event_id)::int AS hi FROM core.notifications WHERE ctid >= $1::tid AND ctid < $2::tid AND org_id = $3`,
      [`(${page},0)`, `(${page + 1},0)`, user.personalOrgId])).rows;
    await t.db.admin.query(`CREATE POLICY canary_leak ON core.notifications FOR SELECT TO authenticated USING (event_id BETWEEN ${ids.lo} AND ${ids.hi})`);
    // a new instance reads the blocks from page 0
    const c = fresh();
    const readiness: string[] = [];
    try {
      // the leak at the check whose block holds the page, not before
      const found = Math.floor(page / CANARY_BLOCK_PAGES) + 1;
      expect(found).toBeLessThanOrEqual(pass);
      const first = await checks(c, found);
      expect(first.map((r) => r.ok)).toEqual([...Array<boolean>(found - 1).fill(true), false]);
      expect(first[found - 1]).toMatchObject({ ok: false, leaks: [{ table: 'core.notifications', rows: 1, reason: 'rows_visible' }] });
      // the next blocks read clean, the finding stands; a pass later the leak is found again
      const after = await checks(c, pass);
      expect(after.map((r) => r.leaks)).toEqual(Array(pass).fill([expect.objectContaining({ table: 'core.notifications', reason: 'rows_visible' })]));
      // the instance readiness asks (its blocks wherever earlier checks left them): not ready within a pass, and from then on
      for (let i = 0; i < pass; i++) readiness.push((await t.http.get('/health/ready').set('Authorization', `Bearer ${METRICS_TOKEN}`)).body.checks.rls);
    } finally {
      await t.db.admin.query(`DROP POLICY canary_leak ON core.notifications`);
    }
    const hit = readiness.indexOf('down');
    expect(hit).toBeGreaterThanOrEqual(0);
    expect(readiness.slice(hit)).toEqual(Array(pass - hit).fill('down'));
    // the policy dropped is no proof: the finding ends when every block has read clean since the last hit, at the
    // pass-th check (the last of `after` was a hit)
    const settling = await checks(c, pass);
    expect(settling.map((r) => r.ok)).toEqual([...Array<boolean>(pass - 1).fill(false), true]);
    expect(settling[pass - 2]).toMatchObject({ ok: false, leaks: [{ table: 'core.notifications', rows: 1, reason: 'rows_visible' }] });
    // readiness too, within a pass
    const app = await checks(t.app.get(RlsCanary), pass);
    expect(app[pass - 1]).toMatchObject({ ok: true, leaks: [] });
    expect((await t.http.get('/health/ready').set('Authorization', `Bearer ${METRICS_TOKEN}`).expect(200)).body.checks.rls).toBe('up');
    expect((await t.db.admin.query(`SELECT count(*)::int AS n FROM pg_policy WHERE polname = 'canary_leak'`)).rows[0].n).toBe(0);
  });

  it('sees a policy that lets rows through in a table the probe may read some columns of; a small table read clean ends the finding', async () => {
    // core.api_keys: the probe may select some of its columns only; a table of fewer pages than a block is read whole
    await t.db.admin.query(`INSERT INTO core.api_keys (org_id, name, prefix, secret_hash, scopes, created_by) VALUES ($1, 'canary', 'ozk_live_canary', repeat('0', 64), '{org:read}', NULL)`, [user.personalOrgId]);
    await t.db.admin.query(`CREATE POLICY canary_leak ON core.api_keys FOR SELECT TO authenticated USING (org_id IS NOT NULL)`);
    try {
      expect(await canary()).toMatchObject({ ok: false, leaks: [{ table: 'core.api_keys', rows: 1, reason: 'rows_visible' }] });
      expect((await t.http.get('/health/ready').set('Authorization', `Bearer ${METRICS_TOKEN}`).expect(503)).body.checks.rls).toBe('down');
    } finally {
      await t.db.admin.query(`DROP POLICY canary_leak ON core.api_keys`);
    }
    expect(await canary()).toMatchObject({ ok: true, leaks: [] });
    // past a block's pages it is still read whole: the probe may not read its ctid (a TID range was 42501, every check
    // failed: re-review r11)
    await t.db.admin.query(`INSERT INTO core.api_keys (org_id, name, prefix, secret_hash, scopes, created_by)
      SELECT $1, 'canary ' || i, 'ozk_live_c' || i, repeat('0', 64), '{org:read}', NULL FROM generate_series(1, 4000) i`, [user.personalOrgId]);
    await t.db.admin.query(`ANALYZE core.api_keys`);
    const keyPages = (await t.db.admin.query(`SELECT pg_relation_size('core.api_keys') / current_setting('block_size')::int AS n`)).rows[0].n;
    expect(Number(keyPages)).toBeGreaterThan(CANARY_BLOCK_PAGES);
    expect(await canary()).toMatchObject({ ok: true, leaks: [] });
    await t.db.admin.query(`CREATE POLICY canary_leak ON core.api_keys FOR SELECT TO authenticated USING (name = 'canary 3999')`);
    try {
      expect(await canary()).toMatchObject({ ok: false, leaks: [{ table: 'core.api_keys', rows: 1, reason: 'rows_visible' }] });
    } finally {
      await t.db.admin.query(`DROP POLICY canary_leak ON core.api_keys`);
    }
    expect(await canary()).toMatchObject({ ok: true, leaks: [] });
    await t.db.admin.query(`DELETE FROM core.api_keys WHERE name LIKE 'canary %'`);
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
