import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { orgWithRoles } from '../support/factories.js';
import { semanticUrl } from '../agents/agents-support.js';
import { ledgerUrl, startBooks } from './ledger-support.js';

/**
 * The cash-flow statement where an entry without any cash line showed a pair of flows: equipment bought on credit as an
 * investing outflow and an operating inflow, equipment bought with a loan as an investing outflow and a financing
 * inflow, depreciation booked against accumulated depreciation classed investing as an investing inflow. IAS 7.43
 * leaves such non-cash transactions out of the statement and has them disclosed apart: nonCashInvestingAndFinancing.
 */
describe('cash-flow statement: non-cash investing and financing transactions (IAS 7.43); semantic.v_cash_flow agrees', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(() => t.close());

  const entry = (date: string, dr: string, cr: string, amount: string) => ({ date, lines: [{ accountId: dr, debit: amount }, { accountId: cr, credit: amount }] });
  const none = { rows: [], total: '0.00' };

  /**
   * semantic.v_cash_flow summed over whole months (from and to: first days of months) per activity, read as the viewer;
   * activities netting 0 left out. `reportSums`: the report's figures in the same shape, to compare.
   */
  const viewSums = async (orgId: string, auth: { Authorization: string }, from: string, to: string, scale = 2) => {
    const res = await t.http.post(semanticUrl(orgId)).set(auth).send({ sql: `SELECT activity, sum(net_cash)::numeric(20, ${scale})::text AS net
      FROM semantic.v_cash_flow WHERE month BETWEEN '${from}' AND '${to}' GROUP BY activity HAVING sum(net_cash) <> 0 ORDER BY activity` }).expect(200);
    return Object.fromEntries(res.body.rows as [string, string][]);
  };
  const reportSums = (r: any) => Object.fromEntries(Object.entries({
    exchange_rate_effect: r.effectOfExchangeRatesOnCash as string, financing: r.financing.total as string, investing: r.investing.total as string, operating: r.operating.total as string,
  }).filter(([, v]) => Number(v) !== 0));

  /**
   * Base EUR, the standard chart plus 1510 Accumulated depreciation (asset, classed investing) and 5700 Depreciation.
   *  Jan  2 capital (before the ranges)      Dr 1100 20,000.00   Cr 3100 20,000.00
   *  Feb  2 equipment bought on credit       Dr 1500 5,000.00    Cr 2100 5,000.00    no cash
   *  Feb 20 supplier paid in part            Dr 2100 1,500.00    Cr 1100 1,500.00
   *  Mar  3 equipment bought with a loan     Dr 1500 8,000.00    Cr 2300 8,000.00    no cash
   *  Mar 31 loan repaid in part              Dr 2300 500.00      Cr 1100 500.00
   *  Apr 10 cash sale                        Dr 1100 1,000.00    Cr 4100 1,000.00
   *  Apr 30 depreciation                     Dr 5700 300.00      Cr 1510 300.00      no cash
   *  May  4 equipment bought for cash        Dr 1500 2,000.00    Cr 1100 2,000.00
   * Feb: operating +3,500 (payables up) − 5,000 (the non-cash purchase, adjusted) = −1,500, the supplier paid; investing 0
   *   (not −5,000); disclosed 1500 −5,000.
   * Mar: financing −500, the repayment (not +7,500); investing 0 (not −8,000); disclosed 1500 −8,000 and 2300 +8,000.
   * Apr: net income 1,000 − 300 = 700, + 300 (depreciation added back: a row on 1510 in operating, nothing disclosed) =
   *   1,000 operating; investing 0 (not +300).
   * May: investing −2,000, the cash purchase; nothing disclosed.
   * Feb–May: net income 700; disclosed 1500 −13,000, 2300 +8,000 (total −5,000); operating 700 + 300 (1510) − 5,000 + 3,500
   *   = −500; investing −2,000; financing −500; net change −3,000 = 17,000 − 20,000.
   */
  it('leaves entries without cash out of investing and financing, discloses them, and adjusts operating (worked example); the view sums to the report', async () => {
    const { orgId, users } = await orgWithRoles(t, 'Non-Cash Ltd');
    const owner = users.owner;
    const url = (path: string) => ledgerUrl(orgId, path);
    const a = await startBooks(t, orgId, owner);
    const post = async (body: object) => (await t.http.post(url('journal-entries')).set(owner.auth).send(body).expect(201)).body.id as string;
    const create = async (body: object) => (await t.http.post(url('accounts')).set(owner.auth).send(body).expect(201)).body.id as string;
    const accumulated = await create({ code: '1510', name: 'Accumulated depreciation', type: 'asset', parentId: a['1000'], cashFlowClass: 'investing' });
    const depreciation = await create({ code: '5700', name: 'Depreciation', type: 'expense', parentId: a['5000'] });

    await post(entry('2026-01-02', a['1100'], a['3100'], '20000.00'));
    const onCredit = await post(entry('2026-02-02', a['1500'], a['2100'], '5000.00'));
    await post(entry('2026-02-20', a['2100'], a['1100'], '1500.00'));
    const withLoan = await post(entry('2026-03-03', a['1500'], a['2300'], '8000.00'));
    await post(entry('2026-03-31', a['2300'], a['1100'], '500.00'));
    await post(entry('2026-04-10', a['1100'], a['4100'], '1000.00'));
    const depreciated = await post(entry('2026-04-30', depreciation, accumulated, '300.00'));
    await post(entry('2026-05-04', a['1500'], a['1100'], '2000.00'));

    // the three non-cash entries as stored: no line on a cash account
    const { rows: cashLines } = await t.db.admin.query(`SELECT count(*)::int AS n FROM finance.journal_lines l JOIN finance.accounts x ON x.org_id = l.org_id AND x.id = l.account_id
      WHERE l.org_id = $1 AND l.entry_id = ANY($2::uuid[]) AND x.code IN ('1050', '1100')`, [orgId, [onCredit, withLoan, depreciated]]);
    expect(cashLines).toEqual([{ n: 0 }]);

    const names: Record<string, string> = { '1500': 'Equipment', '1510': 'Accumulated depreciation', '2100': 'Accounts payable', '2300': 'Loans' };
    const row = (code: string, amount: string) => ({ accountId: code === '1510' ? accumulated : a[code], code, name: names[code], amount });
    const report = async (from: string, to: string) => (await t.http.get(url(`reports/cash-flow?from=${from}&to=${to}`)).set(users.viewer.auth).expect(200)).body;
    const statement = (from: string, to: string, body: object) => ({
      from, to, baseCurrency: 'EUR', unrealizedExchangeDifferences: '0.00', effectOfExchangeRatesOnCash: '0.00', balanced: true, ...body,
    });

    const [feb, mar, apr, may, all] = await Promise.all([['2026-02-01', '2026-02-28'], ['2026-03-01', '2026-03-31'], ['2026-04-01', '2026-04-30'],
      ['2026-05-01', '2026-05-31'], ['2026-02-01', '2026-05-31']].map(([from, to]) => report(from, to)));
    // one assertion for all five, so that a difference in any of them shows at once
    expect({ feb, mar, apr, may, all }).toEqual({
      // equipment on credit: no investing outflow, no operating inflow from the payable; the supplier's payment is the cash
      feb: statement('2026-02-01', '2026-02-28', {
        netIncome: '0.00',
        operating: { total: '-1500.00', rows: [row('2100', '3500.00')] },
        investing: { total: '0.00', rows: [] },
        financing: { total: '0.00', rows: [] },
        nonCashInvestingAndFinancing: { total: '-5000.00', rows: [{ ...row('1500', '-5000.00'), section: 'investing' }] },
        netChange: '-1500.00', openingCash: '20000.00', closingCash: '18500.00',
      }),
      // equipment with a loan: neither the investing outflow nor the financing inflow; the repayment is the cash
      mar: statement('2026-03-01', '2026-03-31', {
        netIncome: '0.00',
        operating: { total: '0.00', rows: [] },
        investing: { total: '0.00', rows: [] },
        financing: { total: '-500.00', rows: [row('2300', '-500.00')] },
        nonCashInvestingAndFinancing: { total: '0.00', rows: [{ ...row('1500', '-8000.00'), section: 'investing' }, { ...row('2300', '8000.00'), section: 'financing' }] },
        netChange: '-500.00', openingCash: '18500.00', closingCash: '18000.00',
      }),
      // depreciation against an account classed investing: a non-cash expense added back in operating (a row on the
      // account), no investing inflow, nothing disclosed (no investing transaction)
      apr: statement('2026-04-01', '2026-04-30', {
        netIncome: '700.00',
        operating: { total: '1000.00', rows: [row('1510', '300.00')] },
        investing: { total: '0.00', rows: [] },
        financing: { total: '0.00', rows: [] },
        nonCashInvestingAndFinancing: none,
        netChange: '1000.00', openingCash: '18000.00', closingCash: '19000.00',
      }),
      // equipment bought for cash is still investing, and nothing is disclosed
      may: statement('2026-05-01', '2026-05-31', {
        netIncome: '0.00',
        operating: { total: '0.00', rows: [] },
        investing: { total: '-2000.00', rows: [row('1500', '-2000.00')] },
        financing: { total: '0.00', rows: [] },
        nonCashInvestingAndFinancing: none,
        netChange: '-2000.00', openingCash: '19000.00', closingCash: '17000.00',
      }),
      // all four months: an account with cash and non-cash lines (1500) shows its cash part in its section, the rest disclosed
      all: statement('2026-02-01', '2026-05-31', {
        netIncome: '700.00',
        operating: { total: '-500.00', rows: [row('1510', '300.00'), row('2100', '3500.00')] },
        investing: { total: '-2000.00', rows: [row('1500', '-2000.00')] },
        financing: { total: '-500.00', rows: [row('2300', '-500.00')] },
        nonCashInvestingAndFinancing: {
          total: '-5000.00',
          rows: [{ ...row('1500', '-13000.00'), section: 'investing' }, { ...row('2300', '8000.00'), section: 'financing' }],
        },
        netChange: '-3000.00', openingCash: '20000.00', closingCash: '17000.00',
      }),
    });
    // each account's row in its section plus its disclosed part is the change of its balance over the range (read from the lines)
    const { rows: changes } = await t.db.admin.query(`SELECT x.code, (sum(l.base_credit) - sum(l.base_debit))::numeric(20, 2)::text AS change
      FROM finance.journal_lines l JOIN finance.accounts x ON x.org_id = l.org_id AND x.id = l.account_id
      WHERE l.org_id = $1 AND l.entry_date BETWEEN '2026-02-01' AND '2026-05-31' AND x.code IN ('1500', '1510', '2300') GROUP BY x.code ORDER BY x.code`, [orgId]);
    expect(changes).toEqual([{ code: '1500', change: '-15000.00' }, { code: '1510', change: '300.00' }, { code: '2300', change: '7500.00' }]);

    // the semantic view, summed over the same months, gives the report's figures (it reads only the entries that moved cash)
    const sums = (from: string, to: string) => viewSums(orgId, users.viewer.auth, from, to);
    expect(await sums('2026-02-01', '2026-02-01')).toEqual({ operating: '-1500.00' });
    expect(await sums('2026-02-01', '2026-02-01')).toEqual(reportSums(feb));
    expect(await sums('2026-03-01', '2026-03-01')).toEqual(reportSums(mar));
    expect(await sums('2026-04-01', '2026-04-01')).toEqual(reportSums(apr));
    expect(await sums('2026-05-01', '2026-05-01')).toEqual(reportSums(may));
    expect(await sums('2026-02-01', '2026-05-01')).toEqual({ financing: '-500.00', investing: '-2000.00', operating: '-500.00' });
    expect(await sums('2026-02-01', '2026-05-01')).toEqual(reportSums(all));
    // and its description no longer says the report differs for such entries
    const { rows: [comment] } = await t.db.admin.query(`SELECT obj_description('semantic.v_cash_flow'::regclass, 'pg_class') AS text`);
    expect(comment.text).toContain('nonCashInvestingAndFinancing');
    expect(comment.text).not.toContain('differs');
    // it splits an entry that mixes cash with a non-cash part as the report does (20270210520100)
    expect(comment.text).toContain('is split as in the cash-flow report');
  });

  /**
   * Entries that move cash and something else: only what the cash paid counts in investing and financing (review r3).
   * Base EUR, the standard chart plus 1120 Savings (under the cash group) and 5800 Loss on disposals.
   *  Jan  2 capital                          Dr 1100 20,000.00   Cr 3100 20,000.00
   *  Feb  2 equipment, 2,000 cash + loan     Dr 1500 10,000.00   Cr 1100 2,000.00, Cr 2300 8,000.00
   *  Mar  2 equipment, 200 cash + supplier   Dr 1500 1,000.00    Cr 1100 200.00, Cr 2100 800.00
   *  Apr 10 disposal at a gain               Dr 1100 600.00      Cr 1500 500.00, Cr 4200 100.00
   *  May  5 two cash lines + loan            Dr 1500 3,000.00, Dr 1120 500.00   Cr 1100 2,000.00, Cr 2300 1,500.00
   *  Jun 10 disposal at a loss               Dr 1100 400.00, Dr 5800 100.00     Cr 1500 500.00
   * Feb: investing −2,000 (not −10,000), financing 0 (not +8,000), 8,000 disclosed on both accounts.
   * Mar: investing −200 (not −1,000); operating 0: the payable's +800 offset by the disclosed −800.
   * Apr: investing +600, the proceeds; the gain's 100 taken out of operating (row on 4200), which is then 0.
   * May: 500 received (savings) from the loan, 2,000 paid (bank) for the equipment: no transfer is needed to explain it
   *      (the least one counts: review r12), so investing −2,000, financing +500, 1,000 disclosed on both accounts.
   * Jun: investing +400; the loss of 100 added back in operating (row on 5800), nothing disclosed.
   * Feb–Jun: net income 0; operating 800 − 100 + 100 − 800 (disclosed) = 0; investing −3,200, financing +500; net change −2,700.
   */
  it('an entry with cash and a non-cash part: only its cash counts in investing and financing, the rest disclosed; gains and losses on disposals leave operating', async () => {
    const { orgId, users } = await orgWithRoles(t, 'Mixed Entries Ltd');
    const owner = users.owner;
    const url = (path: string) => ledgerUrl(orgId, path);
    const a = await startBooks(t, orgId, owner);
    const create = async (body: object) => (await t.http.post(url('accounts')).set(owner.auth).send(body).expect(201)).body.id as string;
    const savings = await create({ code: '1120', name: 'Savings', type: 'asset', parentId: a['1050'] });
    const loss = await create({ code: '5800', name: 'Loss on disposals', type: 'expense', parentId: a['5000'] });
    const post = async (date: string, lines: [string, 'debit' | 'credit', string][]) => (await t.http.post(url('journal-entries')).set(owner.auth)
      .send({ date, lines: lines.map(([accountId, side, amount]) => ({ accountId, [side]: amount })) }).expect(201)).body.id as string;
    await post('2026-01-02', [[a['1100'], 'debit', '20000.00'], [a['3100'], 'credit', '20000.00']]);
    const ids = [
      await post('2026-02-02', [[a['1500'], 'debit', '10000.00'], [a['1100'], 'credit', '2000.00'], [a['2300'], 'credit', '8000.00']]),
      await post('2026-03-02', [[a['1500'], 'debit', '1000.00'], [a['1100'], 'credit', '200.00'], [a['2100'], 'credit', '800.00']]),
      await post('2026-04-10', [[a['1100'], 'debit', '600.00'], [a['1500'], 'credit', '500.00'], [a['4200'], 'credit', '100.00']]),
      await post('2026-05-05', [[a['1500'], 'debit', '3000.00'], [savings, 'debit', '500.00'], [a['1100'], 'credit', '2000.00'], [a['2300'], 'credit', '1500.00']]),
      await post('2026-06-10', [[a['1100'], 'debit', '400.00'], [loss, 'debit', '100.00'], [a['1500'], 'credit', '500.00']]),
    ];
    // each of them has a line on a cash account, as stored
    const { rows: cash } = await t.db.admin.query(`SELECT count(DISTINCT l.entry_id)::int AS n FROM finance.journal_lines l
      WHERE l.org_id = $1 AND l.entry_id = ANY($2::uuid[]) AND l.account_id = ANY($3::uuid[])`, [orgId, ids, [a['1100'], savings]]);
    expect(cash).toEqual([{ n: 5 }]);

    const names: Record<string, string> = { '1500': 'Equipment', '2100': 'Accounts payable', '2300': 'Loans', '4200': 'Other income', '5800': 'Loss on disposals' };
    const row = (code: string, amount: string) => ({ accountId: code === '5800' ? loss : a[code], code, name: names[code], amount });
    const nonCash = (code: string, amount: string) => ({ ...row(code, amount), section: code === '1500' ? 'investing' : 'financing' });
    const report = async (from: string, to: string) => (await t.http.get(url(`reports/cash-flow?from=${from}&to=${to}`)).set(users.viewer.auth).expect(200)).body;
    const statement = (from: string, to: string, body: object) => ({
      from, to, baseCurrency: 'EUR', unrealizedExchangeDifferences: '0.00', effectOfExchangeRatesOnCash: '0.00', balanced: true,
      financing: { total: '0.00', rows: [] }, ...body,
    });
    const [feb, mar, apr, may, jun, all] = await Promise.all([['2026-02-01', '2026-02-28'], ['2026-03-01', '2026-03-31'], ['2026-04-01', '2026-04-30'],
      ['2026-05-01', '2026-05-31'], ['2026-06-01', '2026-06-30'], ['2026-02-01', '2026-06-30']].map(([from, to]) => report(from, to)));
    expect({ feb, mar, apr, may, jun, all }).toEqual({
      feb: statement('2026-02-01', '2026-02-28', {
        netIncome: '0.00', operating: { total: '0.00', rows: [] }, investing: { total: '-2000.00', rows: [row('1500', '-2000.00')] },
        nonCashInvestingAndFinancing: { total: '0.00', rows: [nonCash('1500', '-8000.00'), nonCash('2300', '8000.00')] },
        netChange: '-2000.00', openingCash: '20000.00', closingCash: '18000.00',
      }),
      mar: statement('2026-03-01', '2026-03-31', {
        netIncome: '0.00', operating: { total: '0.00', rows: [row('2100', '800.00')] }, investing: { total: '-200.00', rows: [row('1500', '-200.00')] },
        nonCashInvestingAndFinancing: { total: '-800.00', rows: [nonCash('1500', '-800.00')] },
        netChange: '-200.00', openingCash: '18000.00', closingCash: '17800.00',
      }),
      apr: statement('2026-04-01', '2026-04-30', {
        netIncome: '100.00', operating: { total: '0.00', rows: [row('4200', '-100.00')] }, investing: { total: '600.00', rows: [row('1500', '600.00')] },
        nonCashInvestingAndFinancing: none, netChange: '600.00', openingCash: '17800.00', closingCash: '18400.00',
      }),
      may: statement('2026-05-01', '2026-05-31', {
        netIncome: '0.00', operating: { total: '0.00', rows: [] }, investing: { total: '-2000.00', rows: [row('1500', '-2000.00')] },
        financing: { total: '500.00', rows: [row('2300', '500.00')] },
        nonCashInvestingAndFinancing: { total: '0.00', rows: [nonCash('1500', '-1000.00'), nonCash('2300', '1000.00')] },
        netChange: '-1500.00', openingCash: '18400.00', closingCash: '16900.00',
      }),
      jun: statement('2026-06-01', '2026-06-30', {
        netIncome: '-100.00', operating: { total: '0.00', rows: [row('5800', '100.00')] }, investing: { total: '400.00', rows: [row('1500', '400.00')] },
        nonCashInvestingAndFinancing: none, netChange: '400.00', openingCash: '16900.00', closingCash: '17300.00',
      }),
      all: statement('2026-02-01', '2026-06-30', {
        netIncome: '0.00',
        operating: { total: '0.00', rows: [row('2100', '800.00'), row('4200', '-100.00'), row('5800', '100.00')] },
        investing: { total: '-3200.00', rows: [row('1500', '-3200.00')] },
        financing: { total: '500.00', rows: [row('2300', '500.00')] },
        nonCashInvestingAndFinancing: { total: '-800.00', rows: [nonCash('1500', '-9800.00'), nonCash('2300', '9000.00')] },
        netChange: '-2700.00', openingCash: '20000.00', closingCash: '17300.00',
      }),
    });
    // each account's change over the range (from the lines, credit − debit) is its section row plus its disclosed part (1500:
    // −3,200 − 9,800; 2300: 500 + 9,000), and the cash accounts' is the net change
    const { rows: changes } = await t.db.admin.query(`SELECT x.code, (sum(l.base_credit) - sum(l.base_debit))::numeric(20, 2)::text AS change
      FROM finance.journal_lines l JOIN finance.accounts x ON x.org_id = l.org_id AND x.id = l.account_id
      WHERE l.org_id = $1 AND l.entry_date BETWEEN '2026-02-01' AND '2026-06-30' AND x.code IN ('1100', '1120', '1500', '2300') GROUP BY x.code ORDER BY x.code`, [orgId]);
    expect(changes).toEqual([{ code: '1100', change: '3200.00' }, { code: '1120', change: '-500.00' }, { code: '1500', change: '-13000.00' }, { code: '2300', change: '9500.00' }]);

    // semantic.v_cash_flow splits these entries as the report does: its sums per month are the report's sections (it
    // counted them in full: Feb investing -10,000 and financing +8,000)
    const months = { feb, mar, apr, may, jun } as Record<string, any>;
    const view: Record<string, object> = {};
    for (const [month, first] of [['feb', '2026-02-01'], ['mar', '2026-03-01'], ['apr', '2026-04-01'], ['may', '2026-05-01'], ['jun', '2026-06-01']]) {
      view[month] = await viewSums(orgId, users.viewer.auth, first, first);
    }
    view.all = await viewSums(orgId, users.viewer.auth, '2026-02-01', '2026-06-01');
    expect(view).toEqual({ ...Object.fromEntries(Object.entries(months).map(([m, r]) => [m, reportSums(r)])), all: reportSums(all) });
    expect(view.feb).toEqual({ investing: '-2000.00' });
  });

  /**
   * Entries whose cash pays (or comes from) several kinds of lines at once (review r8): cash received and cash paid are
   * apart, each pays its side's investing and financing lines first at face value, a disposal's at its proceeds (book
   * value with the entry's gain or loss); the rest is operating. Base EUR, the standard chart, one entry a month:
   *  Jan  2 capital                         Dr 1100 20,000.00   Cr 3100 20,000.00
   *  Feb  2 disposal at a gain + loan       Dr 1100 1,700.00    Cr 1500 1,000.00, Cr 2300 500.00, Cr 4100 200.00
   *  Mar  2 disposal at a loss + loan       Dr 1100 100.00, Dr 5200 40.00   Cr 1500 70.00, Cr 2300 70.00
   *  Apr  2 loan drawn with a cash sale     Dr 1100 1,500.00    Cr 2300 1,000.00, Cr 4100 500.00
   *  May  4 loan in, equipment out          Dr 1100 1,000.00, Dr 1500 400.00   Cr 2300 1,000.00, Cr 1100 400.00
   * Feb: investing +1,200 (proceeds, the gain included; was 1,133.33), financing +500 (was 566.67); the gain's 200 out of operating.
   * Mar: investing +30 (70 − the 40 loss), financing +70; the loss added back in operating.
   * Apr: financing +1,000 (was 1,500), operating +500: the sale is no gain of a loan.
   * May: investing −400, financing +1,000 (was +600 and 400 disclosed on both): the cash lines are not netted.
   * Feb–May: net income 660; operating 660 − 200 + 40 = 500; investing 830; financing 2,570; net change 3,900.
   */
  it('cash received and cash paid in one entry each pay their own side: disposal proceeds with the gain, loans at face value, the rest operating (EUR)', async () => {
    const { orgId, users } = await orgWithRoles(t, 'Mixed Cash Ltd');
    const owner = users.owner;
    const url = (path: string) => ledgerUrl(orgId, path);
    const a = await startBooks(t, orgId, owner);
    const post = async (date: string, lines: [string, 'debit' | 'credit', string][]) => (await t.http.post(url('journal-entries')).set(owner.auth)
      .send({ date, lines: lines.map(([code, side, amount]) => ({ accountId: a[code], [side]: amount })) }).expect(201)).body.id as string;
    await post('2026-01-02', [['1100', 'debit', '20000.00'], ['3100', 'credit', '20000.00']]);
    await post('2026-02-02', [['1100', 'debit', '1700.00'], ['1500', 'credit', '1000.00'], ['2300', 'credit', '500.00'], ['4100', 'credit', '200.00']]);
    await post('2026-03-02', [['1100', 'debit', '100.00'], ['5200', 'debit', '40.00'], ['1500', 'credit', '70.00'], ['2300', 'credit', '70.00']]);
    await post('2026-04-02', [['1100', 'debit', '1500.00'], ['2300', 'credit', '1000.00'], ['4100', 'credit', '500.00']]);
    const both = await post('2026-05-04', [['1100', 'debit', '1000.00'], ['2300', 'credit', '1000.00'], ['1500', 'debit', '400.00'], ['1100', 'credit', '400.00']]);
    // the May entry as stored: two lines on the cash account, one each way
    const { rows: cashLines } = await t.db.admin.query(`SELECT l.base_debit::numeric(20, 2)::text AS debit, l.base_credit::numeric(20, 2)::text AS credit
      FROM finance.journal_lines l WHERE l.org_id = $1 AND l.entry_id = $2 AND l.account_id = $3 ORDER BY l.line_no`, [orgId, both, a['1100']]);
    expect(cashLines).toEqual([{ debit: '1000.00', credit: '0.00' }, { debit: '0.00', credit: '400.00' }]);

    const names: Record<string, string> = { '1500': 'Equipment', '2300': 'Loans', '4100': 'Sales', '5200': 'Rent' };
    const row = (code: string, amount: string) => ({ accountId: a[code], code, name: names[code], amount });
    const section = (total: string, ...rows: [string, string][]) => ({ total, rows: rows.map(([code, amount]) => row(code, amount)) });
    const report = async (from: string, to: string) => (await t.http.get(url(`reports/cash-flow?from=${from}&to=${to}`)).set(users.viewer.auth).expect(200)).body;
    const statement = (from: string, to: string, body: object) => ({
      from, to, baseCurrency: 'EUR', unrealizedExchangeDifferences: '0.00', effectOfExchangeRatesOnCash: '0.00', balanced: true,
      nonCashInvestingAndFinancing: none, ...body,
    });
    const [feb, mar, apr, may, all] = await Promise.all([['2026-02-01', '2026-02-28'], ['2026-03-01', '2026-03-31'], ['2026-04-01', '2026-04-30'],
      ['2026-05-01', '2026-05-31'], ['2026-02-01', '2026-05-31']].map(([from, to]) => report(from, to)));
    expect({ feb, mar, apr, may, all }).toEqual({
      feb: statement('2026-02-01', '2026-02-28', {
        netIncome: '200.00', operating: section('0.00', ['4100', '-200.00']), investing: section('1200.00', ['1500', '1200.00']),
        financing: section('500.00', ['2300', '500.00']), netChange: '1700.00', openingCash: '20000.00', closingCash: '21700.00',
      }),
      mar: statement('2026-03-01', '2026-03-31', {
        netIncome: '-40.00', operating: section('0.00', ['5200', '40.00']), investing: section('30.00', ['1500', '30.00']),
        financing: section('70.00', ['2300', '70.00']), netChange: '100.00', openingCash: '21700.00', closingCash: '21800.00',
      }),
      apr: statement('2026-04-01', '2026-04-30', {
        netIncome: '500.00', operating: section('500.00'), investing: section('0.00'),
        financing: section('1000.00', ['2300', '1000.00']), netChange: '1500.00', openingCash: '21800.00', closingCash: '23300.00',
      }),
      may: statement('2026-05-01', '2026-05-31', {
        netIncome: '0.00', operating: section('0.00'), investing: section('-400.00', ['1500', '-400.00']),
        financing: section('1000.00', ['2300', '1000.00']), netChange: '600.00', openingCash: '23300.00', closingCash: '23900.00',
      }),
      all: statement('2026-02-01', '2026-05-31', {
        netIncome: '660.00', operating: section('500.00', ['4100', '-200.00'], ['5200', '40.00']), investing: section('830.00', ['1500', '830.00']),
        financing: section('2570.00', ['2300', '2570.00']), netChange: '3900.00', openingCash: '20000.00', closingCash: '23900.00',
      }),
    });
    // the change of each account over the range, from the lines (credit − debit): 1500 and 2300 are their rows less the
    // gain and loss realized with the disposals (1,200 − 200 + 30 + 40 − 400 = 670), the cash account's the net change negated
    const { rows: changes } = await t.db.admin.query(`SELECT x.code, (sum(l.base_credit) - sum(l.base_debit))::numeric(20, 2)::text AS change
      FROM finance.journal_lines l JOIN finance.accounts x ON x.org_id = l.org_id AND x.id = l.account_id
      WHERE l.org_id = $1 AND l.entry_date BETWEEN '2026-02-01' AND '2026-05-31' AND x.code IN ('1100', '1500', '2300') GROUP BY x.code ORDER BY x.code`, [orgId]);
    expect(changes).toEqual([{ code: '1100', change: '-3900.00' }, { code: '1500', change: '670.00' }, { code: '2300', change: '2570.00' }]);

    // semantic.v_cash_flow gives the same sections per month and over the range (it counted each line in full)
    const view = {
      feb: await viewSums(orgId, users.viewer.auth, '2026-02-01', '2026-02-01'), mar: await viewSums(orgId, users.viewer.auth, '2026-03-01', '2026-03-01'),
      apr: await viewSums(orgId, users.viewer.auth, '2026-04-01', '2026-04-01'), may: await viewSums(orgId, users.viewer.auth, '2026-05-01', '2026-05-01'),
      all: await viewSums(orgId, users.viewer.auth, '2026-02-01', '2026-05-01'),
    };
    expect(view).toEqual({ feb: reportSums(feb), mar: reportSums(mar), apr: reportSums(apr), may: reportSums(may), all: reportSums(all) });
    expect(view.may).toEqual({ financing: '1000.00', investing: '-400.00' });
  });

  /**
   * The same in JPY (no minor units), base JPY:
   *  Jun  2 disposal at a gain + loan       Dr 1100 1,700   Cr 1500 1,000, Cr 2300 500, Cr 4100 200
   *  Jul  2 the same, partly on credit      Dr 1100 1,000, Dr 1200 501   Cr 1500 701, Cr 2300 600, Cr 4200 200
   * Jun: investing +1,200, financing +500 (were 1,133 and 567).
   * Jul: the cash (1,000) is less than what the entry's investing and financing credit lines ask (proceeds 701 + 200 and the
   *   loan's 600): pro rata, 1,000 × 901 / 1,501 = 600.27 → 600 and 1,000 × 600 / 1,501 = 399.73 → 400 (either order);
   *   of the gain as much as of the proceeds is realized in cash, 200 × 1,000 / 1,501 = 133.24 → 133, taken out of operating;
   *   the rest is disclosed: 1500 701 − 600 + 133 = 234 (the proceeds not in cash), 2300 600 − 400 = 200. Operating: net
   *   income 200 − 501 (the receivable) − 133 + 434 (disclosed) = 0.
   */
  it('the same in JPY, and cash short of the investing and financing lines it came from: pro rata to the yen, the gain realized as much as the proceeds', async () => {
    const { orgId, users } = await orgWithRoles(t, 'Mixed Cash KK');
    const owner = users.owner;
    const url = (path: string) => ledgerUrl(orgId, path);
    const a = await startBooks(t, orgId, owner, 'JPY');
    const post = async (date: string, lines: [string, 'debit' | 'credit', string][]) => (await t.http.post(url('journal-entries')).set(owner.auth)
      .send({ date, lines: lines.map(([code, side, amount]) => ({ accountId: a[code], [side]: amount })) }).expect(201)).body.id as string;
    await post('2026-01-02', [['1100', 'debit', '100000'], ['3100', 'credit', '100000']]);
    await post('2026-06-02', [['1100', 'debit', '1700'], ['1500', 'credit', '1000'], ['2300', 'credit', '500'], ['4100', 'credit', '200']]);
    await post('2026-07-02', [['1100', 'debit', '1000'], ['1200', 'debit', '501'], ['1500', 'credit', '701'], ['2300', 'credit', '600'], ['4200', 'credit', '200']]);

    const names: Record<string, string> = { '1200': 'Accounts receivable', '1500': 'Equipment', '2300': 'Loans', '4100': 'Sales', '4200': 'Other income' };
    const row = (code: string, amount: string) => ({ accountId: a[code], code, name: names[code], amount });
    const section = (total: string, ...rows: [string, string][]) => ({ total, rows: rows.map(([code, amount]) => row(code, amount)) });
    const report = async (from: string, to: string) => (await t.http.get(url(`reports/cash-flow?from=${from}&to=${to}`)).set(users.viewer.auth).expect(200)).body;
    const statement = (from: string, to: string, body: object) => ({
      from, to, baseCurrency: 'JPY', unrealizedExchangeDifferences: '0', effectOfExchangeRatesOnCash: '0', balanced: true, ...body,
    });
    const [jun, jul, both] = await Promise.all([['2026-06-01', '2026-06-30'], ['2026-07-01', '2026-07-31'], ['2026-06-01', '2026-07-31']]
      .map(([from, to]) => report(from, to)));
    const disclosed = { total: '434', rows: [{ ...row('1500', '234'), section: 'investing' }, { ...row('2300', '200'), section: 'financing' }] };
    expect({ jun, jul, both }).toEqual({
      jun: statement('2026-06-01', '2026-06-30', {
        netIncome: '200', operating: section('0', ['4100', '-200']), investing: section('1200', ['1500', '1200']), financing: section('500', ['2300', '500']),
        nonCashInvestingAndFinancing: { total: '0', rows: [] }, netChange: '1700', openingCash: '100000', closingCash: '101700',
      }),
      jul: statement('2026-07-01', '2026-07-31', {
        netIncome: '200', operating: section('0', ['1200', '-501'], ['4200', '-133']), investing: section('600', ['1500', '600']), financing: section('400', ['2300', '400']),
        nonCashInvestingAndFinancing: disclosed, netChange: '1000', openingCash: '101700', closingCash: '102700',
      }),
      both: statement('2026-06-01', '2026-07-31', {
        netIncome: '400', operating: section('0', ['1200', '-501'], ['4100', '-200'], ['4200', '-133']), investing: section('1800', ['1500', '1800']),
        financing: section('900', ['2300', '900']), nonCashInvestingAndFinancing: disclosed, netChange: '2700', openingCash: '100000', closingCash: '102700',
      }),
    });
    // the cash account's change over the two months, from the lines, is the net change
    const { rows: [cash] } = await t.db.admin.query(`SELECT (sum(l.base_debit) - sum(l.base_credit))::numeric(20, 0)::text AS change
      FROM finance.journal_lines l WHERE l.org_id = $1 AND l.account_id = $2 AND l.entry_date BETWEEN '2026-06-01' AND '2026-07-31'`, [orgId, a['1100']]);
    expect(cash).toEqual({ change: '2700' });

    // semantic.v_cash_flow: the same pro rata to the yen (Jul: investing 600, financing 400, operating 0)
    const view = {
      jun: await viewSums(orgId, users.viewer.auth, '2026-06-01', '2026-06-01', 0), jul: await viewSums(orgId, users.viewer.auth, '2026-07-01', '2026-07-01', 0),
      both: await viewSums(orgId, users.viewer.auth, '2026-06-01', '2026-07-01', 0),
    };
    expect(view).toEqual({ jun: reportSums(jun), jul: reportSums(jul), both: reportSums(both) });
    expect(view.jul).toEqual({ financing: '400', investing: '600' });
  });

  /**
   * A foreign-currency loan repaid with its realized exchange result (review r12), base amounts, EUR:
   *  Jan  2 capital                          Dr 1100 20,000.00   Cr 3100 20,000.00
   *  Jan  5 loan drawn                       Dr 1100 1,000.00    Cr 2300 1,000.00
   *  Feb  3 half repaid, exchange gain       Dr 2300 500.00      Cr 1100 480.00, Cr 4300 20.00
   *  Mar  3 half repaid, exchange loss       Dr 2300 500.00, Dr 5500 30.00   Cr 1100 530.00
   * IAS 7.25: the repayment is the cash paid at the day's rate, in financing; the realized gain or loss in net income is
   * no operating cash (taken out on its account's row), a gain and a loss alike. Was: Feb financing −480 with the gain
   * disclosed as non-cash on the loan (−20), Mar financing −500 and the loss's −30 left in operating.
   */
  it('a loan repaid with a realized exchange gain or loss: financing is the cash paid, the gain or loss taken out of operating alike; the view agrees', async () => {
    const { orgId, users } = await orgWithRoles(t, 'FX Loan Ltd');
    const owner = users.owner;
    const url = (path: string) => ledgerUrl(orgId, path);
    const a = await startBooks(t, orgId, owner);
    const post = (date: string, lines: [string, 'debit' | 'credit', string][]) => t.http.post(url('journal-entries')).set(owner.auth)
      .send({ date, lines: lines.map(([code, side, amount]) => ({ accountId: a[code], [side]: amount })) }).expect(201);
    await post('2026-01-02', [['1100', 'debit', '20000.00'], ['3100', 'credit', '20000.00']]);
    await post('2026-01-05', [['1100', 'debit', '1000.00'], ['2300', 'credit', '1000.00']]);
    await post('2026-02-03', [['2300', 'debit', '500.00'], ['1100', 'credit', '480.00'], ['4300', 'credit', '20.00']]);
    await post('2026-03-03', [['2300', 'debit', '500.00'], ['5500', 'debit', '30.00'], ['1100', 'credit', '530.00']]);
    // 4300 and 5500 are the settings' realized exchange result accounts
    const settings = (await t.http.get(url('settings')).set(owner.auth).expect(200)).body;
    expect([settings.fxGainAccountId, settings.fxLossAccountId]).toEqual([a['4300'], a['5500']]);

    const names: Record<string, string> = { '2300': 'Loans', '4300': 'Foreign exchange gains', '5500': 'Foreign exchange losses' };
    const section = (total: string, ...rows: [string, string][]) => ({ total, rows: rows.map(([code, amount]) => ({ accountId: a[code], code, name: names[code], amount })) });
    const report = async (from: string, to: string) => (await t.http.get(url(`reports/cash-flow?from=${from}&to=${to}`)).set(users.viewer.auth).expect(200)).body;
    const statement = (from: string, to: string, body: object) => ({
      from, to, baseCurrency: 'EUR', unrealizedExchangeDifferences: '0.00', effectOfExchangeRatesOnCash: '0.00', balanced: true,
      investing: section('0.00'), nonCashInvestingAndFinancing: none, ...body,
    });
    const [feb, mar, both] = await Promise.all([['2026-02-01', '2026-02-28'], ['2026-03-01', '2026-03-31'], ['2026-02-01', '2026-03-31']].map(([from, to]) => report(from, to)));
    expect({ feb, mar, both }).toEqual({
      feb: statement('2026-02-01', '2026-02-28', {
        netIncome: '20.00', operating: section('0.00', ['4300', '-20.00']), financing: section('-480.00', ['2300', '-480.00']),
        netChange: '-480.00', openingCash: '21000.00', closingCash: '20520.00',
      }),
      mar: statement('2026-03-01', '2026-03-31', {
        netIncome: '-30.00', operating: section('0.00', ['5500', '30.00']), financing: section('-530.00', ['2300', '-530.00']),
        netChange: '-530.00', openingCash: '20520.00', closingCash: '19990.00',
      }),
      both: statement('2026-02-01', '2026-03-31', {
        netIncome: '-10.00', operating: section('0.00', ['4300', '-20.00'], ['5500', '30.00']), financing: section('-1010.00', ['2300', '-1010.00']),
        netChange: '-1010.00', openingCash: '21000.00', closingCash: '19990.00',
      }),
    });
    // the view: the same financing per month (it had the loan at face value, the gain or loss in operating)
    const view = {
      feb: await viewSums(orgId, users.viewer.auth, '2026-02-01', '2026-02-01'), mar: await viewSums(orgId, users.viewer.auth, '2026-03-01', '2026-03-01'),
      both: await viewSums(orgId, users.viewer.auth, '2026-02-01', '2026-03-01'),
    };
    expect(view).toEqual({ feb: { financing: '-480.00' }, mar: { financing: '-530.00' }, both: { financing: '-1010.00' } });
    expect(view).toEqual({ feb: reportSums(feb), mar: reportSums(mar), both: reportSums(both) });
  });

  /**
   * The realized exchange result is the investing and financing lines' only when they are all the entry settles on that
   * side (review r1), base amounts, EUR:
   *  Jan  2 capital                          Dr 1100 20,000.00   Cr 3100 20,000.00
   *  Jan 10 a foreign-currency bill          Dr 5200 110.00      Cr 2100 110.00
   *  Feb  3 bill paid, equipment bought      Dr 2100 110.00, Dr 1500 1,000.00   Cr 1100 1,100.00, Cr 4300 10.00
   *  Mar 31 loan repaid, exchange gain       Dr 2300 500.00      Cr 1100 480.00, Cr 4300 20.00
   *  Apr  1 its reversal                     Dr 1100 480.00, Dr 4300 20.00      Cr 2300 500.00
   *  May  4 a repayment reversed with a sale Dr 1100 600.00, Dr 4300 20.00      Cr 2300 500.00, Cr 4100 120.00
   * Feb: the gain is the bill's settlement: investing −1,000, operating −100 (were −990 and −110, the gain taken out of
   *   operating as the equipment's).
   * Apr: the loss is the loan's, as the gain was in Mar: financing +480, the loss added back (row 4300 +20), nothing
   *   disclosed; over Mar–Apr nothing at all (were row 4300 −20 and 20 disclosed on the loan).
   * May: financing +480, operating +120 (were +500 and +100).
   */
  it('an exchange result goes with investing and financing lines only when they are all the entry settles on that side; a repayment reversed leaves nothing', async () => {
    const { orgId, users } = await orgWithRoles(t, 'FX Settled Ltd');
    const owner = users.owner;
    const url = (path: string) => ledgerUrl(orgId, path);
    const a = await startBooks(t, orgId, owner);
    const post = async (date: string, lines: [string, 'debit' | 'credit', string][]) => (await t.http.post(url('journal-entries')).set(owner.auth)
      .send({ date, lines: lines.map(([code, side, amount]) => ({ accountId: a[code], [side]: amount })) }).expect(201)).body.id as string;
    await post('2026-01-02', [['1100', 'debit', '20000.00'], ['3100', 'credit', '20000.00']]);
    await post('2026-01-10', [['5200', 'debit', '110.00'], ['2100', 'credit', '110.00']]);
    await post('2026-02-03', [['2100', 'debit', '110.00'], ['1500', 'debit', '1000.00'], ['1100', 'credit', '1100.00'], ['4300', 'credit', '10.00']]);
    const repaid = await post('2026-03-31', [['2300', 'debit', '500.00'], ['1100', 'credit', '480.00'], ['4300', 'credit', '20.00']]);
    await t.http.post(url(`journal-entries/${repaid}/reverse`)).set(owner.auth).send({ date: '2026-04-01' }).expect(201);
    await post('2026-05-04', [['1100', 'debit', '600.00'], ['4300', 'debit', '20.00'], ['2300', 'credit', '500.00'], ['4100', 'credit', '120.00']]);

    const names: Record<string, string> = { '1500': 'Equipment', '2100': 'Accounts payable', '2300': 'Loans', '4300': 'Foreign exchange gains' };
    const section = (total: string, ...rows: [string, string][]) => ({ total, rows: rows.map(([code, amount]) => ({ accountId: a[code], code, name: names[code], amount })) });
    const report = async (from: string, to: string) => (await t.http.get(url(`reports/cash-flow?from=${from}&to=${to}`)).set(users.viewer.auth).expect(200)).body;
    const statement = (from: string, to: string, body: object) => ({
      from, to, baseCurrency: 'EUR', unrealizedExchangeDifferences: '0.00', effectOfExchangeRatesOnCash: '0.00', balanced: true,
      investing: section('0.00'), financing: section('0.00'), nonCashInvestingAndFinancing: none, ...body,
    });
    const ranges = { feb: ['2026-02-01', '2026-02-28'], apr: ['2026-04-01', '2026-04-30'], marApr: ['2026-03-01', '2026-04-30'], may: ['2026-05-01', '2026-05-31'] };
    const [feb, apr, marApr, may] = await Promise.all(Object.values(ranges).map(([from, to]) => report(from, to)));
    expect({ feb, apr, marApr, may }).toEqual({
      feb: statement('2026-02-01', '2026-02-28', {
        netIncome: '10.00', operating: section('-100.00', ['2100', '-110.00']), investing: section('-1000.00', ['1500', '-1000.00']),
        netChange: '-1100.00', openingCash: '20000.00', closingCash: '18900.00',
      }),
      apr: statement('2026-04-01', '2026-04-30', {
        netIncome: '-20.00', operating: section('0.00', ['4300', '20.00']), financing: section('480.00', ['2300', '480.00']),
        netChange: '480.00', openingCash: '18420.00', closingCash: '18900.00',
      }),
      marApr: statement('2026-03-01', '2026-04-30', {
        netIncome: '0.00', operating: section('0.00'), netChange: '0.00', openingCash: '18900.00', closingCash: '18900.00',
      }),
      may: statement('2026-05-01', '2026-05-31', {
        netIncome: '100.00', operating: section('120.00', ['4300', '20.00']), financing: section('480.00', ['2300', '480.00']),
        netChange: '600.00', openingCash: '18900.00', closingCash: '19500.00',
      }),
    });
    // the view: the same per month (it had Feb investing −990 and operating −110, May financing +500 and operating +100)
    const view = Object.fromEntries(await Promise.all(Object.entries(ranges).map(async ([k, [from, to]]) => [k, await viewSums(orgId, users.viewer.auth, from, to.slice(0, 8) + '01')])));
    expect(view).toEqual({ feb: { investing: '-1000.00', operating: '-100.00' }, apr: { financing: '480.00' }, marApr: {}, may: { financing: '480.00', operating: '120.00' } });
    expect(view).toEqual({ feb: reportSums(feb), apr: reportSums(apr), marApr: reportSums(marApr), may: reportSums(may) });
  });

  it('a closing entry (retained earnings, financing by default) and a share issue for a contribution in kind', async () => {
    const { orgId, users } = await orgWithRoles(t, 'In Kind Ltd');
    const owner = users.owner;
    const url = (path: string) => ledgerUrl(orgId, path);
    const a = await startBooks(t, orgId, owner);
    const post = (body: object) => t.http.post(url('journal-entries')).set(owner.auth).send(body).expect(201);
    await t.http.post(url('fiscal-years')).set(owner.auth).send({ startDate: '2027-01-01' }).expect(201);
    // equipment contributed for shares: investing and financing, no cash
    await post(entry('2026-06-01', a['1500'], a['3100'], '4000.00'));
    await post(entry('2026-07-01', a['1100'], a['4100'], '900.00'));
    const fy2026 = (await t.http.get(url('fiscal-years')).set(owner.auth).expect(200)).body.find((y: any) => y.startDate === '2026-01-01');
    await t.http.post(url(`fiscal-years/${fy2026.id}/close`)).set(owner.auth).expect(200);
    const { rows: closing } = await t.db.admin.query(`SELECT x.code, l.base_credit::numeric(20, 2)::text AS credit FROM finance.journal_lines l
      JOIN finance.journal_entries e ON e.org_id = l.org_id AND e.id = l.entry_id JOIN finance.accounts x ON x.org_id = l.org_id AND x.id = l.account_id
      WHERE l.org_id = $1 AND e.source = 'year_end' AND x.code = '3200'`, [orgId]);
    expect(closing).toEqual([{ code: '3200', credit: '900.00' }]);

    const res = await t.http.get(url('reports/cash-flow?from=2026-06-01&to=2027-01-31')).set(users.viewer.auth).expect(200);
    expect(res.body).toEqual({
      from: '2026-06-01', to: '2027-01-31', baseCurrency: 'EUR', netIncome: '900.00', unrealizedExchangeDifferences: '0.00',
      operating: { total: '900.00', rows: [] },
      investing: { total: '0.00', rows: [] },
      financing: { total: '0.00', rows: [] },
      // the closing entry is left out (not disclosed as a financing transaction); the contribution nets to 0
      nonCashInvestingAndFinancing: {
        total: '0.00',
        rows: [
          { accountId: a['1500'], code: '1500', name: 'Equipment', section: 'investing', amount: '-4000.00' },
          { accountId: a['3100'], code: '3100', name: 'Share capital', section: 'financing', amount: '4000.00' },
        ],
      },
      effectOfExchangeRatesOnCash: '0.00', netChange: '900.00', openingCash: '0.00', closingCash: '900.00', balanced: true,
    });
  });
});
