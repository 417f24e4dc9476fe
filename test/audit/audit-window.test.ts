import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { orgWithRoles, type OrgWithRoles } from '../support/factories.js';
import { auditRepository, type AuditFilter } from '../../src/modules/audit/audit.repository.js';

/**
 * The audit log list with a from/to window (auditRepository.list) reads the window's rows (audit_logs_org_occurred_idx,
 * 20270210990100), not every row of the organization from the newest back to the window: a day a year back read the
 * whole later year (3.6 s for a large organization). Same answers: the window's pages are the rows the database holds.
 */
describe('audit log: a from/to window reads its rows', () => {
  let t: TestApp;
  let a: OrgWithRoles;

  beforeAll(async () => {
    t = await createTestApp();
    a = await orgWithRoles(t, 'Audit Volume Ltd');
    // a year of history: 4,380 rows, one every two hours of 2025, in id order (setup: written as the owner, as a
    // restore would; the API writes one row per mutation)
    await t.db.admin.query(`INSERT INTO core.audit_logs (org_id, occurred_at, actor_id, principal_type, action, entity_type, entity_id)
      SELECT $1::uuid, TIMESTAMPTZ '2025-01-01 00:00Z' + i * interval '2 hours', 'seed', 'system', 'seed.row', 'seed', i::text
      FROM generate_series(0, 4379) i`, [a.orgId]);
    await t.db.admin.query('ANALYZE core.audit_logs');
  });
  afterAll(() => t.close());

  const window = { from: '2025-03-01T00:00:00Z', to: '2025-03-02T00:00:00Z' };

  it('lists exactly the window\'s rows, newest first, over every page', async () => {
    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const res = await t.http.get(`/v1/orgs/${a.orgId}/audit-logs`).query({ ...window, limit: 5, ...(cursor ? { cursor } : {}) }).set(a.users.admin.auth).expect(200);
      expect(res.body.items.every((r: any) => r.occurredAt >= '2025-03-01T00:00:00' && r.occurredAt < '2025-03-02T00:00:00')).toBe(true);
      seen.push(...res.body.items.map((r: any) => r.id));
      cursor = res.body.nextCursor;
    } while (cursor);
    const { rows } = await t.db.admin.query(`SELECT id::text FROM core.audit_logs WHERE org_id = $1 AND occurred_at >= $2 AND occurred_at < $3 ORDER BY id DESC`,
      [a.orgId, window.from, window.to]);
    expect(rows).toHaveLength(12);
    expect(seen).toEqual(rows.map((r) => r.id));
  });

  it('reads the window\'s rows only, not the year after it', async () => {
    const reads = async (f: Omit<AuditFilter, 'limit'>) => {
      let captured: { sql: string; values: unknown[] } | undefined;
      const capture = { run: async (q: { compile(): { sql: string; parameters: readonly unknown[] } }) => {
        const c = q.compile();
        captured = { sql: c.sql, values: [...c.parameters] };
        return [];
      } };
      await auditRepository.list(capture as any, a.orgId, { ...f, limit: 51 });
      const claims = { sub: a.users.admin.id, role: 'authenticated', org_id: a.orgId };
      const [{ 'QUERY PLAN': [plan] }] = await t.db.asApi(claims, 'authenticated', `EXPLAIN (ANALYZE, FORMAT JSON) ${captured!.sql}`, captured!.values);
      const nodes = (p: any): any[] => [p, ...((p.Plans ?? []) as any[]).flatMap(nodes)];
      return nodes(plan.Plan).filter((n) => n['Relation Name'] === 'audit_logs')
        .reduce((sum, n) => sum + (n['Actual Rows'] + (n['Rows Removed by Filter'] ?? 0)) * n['Actual Loops'], 0);
    };
    expect(await reads(window)).toBeLessThanOrEqual(12);
    // the next page of the window (a cursor inside it)
    const { rows: [mid] } = await t.db.admin.query(`SELECT id::text FROM core.audit_logs WHERE org_id = $1 AND occurred_at = '2025-03-01T12:00:00Z'`, [a.orgId]);
    expect(await reads({ ...window, beforeId: mid.id })).toBeLessThanOrEqual(12);
  });
});
