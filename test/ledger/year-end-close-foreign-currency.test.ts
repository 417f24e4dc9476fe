import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, onPlan, registerUser, type TestUser } from '../support/factories.js';
import { balanceDrift, ledgerUrl, startBooks } from './ledger-support.js';

/**
 * Year-end close of revenue and expense balances held in a foreign currency. A journal line carries its currency, its
 * amount in it and its base amount (at its rate); the P&L and retained earnings are base figures. finance.check_entry
 * balances an entry of several currencies in the base currency only, but an entry of one currency in that currency.
 * The close moves each balance out on its own line (its amount and base amount) and the part's base result to
 * retained earnings in the base currency, which makes a part with foreign lines one of several currencies. A part whose
 * lines are all in one foreign currency and net to zero in base got no retained earnings line: an entry of that one
 * currency, unbalanced in it, refused (422 ledger.unbalanced) and the whole close with it. Its retained earnings line
 * now carries the part's result in that currency at a base amount of zero: the entry balances in the currency (and in
 * base), every P&L account ends at zero in both, and the base result moved is the same (zero).
 *
 * Base USD. EUR sales of EUR 100.00 at 1.10 (110.00) and EUR costs of EUR 110.00 at 1.00 (110.00): zero in base, a loss
 * of EUR 10.00 in EUR.
 */
describe('ledger: year-end close of P&L balances in a foreign currency that net to zero in base', () => {
  let t: TestApp;
  let owner: TestUser;

  beforeAll(async () => {
    t = await createTestApp();
    owner = await registerUser(t, 'owner');
  });
  afterAll(() => t.close());

  async function books(name: string) {
    const orgId = await createOrg(t, owner, name);
    await onPlan(t, orgId, 'professional');
    const acc = await startBooks(t, orgId, owner, 'USD');
    const url = (path: string) => ledgerUrl(orgId, path);
    const yearId = (await t.http.get(url('fiscal-years')).set(owner.auth).expect(200)).body[0].id as string;
    /** per account and currency: the net amount and base amount (debit − credit) in the journal */
    const nets = async (ids: string[]) => (await t.db.admin.query(`
      SELECT a.code, l.currency, sum(l.debit - l.credit)::numeric(20, 2)::text AS net, sum(l.base_debit - l.base_credit)::numeric(20, 2)::text AS base
      FROM finance.journal_lines l JOIN finance.accounts a ON a.org_id = l.org_id AND a.id = l.account_id
      WHERE l.org_id = $1 AND l.account_id = any($2::uuid[]) GROUP BY a.code, l.currency ORDER BY a.code, l.currency`, [orgId, ids])).rows;
    /** P&L accounts whose amount or base amount in some currency is not zero */
    const plLeft = async () => (await t.db.admin.query(`
      SELECT a.code, l.currency FROM finance.journal_lines l JOIN finance.accounts a ON a.org_id = l.org_id AND a.id = l.account_id
      WHERE l.org_id = $1 AND a.type IN ('revenue', 'expense') GROUP BY a.code, l.currency
      HAVING sum(l.debit - l.credit) <> 0 OR sum(l.base_debit - l.base_credit) <> 0`, [orgId])).rows;
    const euroLines = (revenue: string, expense: string) => [
      { date: '2026-03-10', memo: 'Euro sale', lines: [{ accountId: acc['1100'], debit: '100.00', currency: 'EUR', rate: '1.10' },
        { accountId: revenue, credit: '100.00', currency: 'EUR', rate: '1.10' }] },
      { date: '2026-09-10', memo: 'Euro costs', lines: [{ accountId: expense, debit: '110.00', currency: 'EUR', rate: '1.00' },
        { accountId: acc['1100'], credit: '110.00', currency: 'EUR', rate: '1.00' }] }];
    return { orgId, acc, url, yearId, nets, plLeft, euroLines };
  }

  it('a year of EUR balances only: one closing entry, retained earnings takes the EUR result at a base of zero', async () => {
    const { orgId, acc, url, yearId, nets, plLeft, euroLines } = await books('Euro Break-even Ltd');
    expect((await t.http.post(url('journal-entries/batch')).set(owner.auth).send({ entries: euroLines(acc['4100'], acc['5200']) }).expect(201)).body)
      .toMatchObject({ posted: 2, rejected: 0 });
    expect(await nets([acc['4100'], acc['5200']])).toEqual([
      { code: '4100', currency: 'EUR', net: '-100.00', base: '-110.00' }, { code: '5200', currency: 'EUR', net: '110.00', base: '110.00' }]);

    const closed = await t.http.post(url(`fiscal-years/${yearId}/close`)).set(owner.auth).expect(200);
    expect(closed.body.closingEntries).toHaveLength(1);
    const [entry] = closed.body.closingEntries;
    expect(entry).toMatchObject({ source: 'year_end', date: '2026-12-31', totalBase: '110.00' });
    expect(entry.lines.map((l: any) => [l.accountCode, l.currency, l.debit, l.credit, l.baseDebit, l.baseCredit])).toEqual([
      ['4100', 'EUR', '100.00', '0.00', '110.00', '0.00'],
      ['5200', 'EUR', '0.00', '110.00', '0.00', '110.00'],
      // the EUR loss of 10.00, base 0.00 (the base result)
      ['3200', 'EUR', '10.00', '0.00', '0.00', '0.00']]);
    expect(closed.body.fiscalYear).toMatchObject({ status: 'closed', closingEntryId: entry.id });
    expect(await plLeft()).toEqual([]);
    expect(await nets([acc['3200']])).toEqual([{ code: '3200', currency: 'EUR', net: '10.00', base: '0.00' }]);
    expect((await t.http.get(url('reports/balance-sheet?asOf=2026-12-31')).set(owner.auth).expect(200)).body).toMatchObject({ currentEarnings: '0.00', balanced: true });
    const audit = await t.db.admin.query(`SELECT action, entity_id FROM core.audit_logs WHERE org_id = $1 AND action IN ('ledger.year_end_entry_posted', 'ledger.fiscal_year_closed') ORDER BY id`, [orgId]);
    expect(audit.rows).toEqual([{ action: 'ledger.year_end_entry_posted', entity_id: entry.id }, { action: 'ledger.fiscal_year_closed', entity_id: yearId }]);

    // reopened: the reversal takes retained earnings' EUR line back too
    const reopened = await t.http.post(url(`fiscal-years/${yearId}/reopen`)).set(owner.auth).expect(200);
    expect(reopened.body.reversalEntry.lines.map((l: any) => [l.accountCode, l.currency, l.debit, l.credit, l.baseDebit, l.baseCredit])).toEqual([
      ['4100', 'EUR', '0.00', '100.00', '0.00', '110.00'], ['5200', 'EUR', '110.00', '0.00', '110.00', '0.00'], ['3200', 'EUR', '0.00', '10.00', '0.00', '0.00']]);
    expect(await nets([acc['3200']])).toEqual([{ code: '3200', currency: 'EUR', net: '0.00', base: '0.00' }]);
    expect(await balanceDrift(t, orgId)).toEqual([]);
  });

  it('a part of such balances among more than an entry takes: each part balances, the base result is that of the year', async () => {
    const { orgId, acc, url, yearId, nets, plLeft } = await books('Euro Many Accounts Ltd');
    // 500 balances close in two parts of 250 (parts as even as can be). The first: 250 revenue accounts credited 1.00
    // each in USD (250.00). The second, all in EUR: 125 revenue accounts credited EUR 1.00 at 1.10 (1.10 each, 137.50)
    // and 125 expense accounts debited EUR 1.10 at 1.00 (1.10 each, 137.50): zero in base, an EUR loss of 12.50
    const { rows } = await t.db.admin.query(`
      INSERT INTO finance.accounts (org_id, code, name, type)
      SELECT $1::uuid, (80000 + g)::text, 'Account ' || g, 'revenue' FROM generate_series(1, 250) g
      UNION ALL SELECT $1::uuid, (90000 + g)::text, 'Euro account ' || g, CASE WHEN g <= 125 THEN 'revenue' ELSE 'expense' END FROM generate_series(1, 250) g
      RETURNING id, code`, [orgId]);
    const sorted = rows.sort((a, b) => a.code.localeCompare(b.code));
    const [usd, euroRevenue, euroCosts] = [sorted.slice(0, 250), sorted.slice(250, 375), sorted.slice(375)];
    // (an entry takes at most 400 lines from a client)
    const batch = await t.http.post(url('journal-entries/batch')).set(owner.auth).send({ entries: [
      { date: '2026-06-30', memo: 'Sales', lines: [{ accountId: acc['1100'], debit: '250.00' }, ...usd.map((r) => ({ accountId: r.id, credit: '1.00' }))] },
      { date: '2026-03-10', memo: 'Euro sales', lines: [{ accountId: acc['1100'], debit: '125.00', currency: 'EUR', rate: '1.10' },
        ...euroRevenue.map((r) => ({ accountId: r.id, credit: '1.00', currency: 'EUR', rate: '1.10' }))] },
      { date: '2026-09-10', memo: 'Euro costs', lines: [...euroCosts.map((r) => ({ accountId: r.id, debit: '1.10', currency: 'EUR', rate: '1.00' })),
        { accountId: acc['1100'], credit: '137.50', currency: 'EUR', rate: '1.00' }] }] }).expect(201);
    expect(batch.body).toMatchObject({ posted: 3, rejected: 0 });

    const closed = await t.http.post(url(`fiscal-years/${yearId}/close`)).set(owner.auth).expect(200);
    const [first, second] = closed.body.closingEntries;
    expect(closed.body.closingEntries).toHaveLength(2);
    expect(first).toMatchObject({ memo: 'Year-end close 2026-01-01 to 2026-12-31 (part 1 of 2)', totalBase: '250.00' });
    expect(first.lines).toHaveLength(251);
    expect(first.lines[250]).toMatchObject({ accountCode: '3200', currency: 'USD', debit: '0.00', credit: '250.00' });
    expect(second).toMatchObject({ memo: 'Year-end close 2026-01-01 to 2026-12-31 (part 2 of 2)', totalBase: '137.50' });
    const lines = second.lines.map((l: any) => [l.accountCode, l.currency, l.debit, l.credit, l.baseDebit, l.baseCredit]);
    expect(lines).toHaveLength(251);
    expect(lines[0]).toEqual(['90001', 'EUR', '1.00', '0.00', '1.10', '0.00']);
    expect(lines[125]).toEqual(['90126', 'EUR', '0.00', '1.10', '0.00', '1.10']);
    // retained earnings takes the part's EUR loss at the part's base result, zero
    expect(lines[250]).toEqual(['3200', 'EUR', '12.50', '0.00', '0.00', '0.00']);
    expect(await plLeft()).toEqual([]);
    expect(await nets([acc['3200']])).toEqual([{ code: '3200', currency: 'EUR', net: '12.50', base: '0.00' }, { code: '3200', currency: 'USD', net: '-250.00', base: '-250.00' }]);
    const { rows: [year] } = await t.db.admin.query(`SELECT status, closing_entry_id FROM finance.fiscal_years WHERE org_id = $1 AND id = $2`, [orgId, yearId]);
    expect(year).toEqual({ status: 'closed', closing_entry_id: first.id });
    expect((await t.http.get(url('reports/profit-and-loss?from=2026-01-01&to=2026-12-31')).set(owner.auth).expect(200)).body).toMatchObject({ netIncome: '250.00' });
    expect((await t.http.get(url('reports/profit-and-loss?from=2026-01-01&to=2026-12-31&includeClosing=true')).set(owner.auth).expect(200)).body).toMatchObject({ netIncome: '0.00' });
    expect(await balanceDrift(t, orgId)).toEqual([]);
  });
});
