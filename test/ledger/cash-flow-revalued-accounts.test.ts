import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { onPlan, orgWithRoles } from '../support/factories.js';
import { semanticUrl } from '../agents/agents-support.js';
import { ledgerUrl, startBooks } from './ledger-support.js';

/**
 * The cash-flow statement where revaluing a non-cash foreign-currency account went wrong: a USD loan's revaluation
 * landed in financing (and its unrealized loss in operating), a USD receivable's in working capital. And
 * semantic.v_cash_flow, which read each account's own class only and counted revaluation entries as cash flows,
 * agrees with the report.
 */
describe('cash-flow statement: revalued loans and receivables; semantic.v_cash_flow agrees', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(() => t.close());

  /**
   * Base EUR. 1110 USD bank under the cash group (no class of its own: cash), 1210 USD receivables (operating by type),
   * 2351 USD loan under the group 2350 classed financing (no class of its own: financing). USD rates: 1.10 from Jan 1,
   * 1.15 from Mar 31, 1.20 from Apr 20, 1.25 from Jun 30.
   *  Jan  5 capital (before the ranges)       Dr 1100 10,000.00                   Cr 3100 10,000.00
   *  Feb  2 loan drawn, converted            Dr 1100 11,000.00                   Cr 2351 USD 10,000 (11,000.00)
   *  Feb  3 USD bought                       Dr 1110 USD 1,000 (1,100.00)        Cr 1100 1,100.00
   *  Feb 10 sale on credit                   Dr 1210 USD 2,000 (2,200.00)        Cr 4100 2,200.00
   *  Mar 31 revaluation at 1.15, autoReverse 1110 +50.00, 1210 +100.00 (gains, 4310); 2351 −500.00 (loss, 5510)
   *  Apr  1 its reversal                     1110 −50.00, 1210 −100.00, 2351 +500.00
   *  Apr 20 repayment USD 1,000 at 1.20      Dr 2351 USD 1,000 (1,200.00)        Cr 1100 1,200.00
   *  May 15 receivable collected             Dr 1100 2,400.00   Cr 1210 USD 2,000 at 1.10 (2,200.00), Cr 4300 200.00
   *  Jun 30 revaluation at 1.25              1110 +150.00 (1,250 − 1,100); 2351 −1,450.00 (11,250 − 9,800)
   * Feb–Mar: net income 2,200 + 50 + 100 − 500 = 1,850; unrealized exchange differences −50 (1110, cash: no row of its
   *   own) − 100 + 500 = +350; operating 1,850 + 350 − 2,200 (1210, without its +100) = 0; financing +11,000 (2351, without its −500); effect of
   *   exchange rates +50; net change 11,050 = 21,050 − 10,000.
   * Apr–Jun: net income −150 + 500 + 200 + 150 − 1,450 = −750; unrealized −100 (1110) + 100 + 950 = 950; operating −750
   *   + 950 + 2,200 (1210) = 2,400, the collection; financing −1,200, the repayment; effect +100; net change 1,300.
   */
  it('takes revaluations out of the revalued accounts\' sections and adds the unrealized differences back in operating (worked example); the view sums to the report', async () => {
    const { orgId, users } = await orgWithRoles(t, 'FX Loans Ltd');
    await onPlan(t, orgId, 'professional'); // foreign currencies and revaluation are full accounting
    const owner = users.owner;
    const url = (path: string) => ledgerUrl(orgId, path);
    const a = await startBooks(t, orgId, owner);
    const post = (body: object) => t.http.post(url('journal-entries')).set(owner.auth).send(body).expect(201);
    const create = async (body: object) => (await t.http.post(url('accounts')).set(owner.auth).send(body).expect(201)).body.id as string;
    const usdBank = await create({ code: '1110', name: 'USD bank', type: 'asset', parentId: a['1050'], currency: 'USD' });
    const usdReceivables = await create({ code: '1210', name: 'USD receivables', type: 'asset', parentId: a['1000'], currency: 'USD' });
    const borrowings = await create({ code: '2350', name: 'Borrowings', type: 'liability', parentId: a['2000'], isGroup: true, cashFlowClass: 'financing' });
    const usdLoan = await create({ code: '2351', name: 'USD loan', type: 'liability', parentId: borrowings, currency: 'USD' });
    await t.http.post(url('fx-rates/import')).set(owner.auth).send({ rates: [
      { currency: 'USD', date: '2026-01-01', rate: '1.10' }, { currency: 'USD', date: '2026-03-31', rate: '1.15' },
      { currency: 'USD', date: '2026-04-20', rate: '1.20' }, { currency: 'USD', date: '2026-06-30', rate: '1.25' }] }).expect(201);

    await post({ date: '2026-01-05', lines: [{ accountId: a['1100'], debit: '10000.00' }, { accountId: a['3100'], credit: '10000.00' }] });
    await post({ date: '2026-02-02', memo: 'USD loan', lines: [{ accountId: a['1100'], debit: '11000.00' }, { accountId: usdLoan, credit: '10000.00', currency: 'USD' }] });
    await post({ date: '2026-02-03', memo: 'USD bought', lines: [{ accountId: usdBank, debit: '1000.00', currency: 'USD' }, { accountId: a['1100'], credit: '1100.00' }] });
    await post({ date: '2026-02-10', memo: 'sale', lines: [{ accountId: usdReceivables, debit: '2000.00', currency: 'USD' }, { accountId: a['4100'], credit: '2200.00' }] });
    const march = await t.http.post(url('fx-revaluations')).set(owner.auth).send({ date: '2026-03-31', autoReverse: true }).expect(201);
    const byAccount = (adjustments: any[]) => Object.fromEntries(adjustments.map((x) => [x.accountId, [x.baseBefore, x.baseAfter, x.difference]]));
    expect(byAccount(march.body.adjustments)).toEqual({
      [usdBank]: ['1100.00', '1150.00', '50.00'], [usdReceivables]: ['2200.00', '2300.00', '100.00'], [usdLoan]: ['-11000.00', '-11500.00', '-500.00'],
    });
    expect(march.body.reversal).toMatchObject({ date: '2026-04-01' });
    await post({ date: '2026-04-20', memo: 'repayment', lines: [{ accountId: usdLoan, debit: '1000.00', currency: 'USD' }, { accountId: a['1100'], credit: '1200.00' }] });
    await post({ date: '2026-05-15', memo: 'collected', lines: [
      { accountId: a['1100'], debit: '2400.00' }, { accountId: usdReceivables, credit: '2000.00', currency: 'USD', rate: '1.10' }, { accountId: a['4300'], credit: '200.00' }] });
    const june = await t.http.post(url('fx-revaluations')).set(owner.auth).send({ date: '2026-06-30' }).expect(201);
    expect(byAccount(june.body.adjustments)).toEqual({ [usdBank]: ['1100.00', '1250.00', '150.00'], [usdLoan]: ['-9800.00', '-11250.00', '-1450.00'] });

    // what the report reads as revaluation: the loan's lines without any USD, base amounts only
    const { rows: loanLines } = await t.db.admin.query(`SELECT entry_date::text AS date, base_debit::text, base_credit::text FROM finance.journal_lines
      WHERE org_id = $1 AND account_id = $2 AND debit = 0 AND credit = 0 ORDER BY entry_date`, [orgId, usdLoan]);
    expect(loanLines).toEqual([
      { date: '2026-03-31', base_debit: '0.0000', base_credit: '500.0000' }, { date: '2026-04-01', base_debit: '500.0000', base_credit: '0.0000' },
      { date: '2026-06-30', base_debit: '0.0000', base_credit: '1450.0000' }]);

    const report = async (from: string, to: string) => (await t.http.get(url(`reports/cash-flow?from=${from}&to=${to}`)).set(users.viewer.auth).expect(200)).body;
    const q1 = await report('2026-02-01', '2026-03-31');
    expect(q1).toEqual({
      from: '2026-02-01', to: '2026-03-31', baseCurrency: 'EUR', netIncome: '1850.00', unrealizedExchangeDifferences: '350.00',
      operating: {
        total: '0.00',
        rows: [
          { accountId: usdReceivables, code: '1210', name: 'USD receivables', amount: '-2200.00' },
        ],
      },
      investing: { total: '0.00', rows: [] },
      financing: { total: '11000.00', rows: [{ accountId: usdLoan, code: '2351', name: 'USD loan', amount: '11000.00' }] },
      nonCashInvestingAndFinancing: { rows: [], total: '0.00' },
      effectOfExchangeRatesOnCash: '50.00',
      netChange: '11050.00', openingCash: '10000.00', closingCash: '21050.00', balanced: true,
    });
    const q2 = await report('2026-04-01', '2026-06-30');
    expect(q2).toEqual({
      from: '2026-04-01', to: '2026-06-30', baseCurrency: 'EUR', netIncome: '-750.00', unrealizedExchangeDifferences: '950.00',
      operating: {
        total: '2400.00',
        rows: [
          { accountId: usdReceivables, code: '1210', name: 'USD receivables', amount: '2200.00' },
        ],
      },
      investing: { total: '0.00', rows: [] },
      financing: { total: '-1200.00', rows: [{ accountId: usdLoan, code: '2351', name: 'USD loan', amount: '-1200.00' }] },
      nonCashInvestingAndFinancing: { rows: [], total: '0.00' },
      effectOfExchangeRatesOnCash: '100.00',
      netChange: '1300.00', openingCash: '21050.00', closingCash: '22350.00', balanced: true,
    });
    // across both: the March revaluation and its reversal cancel; the receivable moved 0 net and shows no row
    const half = await report('2026-02-01', '2026-06-30');
    expect(half).toMatchObject({
      netIncome: '1100.00', unrealizedExchangeDifferences: '1300.00',
      operating: { total: '2400.00', rows: [] },
      financing: { total: '9800.00', rows: [{ accountId: usdLoan, code: '2351', name: 'USD loan', amount: '9800.00' }] },
      nonCashInvestingAndFinancing: { rows: [], total: '0.00' },
      effectOfExchangeRatesOnCash: '150.00', netChange: '12350.00', openingCash: '10000.00', closingCash: '22350.00', balanced: true,
    });

    // the semantic view, summed over the same months, gives the report's figures (through the semantic query endpoint)
    const viewSums = async (from: string, to: string) => {
      const res = await t.http.post(semanticUrl(orgId)).set(users.viewer.auth).send({ sql: `SELECT activity, sum(net_cash)::numeric(20, 2)::text AS net
        FROM semantic.v_cash_flow WHERE month BETWEEN '${from}' AND '${to}' GROUP BY activity ORDER BY activity` }).expect(200);
      return Object.fromEntries(res.body.rows as [string, string][]);
    };
    const fromReport = (r: any) => Object.fromEntries(Object.entries({
      exchange_rate_effect: r.effectOfExchangeRatesOnCash, financing: r.financing.total, investing: r.investing.total, operating: r.operating.total,
    }).filter(([, v]) => v !== '0.00'));
    expect(await viewSums('2026-02-01', '2026-03-01')).toEqual({ exchange_rate_effect: '50.00', financing: '11000.00' });
    expect(await viewSums('2026-02-01', '2026-03-01')).toEqual(fromReport(q1));
    expect(await viewSums('2026-04-01', '2026-06-01')).toEqual({ exchange_rate_effect: '100.00', financing: '-1200.00', operating: '2400.00' });
    expect(await viewSums('2026-04-01', '2026-06-01')).toEqual(fromReport(q2));
    expect(await viewSums('2026-02-01', '2026-06-01')).toEqual(fromReport(half));
    // per month, with cash in and out: the repayment is April's financing cash out, the collection May's operating cash in
    const months = await t.http.post(semanticUrl(orgId)).set(users.viewer.auth).send({ sql: `SELECT month::text, activity, cash_in::numeric(20, 2)::text,
      cash_out::numeric(20, 2)::text FROM semantic.v_cash_flow ORDER BY month, activity` }).expect(200);
    expect(months.body.rows).toEqual([
      ['2026-01-01', 'financing', '10000.00', '0.00'], ['2026-02-01', 'financing', '11000.00', '0.00'], ['2026-03-01', 'exchange_rate_effect', '50.00', '0.00'],
      ['2026-04-01', 'exchange_rate_effect', '0.00', '50.00'], ['2026-04-01', 'financing', '0.00', '1200.00'],
      ['2026-05-01', 'operating', '2400.00', '0.00'], ['2026-06-01', 'exchange_rate_effect', '150.00', '0.00']]);

    // the USD bank given a class of its own (cash, as before): the revaluation entries still move no cash in the view
    await t.http.patch(url(`accounts/${usdBank}`)).set(owner.auth).send({ cashFlowClass: 'cash' }).expect(200);
    expect(await viewSums('2026-02-01', '2026-06-01')).toEqual(fromReport(half));
    expect((await report('2026-02-01', '2026-06-30'))).toEqual(half);
    const { rows: classes } = await t.db.admin.query(`SELECT code, cash_flow_class FROM finance.accounts WHERE org_id = $1 AND code IN ('1110', '1210', '2351') ORDER BY code`, [orgId]);
    expect(classes).toEqual([{ code: '1110', cash_flow_class: 'cash' }, { code: '1210', cash_flow_class: null }, { code: '2351', cash_flow_class: null }]);
  });
});
