import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, onPlan, registerUser, type TestUser } from '../support/factories.js';
import { balanceDrift, ledgerUrl, startBooks } from './ledger-support.js';

/**
 * A revaluation of more foreign-currency balances than an entry takes (two lines each: 249 at most in 499 lines)
 * failed with an undocumented 422 ledger.invalid_entry. It now posts several entries, each balanced by its own
 * adjustments against the unrealized FX gain account, in one transaction; autoReverse reverses each of them.
 *
 * 300 asset accounts hold USD 1.00 to 300.00 (45,150.00), booked at 1.0 on 2026-01-10 against share capital.
 * Revalued at 1.1 on 2026-01-31: 300 adjustments (+0.10 to +30.00), 4,515.00 of unrealized gain, in 2 entries of 150.
 */
describe('ledger: FX revaluation of more balances than an entry takes', () => {
  let t: TestApp;
  let owner: TestUser;
  let orgId: string;
  let acc: Record<string, string>;
  const url = (path: string) => ledgerUrl(orgId, path);
  const report = async (path: string) => (await t.http.get(url(`reports/${path}`)).set(owner.auth).expect(200)).body;

  beforeAll(async () => {
    t = await createTestApp();
    owner = await registerUser(t, 'owner');
    orgId = await createOrg(t, owner, 'Many Currencies Ltd');
    await onPlan(t, orgId, 'professional');
    acc = await startBooks(t, orgId, owner);
    const { rows } = await t.db.admin.query(`
      INSERT INTO finance.accounts (org_id, code, name, type) SELECT $1, (80000 + g)::text, 'USD account ' || g, 'asset'
      FROM generate_series(1, 300) g RETURNING id, code`, [orgId]);
    const ids = rows.sort((a, b) => a.code.localeCompare(b.code)).map((r) => r.id as string);
    await t.http.post(url('fx-rates/import')).set(owner.auth)
      .send({ rates: [{ currency: 'USD', date: '2026-01-10', rate: '1.0' }, { currency: 'USD', date: '2026-01-31', rate: '1.1' }] }).expect(201);
    await t.http.post(url('journal-entries')).set(owner.auth).send({ date: '2026-01-10', memo: 'USD deposits', lines: [
      ...ids.map((accountId, i) => ({ accountId, debit: `${i + 1}.00`, currency: 'USD' })), { accountId: acc['3100'], credit: '45150.00', currency: 'USD' }] }).expect(201);
  });
  afterAll(() => t.close());

  it('posts two balanced revaluation entries and reverses each on the first day of the next period', async () => {
    const res = await t.http.post(url('fx-revaluations')).set(owner.auth).send({ date: '2026-01-31', autoReverse: true }).expect(201);
    expect(res.body.adjustments).toHaveLength(300);
    expect(res.body.adjustments.find((a: any) => a.balance === '300.00')).toMatchObject({ currency: 'USD', baseBefore: '300.00', baseAfter: '330.00', difference: '30.00' });
    const [first, second] = res.body.entries;
    expect(res.body.entries).toHaveLength(2);
    expect(res.body.entry.id).toBe(first.id);
    expect(first).toMatchObject({ source: 'system', date: '2026-01-31', memo: 'FX revaluation as of 2026-01-31 (part 1 of 2)' });
    expect(second).toMatchObject({ source: 'system', date: '2026-01-31', memo: 'FX revaluation as of 2026-01-31 (part 2 of 2)' });
    // 150 adjustments each (the account's line and the gain account's), together the whole gain
    expect([first.lines.length, second.lines.length]).toEqual([300, 300]);
    expect(Number(first.totalBase) + Number(second.totalBase)).toBeCloseTo(4515, 2);
    for (const entry of [first, second]) {
      expect(entry.lines.filter((l: any) => l.accountCode === '4310').reduce((sum: number, l: any) => sum + Number(l.baseCredit), 0)).toBeCloseTo(Number(entry.totalBase), 2);
    }
    expect(res.body.reversals.map((r: any) => [r.reversesEntryId, r.date, r.memo])).toEqual([
      [first.id, '2026-02-01', 'Reversal of FX revaluation as of 2026-01-31 (part 1 of 2)'],
      [second.id, '2026-02-01', 'Reversal of FX revaluation as of 2026-01-31 (part 2 of 2)']]);
    expect(res.body.reversal.id).toBe(res.body.reversals[0].id);

    const { rows } = await t.db.admin.query(`
      SELECT e.memo, e.entry_date::text AS date, count(*)::int AS lines, sum(l.base_debit)::text AS debit, sum(l.base_credit)::text AS credit
      FROM finance.journal_entries e JOIN finance.journal_lines l ON l.org_id = e.org_id AND l.entry_id = e.id
      WHERE e.org_id = $1 AND e.memo LIKE '%FX revaluation%' GROUP BY e.org_id, e.id ORDER BY e.seq`, [orgId]);
    const [a, b] = [Number(first.totalBase), Number(second.totalBase)];
    expect(rows.map((r) => [r.date, r.lines, Number(r.debit), Number(r.credit)])).toEqual([
      ['2026-01-31', 300, a, a], ['2026-01-31', 300, b, b], ['2026-02-01', 300, a, a], ['2026-02-01', 300, b, b]]);
    const audit = await t.db.admin.query(`SELECT action FROM core.audit_logs WHERE org_id = $1 AND action IN ('ledger.fx_revaluation_posted', 'ledger.entry_reversed') ORDER BY id`, [orgId]);
    expect(audit.rows.map((r) => r.action)).toEqual(['ledger.fx_revaluation_posted', 'ledger.fx_revaluation_posted', 'ledger.entry_reversed', 'ledger.entry_reversed']);

    // January carries the gain; February's reversals take it back out
    expect(await report('profit-and-loss?from=2026-01-01&to=2026-01-31')).toMatchObject({ totalRevenue: '4515.00', netIncome: '4515.00' });
    expect(await report('balance-sheet?asOf=2026-01-31')).toMatchObject({ totalAssets: '49665.00', totalEquity: '45150.00', currentEarnings: '4515.00', balanced: true });
    expect(await report('trial-balance?asOf=2026-01-31')).toMatchObject({ totalDebit: '49665.00', totalCredit: '49665.00', balanced: true });
    expect(await report('profit-and-loss?from=2026-01-01&to=2026-02-28')).toMatchObject({ totalRevenue: '0.00', netIncome: '0.00' });
    expect(await report('trial-balance?asOf=2026-02-28')).toMatchObject({ totalDebit: '45150.00', totalCredit: '45150.00', balanced: true });
    expect(await balanceDrift(t, orgId)).toEqual([]);
  });
});
