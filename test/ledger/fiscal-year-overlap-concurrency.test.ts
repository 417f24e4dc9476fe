import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { orgWithRoles } from '../support/factories.js';
import { until } from '../support/throwaway-servers.js';
import { ledgerUrl, startBooks } from './ledger-support.js';

/**
 * Two overlapping fiscal years created at the same moment: each overlap check looked for the other before it had
 * committed, so both were created (only the same start date was refused, by the unique key); when their periods
 * shared a start date, the second failed on the periods' unique key instead, an undocumented 409. The check now
 * serializes the organization's calendar on a named lock (core.xact_lock, a row lock).
 */
describe('fiscal years created concurrently', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(() => t.close());

  it.each([
    ['no period start in common (both were created)', '2027-01-01', '2027-06-15'],
    ['periods starting on the same days (the second was a 409 on the periods\' unique key)', '2027-01-01', '2027-03-01'],
  ])('two overlapping years at once, %s: one 201, one 422 ledger.fiscal_year_overlap, one year with its twelve periods', async (_, a, b) => {
    const { orgId, users } = await orgWithRoles(t, `Calendar Race ${b}`);
    const owner = users.owner;
    await startBooks(t, orgId, owner);
    const create = (startDate: string) => t.http.post(ledgerUrl(orgId, 'fiscal-years')).set(owner.auth).send({ startDate }).then((r) => r);

    // the test holds the audit log: each creation stops at its audit row, after its overlap check and its insert, and
    // waits there for the test, so without a lock both checks run before either year commits
    const holder = await t.db.admin.connect();
    let answers: { status: number; body: any }[];
    let waits: string[];
    try {
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE core.audit_logs IN SHARE MODE');
      const first = create(a);
      const second = create(b);
      let settled = 0;
      void first.then(() => settled++);
      void second.then(() => settled++);
      const waiting = async () => (await t.db.admin.query(`SELECT wait_event FROM pg_stat_activity
        WHERE datname = current_database() AND usename = 'omnizen_api' AND wait_event_type = 'Lock' ORDER BY wait_event`)).rows.map((r) => r.wait_event as string);
      await until('both creations wait (or are answered)', async () => settled === 2 || (await waiting()).length === 2);
      waits = await waiting();
      await holder.query('COMMIT');
      answers = await Promise.all([first, second]);
    } finally {
      holder.release();
    }
    expect(answers.map((r) => r.status).sort()).toEqual([201, 422]);
    const created = answers.find((r) => r.status === 201)!.body;
    const refused = answers.find((r) => r.status === 422)!.body;
    const [other] = [a, b].filter((d) => d !== created.startDate);
    expect(refused.error).toEqual({
      code: 'ledger.fiscal_year_overlap',
      message: expect.stringMatching(new RegExp(`^fiscal year ${other} to \\d{4}-\\d{2}-\\d{2} overlaps fiscal year ${created.name} \\(${created.startDate} to ${created.endDate}\\)$`)),
    });

    const { rows: years } = await t.db.admin.query(`SELECT y.id, y.start_date::text AS start, (SELECT count(*)::int FROM finance.fiscal_periods p WHERE p.org_id = y.org_id AND p.fiscal_year_id = y.id) AS periods
      FROM finance.fiscal_years y WHERE y.org_id = $1 ORDER BY y.start_date`, [orgId]);
    expect(years).toEqual([{ id: expect.any(String), start: '2026-01-01', periods: 12 }, { id: created.id, start: created.startDate, periods: 12 }]);
    const { rows: audit } = await t.db.admin.query(`SELECT entity_id FROM core.audit_logs WHERE org_id = $1 AND action = 'ledger.fiscal_year_created'`, [orgId]);
    expect(audit).toEqual([{ entity_id: created.id }]);
    // one had waited for the audit log after creating its year, the other for the organization's calendar lock before its check
    expect(waits).toEqual(['relation', 'transactionid']);
  });
});
