import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { onPlan, orgWithRoles } from '../support/factories.js';
import { ledgerUrl, startBooks } from './ledger-support.js';

/**
 * The cash-flow statement where it used to go wrong: the revaluation of foreign-currency cash counted as operating
 * cash, and a bank account without a class of its own counted as working capital.
 */
describe('cash-flow statement: exchange-rate effect on cash, inherited classes', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(() => t.close());

  const entry = (date: string, dr: string, cr: string, amount: string) => ({ date, lines: [{ accountId: dr, debit: amount }, { accountId: cr, credit: amount }] });

  /**
   * Base EUR; a USD bank account (1110, cash). Range 2026-02-01 to 2027-01-31, across the close of 2026:
   *  Jan  2 capital in (before the range)      Dr 1100 10,000.00            Cr 3100 10,000.00
   *  Feb  2 loan                               Dr 1100 5,000.00             Cr 2300 5,000.00
   *  Feb  3 loan repaid in part                Dr 2300 100.00               Cr 1100 100.00
   *  Feb  5 equipment                          Dr 1500 3,000.00             Cr 1100 3,000.00
   *  Mar  1 USD 1,000 bought at 1.10           Dr 1110 USD 1,000 (1,100.00) Cr 1100 1,100.00
   *  Apr  1 sale on credit                     Dr 1200 2,000.00             Cr 4100 2,000.00
   *  May  1 customer pays part                 Dr 1100 1,500.00             Cr 1200 1,500.00
   *  Jun  1 rent on credit                     Dr 5200 700.00               Cr 2100 700.00
   *  Jul  1 supplier paid part                 Dr 2100 400.00               Cr 1100 400.00
   *  Dec 31 revaluation at 1.15                Dr 1110 50.00 (base only)    Cr 4310 50.00
   *  Dec 31 year-end close (left out: it moves no cash)
   *  2027 Jan 10 cash sale                     Dr 1100 100.00               Cr 4100 100.00
   * Net income 2,000 − 700 + 50 + 100 = 1,450. Operating: 1,450 − 50 (the revaluation: no cash; unrealizedExchangeDifferences,
   * no row on 1110) − 500 (receivables up)
   * + 300 (payables up) = 1,200. Investing −3,000; financing 5,000 − 100 = 4,900; effect of exchange rates +50.
   * Net change 1,200 − 3,000 + 4,900 + 50 = 3,150 = closing cash 13,150 (1100: 12,000; 1110: USD 1,000 at 1.15) − opening 10,000.
   */
  it('reports the revaluation of foreign-currency cash as the effect of exchange rates, not as operating cash (worked example)', async () => {
    const { orgId, users } = await orgWithRoles(t, 'FX Cash Ltd');
    await onPlan(t, orgId, 'professional'); // foreign currencies, rates and revaluation are full accounting
    const owner = users.owner;
    const url = (path: string) => ledgerUrl(orgId, path);
    const a = await startBooks(t, orgId, owner);
    const post = (body: object) => t.http.post(url('journal-entries')).set(owner.auth).send(body).expect(201);
    const usd = (await t.http.post(url('accounts')).set(owner.auth)
      .send({ code: '1110', name: 'USD bank', type: 'asset', parentId: a['1000'], currency: 'USD', cashFlowClass: 'cash' }).expect(201)).body.id as string;
    await t.http.post(url('fiscal-years')).set(owner.auth).send({ startDate: '2027-01-01' }).expect(201);
    await t.http.post(url('fx-rates/import')).set(owner.auth).send({ rates: [
      { currency: 'USD', date: '2026-03-01', rate: '1.10' }, { currency: 'USD', date: '2026-12-31', rate: '1.15' }, { currency: 'USD', date: '2027-01-31', rate: '1.20' }] }).expect(201);

    await post(entry('2026-01-02', a['1100'], a['3100'], '10000.00'));
    await post(entry('2026-02-02', a['1100'], a['2300'], '5000.00'));
    await post(entry('2026-02-03', a['2300'], a['1100'], '100.00'));
    await post(entry('2026-02-05', a['1500'], a['1100'], '3000.00'));
    await post({ date: '2026-03-01', memo: 'USD bought', lines: [{ accountId: usd, debit: '1000.00', currency: 'USD' }, { accountId: a['1100'], credit: '1100.00' }] });
    await post(entry('2026-04-01', a['1200'], a['4100'], '2000.00'));
    await post(entry('2026-05-01', a['1100'], a['1200'], '1500.00'));
    await post(entry('2026-06-01', a['5200'], a['2100'], '700.00'));
    await post(entry('2026-07-01', a['2100'], a['1100'], '400.00'));
    const reval = await t.http.post(url('fx-revaluations')).set(owner.auth).send({ date: '2026-12-31' }).expect(201);
    expect(reval.body.adjustments).toEqual([expect.objectContaining({ accountId: usd, baseBefore: '1100.00', baseAfter: '1150.00', difference: '50.00' })]);
    const fy2026 = (await t.http.get(url('fiscal-years')).set(owner.auth).expect(200)).body.find((y: any) => y.startDate === '2026-01-01');
    await t.http.post(url(`fiscal-years/${fy2026.id}/close`)).set(owner.auth).expect(200);
    await post(entry('2027-01-10', a['1100'], a['4100'], '100.00'));

    const res = await t.http.get(url('reports/cash-flow?from=2026-02-01&to=2027-01-31')).set(users.viewer.auth).expect(200);
    expect(res.body).toEqual({
      // the revaluation's gain added back with the unrealized differences: no operating row on the cash account
      from: '2026-02-01', to: '2027-01-31', baseCurrency: 'EUR', netIncome: '1450.00', unrealizedExchangeDifferences: '-50.00',
      operating: {
        total: '1200.00',
        rows: [
          { accountId: a['1200'], code: '1200', name: 'Accounts receivable', amount: '-500.00' },
          { accountId: a['2100'], code: '2100', name: 'Accounts payable', amount: '300.00' },
        ],
      },
      investing: { total: '-3000.00', rows: [{ accountId: a['1500'], code: '1500', name: 'Equipment', amount: '-3000.00' }] },
      financing: { total: '4900.00', rows: [{ accountId: a['2300'], code: '2300', name: 'Loans', amount: '4900.00' }] },
      nonCashInvestingAndFinancing: { rows: [], total: '0.00' },
      effectOfExchangeRatesOnCash: '50.00',
      netChange: '3150.00', openingCash: '10000.00', closingCash: '13150.00', balanced: true,
    });
    // the revaluation line the report reads: on the USD bank account, no USD, 50.00 in the base currency
    const { rows } = await t.db.admin.query(`SELECT l.debit::text, l.credit::text, l.base_debit::text, l.base_credit::text FROM finance.journal_lines l
      WHERE l.org_id = $1 AND l.account_id = $2 AND l.entry_id = $3`, [orgId, usd, reval.body.entry.id]);
    expect(rows).toEqual([{ debit: '0.0000', credit: '0.0000', base_debit: '50.0000', base_credit: '0.0000' }]);

    // revalued with autoReverse at the end of January 2027 (1.20: +50.00), reversed on February 1: the reversal is a
    // negative effect, and the unrealized loss it books is no operating cash either
    const jan = await t.http.post(url('fx-revaluations')).set(owner.auth).send({ date: '2027-01-31', autoReverse: true }).expect(201);
    expect(jan.body.adjustments).toEqual([expect.objectContaining({ accountId: usd, baseBefore: '1150.00', baseAfter: '1200.00', difference: '50.00' })]);
    const feb = await t.http.get(url('reports/cash-flow?from=2027-02-01&to=2027-02-28')).set(users.viewer.auth).expect(200);
    expect(feb.body).toMatchObject({
      netIncome: '-50.00', unrealizedExchangeDifferences: '50.00', operating: { total: '0.00', rows: [] },
      nonCashInvestingAndFinancing: { rows: [], total: '0.00' },
      effectOfExchangeRatesOnCash: '-50.00', netChange: '-50.00', openingCash: '13200.00', closingCash: '13150.00', balanced: true,
    });
    const pl = await t.http.get(url('reports/profit-and-loss?from=2026-02-01&to=2027-01-31')).set(users.viewer.auth).expect(200);
    expect(pl.body.netIncome).toBe('1500.00'); // 1,450 + January's revaluation (+50), which the first statement did not cover yet
  });

  it('a bank account without a class of its own takes its group\'s class: under the cash group it is cash, not working capital', async () => {
    const { orgId, users } = await orgWithRoles(t, 'Savings Ltd');
    const owner = users.owner;
    const url = (path: string) => ledgerUrl(orgId, path);
    const a = await startBooks(t, orgId, owner);
    const post = (body: object) => t.http.post(url('journal-entries')).set(owner.auth).send(body).expect(201);
    // the standard chart's cash group holds the bank account
    const chart = (await t.http.get(url('accounts')).set(owner.auth).expect(200)).body as any[];
    expect(chart.find((x) => x.code === '1050')).toMatchObject({ name: 'Cash and cash equivalents', isGroup: true, parentId: a['1000'], cashFlowClass: 'cash' });
    expect(chart.find((x) => x.code === '1100')).toMatchObject({ parentId: a['1050'], cashFlowClass: 'cash' });
    const create = async (body: object) => (await t.http.post(url('accounts')).set(owner.auth).send({ type: 'asset', ...body }).expect(201)).body;
    const savings = await create({ code: '1120', name: 'Savings', parentId: a['1050'] });
    expect(savings.cashFlowClass).toBeNull();
    const row = await t.db.admin.query(`SELECT cash_flow_class FROM finance.accounts WHERE org_id = $1 AND id = $2`, [orgId, savings.id]);
    expect(row.rows).toEqual([{ cash_flow_class: null }]); // inherited when the report runs, not copied

    await post(entry('2026-01-02', a['1100'], a['3100'], '13350.00'));
    await post(entry('2026-02-03', savings.id, a['1100'], '400.00'));
    const feb = await t.http.get(url('reports/cash-flow?from=2026-02-01&to=2026-02-28')).set(users.viewer.auth).expect(200);
    expect(feb.body).toMatchObject({
      netIncome: '0.00', operating: { total: '0.00', rows: [] }, investing: { total: '0.00', rows: [] }, financing: { total: '0.00', rows: [] },
      nonCashInvestingAndFinancing: { rows: [], total: '0.00' },
      effectOfExchangeRatesOnCash: '0.00', netChange: '0.00', openingCash: '13350.00', closingCash: '13350.00', balanced: true,
    });

    // a group classed after its accounts were made (a chart from before the cash group): two levels down, the accounts
    // follow it; an account's own class still wins (a deposit under it, classed investing)
    const banks = await create({ code: '1060', name: 'Other banks', parentId: a['1000'], isGroup: true });
    const eu = await create({ code: '1061', name: 'EU banks', parentId: banks.id, isGroup: true });
    const giro = await create({ code: '1062', name: 'Giro', parentId: eu.id });
    const deposit = await create({ code: '1069', name: 'Term deposit', parentId: banks.id, cashFlowClass: 'investing' });
    await post(entry('2026-03-02', giro.id, a['1100'], '250.00'));
    await post(entry('2026-03-03', deposit.id, a['1100'], '1000.00'));
    const before = await t.http.get(url('reports/cash-flow?from=2026-03-01&to=2026-03-31')).set(users.viewer.auth).expect(200);
    expect(before.body).toMatchObject({ operating: { total: '-250.00', rows: [{ code: '1062', amount: '-250.00' }] }, closingCash: '12100.00', balanced: true });
    await t.http.patch(url(`accounts/${banks.id}`)).set(owner.auth).send({ cashFlowClass: 'cash' }).expect(200);
    const after = await t.http.get(url('reports/cash-flow?from=2026-03-01&to=2026-03-31')).set(users.viewer.auth).expect(200);
    expect(after.body).toMatchObject({
      operating: { total: '0.00', rows: [] }, investing: { total: '-1000.00', rows: [{ code: '1069', amount: '-1000.00' }] },
      netChange: '-1000.00', openingCash: '13350.00', closingCash: '12350.00', balanced: true,
    });
    const classes = await t.db.admin.query(`SELECT code, cash_flow_class FROM finance.accounts WHERE org_id = $1 AND code IN ('1060', '1062', '1069') ORDER BY code`, [orgId]);
    expect(classes.rows).toEqual([{ code: '1060', cash_flow_class: 'cash' }, { code: '1062', cash_flow_class: null }, { code: '1069', cash_flow_class: 'investing' }]);
  });
});
