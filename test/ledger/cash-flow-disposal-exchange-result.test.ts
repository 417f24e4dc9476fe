import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { orgWithRoles } from '../support/factories.js';
import { semanticUrl } from '../agents/agents-support.js';
import { ledgerUrl, startBooks } from './ledger-support.js';

/**
 * A disposal in an entry that also settles an operating line (a foreign-currency bill paid, a receivable collected): the
 * entry's realized exchange result is that settlement's (IAS 7: operating, in net income and the reconciliation), not the
 * disposal's gain; it counted in the proceeds claimed of the cash, which took cash from the loan drawn in the same entry
 * (Feb: investing 1,003.31 and financing 496.69) and took the gain out of operating as realized in investing.
 */
describe('cash-flow statement: the exchange result of an operating settlement is no part of a disposal (IAS 7)', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(() => t.close());

  /**
   * Base EUR, the standard chart (4300 the settings' exchange gain account):
   *  Jan  2 capital                             Dr 1100 20,000.00   Cr 3100 20,000.00
   *  Jan 10 a foreign-currency bill             Dr 5200 110.00      Cr 2100 110.00
   *  Jan 15 a foreign-currency invoice          Dr 1200 100.00      Cr 4100 100.00
   *  Feb  3 disposal, loan drawn, bill paid     Dr 1100 1,500.00, Dr 2100 110.00   Cr 1100 100.00, Cr 1500 1,000.00, Cr 2300 500.00, Cr 4300 10.00
   *  Mar  3 disposal, invoice collected         Dr 1100 1,110.00    Cr 1500 1,000.00, Cr 1200 100.00, Cr 4300 10.00
   *  Apr  2 disposal with its exchange gain     Dr 1100 1,020.00    Cr 1500 1,000.00, Cr 4300 20.00
   * Feb: investing +1,000 (the book value, no gain), financing +500 (the loan), operating −100 (net income 10, the payable
   *   −110); were investing 1,003.31, financing 496.69, the gain's 9.93 taken out of operating and 6.62 disclosed.
   * Mar: investing +1,000, operating +110 (net income 10, the receivable +100); were investing 1,010, the gain's 10 out.
   * Apr: nothing else settled, the gain is the disposal's: investing +1,020, the 20 taken out of operating (unchanged).
   * Feb–Apr: net income 40; operating 40 + 100 − 110 − 20 = 10; investing 3,020; financing 500; net change 3,530.
   */
  it('Feb-Apr worked example: investing is the disposal proceeds without the settlement exchange gain; the view agrees', async () => {
    const { orgId, users } = await orgWithRoles(t, 'Disposal FX Ltd');
    const owner = users.owner;
    const url = (path: string) => ledgerUrl(orgId, path);
    const a = await startBooks(t, orgId, owner);
    const post = async (date: string, lines: [string, 'debit' | 'credit', string][]) => (await t.http.post(url('journal-entries')).set(owner.auth)
      .send({ date, lines: lines.map(([code, side, amount]) => ({ accountId: a[code], [side]: amount })) }).expect(201)).body.id as string;
    await post('2026-01-02', [['1100', 'debit', '20000.00'], ['3100', 'credit', '20000.00']]);
    await post('2026-01-10', [['5200', 'debit', '110.00'], ['2100', 'credit', '110.00']]);
    await post('2026-01-15', [['1200', 'debit', '100.00'], ['4100', 'credit', '100.00']]);
    const feb = await post('2026-02-03', [['1100', 'debit', '1500.00'], ['2100', 'debit', '110.00'], ['1100', 'credit', '100.00'], ['1500', 'credit', '1000.00'],
      ['2300', 'credit', '500.00'], ['4300', 'credit', '10.00']]);
    await post('2026-03-03', [['1100', 'debit', '1110.00'], ['1500', 'credit', '1000.00'], ['1200', 'credit', '100.00'], ['4300', 'credit', '10.00']]);
    await post('2026-04-02', [['1100', 'debit', '1020.00'], ['1500', 'credit', '1000.00'], ['4300', 'credit', '20.00']]);
    // 4300 is the settings' realized exchange gain account
    const settings = (await t.http.get(url('settings')).set(owner.auth).expect(200)).body;
    expect(settings.fxGainAccountId).toBe(a['4300']);
    // the Feb entry as stored: the cash received and the cash paid are two lines, with the operating debit line beside them
    const { rows: febLines } = await t.db.admin.query(`SELECT x.code, l.base_debit::numeric(20, 2)::text AS debit, l.base_credit::numeric(20, 2)::text AS credit
      FROM finance.journal_lines l JOIN finance.accounts x ON x.org_id = l.org_id AND x.id = l.account_id
      WHERE l.org_id = $1 AND l.entry_id = $2 ORDER BY l.line_no`, [orgId, feb]);
    expect(febLines).toEqual([
      { code: '1100', debit: '1500.00', credit: '0.00' }, { code: '2100', debit: '110.00', credit: '0.00' }, { code: '1100', debit: '0.00', credit: '100.00' },
      { code: '1500', debit: '0.00', credit: '1000.00' }, { code: '2300', debit: '0.00', credit: '500.00' }, { code: '4300', debit: '0.00', credit: '10.00' },
    ]);

    const names: Record<string, string> = { '1200': 'Accounts receivable', '1500': 'Equipment', '2100': 'Accounts payable', '2300': 'Loans', '4300': 'Foreign exchange gains' };
    const section = (total: string, ...rows: [string, string][]) => ({ total, rows: rows.map(([code, amount]) => ({ accountId: a[code], code, name: names[code], amount })) });
    const report = async (from: string, to: string) => (await t.http.get(url(`reports/cash-flow?from=${from}&to=${to}`)).set(users.viewer.auth).expect(200)).body;
    const statement = (from: string, to: string, body: object) => ({
      from, to, baseCurrency: 'EUR', unrealizedExchangeDifferences: '0.00', effectOfExchangeRatesOnCash: '0.00', balanced: true,
      financing: section('0.00'), nonCashInvestingAndFinancing: { rows: [], total: '0.00' }, ...body,
    });
    const ranges = { feb: ['2026-02-01', '2026-02-28'], mar: ['2026-03-01', '2026-03-31'], apr: ['2026-04-01', '2026-04-30'], all: ['2026-02-01', '2026-04-30'] };
    const [febR, marR, aprR, allR] = await Promise.all(Object.values(ranges).map(([from, to]) => report(from, to)));
    expect({ feb: febR, mar: marR, apr: aprR, all: allR }).toEqual({
      feb: statement('2026-02-01', '2026-02-28', {
        netIncome: '10.00', operating: section('-100.00', ['2100', '-110.00']), investing: section('1000.00', ['1500', '1000.00']),
        financing: section('500.00', ['2300', '500.00']), netChange: '1400.00', openingCash: '20000.00', closingCash: '21400.00',
      }),
      mar: statement('2026-03-01', '2026-03-31', {
        netIncome: '10.00', operating: section('110.00', ['1200', '100.00']), investing: section('1000.00', ['1500', '1000.00']),
        netChange: '1110.00', openingCash: '21400.00', closingCash: '22510.00',
      }),
      apr: statement('2026-04-01', '2026-04-30', {
        netIncome: '20.00', operating: section('0.00', ['4300', '-20.00']), investing: section('1020.00', ['1500', '1020.00']),
        netChange: '1020.00', openingCash: '22510.00', closingCash: '23530.00',
      }),
      all: statement('2026-02-01', '2026-04-30', {
        netIncome: '40.00', operating: section('10.00', ['1200', '100.00'], ['2100', '-110.00'], ['4300', '-20.00']),
        investing: section('3020.00', ['1500', '3020.00']), financing: section('500.00', ['2300', '500.00']),
        netChange: '3530.00', openingCash: '20000.00', closingCash: '23530.00',
      }),
    });
    // each account's change over the range, from the lines: the cash accounts' is the net change, 1500 and 2300 their rows
    // less the gain realized with the Apr disposal only (3,020 − 20), 4300 the net income's exchange gains
    const { rows: changes } = await t.db.admin.query(`SELECT x.code, (sum(l.base_credit) - sum(l.base_debit))::numeric(20, 2)::text AS change
      FROM finance.journal_lines l JOIN finance.accounts x ON x.org_id = l.org_id AND x.id = l.account_id
      WHERE l.org_id = $1 AND l.entry_date BETWEEN '2026-02-01' AND '2026-04-30' AND x.code IN ('1100', '1200', '1500', '2100', '2300', '4300')
      GROUP BY x.code ORDER BY x.code`, [orgId]);
    expect(changes).toEqual([{ code: '1100', change: '-3530.00' }, { code: '1200', change: '100.00' }, { code: '1500', change: '3000.00' },
      { code: '2100', change: '-110.00' }, { code: '2300', change: '500.00' }, { code: '4300', change: '40.00' }]);

    // semantic.v_cash_flow, per month and over the range: the same sections
    const viewSums = async (from: string, to: string) => {
      const res = await t.http.post(semanticUrl(orgId)).set(users.viewer.auth).send({ sql: `SELECT activity, sum(net_cash)::numeric(20, 2)::text AS net
        FROM semantic.v_cash_flow WHERE month BETWEEN '${from}' AND '${to}' GROUP BY activity HAVING sum(net_cash) <> 0 ORDER BY activity` }).expect(200);
      return Object.fromEntries(res.body.rows as [string, string][]);
    };
    const view = Object.fromEntries(await Promise.all(Object.entries(ranges).map(async ([k, [from, to]]) => [k, await viewSums(from, to.slice(0, 8) + '01')])));
    expect(view).toEqual({
      feb: { financing: '500.00', investing: '1000.00', operating: '-100.00' }, mar: { investing: '1000.00', operating: '110.00' },
      apr: { investing: '1020.00' }, all: { financing: '500.00', investing: '3020.00', operating: '10.00' },
    });
  });
});
