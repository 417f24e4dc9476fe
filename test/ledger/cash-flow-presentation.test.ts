import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { semanticUrl } from '../agents/agents-support.js';
import { professionalBooks } from './ledger-support.js';

/**
 * Where the cash-flow statement put figures under misleading labels (review ledgrev, LOW; no total was wrong):
 * - the unrealized exchange difference of foreign-currency cash was an operating row named after the cash account
 *   ("1110 USD bank 100.00" under operating): now added back with the other unrealized differences
 *   (unrealizedExchangeDifferences), a cash account having no row;
 * - depreciation credited to accumulated depreciation classed investing was disclosed in nonCashInvestingAndFinancing
 *   (IAS 7.43, for non-cash investing and financing transactions), whereas under the indirect method it is a non-cash
 *   expense added back in operating: now an operating row on that account, while equipment bought on credit or with a
 *   loan stays disclosed.
 */
describe('cash-flow statement: exchange differences on cash and depreciation presented as operating adjustments', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(() => t.close());

  /** Base-currency change (debit minus credit) of the cash accounts' lines over [from, to], from the journal lines. */
  const cashChange = async (orgId: string, from: string, to: string) => (await t.db.admin.query(`SELECT coalesce(sum(l.base_debit) - sum(l.base_credit), 0)::numeric(20, 2)::text AS change
    FROM finance.journal_lines l JOIN finance.accounts x ON x.org_id = l.org_id AND x.id = l.account_id
    WHERE l.org_id = $1 AND x.code IN ('1100', '1110') AND l.entry_date BETWEEN $2 AND $3`, [orgId, from, to])).rows[0].change as string;
  /** semantic.v_cash_flow for one month per activity (netting 0 left out), and the report's totals in the same shape. */
  const viewSums = async (orgId: string, auth: { Authorization: string }, month: string) => {
    const res = await t.http.post(semanticUrl(orgId)).set(auth).send({ sql: `SELECT activity, sum(net_cash)::numeric(20, 2)::text AS net
      FROM semantic.v_cash_flow WHERE month = '${month}' GROUP BY activity HAVING sum(net_cash) <> 0 ORDER BY activity` }).expect(200);
    return Object.fromEntries(res.body.rows as [string, string][]);
  };
  const reportSums = (r: any) => Object.fromEntries(Object.entries({
    exchange_rate_effect: r.effectOfExchangeRatesOnCash as string, financing: r.financing.total as string, investing: r.investing.total as string, operating: r.operating.total as string,
  }).filter(([, v]) => Number(v) !== 0));

  /**
   * Base EUR; 1110 USD bank (USD, under the cash group). February 2026:
   *  Jan  5 capital                          Dr 1100 10,000.00                 Cr 3100 10,000.00
   *  Feb  2 USD 1,000 bought at 0.90         Dr 1110 USD 1,000 (900.00)        Cr 1100 900.00
   *  Feb 28 revaluation at 0.80              1110 −100.00 (base only), unrealized loss 100.00
   * Feb: net income −100; unrealized exchange differences +100 (the loss added back); no operating row; effect of exchange
   *   rates −100; net change −100 = 9,900 − 10,000, the cash accounts' change (1100 −900, 1110 +800).
   * Was: operating rows [1110 USD bank +100.00], unrealizedExchangeDifferences 0.00 (same totals).
   */
  it('adds the unrealized exchange difference of foreign-currency cash back with the others, without an operating row on the cash account (worked example)', async () => {
    const { orgId, users, a, url } = await professionalBooks(t, 'FX Cash Presentation Ltd');
    const owner = users.owner;
    const usdBank = (await t.http.post(url('accounts')).set(owner.auth)
      .send({ code: '1110', name: 'USD bank', type: 'asset', parentId: a['1050'], currency: 'USD' }).expect(201)).body.id as string;
    await t.http.post(url('fx-rates/import')).set(owner.auth).send({ rates: [{ currency: 'USD', date: '2026-02-01', rate: '0.90' }, { currency: 'USD', date: '2026-02-28', rate: '0.80' }] }).expect(201);
    await t.http.post(url('journal-entries')).set(owner.auth).send({ date: '2026-01-05', lines: [{ accountId: a['1100'], debit: '10000.00' }, { accountId: a['3100'], credit: '10000.00' }] }).expect(201);
    await t.http.post(url('journal-entries')).set(owner.auth)
      .send({ date: '2026-02-02', lines: [{ accountId: usdBank, debit: '1000.00', currency: 'USD' }, { accountId: a['1100'], credit: '900.00' }] }).expect(201);
    const reval = await t.http.post(url('fx-revaluations')).set(owner.auth).send({ date: '2026-02-28' }).expect(201);
    expect(reval.body.adjustments).toEqual([expect.objectContaining({ accountId: usdBank, baseBefore: '900.00', baseAfter: '800.00', difference: '-100.00' })]);

    const feb = (await t.http.get(url('reports/cash-flow?from=2026-02-01&to=2026-02-28')).set(users.viewer.auth).expect(200)).body;
    expect(feb).toEqual({
      from: '2026-02-01', to: '2026-02-28', baseCurrency: 'EUR', netIncome: '-100.00', unrealizedExchangeDifferences: '100.00',
      operating: { total: '0.00', rows: [] },
      investing: { total: '0.00', rows: [] },
      financing: { total: '0.00', rows: [] },
      nonCashInvestingAndFinancing: { total: '0.00', rows: [] },
      effectOfExchangeRatesOnCash: '-100.00',
      netChange: '-100.00', openingCash: '10000.00', closingCash: '9900.00', balanced: true,
    });
    // the net change is the cash accounts' change, from the lines (the revaluation's base-only line included)
    expect(await cashChange(orgId, '2026-02-01', '2026-02-28')).toBe(feb.netChange);
    // the semantic view gives the same section totals
    expect(await viewSums(orgId, users.viewer.auth, '2026-02-01')).toEqual(reportSums(feb));
  });

  /**
   * Base EUR, the standard chart plus 1510 Accumulated depreciation (asset, classed investing) and 5700 Depreciation.
   *  Jan  2 capital                            Dr 1100 20,000.00                  Cr 3100 20,000.00
   *  Feb  2 equipment bought on credit         Dr 1500 5,000.00                   Cr 2100 5,000.00     non-cash transaction
   *  Feb 10 equipment bought with a loan       Dr 1500 8,000.00                   Cr 2300 8,000.00     non-cash transaction
   *  Feb 12 equipment and its installation     Dr 1500 1,000.00, Dr 5200 100.00   Cr 2100 1,100.00     non-cash transaction (with an expense)
   *  Feb 28 depreciation                       Dr 5700 300.00                     Cr 1510 300.00       non-cash expense
   * Feb: net income −400; operating rows 1510 +300 (depreciation added back) and 2100 +6,100; disclosed 1500 −14,000 and
   *   2300 +8,000 (−6,000); operating −400 + 300 + 6,100 − 6,000 = 0; net change 0.
   * Was: 1510 +300 disclosed (investing), no 1510 row in operating; the same totals.
   */
  it('adds depreciation against an account classed investing back in operating, and keeps non-cash transactions disclosed', async () => {
    const { orgId, users, a, url } = await professionalBooks(t, 'Depreciation Presentation Ltd');
    const owner = users.owner;
    const create = async (body: object) => (await t.http.post(url('accounts')).set(owner.auth).send(body).expect(201)).body.id as string;
    const accumulated = await create({ code: '1510', name: 'Accumulated depreciation', type: 'asset', parentId: a['1000'], cashFlowClass: 'investing' });
    const depreciation = await create({ code: '5700', name: 'Depreciation', type: 'expense', parentId: a['5000'] });
    const post = async (date: string, lines: [string, 'debit' | 'credit', string][]) => (await t.http.post(url('journal-entries')).set(owner.auth)
      .send({ date, lines: lines.map(([accountId, side, amount]) => ({ accountId, [side]: amount })) }).expect(201)).body.id as string;
    await post('2026-01-02', [[a['1100'], 'debit', '20000.00'], [a['3100'], 'credit', '20000.00']]);
    await post('2026-02-02', [[a['1500'], 'debit', '5000.00'], [a['2100'], 'credit', '5000.00']]);
    await post('2026-02-10', [[a['1500'], 'debit', '8000.00'], [a['2300'], 'credit', '8000.00']]);
    await post('2026-02-12', [[a['1500'], 'debit', '1000.00'], [a['5200'], 'debit', '100.00'], [a['2100'], 'credit', '1100.00']]);
    const depreciated = await post('2026-02-28', [[depreciation, 'debit', '300.00'], [accumulated, 'credit', '300.00']]);
    // the depreciation entry as stored: an expense and the investing account, nothing else
    const { rows: lines } = await t.db.admin.query(`SELECT x.code, l.base_debit::numeric(20, 2)::text AS debit, l.base_credit::numeric(20, 2)::text AS credit
      FROM finance.journal_lines l JOIN finance.accounts x ON x.org_id = l.org_id AND x.id = l.account_id WHERE l.org_id = $1 AND l.entry_id = $2 ORDER BY x.code`, [orgId, depreciated]);
    expect(lines).toEqual([{ code: '1510', debit: '0.00', credit: '300.00' }, { code: '5700', debit: '300.00', credit: '0.00' }]);

    const feb = (await t.http.get(url('reports/cash-flow?from=2026-02-01&to=2026-02-28')).set(users.viewer.auth).expect(200)).body;
    const row = (id: string, code: string, name: string, amount: string) => ({ accountId: id, code, name, amount });
    expect(feb).toEqual({
      from: '2026-02-01', to: '2026-02-28', baseCurrency: 'EUR', netIncome: '-400.00', unrealizedExchangeDifferences: '0.00',
      operating: {
        total: '0.00',
        rows: [row(accumulated, '1510', 'Accumulated depreciation', '300.00'), row(a['2100'], '2100', 'Accounts payable', '6100.00')],
      },
      investing: { total: '0.00', rows: [] },
      financing: { total: '0.00', rows: [] },
      nonCashInvestingAndFinancing: {
        total: '-6000.00',
        rows: [{ ...row(a['1500'], '1500', 'Equipment', '-14000.00'), section: 'investing' }, { ...row(a['2300'], '2300', 'Loans', '8000.00'), section: 'financing' }],
      },
      effectOfExchangeRatesOnCash: '0.00',
      netChange: '0.00', openingCash: '20000.00', closingCash: '20000.00', balanced: true,
    });
    expect(await cashChange(orgId, '2026-02-01', '2026-02-28')).toBe('0.00');
    // the semantic view's operating total is unchanged by the presentation (it nets the non-cash entries to 0)
    expect(await viewSums(orgId, users.viewer.auth, '2026-02-01')).toEqual(reportSums(feb));
  });

  /**
   * semantic.v_cash_flow's description (what an analyst or the agents read of it) still said depreciation is disclosed
   * apart in nonCashInvestingAndFinancing, and nothing of where the unrealized difference on foreign-currency cash goes
   * (review of the presentation change, LOW): migration 20270211003900 says the rule the report follows now.
   */
  it('semantic.v_cash_flow\'s description says the current rule: depreciation added back in operating, cash FX in unrealizedExchangeDifferences', async () => {
    const { rows: [{ d }] } = await t.db.admin.query(`SELECT obj_description('semantic.v_cash_flow'::regclass, 'pg_class') AS d`);
    // the disclosed transactions no longer list depreciation
    expect(d).not.toContain('bought on credit or with a loan, depreciation');
    expect(d).toContain('equipment bought on credit or with a loan, or a share issue for a contribution in kind (non-cash investing and financing '
      + 'transactions, IAS 7.43, which the report discloses apart in nonCashInvestingAndFinancing)');
    expect(d).toContain('depreciation, amortisation or an impairment booked against an account classed investing or financing (a non-cash expense, '
      + 'which the report adds back in operating on that account\'s row, not disclosed)');
    expect(d).toContain('the report\'s effectOfExchangeRatesOnCash (their unrealized gain or loss, in net income, the report adds back in '
      + 'unrealizedExchangeDifferences with those of the other accounts, a cash account having no row of its own)');
    // what stays as it was: the split, the totals it matches, opening balances
    expect(d).toContain('is split as in the cash-flow report');
    expect(d).toContain('net_cash per activity is the cash-flow report\'s operating.total, investing.total, financing.total and effectOfExchangeRatesOnCash');
    expect(d).toContain('opening_balance');
    const { rows: columns } = await t.db.admin.query(`SELECT a.attname AS column, col_description(a.attrelid, a.attnum) AS d FROM pg_attribute a
      WHERE a.attrelid = 'semantic.v_cash_flow'::regclass AND a.attname = 'activity'`);
    expect(columns).toEqual([{ column: 'activity', d: expect.stringContaining('exchange_rate_effect (the effect of exchange-rate changes on cash held in foreign currencies: no cash flow)') }]);
  });
});
