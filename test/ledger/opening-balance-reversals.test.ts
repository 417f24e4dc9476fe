import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import type { RoleUsers } from '../support/factories.js';
import { professionalBooks } from './ledger-support.js';

/**
 * Review of opening balances after 20270211002900 (source opening_balance: the balances of former books, dated the first
 * day of the first fiscal year, no revenue or expense lines, out of the cash flows; no fiscal year before one standing):
 *  1. a multi-currency opening entry off by a cent in base got its rounding line on the rounding account, an expense
 *     (P&L -0.01, the cash-flow statement 0.00): it goes to retained earnings now, else the entry is refused;
 *  2. a reversal was checked for its date and its entry's source only: in SQL, an opening entry "reversed" by revenue
 *     lines put income in the P&L and counted as undone. Every reversal mirrors its entry now (as the API's all do);
 *  3. a reversal with source manual, or the reversal of a reversal, was taken in SQL, and check_no_overlap took "has a
 *     reversal" as undone: the source is the entry's, a reversal is not reversed, and "undone" is the opening entries' net;
 *  4. moving the first year's (or period's) start past a standing opening entry was taken, leaving it before the books.
 */
describe('ledger: an opening-balance entry is undone only by its mirror, rounds to retained earnings, and stays on the books\' first day', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(() => t.close());

  async function books(name: string) {
    const { orgId, users, a, url } = await professionalBooks(t, name);
    const entries = async () => (await t.db.admin.query(`SELECT source, entry_date::text AS date, reverses_entry_id IS NOT NULL AS reversal
      FROM finance.journal_entries WHERE org_id = $1 ORDER BY seq`, [orgId])).rows;
    const years = async () => (await t.db.admin.query(`SELECT start_date::text AS start FROM finance.fiscal_years WHERE org_id = $1 ORDER BY start_date`, [orgId])).rows.map((r) => r.start);
    const firstPeriod = async () => (await t.db.admin.query(`SELECT min(start_date)::text AS start FROM finance.fiscal_periods WHERE org_id = $1`, [orgId])).rows[0].start;
    return { orgId, users, a, url, entries, years, firstPeriod };
  }
  const opening = (a: Record<string, string>, date = '2026-01-01') => ({ date, memo: 'Opening balances', source: 'opening_balance', lines: [
    { accountId: a['1100'], debit: '1000.00' }, { accountId: a['3200'], credit: '1000.00' }] });
  /** posting function called in a transaction the API would open (begin_request verified the claims), past JournalService */
  const direct = (users: RoleUsers, orgId: string, entry: object) => t.db.asApi({ sub: users.owner.id, role: 'authenticated', org_id: orgId }, 'authenticated',
    'SELECT * FROM finance.post_journal_entry($1::jsonb)', [JSON.stringify(entry)]);
  const lineSummary = (body: any) => body.lines.map((l: any) => [l.accountCode, l.baseDebit, l.baseCredit, l.isRounding]);

  /**
   * A "reversal" an earlier release let through in SQL, written as it was stored (the posting function refuses it now):
   * `of`'s lines with sides swapped, or `lines` [account id, debit, credit] in the base currency.
   */
  async function legacyReversal(orgId: string, of: string, source: string, date: string, lines?: [string, string, string][]) {
    const c = await t.db.admin.connect();
    try {
      await c.query('BEGIN');
      const { rows: [e] } = await c.query(`INSERT INTO finance.journal_entries (org_id, entry_date, period_id, memo, source, reverses_entry_id, request_hash, base_currency, total_base)
        SELECT o.org_id, $3::date, p.id, 'legacy reversal', $4, o.id, 'legacy', o.base_currency, o.total_base FROM finance.journal_entries o
        JOIN finance.fiscal_periods p ON p.org_id = o.org_id AND $3::date BETWEEN p.start_date AND p.end_date
        WHERE o.org_id = $1 AND o.id = $2 RETURNING id, seq, period_id`, [orgId, of, date, source]);
      if (lines) {
        for (const [i, [account, debit, credit]] of lines.entries()) {
          await c.query(`INSERT INTO finance.journal_lines (org_id, entry_id, line_no, entry_date, period_id, account_id, currency, debit, credit, rate, base_debit, base_credit, entry_seq)
            VALUES ($1, $2, $3, $4, $5, $6, 'EUR', $7, $8, 1, $7, $8, $9)`, [orgId, e.id, i + 1, date, e.period_id, account, debit, credit, e.seq]);
        }
      } else {
        await c.query(`INSERT INTO finance.journal_lines (org_id, entry_id, line_no, entry_date, period_id, account_id, currency, debit, credit, rate, base_debit, base_credit, entry_seq)
          SELECT org_id, $2, line_no, $3, $4, account_id, currency, credit, debit, rate, base_credit, base_debit, $5 FROM finance.journal_lines WHERE org_id = $1 AND entry_id = $6`,
        [orgId, e.id, date, e.period_id, e.seq, of]);
      }
      await c.query('COMMIT');
      return e.id as string;
    } catch (err) {
      await c.query('ROLLBACK');
      throw err;
    } finally {
      c.release();
    }
  }

  it('puts an opening-balance entry\'s rounding difference on retained earnings (equity), not the rounding account (an expense); without such an account: 422 ledger.unbalanced', async () => {
    const { orgId, users, a, url, entries } = await books('Opening Rounding Ltd');
    const owner = users.owner;
    const usdOpening = { date: '2026-01-01', source: 'opening_balance', lines: [
      { accountId: a['1100'], debit: '10.00', currency: 'USD', rate: '0.3333' }, { accountId: a['3200'], credit: '3.34' }] };
    const posted = await t.http.post(url('journal-entries')).set(owner.auth).send(usdOpening).expect(201);
    expect(lineSummary(posted.body)).toEqual([['1100', '3.33', '0.00', false], ['3200', '0.00', '3.34', false], ['3200', '0.01', '0.00', true]]);
    const pl = await t.http.get(url('reports/profit-and-loss?from=2026-01-01&to=2026-12-31')).set(users.viewer.auth).expect(200);
    expect(pl.body.netIncome).toBe('0.00');
    const cf = await t.http.get(url('reports/cash-flow?from=2026-01-01&to=2026-12-31')).set(users.viewer.auth).expect(200);
    expect(cf.body).toMatchObject({ netIncome: '0.00', openingCash: '3.33', closingCash: '3.33', balanced: true });
    const onRounding = async () => (await t.db.admin.query(`SELECT count(*)::int AS n FROM finance.journal_lines l JOIN finance.accounts x ON x.org_id = l.org_id AND x.id = l.account_id
      WHERE l.org_id = $1 AND x.code = '5600'`, [orgId])).rows[0].n;
    expect(await onRounding()).toBe(0);

    // its reversal mirrors it, the rounding line included
    const reversal = await t.http.post(url(`journal-entries/${posted.body.id}/reverse`)).set(owner.auth).send({}).expect(201);
    expect(lineSummary(reversal.body)).toEqual([['1100', '0.00', '3.33', false], ['3200', '3.34', '0.00', false], ['3200', '0.00', '0.01', false]]);
    // an ordinary entry still rounds to the rounding account
    const manual = await t.http.post(url('journal-entries')).set(owner.auth).send({ ...usdOpening, source: undefined, date: '2026-01-02' }).expect(201);
    expect(lineSummary(manual.body)[2]).toEqual(['5600', '0.01', '0.00', true]);
    expect(await onRounding()).toBe(1);

    // retained earnings not an equity account, or not set: the base amounts must balance
    await t.http.patch(url('settings')).set(owner.auth).send({ retainedEarningsAccountId: a['5200'] }).expect(200);
    const expense = await t.http.post(url('journal-entries')).set(owner.auth).send(usdOpening).expect(422);
    expect(expense.body.error).toMatchObject({ code: 'ledger.unbalanced', message: expect.stringContaining('the base amounts must balance') });
    await t.db.admin.query('UPDATE finance.settings SET retained_earnings_account_id = NULL WHERE org_id = $1', [orgId]);
    const unset = await t.http.post(url('journal-entries')).set(owner.auth).send(usdOpening).expect(422);
    expect(unset.body.error).toMatchObject({ code: 'ledger.unbalanced', message: expect.stringContaining('off by 0.01 EUR from rounding') });
    const batch = await t.http.post(url('journal-entries/batch?mode=independent')).set(owner.auth).send({ entries: [usdOpening] }).expect(201);
    expect(batch.body.results).toEqual([expect.objectContaining({ index: 0, status: 'rejected', error: expect.objectContaining({ code: 'ledger.unbalanced' }) })]);
    expect(await entries()).toEqual([{ source: 'opening_balance', date: '2026-01-01', reversal: false }, { source: 'opening_balance', date: '2026-01-01', reversal: true },
      { source: 'manual', date: '2026-01-02', reversal: false }]);
    // at a rate whose base amounts balance, no rounding line
    const balanced = await t.http.post(url('journal-entries')).set(owner.auth).send({ ...usdOpening, lines: [
      { ...usdOpening.lines[0], rate: '0.334' }, usdOpening.lines[1]] }).expect(201);
    expect(lineSummary(balanced.body)).toEqual([['1100', '3.34', '0.00', false], ['3200', '0.00', '3.34', false]]);
  });

  it('takes a reversal only as the mirror of its entry, in SQL too (22023 ledger.invalid_entry): an opening entry "reversed" by revenue lines or a cent books nothing and still stands', async () => {
    const { orgId, users, a, url, entries, years } = await books('Opening Fake Reversal Ltd');
    const owner = users.owner;
    const o = await t.http.post(url('journal-entries')).set(owner.auth).send(opening(a)).expect(201);
    const reversalOf = (id: string, source: string, date: string, lines: object[]) => ({ date, source, reversesEntryId: id, lines });
    const notMirror = { code: '22023', hint: 'ledger.invalid_entry', message: expect.stringContaining(`a reversal mirrors the lines of journal entry ${o.body.id}`) };
    await expect(direct(users, orgId, reversalOf(o.body.id, 'opening_balance', '2026-01-01',
      [{ accountId: a['1100'], debit: '5000.00' }, { accountId: a['4100'], credit: '5000.00' }]))).rejects.toMatchObject(notMirror);
    await expect(direct(users, orgId, reversalOf(o.body.id, 'opening_balance', '2026-01-01',
      [{ accountId: a['1100'], credit: '0.01' }, { accountId: a['3200'], debit: '0.01' }]))).rejects.toMatchObject(notMirror);
    // a line more (the mirror and a pair that nets to zero)
    await expect(direct(users, orgId, reversalOf(o.body.id, 'opening_balance', '2026-01-01', [{ accountId: a['1100'], credit: '1000.00' }, { accountId: a['3200'], debit: '1000.00' },
      { accountId: a['1100'], debit: '1.00' }, { accountId: a['3200'], credit: '1.00' }]))).rejects.toMatchObject(notMirror);
    expect(await entries()).toEqual([{ source: 'opening_balance', date: '2026-01-01', reversal: false }]);
    const pl = await t.http.get(url('reports/profit-and-loss?from=2026-01-01&to=2026-12-31')).set(users.viewer.auth).expect(200);
    expect(pl.body.netIncome).toBe('0.00');
    const refused = await t.http.post(url('fiscal-years')).set(owner.auth).send({ startDate: '2025-01-01' }).expect(422);
    expect(refused.body.error.code).toBe('ledger.fiscal_year_before_opening_balance');

    // any reversal: an ordinary entry's too; the mirror is taken (its lines in any order)
    const m = await t.http.post(url('journal-entries')).set(owner.auth)
      .send({ date: '2026-01-05', lines: [{ accountId: a['1100'], debit: '10.00' }, { accountId: a['3200'], credit: '10.00' }] }).expect(201);
    await expect(direct(users, orgId, reversalOf(m.body.id, 'manual', '2026-01-06', [{ accountId: a['1100'], credit: '10.00' }, { accountId: a['4100'], debit: '10.00' }])))
      .rejects.toMatchObject({ hint: 'ledger.invalid_entry', message: expect.stringContaining(`mirrors the lines of journal entry ${m.body.id}`) });
    await direct(users, orgId, reversalOf(m.body.id, 'manual', '2026-01-06', [{ accountId: a['3200'], debit: '10.00' }, { accountId: a['1100'], credit: '10.00' }]));
    // the opening entry's mirror undoes it: the year before is created
    await direct(users, orgId, reversalOf(o.body.id, 'opening_balance', '2026-01-01', [{ accountId: a['1100'], credit: '1000.00' }, { accountId: a['3200'], debit: '1000.00' }]));
    await t.http.post(url('fiscal-years')).set(owner.auth).send({ startDate: '2025-01-01' }).expect(201);
    expect(await years()).toEqual(['2025-01-01', '2026-01-01']);
    expect(await entries()).toEqual([{ source: 'opening_balance', date: '2026-01-01', reversal: false }, { source: 'manual', date: '2026-01-05', reversal: false },
      { source: 'manual', date: '2026-01-06', reversal: true }, { source: 'opening_balance', date: '2026-01-01', reversal: true }]);
  });

  it('takes a reversal only with its entry\'s source (ledger.opening_balance_date for an opening entry) and never of a reversal (ledger.reversal_of_reversal, as the reverse route)', async () => {
    const { orgId, users, a, url, entries, years } = await books('Opening Reversal Source Ltd');
    const owner = users.owner;
    const o = await t.http.post(url('journal-entries')).set(owner.auth).send(opening(a)).expect(201);
    const swapped = [{ accountId: a['1100'], credit: '1000.00' }, { accountId: a['3200'], debit: '1000.00' }];
    // a manual "reversal" (a cent, later), or even the mirror with source manual
    await expect(direct(users, orgId, { date: '2026-06-30', source: 'manual', reversesEntryId: o.body.id,
      lines: [{ accountId: a['1100'], credit: '0.01' }, { accountId: a['3200'], debit: '0.01' }] }))
      .rejects.toMatchObject({ code: 'P0001', hint: 'ledger.opening_balance_date', message: expect.stringContaining('has source opening_balance, not manual') });
    await expect(direct(users, orgId, { date: '2026-01-01', source: 'manual', reversesEntryId: o.body.id, lines: swapped }))
      .rejects.toMatchObject({ hint: 'ledger.opening_balance_date' });
    // another entry's reversal with another source
    const m = await t.http.post(url('journal-entries')).set(owner.auth)
      .send({ date: '2026-01-05', lines: [{ accountId: a['1100'], debit: '10.00' }, { accountId: a['3200'], credit: '10.00' }] }).expect(201);
    await expect(direct(users, orgId, { date: '2026-01-05', source: 'system', reversesEntryId: m.body.id,
      lines: [{ accountId: a['1100'], credit: '10.00' }, { accountId: a['3200'], debit: '10.00' }] }))
      .rejects.toMatchObject({ code: '22023', hint: 'ledger.invalid_entry', message: expect.stringContaining('has its source manual, not system') });
    const fy = await t.http.post(url('fiscal-years')).set(owner.auth).send({ startDate: '2025-01-01' }).expect(422);
    expect(fy.body.error.code).toBe('ledger.fiscal_year_before_opening_balance');

    // reversed through the API, its reversal is not reversed: in SQL neither
    const r = await t.http.post(url(`journal-entries/${o.body.id}/reverse`)).set(owner.auth).send({}).expect(201);
    const api = await t.http.post(url(`journal-entries/${r.body.id}/reverse`)).set(owner.auth).send({}).expect(422);
    expect(api.body.error.code).toBe('ledger.reversal_of_reversal');
    await expect(direct(users, orgId, { date: '2026-01-01', source: 'opening_balance', reversesEntryId: r.body.id, lines: opening(a).lines }))
      .rejects.toMatchObject({ code: 'P0001', hint: 'ledger.reversal_of_reversal', message: expect.stringContaining(`journal entry ${r.body.id} is a reversal`) });
    expect(await entries()).toEqual([{ source: 'opening_balance', date: '2026-01-01', reversal: false }, { source: 'manual', date: '2026-01-05', reversal: false },
      { source: 'opening_balance', date: '2026-01-01', reversal: true }]);
    // undone by its mirror: the year before is created
    await t.http.post(url('fiscal-years')).set(owner.auth).send({ startDate: '2025-01-01' }).expect(201);
    expect(await years()).toEqual(['2025-01-01', '2026-01-01']);
  });

  it('refuses a fiscal year before an opening entry that a legacy "reversal" (manual, a cent; or reversed again) left standing: the opening entries\' net decides', async () => {
    const c = await books('Opening Legacy Manual Ltd');
    const o = await t.http.post(c.url('journal-entries')).set(c.users.owner.auth).send(opening(c.a)).expect(201);
    await legacyReversal(c.orgId, o.body.id, 'manual', '2026-06-30', [[c.a['1100'], '0', '0.01'], [c.a['3200'], '0.01', '0']]);
    const refused = await t.http.post(c.url('fiscal-years')).set(c.users.owner.auth).send({ startDate: '2025-01-01' }).expect(422);
    expect(refused.body.error).toMatchObject({ code: 'ledger.fiscal_year_before_opening_balance',
      message: expect.stringContaining(`before the opening-balance entry ${o.body.id} dated 2026-01-01`) });
    expect(await c.years()).toEqual(['2026-01-01']);

    const d = await books('Opening Legacy Double Ltd');
    const o2 = await t.http.post(d.url('journal-entries')).set(d.users.owner.auth).send(opening(d.a)).expect(201);
    const r2 = await t.http.post(d.url(`journal-entries/${o2.body.id}/reverse`)).set(d.users.owner.auth).send({}).expect(201);
    await legacyReversal(d.orgId, r2.body.id, 'opening_balance', '2026-01-01');
    const again = await t.http.post(d.url('fiscal-years')).set(d.users.owner.auth).send({ startDate: '2025-01-01' }).expect(422);
    expect(again.body.error).toMatchObject({ code: 'ledger.fiscal_year_before_opening_balance', message: expect.stringContaining(`opening-balance entry ${o2.body.id} dated 2026-01-01`) });
    // a period inserted directly, likewise
    await expect(t.db.asApi({ sub: d.users.owner.id, role: 'authenticated', org_id: d.orgId }, 'authenticated',
      `INSERT INTO finance.fiscal_periods (org_id, fiscal_year_id, period_no, start_date, end_date)
       SELECT $1, id, 13, '2025-12-01', '2025-12-31' FROM finance.fiscal_years WHERE org_id = $1`, [d.orgId]))
      .rejects.toMatchObject({ code: '23514', hint: 'ledger.fiscal_year_before_opening_balance' });
    expect(await d.years()).toEqual(['2026-01-01']);
    expect(await d.firstPeriod()).toBe('2026-01-01');
  });

  it('refuses moving the first year\'s or period\'s start past an opening entry still standing (23514 ledger.opening_balance_date); once reversed, the start moves', async () => {
    const { orgId, users, a, url, years, firstPeriod } = await books('Opening Moved Start Ltd');
    const owner = users.owner;
    const o = await t.http.post(url('journal-entries')).set(owner.auth).send(opening(a)).expect(201);
    const asOwner = (sql: string) => t.db.asApi({ sub: owner.id, role: 'authenticated', org_id: orgId }, 'authenticated', sql, [orgId]);
    const moveBoth = `WITH y AS (UPDATE finance.fiscal_years SET start_date = '2026-01-02' WHERE org_id = $1 AND start_date = '2026-01-01' RETURNING id)
      UPDATE finance.fiscal_periods p SET start_date = '2026-01-02' FROM y WHERE p.org_id = $1 AND p.fiscal_year_id = y.id AND p.period_no = 1`;
    await expect(asOwner(moveBoth)).rejects.toMatchObject({ code: '23514', hint: 'ledger.opening_balance_date',
      message: expect.stringContaining(`fiscal year 2026-01-02 to 2026-12-31 would no longer cover the opening-balance entry ${o.body.id} dated 2026-01-01`) });
    await expect(asOwner(`UPDATE finance.fiscal_periods SET start_date = '2026-01-02' WHERE org_id = $1 AND start_date = '2026-01-01'`))
      .rejects.toMatchObject({ code: '23514', hint: 'ledger.opening_balance_date', message: expect.stringContaining('fiscal period 2026-01-02 to 2026-01-31 would no longer cover') });
    expect(await years()).toEqual(['2026-01-01']);
    expect(await firstPeriod()).toBe('2026-01-01');
    // the books still start on 2026-01-01
    const second = await t.http.post(url('journal-entries')).set(owner.auth).send(opening(a, '2026-01-02')).expect(422);
    expect(second.body.error.code).toBe('ledger.opening_balance_date');
    // a change that leaves it covered is no matter
    await asOwner(`UPDATE finance.fiscal_periods SET end_date = end_date WHERE org_id = $1 AND start_date = '2026-01-01'`);

    await t.http.post(url(`journal-entries/${o.body.id}/reverse`)).set(owner.auth).send({}).expect(201);
    await asOwner(moveBoth);
    expect(await years()).toEqual(['2026-01-02']);
    expect(await firstPeriod()).toBe('2026-01-02');
    await t.http.post(url('journal-entries')).set(owner.auth).send(opening(a, '2026-01-02')).expect(201);
  });
});
