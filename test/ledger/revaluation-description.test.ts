import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { onPlan, orgWithRoles } from '../support/factories.js';
import { ledgerUrl, startBooks } from './ledger-support.js';

/** A revaluation line says what it revalued with the currency's minor units and the rate as stored (10 decimals). */
describe('FX revaluation: line descriptions', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(() => t.close());

  it('prints the balance with the currency\'s minor units (GBP 2, JPY 0, BHD 3) and the rate with 10 decimals', async () => {
    const { orgId, users } = await orgWithRoles(t, 'Descriptions Ltd');
    await onPlan(t, orgId, 'professional');
    const a = await startBooks(t, orgId, users.owner);
    const url = (path: string) => ledgerUrl(orgId, path);
    await t.http.post(url('fx-rates/import')).set(users.owner.auth).send({ rates: [
      { currency: 'GBP', date: '2026-01-10', rate: '1.0' }, { currency: 'GBP', date: '2026-01-31', rate: '1.1' },
      { currency: 'JPY', date: '2026-01-10', rate: '0.006' }, { currency: 'JPY', date: '2026-01-31', rate: '0.0065' },
      { currency: 'BHD', date: '2026-01-10', rate: '2.4' }, { currency: 'BHD', date: '2026-01-31', rate: '2.5' }] }).expect(201);
    for (const [currency, amount] of [['GBP', '1000'], ['JPY', '100000'], ['BHD', '1.5']]) {
      await t.http.post(url('journal-entries')).set(users.owner.auth).send({ date: '2026-01-10', lines: [
        { accountId: a['1200'], debit: amount, currency }, { accountId: a['4100'], credit: amount, currency }] }).expect(201);
    }
    const res = await t.http.post(url('fx-revaluations')).set(users.owner.auth).send({ date: '2026-01-31' }).expect(201);
    const descriptions = [...new Set(res.body.entry.lines.map((l: any) => l.description))].sort();
    expect(descriptions).toEqual([
      'FX revaluation of BHD 1.500 at 2.5000000000', 'FX revaluation of GBP 1000.00 at 1.1000000000', 'FX revaluation of JPY 100000 at 0.0065000000']);
    const { rows } = await t.db.admin.query(`SELECT DISTINCT description FROM finance.journal_lines WHERE org_id = $1 AND entry_id = $2 ORDER BY 1`, [orgId, res.body.entry.id]);
    expect(rows.map((r) => r.description)).toEqual(descriptions);
  });
});
