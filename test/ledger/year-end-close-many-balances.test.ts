import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, onPlan, registerUser, type TestUser } from '../support/factories.js';
import { balanceDrift, ledgerUrl, startBooks } from './ledger-support.js';

/**
 * A year with more revenue and expense balances than an entry takes (499 lines, one of them the retained earnings
 * line) could not close: the closing entry had one line per balance and the close failed with an undocumented 422
 * ledger.invalid_entry. It now closes in several entries, each moving its part of the result to retained earnings,
 * in one transaction; reopening reverses all of them.
 *
 * FY2026: 300 revenue accounts credited 1.00 to 300.00 (45,150.00) and 300 expense accounts debited 0.50 to 150.00
 * (22,575.00) against cash: 600 closing lines, closed in 2 entries of 300 lines plus retained earnings each.
 * Net income 22,575.00; retained earnings 22,575.00 credit once closed.
 */
describe('ledger: year-end close of a year with more balances than an entry takes', () => {
  let t: TestApp;
  let owner: TestUser;
  let orgId: string;
  let acc: Record<string, string>;
  let yearId: string;
  const url = (path: string) => ledgerUrl(orgId, path);
  const report = async (path: string) => (await t.http.get(url(`reports/${path}`)).set(owner.auth).expect(200)).body;
  /** the year_end entries in the order posted: key, memo, lines, reversed entry */
  const yearEndEntries = async () => (await t.db.admin.query(`
    SELECT e.id, e.idempotency_key AS key, e.memo, e.reverses_entry_id, (SELECT count(*)::int FROM finance.journal_lines l WHERE l.org_id = e.org_id AND l.entry_id = e.id) AS lines
    FROM finance.journal_entries e WHERE e.org_id = $1 AND e.source = 'year_end' ORDER BY e.seq`, [orgId])).rows;
  /** base net (debit − credit) of the P&L accounts and of retained earnings, from the journal */
  const nets = async () => (await t.db.admin.query(`
    SELECT round(coalesce(sum(l.base_debit - l.base_credit) FILTER (WHERE a.type IN ('revenue', 'expense')), 0), 2)::text AS pl,
           round(coalesce(sum(l.base_debit - l.base_credit) FILTER (WHERE a.id = $2), 0), 2)::text AS retained
    FROM finance.journal_lines l JOIN finance.accounts a ON a.org_id = l.org_id AND a.id = l.account_id WHERE l.org_id = $1`, [orgId, acc['3200']])).rows[0];

  beforeAll(async () => {
    t = await createTestApp();
    owner = await registerUser(t, 'owner');
    orgId = await createOrg(t, owner, 'Many Accounts Ltd');
    await onPlan(t, orgId, 'professional');
    acc = await startBooks(t, orgId, owner);
    // 600 accounts in one statement (the chart's rules are the database's: finance.check_account runs on each)
    const { rows } = await t.db.admin.query(`
      INSERT INTO finance.accounts (org_id, code, name, type)
      SELECT $1, (CASE WHEN g <= 300 THEN 80000 ELSE 90000 END + g)::text, 'Account ' || g, CASE WHEN g <= 300 THEN 'revenue' ELSE 'expense' END
      FROM generate_series(1, 600) g RETURNING id, code`, [orgId]);
    const ids = rows.sort((a, b) => a.code.localeCompare(b.code)).map((r) => r.id as string);
    const revenue = ids.slice(0, 300).map((accountId, i) => ({ accountId, credit: `${i + 1}.00` }));
    const expenses = ids.slice(300).map((accountId, i) => ({ accountId, debit: ((i + 1) / 2).toFixed(2) }));
    const batch = await t.http.post(url('journal-entries/batch')).set(owner.auth).send({ entries: [
      { date: '2026-06-30', memo: 'Sales', lines: [{ accountId: acc['1100'], debit: '45150.00' }, ...revenue] },
      { date: '2026-06-30', memo: 'Costs', lines: [...expenses, { accountId: acc['1100'], credit: '22575.00' }] },
    ] }).expect(201);
    expect(batch.body).toMatchObject({ posted: 2, rejected: 0 });
    yearId = (await t.http.get(url('fiscal-years')).set(owner.auth).expect(200)).body[0].id;
  });
  afterAll(() => t.close());

  it('closes in two balanced entries, each moving its part of the result to retained earnings; the reports are those of one entry', async () => {
    const closed = await t.http.post(url(`fiscal-years/${yearId}/close`)).set(owner.auth).expect(200);
    const [first, second] = closed.body.closingEntries;
    expect(closed.body.closingEntries).toHaveLength(2);
    expect(closed.body.closingEntry.id).toBe(first.id);
    expect(closed.body.fiscalYear).toMatchObject({ status: 'closed', closingEntryId: first.id });
    expect(first).toMatchObject({ source: 'year_end', date: '2026-12-31', memo: 'Year-end close 2026-01-01 to 2026-12-31 (part 1 of 2)', totalBase: '45150.00' });
    expect(second).toMatchObject({ source: 'year_end', date: '2026-12-31', memo: 'Year-end close 2026-01-01 to 2026-12-31 (part 2 of 2)', totalBase: '22575.00' });
    // part 1: the 300 revenue accounts, a profit of 45,150.00 credited to retained earnings; part 2: the expenses, debited
    expect(first.lines).toHaveLength(301);
    expect(first.lines[300]).toMatchObject({ accountCode: '3200', debit: '0.00', credit: '45150.00' });
    expect(second.lines).toHaveLength(301);
    expect(second.lines[300]).toMatchObject({ accountCode: '3200', debit: '22575.00', credit: '0.00' });

    expect(await yearEndEntries()).toEqual([
      { id: first.id, key: `year-end:${yearId}`, memo: first.memo, reverses_entry_id: null, lines: 301 },
      { id: second.id, key: `year-end:${yearId}:2`, memo: second.memo, reverses_entry_id: null, lines: 301 },
    ]);
    expect(await nets()).toEqual({ pl: '0.00', retained: '-22575.00' });
    const { rows: [year] } = await t.db.admin.query(`SELECT status, closing_entry_id FROM finance.fiscal_years WHERE org_id = $1 AND id = $2`, [orgId, yearId]);
    expect(year).toEqual({ status: 'closed', closing_entry_id: first.id });
    const audit = await t.db.admin.query(`SELECT action, entity_id FROM core.audit_logs WHERE org_id = $1 AND action IN ('ledger.year_end_entry_posted', 'ledger.fiscal_year_closed') ORDER BY id`, [orgId]);
    expect(audit.rows).toEqual([
      { action: 'ledger.year_end_entry_posted', entity_id: first.id }, { action: 'ledger.year_end_entry_posted', entity_id: second.id },
      { action: 'ledger.fiscal_year_closed', entity_id: yearId }]);

    // the year's real result without the closing entries, the closed books with them
    expect(await report('profit-and-loss?from=2026-01-01&to=2026-12-31')).toMatchObject({ totalRevenue: '45150.00', totalExpenses: '22575.00', netIncome: '22575.00' });
    expect(await report('profit-and-loss?from=2026-01-01&to=2026-12-31&includeClosing=true')).toMatchObject({ totalRevenue: '0.00', totalExpenses: '0.00', netIncome: '0.00' });
    const tb = await report('trial-balance?asOf=2026-12-31');
    expect(tb.rows.map((r: any) => [r.code, r.debit, r.credit])).toEqual([['1100', '22575.00', '0.00'], ['3200', '0.00', '22575.00']]);
    expect(tb).toMatchObject({ totalDebit: '22575.00', totalCredit: '22575.00', balanced: true });
    expect(await report('balance-sheet?asOf=2026-12-31')).toMatchObject({ totalAssets: '22575.00', totalEquity: '22575.00', currentEarnings: '0.00', balanced: true });
    expect(await report('cash-flow?from=2026-01-01&to=2026-12-31')).toMatchObject({ netIncome: '22575.00', netChange: '22575.00' });

    // each part belongs to the year: reversed only by reopening it; the year closes once
    for (const entry of [first, second]) {
      const refused = await t.http.post(url(`journal-entries/${entry.id}/reverse`)).set(owner.auth).send({}).expect(422);
      expect(refused.body.error.code).toBe('ledger.entry_of_document');
    }
    expect((await t.http.post(url(`fiscal-years/${yearId}/close`)).set(owner.auth).expect(409)).body.error.code).toBe('ledger.year_closed');
    expect(await yearEndEntries()).toHaveLength(2);
  });

  it('reopens by reversing every closing entry, and closes again with new entries', async () => {
    const [first, second] = (await yearEndEntries()).map((e) => e.id);
    const reopened = await t.http.post(url(`fiscal-years/${yearId}/reopen`)).set(owner.auth).expect(200);
    expect(reopened.body.fiscalYear).toMatchObject({ status: 'open', closingEntryId: null });
    expect(reopened.body.reversalEntries.map((e: any) => [e.reversesEntryId, e.memo, e.lines.length])).toEqual([
      [first, 'Reopening of fiscal year 2026-01-01 to 2026-12-31 (part 1 of 2)', 301], [second, 'Reopening of fiscal year 2026-01-01 to 2026-12-31 (part 2 of 2)', 301]]);
    expect(reopened.body.reversalEntry.id).toBe(reopened.body.reversalEntries[0].id);
    expect(await nets()).toEqual({ pl: '-22575.00', retained: '0.00' });
    expect(await report('profit-and-loss?from=2026-01-01&to=2026-12-31&includeClosing=true')).toMatchObject({ netIncome: '22575.00' });
    expect(await report('balance-sheet?asOf=2026-12-31')).toMatchObject({ totalAssets: '22575.00', totalEquity: '0.00', currentEarnings: '22575.00', balanced: true });

    const again = await t.http.post(url(`fiscal-years/${yearId}/close`)).set(owner.auth).expect(200);
    expect(again.body.closingEntries.map((e: any) => e.totalBase)).toEqual(['45150.00', '22575.00']);
    const entries = await yearEndEntries();
    expect(entries.map((e) => [e.key, e.reverses_entry_id])).toEqual([
      [`year-end:${yearId}`, null], [`year-end:${yearId}:2`, null],
      [`reversal:${first}`, first], [`reversal:${second}`, second],
      [`year-end:${yearId}:3`, null], [`year-end:${yearId}:4`, null]]);
    expect(again.body.fiscalYear.closingEntryId).toBe(entries[4].id);
    expect(await nets()).toEqual({ pl: '0.00', retained: '-22575.00' });
    expect(await report('profit-and-loss?from=2026-01-01&to=2026-12-31')).toMatchObject({ netIncome: '22575.00' });
    expect(await balanceDrift(t, orgId)).toEqual([]);
  });
});
