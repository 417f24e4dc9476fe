import { afterAll, afterEach, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { ledgerRepository } from '../../src/modules/ledger/ledger.repository.js';
import { pauseNext, releaseAll, waitsForLockOrAnswers } from '../auth/lock-order.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, registerUser, type TestUser } from '../support/factories.js';
import { ledgerUrl, startBooks } from './ledger-support.js';

/**
 * A period's close or reopening next to its fiscal year's close or reopening. The period's close locked the period's
 * row, then its UPDATE waited for the posting lock (trigger finance.drain_postings); the year's close held that lock
 * (drainPostings) and waited for the period's row (lockPeriodsOfYear): PostgreSQL cancelled one (409 conflict.retry).
 * Likewise a period's reopening (its row, then its year's) and a year's close (the posting lock, then the year's row).
 * All four now take the year's row first, then the posting lock, then the periods' rows: the second waits for the first,
 * then sees what it did. The interleaving is forced: the first pauses holding its locks, the second is seen waiting.
 */
describe('ledger: a period\'s close or reopening and its year\'s close or reopening lock in one order (no deadlock)', () => {
  let t: TestApp;
  type Response = { status: number; body: any };
  const send = (req: PromiseLike<Response>): Promise<Response> => Promise.resolve(req).then((r) => ({ status: r.status, body: r.body }));

  beforeAll(async () => {
    t = await createTestApp();
  });
  afterEach(() => {
    releaseAll();
    jest.restoreAllMocks();
  });
  afterAll(() => t?.close());

  /** Fresh books (fiscal year 2026, twelve open periods) in an organization of their own. */
  async function books(name: string) {
    const owner: TestUser = await registerUser(t, 'owner');
    const orgId = await createOrg(t, owner, name);
    await startBooks(t, orgId, owner);
    const [year] = (await t.http.get(ledgerUrl(orgId, 'fiscal-years')).set(owner.auth).expect(200)).body;
    const periods = (await t.http.get(ledgerUrl(orgId, 'periods')).set(owner.auth).expect(200)).body as { id: string; startDate: string }[];
    const period = (start: string) => periods.find((p) => p.startDate === start)!.id;
    const post = (path: string) => send(t.http.post(ledgerUrl(orgId, path)).set(owner.auth));
    const closeYear = () => post(`fiscal-years/${year.id}/close`);
    const reopenYear = () => post(`fiscal-years/${year.id}/reopen`);
    const closePeriod = (start: string) => post(`periods/${period(start)}/close`);
    const reopenPeriod = (start: string) => post(`periods/${period(start)}/reopen`);
    /** The year's status, its closed periods' months, the audit entries and events of closes and reopenings. */
    const state = async () => (await t.db.admin.query(
      `SELECT (SELECT status FROM finance.fiscal_years WHERE org_id = $1 AND id = $2) AS year,
              (SELECT coalesce(array_agg(to_char(start_date, 'MM') ORDER BY start_date), '{}') FROM finance.fiscal_periods
                WHERE org_id = $1 AND fiscal_year_id = $2 AND status = 'closed') AS closed,
              (SELECT coalesce(jsonb_object_agg(action, n), '{}') FROM (SELECT action, count(*)::int AS n FROM core.audit_logs
                WHERE org_id = $1 AND action IN ('ledger.period_closed', 'ledger.period_reopened', 'ledger.fiscal_year_closed', 'ledger.fiscal_year_reopened')
                GROUP BY action) a) AS audited,
              (SELECT coalesce(jsonb_object_agg(type, n), '{}') FROM (SELECT payload->>'type' AS type, count(*)::int AS n FROM core.outbox
                WHERE org_id = $1 AND payload->>'type' IN ('period.closed', 'period.reopened', 'fiscal_year.closed', 'fiscal_year.reopened')
                GROUP BY 1) e) AS events`,
      [orgId, year.id])).rows[0];
    return { closeYear, reopenYear, closePeriod, reopenPeriod, state };
  }
  const ALL = ['01', '02', '03', '04', '05', '06', '07', '08', '09', '10', '11', '12'];
  const answer = (r: Response) => [r.status, r.body?.error?.code ?? null];

  it('its December period closed while the year closes: waits for the close, then is already closed (409 ledger.period_status)', async () => {
    const b = await books('Year First Ltd');
    const paused = pauseNext(ledgerRepository, 'closeYear'); // the year's row and the posting lock held, its periods not locked yet
    const yearClose = b.closeYear();
    await paused.reached;
    const periodClose = b.closePeriod('2026-12-01');
    expect(await waitsForLockOrAnswers(t.db.admin, periodClose, paused)).toBe('waiting');
    paused.release();

    expect(answer(await yearClose)).toEqual([200, null]);
    expect((await periodClose).body.error).toEqual({ code: 'ledger.period_status', message: 'the period 2026-12-01 to 2026-12-31 is already closed' });
    expect(answer(await periodClose)).toEqual([409, 'ledger.period_status']);
    expect(await b.state()).toEqual({ year: 'closed', closed: ALL, audited: { 'ledger.fiscal_year_closed': 1 }, events: { 'fiscal_year.closed': 1 } });
  });

  it('the year closed while its December period closes: waits for the period, then refuses (422 ledger.period_closed)', async () => {
    const b = await books('Period First Ltd');
    const paused = pauseNext(ledgerRepository, 'setPeriodStatus'); // the posting lock and the period's row held, not updated yet
    const periodClose = b.closePeriod('2026-12-01');
    await paused.reached;
    const yearClose = b.closeYear();
    expect(await waitsForLockOrAnswers(t.db.admin, yearClose, paused)).toBe('waiting');
    paused.release();

    expect(answer(await periodClose)).toEqual([200, null]);
    expect((await yearClose).body.error).toEqual({ code: 'ledger.period_closed', message: 'reopen the last period (2026-12-01 to 2026-12-31) to post the closing entry' });
    expect(await b.state()).toEqual({ year: 'open', closed: ['12'], audited: { 'ledger.period_closed': 1 }, events: { 'period.closed': 1 } });
  });

  it('the year closed while one of its periods reopens: waits for the reopening, then closes every period', async () => {
    const b = await books('Reopened Period Ltd');
    expect(answer(await b.closePeriod('2026-11-01'))).toEqual([200, null]);
    const paused = pauseNext(ledgerRepository, 'setPeriodStatus'); // the year's row, the posting lock and the period's row held
    const periodReopen = b.reopenPeriod('2026-11-01');
    await paused.reached;
    const yearClose = b.closeYear();
    expect(await waitsForLockOrAnswers(t.db.admin, yearClose, paused)).toBe('waiting');
    paused.release();

    expect(answer(await periodReopen)).toEqual([200, null]);
    expect(answer(await yearClose)).toEqual([200, null]);
    expect(await b.state()).toEqual({
      year: 'closed', closed: ALL,
      audited: { 'ledger.period_closed': 1, 'ledger.period_reopened': 1, 'ledger.fiscal_year_closed': 1 },
      events: { 'period.closed': 1, 'period.reopened': 1, 'fiscal_year.closed': 1 },
    });
  });

  it('the year reopened while a period\'s close holds the posting lock: waits for it, then reopens every period', async () => {
    const b = await books('Reopened Year Ltd');
    expect(answer(await b.closeYear())).toEqual([200, null]);
    const paused = pauseNext(ledgerRepository, 'lockPeriod'); // the posting lock held, the period's row not locked yet
    const periodClose = b.closePeriod('2026-12-01');
    await paused.reached;
    const yearReopen = b.reopenYear();
    expect(await waitsForLockOrAnswers(t.db.admin, yearReopen, paused)).toBe('waiting');
    paused.release();

    // the period was closed (with its year) when the close locked it
    expect(answer(await periodClose)).toEqual([409, 'ledger.period_status']);
    expect(answer(await yearReopen)).toEqual([200, null]);
    expect(await b.state()).toEqual({
      year: 'open', closed: [],
      audited: { 'ledger.fiscal_year_closed': 1, 'ledger.fiscal_year_reopened': 1 },
      events: { 'fiscal_year.closed': 1, 'fiscal_year.reopened': 1 },
    });
  });
});
