import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type pg from 'pg';
import { createTestApp, type TestApp } from '../support/app.js';
import type { RoleUsers } from '../support/factories.js';
import { advisoryLockWaiters, openTenantTransaction } from '../support/database.js';
import { professionalBooks } from './ledger-support.js';

/**
 * Re-review of opening balances (source opening_balance, 20270211002500): the rule "dated the first day of the first
 * fiscal year" held only when JournalService posted the entry.
 *  1. a fiscal year created before the first one left the opening entry mid-books, its cash still opening cash with no
 *     flow, and its reversal then had to be dated the new first day: a year before it is refused now while the entry is
 *     not reversed (ledger.fiscal_year_before_opening_balance, in SQL: any inserter), and the reversal is dated the
 *     entry's own date;
 *  2. finance.check_entry took source opening_balance on any date (a posting of the API's own transaction other than
 *     JournalService's, or any caller of the posting functions): it holds the date rule and takes it only from the API's
 *     verified transactions;
 *  3. revenue and expense lines were taken (P&L income the cash-flow statement never showed): refused, in the service
 *     and in check_entry;
 *  4. semantic.v_gl_fact.source's description named no opening_balance.
 */
describe('ledger: opening-balance entries stay on the books\' first day, without results, whoever posts them', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(() => t.close());

  async function books(name: string) {
    const { orgId, users, a, url } = await professionalBooks(t, name);
    const entries = async () => (await t.db.admin.query(`SELECT source, entry_date::text AS date, reverses_entry_id IS NOT NULL AS reversal
      FROM finance.journal_entries WHERE org_id = $1 ORDER BY created_at, id`, [orgId])).rows;
    const years = async () => (await t.db.admin.query(`SELECT start_date::text AS start FROM finance.fiscal_years WHERE org_id = $1 ORDER BY start_date`, [orgId])).rows.map((r) => r.start);
    return { orgId, users, a, url, entries, years };
  }
  const opening = (a: Record<string, string>, date: string) => ({ date, memo: 'Opening balances', source: 'opening_balance', lines: [
    { accountId: a['1100'], debit: '1000.00' }, { accountId: a['3200'], credit: '1000.00' }] });
  /** posting function called in a transaction the API would open (begin_request verified the claims), past JournalService */
  const direct = (users: RoleUsers, orgId: string, entry: object) => t.db.asApi({ sub: users.owner.id, role: 'authenticated', org_id: orgId }, 'authenticated',
    'SELECT * FROM finance.post_journal_entry($1::jsonb)', [JSON.stringify(entry)]);

  it('refuses a fiscal year before an opening-balance entry not reversed (422 ledger.fiscal_year_before_opening_balance naming the entry, also inserted directly); reversed on its date, the year is created', async () => {
    const { orgId, users, a, url, entries, years } = await books('Year Before Opening Ltd');
    const owner = users.owner;
    const posted = await t.http.post(url('journal-entries')).set(owner.auth).send(opening(a, '2026-01-01')).expect(201);
    await t.http.post(url('journal-entries')).set(owner.auth)
      .send({ date: '2026-01-10', lines: [{ accountId: a['1100'], debit: '50.00' }, { accountId: a['4100'], credit: '50.00' }] }).expect(201);

    const refused = await t.http.post(url('fiscal-years')).set(owner.auth).send({ startDate: '2025-01-01' }).expect(422);
    expect(refused.body.error).toMatchObject({
      code: 'ledger.fiscal_year_before_opening_balance',
      message: expect.stringContaining(`before the opening-balance entry ${posted.body.id} dated 2026-01-01`),
    });
    expect(refused.body.error.message).toContain('reverse the opening-balance entries first');
    expect(await years()).toEqual(['2026-01-01']);
    // the table's own rule: an owner's transaction inserting the year (with its periods) directly
    await expect(t.db.asApi({ sub: owner.id, role: 'authenticated', org_id: orgId }, 'authenticated',
      `INSERT INTO finance.fiscal_years (org_id, name, start_date, end_date) VALUES ($1, 'FY2025', '2025-01-01', '2025-12-31')`, [orgId]))
      .rejects.toMatchObject({ code: '23514', hint: 'ledger.fiscal_year_before_opening_balance' });
    expect(await years()).toEqual(['2026-01-01']);
    // a later year is no matter
    await t.http.post(url('fiscal-years')).set(owner.auth).send({ startDate: '2027-01-01' }).expect(201);

    // the way out: reverse the opening entry (its own date), create the year, post the balances on its first day
    const reversal = await t.http.post(url(`journal-entries/${posted.body.id}/reverse`)).set(owner.auth).send({}).expect(201);
    expect(reversal.body).toMatchObject({ source: 'opening_balance', date: '2026-01-01', reversesEntryId: posted.body.id });
    await t.http.post(url('fiscal-years')).set(owner.auth).send({ startDate: '2025-01-01' }).expect(201);
    expect(await years()).toEqual(['2025-01-01', '2026-01-01', '2027-01-01']);
    await t.http.post(url('journal-entries')).set(owner.auth).send(opening(a, '2025-01-01')).expect(201);
    expect(await entries()).toEqual([
      { source: 'opening_balance', date: '2026-01-01', reversal: false }, { source: 'manual', date: '2026-01-10', reversal: false },
      { source: 'opening_balance', date: '2026-01-01', reversal: true }, { source: 'opening_balance', date: '2025-01-01', reversal: false }]);
    const cf = await t.http.get(url('reports/cash-flow?from=2025-01-01&to=2026-12-31')).set(users.viewer.auth).expect(200);
    expect(cf.body).toMatchObject({ openingCash: '1000.00', netIncome: '50.00', netChange: '50.00', closingCash: '1050.00', balanced: true });
  });

  it('an opening-balance posting waits for a fiscal year\'s insert in flight and reads it committed (refused: no longer the first day)', async () => {
    const { orgId, users, a, url, entries, years } = await books('Racing Opening Ltd');
    const owner = users.owner;
    const clients: pg.Client[] = [];
    try {
      const year = await openTenantTransaction(t.db.apiUrl, { sub: owner.id, org_id: orgId }, clients);
      // the year and its periods, as POST fiscal-years writes them, not committed yet
      await year.c.query(`WITH y AS (INSERT INTO finance.fiscal_years (org_id, name, start_date, end_date) VALUES ($1, 'FY2025', '2025-01-01', '2025-12-31') RETURNING id)
        INSERT INTO finance.fiscal_periods (org_id, fiscal_year_id, period_no, start_date, end_date)
        SELECT $1, y.id, m + 1, ('2025-01-01'::date + make_interval(months => m))::date, ('2025-01-01'::date + make_interval(months => m + 1) - interval '1 day')::date
        FROM y, generate_series(0, 11) m`, [orgId]);
      const posting = t.http.post(url('journal-entries')).set(owner.auth).send(opening(a, '2026-01-01')).then((r) => r);
      await advisoryLockWaiters(t.db.admin);
      await year.c.query('COMMIT');
      const res = await posting;
      expect(res.status).toBe(422);
      expect(res.body.error).toMatchObject({ code: 'ledger.opening_balance_date', message: expect.stringContaining('is dated 2025-01-01, the first day of the first fiscal year, not 2026-01-01') });
    } finally {
      for (const c of clients) await c.end();
    }
    expect(await years()).toEqual(['2025-01-01', '2026-01-01']);
    expect(await entries()).toEqual([]);
  });

  it('reverses an opening-balance entry on its own date, also when an earlier year was created before this rule; on no other date', async () => {
    const { orgId, users, a, url, entries } = await books('Legacy Opening Ltd');
    const owner = users.owner;
    const posted = await t.http.post(url('journal-entries')).set(owner.auth).send(opening(a, '2026-01-01')).expect(201);
    // what an earlier release let through: a fiscal year 2025 created after the opening entry (the rule's triggers off)
    const c = await t.db.admin.connect();
    try {
      await c.query('BEGIN');
      await c.query('ALTER TABLE finance.fiscal_years DISABLE TRIGGER fiscal_years_no_overlap');
      await c.query('ALTER TABLE finance.fiscal_periods DISABLE TRIGGER fiscal_periods_no_overlap');
      const { rows: [y] } = await c.query(`INSERT INTO finance.fiscal_years (org_id, name, start_date, end_date) VALUES ($1, 'FY2025', '2025-01-01', '2025-12-31') RETURNING id`, [orgId]);
      await c.query(`INSERT INTO finance.fiscal_periods (org_id, fiscal_year_id, period_no, start_date, end_date)
        SELECT $1, $2, m + 1, ('2025-01-01'::date + make_interval(months => m))::date, ('2025-01-01'::date + make_interval(months => m + 1) - interval '1 day')::date
        FROM generate_series(0, 11) m`, [orgId, y.id]);
      await c.query('ALTER TABLE finance.fiscal_years ENABLE TRIGGER fiscal_years_no_overlap');
      await c.query('ALTER TABLE finance.fiscal_periods ENABLE TRIGGER fiscal_periods_no_overlap');
      await c.query('COMMIT');
    } catch (err) {
      await c.query('ROLLBACK');
      throw err;
    } finally {
      c.release();
    }
    const elsewhere = await t.http.post(url(`journal-entries/${posted.body.id}/reverse`)).set(owner.auth).send({ date: '2025-01-01' }).expect(422);
    expect(elsewhere.body.error).toMatchObject({ code: 'ledger.opening_balance_date', details: { entryDate: '2026-01-01' },
      message: expect.stringContaining('is dated 2026-01-01, the entry\'s own date, not 2025-01-01') });
    const reversal = await t.http.post(url(`journal-entries/${posted.body.id}/reverse`)).set(owner.auth).send({}).expect(201);
    expect(reversal.body).toMatchObject({ source: 'opening_balance', date: '2026-01-01' });
    expect(await entries()).toEqual([{ source: 'opening_balance', date: '2026-01-01', reversal: false }, { source: 'opening_balance', date: '2026-01-01', reversal: true }]);
    const cf = await t.http.get(url('reports/cash-flow?from=2025-01-01&to=2026-12-31')).set(users.viewer.auth).expect(200);
    expect(cf.body).toMatchObject({ openingCash: '0.00', closingCash: '0.00', netChange: '0.00', balanced: true });
  });

  it('finance.check_entry holds the date rule for any caller of the posting functions, the reversal\'s too, and takes the source only from the API\'s verified transactions', async () => {
    const { orgId, users, a, url, entries } = await books('Direct Opening Ltd');
    const owner = users.owner;
    await expect(direct(users, orgId, opening(a, '2026-03-01'))).rejects.toMatchObject({ code: 'P0001', hint: 'ledger.opening_balance_date',
      message: 'an opening-balance entry (source opening_balance) is dated 2026-01-01, the first day of the first fiscal year, not 2026-03-01: date it 2026-01-01, or post it with another source' });
    await expect(t.db.asApi({ sub: owner.id, role: 'authenticated', org_id: orgId }, 'authenticated',
      'SELECT * FROM finance.post_journal_entries($1::jsonb)', [JSON.stringify([opening(a, '2026-02-01')])]))
      .rejects.toMatchObject({ hint: 'ledger.opening_balance_date' });
    expect(await entries()).toEqual([]);
    // a token's transaction as Supabase's REST API opens it (claims not verified by begin_request)
    await expect(t.db.as({ sub: owner.id, role: 'authenticated', org_id: orgId }, 'authenticated',
      'SELECT * FROM finance.post_journal_entry($1::jsonb)', [JSON.stringify(opening(a, '2026-01-01'))]))
      .rejects.toMatchObject({ code: '42501', message: 'an opening-balance entry (source opening_balance) is posted through the API only' });
    expect(await entries()).toEqual([]);

    await direct(users, orgId, opening(a, '2026-01-01'));
    const manual = await t.http.post(url('journal-entries')).set(owner.auth)
      .send({ date: '2026-01-05', lines: [{ accountId: a['1100'], debit: '10.00' }, { accountId: a['3200'], credit: '10.00' }] }).expect(201);
    const mirror = (reverses: string, date: string) => ({ date, source: 'opening_balance', reversesEntryId: reverses,
      lines: [{ accountId: a['1100'], credit: '10.00' }, { accountId: a['3200'], debit: '10.00' }] });
    // a reversal of a manual entry does not take source opening_balance (its cash would leave the flows)
    await expect(direct(users, orgId, mirror(manual.body.id, '2026-01-05'))).rejects.toMatchObject({ hint: 'ledger.opening_balance_date' });
    const openingId = (await t.db.admin.query(`SELECT id FROM finance.journal_entries WHERE org_id = $1 AND source = 'opening_balance'`, [orgId])).rows[0].id;
    await expect(direct(users, orgId, { ...mirror(openingId, '2026-01-02'), lines: [{ accountId: a['1100'], credit: '1000.00' }, { accountId: a['3200'], debit: '1000.00' }] }))
      .rejects.toMatchObject({ hint: 'ledger.opening_balance_date', message: expect.stringContaining('dated its entry\'s date 2026-01-01') });
    expect(await entries()).toEqual([{ source: 'opening_balance', date: '2026-01-01', reversal: false }, { source: 'manual', date: '2026-01-05', reversal: false }]);
    await t.http.post(url(`journal-entries/${openingId}/reverse`)).set(owner.auth).send({}).expect(201);
  });

  it('refuses a revenue or expense line in an opening-balance entry (422 ledger.opening_balance_result_account naming the line and account; in SQL too)', async () => {
    const { orgId, users, a, url, entries } = await books('Opening Results Ltd');
    const owner = users.owner;
    const withIncome = { date: '2026-01-01', source: 'opening_balance', lines: [{ accountId: a['1100'], debit: '1000.00' }, { accountId: a['4100'], credit: '1000.00' }] };
    const refused = await t.http.post(url('journal-entries')).set(owner.auth).send(withIncome).expect(422);
    expect(refused.body.error).toMatchObject({ code: 'ledger.opening_balance_result_account', message: expect.stringContaining('lines[1]: account 4100 is a revenue account') });
    const batch = await t.http.post(url('journal-entries/batch')).set(owner.auth).send({ entries: [withIncome] }).expect(422);
    expect(batch.body.error).toMatchObject({ code: 'ledger.opening_balance_result_account', details: { index: 0 } });
    await expect(direct(users, orgId, { ...withIncome, lines: [{ accountId: a['5200'], debit: '1000.00' }, { accountId: a['3200'], credit: '1000.00' }] }))
      .rejects.toMatchObject({ code: 'P0001', hint: 'ledger.opening_balance_result_account', message: expect.stringContaining('line 1: account 5200 is a revenue or expense account') });
    expect(await entries()).toEqual([]);
    const pl = await t.http.get(url('reports/profit-and-loss?from=2026-01-01&to=2026-12-31')).set(users.viewer.auth).expect(200);
    expect(pl.body.netIncome).toBe('0.00');
  });

  it('describes source opening_balance in the semantic layer', async () => {
    const { rows: [gl] } = await t.db.admin.query(`SELECT col_description('semantic.v_gl_fact'::regclass, a.attnum) AS d
      FROM pg_attribute a WHERE a.attrelid = 'semantic.v_gl_fact'::regclass AND a.attname = 'source'`);
    expect(gl.d).toContain('opening_balance');
    const { rows: [cf] } = await t.db.admin.query(`SELECT obj_description('semantic.v_cash_flow'::regclass) AS d`);
    expect(cf.d).toContain('opening_balance');
  });
});
