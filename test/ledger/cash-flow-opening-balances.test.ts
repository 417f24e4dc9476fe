import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { onPlan, orgWithRoles } from '../support/factories.js';
import { semanticUrl } from '../agents/agents-support.js';
import { ledgerUrl, startBooks } from './ledger-support.js';

/**
 * Accountant's review, issue 1: the opening balances of a business moving its books here showed up as cash flows (a
 * financing inflow of 5,000.00 on retained earnings, receivables −2,000.00, payables +1,000.00, equipment disclosed as a
 * non-cash investment) and openingCash was 0.00. An entry with source opening_balance (dated the first day of the first
 * fiscal year) is now left out of the movements and the split, its cash counted in openingCash, as closing entries
 * (year_end) are left out; every other report counts it as any entry.
 */
describe('cash-flow statement: opening balances (source opening_balance) are opening cash, no flows', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(() => t.close());

  const none = { rows: [], total: '0.00' };

  /**
   * Base EUR, books from 2026-01-01 (standard chart: 1100 cash, 1200 receivables, 1500 equipment classed investing,
   * 2100 payables, 3200 retained earnings).
   *  Jan  1 opening balances (opening_balance)  Dr 1100 5,000  Dr 1200 2,000  Dr 1500 3,000 / Cr 2100 1,000  Cr 3200 9,000
   *  Jan 10 cash sale                           Dr 1100 400 / Cr 4100 400
   * January: openingCash 5,000.00; operating +400 (net income), nothing else; closingCash 5,400.00.
   */
  it('counts the opening entry\'s cash in openingCash and shows no flows of it (worked example); other reports count it; the view agrees', async () => {
    const { orgId, users } = await orgWithRoles(t, 'Migrated Books Ltd');
    await onPlan(t, orgId, 'professional');
    const owner = users.owner;
    const url = (path: string) => ledgerUrl(orgId, path);
    const a = await startBooks(t, orgId, owner);
    const opening = await t.http.post(url('journal-entries')).set(owner.auth).send({
      date: '2026-01-01', memo: 'Opening balances', source: 'opening_balance', lines: [
        { accountId: a['1100'], debit: '5000.00' }, { accountId: a['1200'], debit: '2000.00' }, { accountId: a['1500'], debit: '3000.00' },
        { accountId: a['2100'], credit: '1000.00' }, { accountId: a['3200'], credit: '9000.00' }],
    }).expect(201);
    expect(opening.body).toMatchObject({ source: 'opening_balance', date: '2026-01-01', totalBase: '10000.00' });
    const { rows: stored } = await t.db.admin.query('SELECT source, entry_date::text AS date FROM finance.journal_entries WHERE org_id = $1 AND id = $2', [orgId, opening.body.id]);
    expect(stored).toEqual([{ source: 'opening_balance', date: '2026-01-01' }]);

    // the opening entry alone: opening cash, no flows
    const first = await t.http.get(url('reports/cash-flow?from=2026-01-01&to=2026-01-31')).set(users.viewer.auth).expect(200);
    expect(first.body).toEqual({
      from: '2026-01-01', to: '2026-01-31', baseCurrency: 'EUR', netIncome: '0.00', unrealizedExchangeDifferences: '0.00',
      operating: none, investing: none, financing: none, nonCashInvestingAndFinancing: none, effectOfExchangeRatesOnCash: '0.00',
      netChange: '0.00', openingCash: '5000.00', closingCash: '5000.00', balanced: true,
    });

    await t.http.post(url('journal-entries')).set(owner.auth)
      .send({ date: '2026-01-10', lines: [{ accountId: a['1100'], debit: '400.00' }, { accountId: a['4100'], credit: '400.00' }] }).expect(201);
    const jan = await t.http.get(url('reports/cash-flow?from=2026-01-01&to=2026-01-31')).set(users.viewer.auth).expect(200);
    expect(jan.body).toEqual({
      from: '2026-01-01', to: '2026-01-31', baseCurrency: 'EUR', netIncome: '400.00', unrealizedExchangeDifferences: '0.00',
      operating: { rows: [], total: '400.00' }, investing: none, financing: none, nonCashInvestingAndFinancing: none, effectOfExchangeRatesOnCash: '0.00',
      netChange: '400.00', openingCash: '5000.00', closingCash: '5400.00', balanced: true,
    });
    // a later range starts from the balances, opening ones included
    const feb = await t.http.get(url('reports/cash-flow?from=2026-02-01&to=2026-02-28')).set(users.viewer.auth).expect(200);
    expect(feb.body).toMatchObject({ openingCash: '5400.00', closingCash: '5400.00', netChange: '0.00', balanced: true });

    // the balance sheet, trial balance and P&L count it as any entry
    const bs = await t.http.get(url('reports/balance-sheet?asOf=2026-01-31')).set(users.viewer.auth).expect(200);
    const amount = (rows: { code: string; amount: string }[], code: string) => rows.find((r) => r.code === code)?.amount;
    expect({
      cash: amount(bs.body.assets, '1100'), receivables: amount(bs.body.assets, '1200'), equipment: amount(bs.body.assets, '1500'),
      payables: amount(bs.body.liabilities, '2100'), retained: amount(bs.body.equity, '3200'), earnings: bs.body.currentEarnings, balanced: bs.body.balanced,
    }).toEqual({ cash: '5400.00', receivables: '2000.00', equipment: '3000.00', payables: '1000.00', retained: '9000.00', earnings: '400.00', balanced: true });
    const tb = await t.http.get(url('reports/trial-balance?asOf=2026-01-01')).set(users.viewer.auth).expect(200);
    expect(tb.body).toMatchObject({ totalDebit: '10000.00', totalCredit: '10000.00', balanced: true });
    const pl = await t.http.get(url('reports/profit-and-loss?from=2026-01-01&to=2026-01-31')).set(users.viewer.auth).expect(200);
    expect(pl.body.netIncome).toBe('400.00');

    // semantic.v_cash_flow leaves it out too: January is the sale's operating 400.00 only
    const view = await t.http.post(semanticUrl(orgId)).set(users.viewer.auth).send({ sql: `SELECT activity, sum(net_cash)::numeric(20, 2)::text AS net
      FROM semantic.v_cash_flow WHERE month = '2026-01-01' GROUP BY activity HAVING sum(net_cash) <> 0 ORDER BY activity` }).expect(200);
    expect(view.body.rows).toEqual([['operating', '400.00']]);
  });

  it('takes opening_balance only on the first day of the first fiscal year, its reversal too (422 ledger.opening_balance_date, nothing posted)', async () => {
    const { orgId, users } = await orgWithRoles(t, 'Late Opening Ltd');
    await onPlan(t, orgId, 'professional');
    const owner = users.owner;
    const url = (path: string) => ledgerUrl(orgId, path);
    const a = await startBooks(t, orgId, owner);
    const entries = async () => (await t.db.admin.query('SELECT count(*)::int AS n FROM finance.journal_entries WHERE org_id = $1', [orgId])).rows[0].n as number;
    const body = (date: string) => ({ date, source: 'opening_balance', lines: [{ accountId: a['1100'], debit: '100.00' }, { accountId: a['3200'], credit: '100.00' }] });
    const late = await t.http.post(url('journal-entries')).set(owner.auth).send(body('2026-01-02')).expect(422);
    expect(late.body.error).toMatchObject({ code: 'ledger.opening_balance_date', message: expect.stringContaining('dated 2026-01-01, the first day of the first fiscal year, not 2026-01-02') });
    const batch = await t.http.post(url('journal-entries/batch')).set(owner.auth).send({ entries: [body('2026-03-01')] }).expect(422);
    expect(batch.body.error).toMatchObject({ code: 'ledger.opening_balance_date', details: { index: 0 } });
    expect(await entries()).toBe(0);
    const posted = await t.http.post(url('journal-entries')).set(owner.auth).send(body('2026-01-01')).expect(201);
    const reversedLater = await t.http.post(url(`journal-entries/${posted.body.id}/reverse`)).set(owner.auth).send({ date: '2026-02-01' }).expect(422);
    expect(reversedLater.body.error.code).toBe('ledger.opening_balance_date');
    expect(await entries()).toBe(1);
    const reversal = await t.http.post(url(`journal-entries/${posted.body.id}/reverse`)).set(owner.auth).send({}).expect(201);
    expect(reversal.body).toMatchObject({ source: 'opening_balance', date: '2026-01-01' });
    const cf = await t.http.get(url('reports/cash-flow?from=2026-01-01&to=2026-01-31')).set(users.viewer.auth).expect(200);
    expect(cf.body).toMatchObject({ openingCash: '0.00', closingCash: '0.00', netChange: '0.00', financing: none, balanced: true });
  });
});
