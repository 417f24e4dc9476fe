import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { onPlan, orgWithRoles } from '../support/factories.js';
import { ledgerUrl, startBooks } from './ledger-support.js';

/**
 * Accountant's review, issue 2: a revaluation without autoReverse was measured against balances that still held an
 * earlier revaluation's change whose autoReverse reversal is dated later. USD 1,000 bought at 1.10 (1,100.00), revalued
 * as of 01-15 at 1.15 with autoReverse (+50.00, reversed on 02-01), then as of 01-31 at 1.20 without: baseBefore
 * 1,150.00, +50.00, and from 02-01 (the reversal's −50.00) the USD bank was carried at 1,150.00 at a rate of 1.20 (should
 * be 1,200.00), February showing an unrealized loss of 50.00 without any rate change. Such a revaluation is now refused
 * (422 ledger.revaluation_reversal_pending, nothing posted) when it would post; with autoReverse, or as of the reversal
 * date, it is right.
 */
describe('FX revaluation without autoReverse before an earlier revaluation\'s reversal', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(() => t.close());

  async function books(name: string) {
    const { orgId, users } = await orgWithRoles(t, name);
    await onPlan(t, orgId, 'professional');
    const owner = users.owner;
    const url = (path: string) => ledgerUrl(orgId, path);
    const a = await startBooks(t, orgId, owner);
    const usd = (await t.http.post(url('accounts')).set(owner.auth)
      .send({ code: '1110', name: 'USD bank', type: 'asset', parentId: a['1050'], currency: 'USD' }).expect(201)).body.id as string;
    await t.http.post(url('fx-rates/import')).set(owner.auth).send({ rates: [
      { currency: 'USD', date: '2026-01-01', rate: '1.10' }, { currency: 'USD', date: '2026-01-15', rate: '1.15' }, { currency: 'USD', date: '2026-01-31', rate: '1.20' }] }).expect(201);
    await t.http.post(url('journal-entries')).set(owner.auth)
      .send({ date: '2026-01-01', lines: [{ accountId: usd, debit: '1000.00', currency: 'USD' }, { accountId: a['1100'], credit: '1100.00' }] }).expect(201);
    const revalue = (date: string, autoReverse?: boolean) => t.http.post(url('fx-revaluations')).set(owner.auth).send({ date, ...(autoReverse === undefined ? {} : { autoReverse }) });
    const balance = async (asOf: string) => (await t.http.get(url(`accounts/${usd}/balance?asOf=${asOf}`)).set(owner.auth).expect(200)).body.baseBalance as string;
    const entries = async () => (await t.db.admin.query(`SELECT entry_date::text AS date, (SELECT sum(base_debit - base_credit)::numeric(20, 2)::text FROM finance.journal_lines l
      WHERE l.org_id = e.org_id AND l.entry_id = e.id AND l.account_id = $2) AS usd FROM finance.journal_entries e WHERE e.org_id = $1 AND e.source = 'system' ORDER BY e.seq`, [orgId, usd])).rows;
    return { orgId, owner, url, usd, revalue, balance, entries };
  }

  it('refuses it (422 ledger.revaluation_reversal_pending, naming both dates; nothing posted)', async () => {
    const b = await books('Pending Reversal Ltd');
    const first = await b.revalue('2026-01-15', true).expect(201);
    expect(first.body.adjustments).toEqual([expect.objectContaining({ baseBefore: '1100.00', baseAfter: '1150.00', difference: '50.00' })]);
    expect(first.body.reversal).toMatchObject({ date: '2026-02-01' });
    const before = await b.entries();
    // one that finds nothing to do posts nothing, and is answered so (as of the same date: already carried at 1.15)
    expect((await b.revalue('2026-01-15').expect(201)).body).toMatchObject({ adjustments: [], entry: null });
    const refused = await b.revalue('2026-01-31').expect(422);
    expect(refused.body.error).toMatchObject({
      code: 'ledger.revaluation_reversal_pending',
      message: 'the FX revaluation as of 2026-01-15 is reversed on 2026-02-01, after 2026-01-31: a revaluation without autoReverse would be measured '
        + 'against the value that reversal takes off again. Revalue as of 2026-01-31 with autoReverse, or as of 2026-02-01 or later',
      details: { revaluationDate: '2026-01-15', reversalDate: '2026-02-01' },
    });
    expect(await b.entries()).toEqual(before);
    expect(before).toEqual([{ date: '2026-01-15', usd: '50.00' }, { date: '2026-02-01', usd: '-50.00' }]);
    // what the message offers: as of the reversal date without autoReverse, the bank is carried at 1.20 from then on
    const later = await b.revalue('2026-02-01').expect(201);
    expect(later.body.adjustments).toEqual([expect.objectContaining({ baseBefore: '1100.00', baseAfter: '1200.00', difference: '100.00' })]);
    expect({ jan15: await b.balance('2026-01-15'), feb1: await b.balance('2026-02-01'), feb28: await b.balance('2026-02-28') })
      .toEqual({ jan15: '1150.00', feb1: '1200.00', feb28: '1200.00' });
  });

  it('with autoReverse both are reversed on 02-01; the month-end balance is at 1.20, and a revaluation as of 02-28 carries it at 1.20', async () => {
    const b = await books('Both Reversed Ltd');
    await b.revalue('2026-01-15', true).expect(201);
    const second = await b.revalue('2026-01-31', true).expect(201);
    expect(second.body.adjustments).toEqual([expect.objectContaining({ baseBefore: '1150.00', baseAfter: '1200.00', difference: '50.00' })]);
    expect({ jan31: await b.balance('2026-01-31'), feb1: await b.balance('2026-02-01') }).toEqual({ jan31: '1200.00', feb1: '1100.00' });
    const feb = await b.revalue('2026-02-28').expect(201);
    expect(feb.body.adjustments).toEqual([expect.objectContaining({ baseBefore: '1100.00', baseAfter: '1200.00', difference: '100.00' })]);
    expect(await b.balance('2026-02-28')).toBe('1200.00');
    // February's P&L: no unrealized loss without a rate change (the reversals' −100.00 and the revaluation's +100.00)
    const pl = await t.http.get(b.url('reports/profit-and-loss?from=2026-02-01&to=2026-02-28')).set(b.owner.auth).expect(200);
    expect(pl.body.netIncome).toBe('0.00');
  });

  it('a revaluation without autoReverse after the reversal date is taken as before', async () => {
    const b = await books('After Reversal Ltd');
    await b.revalue('2026-01-15', true).expect(201);
    // the reversal is dated 02-01: as of 02-28 nothing is pending
    const feb = await b.revalue('2026-02-28').expect(201);
    expect(feb.body.adjustments).toEqual([expect.objectContaining({ baseBefore: '1100.00', baseAfter: '1200.00' })]);
    expect(await b.balance('2026-02-28')).toBe('1200.00');
  });
});
