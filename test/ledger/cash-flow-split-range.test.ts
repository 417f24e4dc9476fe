import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { orgWithRoles } from '../support/factories.js';
import { ledgerRepository } from '../../src/modules/ledger/ledger.repository.js';
import { ledgerUrl, startBooks } from './ledger-support.js';

/**
 * The cash-flow report's split of a range (finance.cash_flow_split_between, 20270210710100) reads that range's lines only:
 * finance.cash_flow_split filtered on entry_date found the entries to split (those with an investing or financing line)
 * over the whole organization, so a one-month report read every such entry of every month. Same answers: the report of
 * a month equals the view's rows of that month.
 */
describe('cash-flow split: a range reads only its lines', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(() => t.close());

  /** every node of an EXPLAIN (FORMAT JSON) plan, init plans and sub plans included */
  const nodes = (plan: any): any[] => [plan, ...((plan.Plans ?? []) as any[]).flatMap(nodes)];

  it('the report of March splits March\'s entries only, with the view\'s answers, and every scan of the lines carries the range', async () => {
    const { orgId, users } = await orgWithRoles(t, 'Split Range Ltd');
    const owner = users.owner;
    const url = (path: string) => ledgerUrl(orgId, path);
    const a = await startBooks(t, orgId, owner);
    const post = async (date: string, lines: object[]) => (await t.http.post(url('journal-entries')).set(owner.auth).send({ date, lines }).expect(201)).body.id as string;
    await post('2026-01-02', [{ accountId: a['1100'], debit: '20000.00' }, { accountId: a['3100'], credit: '20000.00' }]);
    // February: equipment with a loan (no cash); March: equipment paid 2,000 in cash, 3,000 with the loan; April: a repayment
    await post('2026-02-02', [{ accountId: a['1500'], debit: '8000.00' }, { accountId: a['2300'], credit: '8000.00' }]);
    const march = await post('2026-03-03', [{ accountId: a['1500'], debit: '5000.00' }, { accountId: a['1100'], credit: '2000.00' }, { accountId: a['2300'], credit: '3000.00' }]);
    await post('2026-04-10', [{ accountId: a['2300'], debit: '500.00' }, { accountId: a['1100'], credit: '500.00' }]);

    const body = (await t.http.get(url('reports/cash-flow?from=2026-03-01&to=2026-03-31')).set(users.viewer.auth).expect(200)).body;
    expect({ investing: body.investing, financing: body.financing, nonCash: body.nonCashInvestingAndFinancing, netChange: body.netChange }).toEqual({
      investing: { total: '-2000.00', rows: [{ accountId: a['1500'], code: '1500', name: 'Equipment', amount: '-2000.00' }] },
      financing: { total: '0.00', rows: [] },
      nonCash: {
        total: '0.00',
        rows: [
          { accountId: a['1500'], code: '1500', name: 'Equipment', amount: '-3000.00', section: 'investing' },
          { accountId: a['2300'], code: '2300', name: 'Loans', amount: '3000.00', section: 'financing' },
        ],
      },
      netChange: '-2000.00',
    });

    // as stored: four entries with an investing or financing line, one of them in March
    const { rows: stored } = await t.db.admin.query(`SELECT e.entry_date::text AS date, count(*)::int AS lines FROM finance.journal_entries e
      JOIN finance.journal_lines l ON l.org_id = e.org_id AND l.entry_id = e.id WHERE e.org_id = $1 GROUP BY e.entry_date ORDER BY 1`, [orgId]);
    expect(stored).toEqual([{ date: '2026-01-02', lines: 2 }, { date: '2026-02-02', lines: 2 }, { date: '2026-03-03', lines: 3 }, { date: '2026-04-10', lines: 2 }]);

    // the report's query as it runs (captured from the repository), read as the viewer
    let captured: { sql: string; values: unknown[] } | undefined;
    const capture = { $queryRaw: async (strings: TemplateStringsArray, ...values: unknown[]) => {
      captured = { sql: strings.reduce((sql, part, i) => `${sql}$${i}${part}`), values };
      return [];
    } };
    await ledgerRepository.cashFlowSplit(capture as any, orgId, '2026-03-01', '2026-03-31');
    const claims = { sub: users.viewer.id, role: 'authenticated', org_id: orgId };
    const split = await t.db.as(claims, 'authenticated', `${captured!.sql} ORDER BY 1`, captured!.values);
    // the view's rows of March (what semantic.v_cash_flow sums): the same entry, the same answers
    const view = await t.db.as(claims, 'authenticated', `SELECT s.account_id, sum(s.non_cash)::text AS non_cash, sum(s.disclosed)::text AS disclosed,
      sum(s.adjustment)::text AS adjustment, array_agg(DISTINCT s.entry_id::text) AS entries
      FROM finance.cash_flow_split s WHERE s.entry_date BETWEEN '2026-03-01' AND '2026-03-31' GROUP BY s.account_id ORDER BY 1`);
    expect(split).toEqual([
      { account_id: a['1500'], non_cash: '-3000.0000', disclosed: '-3000.0000', income_statement: '0.0000', adjustment: '0.0000' },
      { account_id: a['2300'], non_cash: '3000.0000', disclosed: '3000.0000', income_statement: '0.0000', adjustment: '0.0000' },
    ].sort((x, y) => (x.account_id < y.account_id ? -1 : 1)));
    // income_statement (the part of entries against revenue and expense only: depreciation) is the report's, not the view's
    expect(view).toEqual(split.map(({ income_statement: _incomeStatement, ...r }) => ({ ...r, entries: [march] })));

    // every scan of the lines (the entries to split among them) carries the range on entry_date: none reads February's or April's
    const [{ 'QUERY PLAN': [plan] }] = await t.db.as(claims, 'authenticated', `EXPLAIN (FORMAT JSON) ${captured!.sql}`, captured!.values);
    const scans = nodes(plan.Plan).filter((n) => n['Relation Name'] === 'journal_lines')
      .map((n) => ({ node: n['Node Type'], range: /entry_date >= '2026-03-01'::date\) AND \(\S*entry_date <= '2026-03-31'::date/.test(`${n['Index Cond'] ?? ''} ${n['Recheck Cond'] ?? ''} ${n.Filter ?? ''}`) }));
    expect(scans.length).toBeGreaterThanOrEqual(2);
    expect(scans).toEqual(scans.map((s) => ({ ...s, range: true })));
  });
});
