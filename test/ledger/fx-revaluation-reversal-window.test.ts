import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { registerUser, type TestUser } from '../support/factories.js';
import { expectOpenAmountsKept, rUrl } from '../receivables/receivables-support.js';
import { payablesUrl } from '../payables/payables-support.js';
import { fxBooks } from './fx-support.js';

/**
 * FX revaluation with autoReverse, settlements in its window (base USD; EUR 1.10 on Jan 15, 1.15 on Jan 31): an invoice
 * or bill of EUR 1,000.00 at 1.10 revalued as of Jan 31 at 1.15 carries 1,150.00 on Jan 31; the reversal rows and
 * entry are dated Feb 1.
 *  - a settlement dated Jan 31 is not refused (the Feb 1 reversal is not a revaluation in the books by then), settles
 *    what the item carries as of Jan 31 (realized 0 at 1.15), and what the Feb 1 reversal would take off the settled
 *    share is put back on Feb 1: AR/AP = aging on Jan 31 and Feb 1, FX over the item's life (1.15 - 1.10) x amount;
 *  - a revaluation dated before a settlement already in the books is 422 ledger.revaluation_before_settlement;
 *  - AP: an allocation's reversal reopens the bill and the credit at what they carry (a revaluation in between): the
 *    share at what the allocation took off, what the revaluation changed of it as the bill's (and credit's) rows.
 */
describe('FX revaluation with autoReverse: settlements between a revaluation and its reversal, revaluations before settlements', () => {
  let t: TestApp;
  let owner: TestUser;

  beforeAll(async () => {
    t = await createTestApp();
    owner = await registerUser(t, 'owner');
  });
  afterAll(() => t.close());

  async function books(name: string) {
    const b = await fxBooks(t, owner, name);
    const items = async (documentId: string) => (await t.db.admin.query(
      `SELECT revaluation_date::text AS date, base_delta::numeric(20, 2)::text AS delta FROM finance.fx_revaluation_items WHERE org_id = $1 AND document_id = $2 ORDER BY seq`,
      [b.orgId, documentId])).rows;
    const footprint = async () => (await t.db.admin.query(`SELECT
      (SELECT count(*) FROM finance.journal_entries WHERE org_id = $1)::int AS entries, (SELECT count(*) FROM finance.fx_revaluation_items WHERE org_id = $1)::int AS items,
      (SELECT count(*) FROM core.audit_logs WHERE org_id = $1)::int AS audit`, [b.orgId])).rows[0];
    return { ...b, items, footprint };
  }

  it('receivables: paid in full on the revaluation date: realized 0, January FX +50.00, AR = aging = 0.00 on Jan 31 and Feb 1, February FX 0', async () => {
    const b = await books('AR paid in the reversal window');
    const inv = await b.invoice();
    const reval = (await b.revalue('2026-01-31', true).expect(201)).body;
    expect(reval.reversal.date).toBe('2026-02-01');
    const paid = await b.arPayment({ date: '2026-01-31', amount: '1000.00', rate: '1.15', allocations: [{ invoiceId: inv.id, amount: '1000.00' }] });
    expect([paid.status, paid.body.allocations?.[0]?.realizedFx]).toEqual([201, '0.00']);
    const { rows: [allocation] } = await t.db.admin.query(`SELECT invoice_base::numeric(20, 2)::text AS invoice_base, source_base::numeric(20, 2)::text AS source_base
      FROM finance.receivable_allocations WHERE org_id = $1 AND invoice_id = $2`, [b.orgId, inv.id]);
    expect(allocation).toEqual({ invoice_base: '1150.00', source_base: '1150.00' });
    await b.expectAgingIsAr('2026-01-31', '0.00');
    await b.expectAgingIsAr('2026-02-01', '0.00');
    await b.expectAgingIsAr('2026-02-28', '0.00');
    expect(await b.fxResult('2026-01-31')).toBe('50.00');
    expect(await b.fxResult('2026-02-28')).toBe('50.00');
    // the reversal's -50.00 and, dated with it, the settled share put back (its entry marked fx-revaluation:settled-share)
    expect(await b.items(inv.id)).toEqual([{ date: '2026-01-31', delta: '50.00' }, { date: '2026-02-01', delta: '-50.00' }, { date: '2026-02-01', delta: '50.00' }]);
    const { rows: compensation } = await t.db.admin.query(`SELECT entry_date::text AS date, source FROM finance.journal_entries WHERE org_id = $1 AND source_ref = 'fx-revaluation:settled-share'`, [b.orgId]);
    expect(compensation).toEqual([{ date: '2026-02-01', source: 'system' }]);
    const { rows: audit } = await t.db.admin.query(`SELECT count(*)::int AS n FROM core.audit_logs WHERE org_id = $1 AND action = 'ledger.fx_revaluation_posted'`, [b.orgId]);
    expect(audit[0].n).toBe(2);
    // nothing left to revalue on AR in February (only the EUR received in the bank)
    const feb = (await b.revalue('2026-02-10').expect(201)).body;
    expect(feb.adjustments.map((a: any) => a.accountId)).toEqual([b.acc['1100']]);
    await expectOpenAmountsKept(t, b.orgId);
  });

  it('receivables: half paid on the revaluation date: the half left is carried at 575.00, then at 550.00 from Feb 1; AR = aging on both days', async () => {
    const b = await books('AR half paid in the reversal window');
    const inv = await b.invoice();
    await b.revalue('2026-01-31', true).expect(201);
    const paid = await b.arPayment({ date: '2026-01-31', amount: '500.00', rate: '1.15', allocations: [{ invoiceId: inv.id, amount: '500.00' }] }).expect(201);
    expect(paid.body.allocations[0].realizedFx).toBe('0.00');
    await b.expectAgingIsAr('2026-01-31', '575.00');
    await b.expectAgingIsAr('2026-02-01', '550.00');
    expect(await b.items(inv.id)).toEqual([{ date: '2026-01-31', delta: '50.00' }, { date: '2026-02-01', delta: '-50.00' }, { date: '2026-02-01', delta: '25.00' }]);
    // January +50.00; February takes off the revaluation of the half still open (-25.00): the paid half realized +25.00 over its life
    expect([await b.fxResult('2026-01-31'), await b.fxResult('2026-02-01')]).toEqual(['50.00', '25.00']);
    // the rest paid at 1.20 on Feb 10: realized (1.20 - 1.10) x 500.00 from what it carries since Feb 1
    const rest = await b.arPayment({ date: '2026-02-10', amount: '500.00', rate: '1.20', allocations: [{ invoiceId: inv.id, amount: '500.00' }] }).expect(201);
    expect(rest.body.allocations[0].realizedFx).toBe('50.00');
    await b.expectAgingIsAr('2026-02-10', '0.00');
    expect(await b.fxResult('2026-02-10')).toBe('75.00');
    await expectOpenAmountsKept(t, b.orgId);
  });

  it('receivables: an invoice voided on the revaluation date leaves AR on Jan 31 and Feb 1 (the reversal takes nothing off it)', async () => {
    const b = await books('AR voided in the reversal window');
    const inv = await b.invoice();
    await b.revalue('2026-01-31', true).expect(201);
    await t.http.post(rUrl(b.orgId, `invoices/${inv.id}/void`)).set(owner.auth).send({ date: '2026-01-31' }).expect(200);
    await b.expectAgingIsAr('2026-01-31', '0.00');
    await b.expectAgingIsAr('2026-02-01', '0.00');
    expect([await b.fxResult('2026-01-31'), await b.fxResult('2026-02-01')]).toEqual(['0.00', '0.00']);
    expect(await b.items(inv.id)).toEqual([
      { date: '2026-01-31', delta: '50.00' }, { date: '2026-02-01', delta: '-50.00' }, { date: '2026-01-31', delta: '-50.00' }, { date: '2026-02-01', delta: '50.00' }]);
    await expectOpenAmountsKept(t, b.orgId);
  });

  it('payables: a bill paid in full, and one paid half, on the revaluation date: realized 0, AP = aging on Jan 31 and Feb 1, FX over the paid part (1.15 - 1.10) x amount', async () => {
    const b = await books('AP paid in the reversal window');
    const full = await b.bill();
    const half = await b.bill();
    await b.revalue('2026-01-31', true).expect(201);
    await b.expectAgingIsAp('2026-01-31', '2300.00');
    const paid = await b.apPayment({ paymentDate: '2026-01-31', amount: '1500.00', rate: '1.15',
      allocations: [{ billId: full.id, amount: '1000.00' }, { billId: half.id, amount: '500.00' }] });
    expect([paid.status, paid.body.allocations?.map((a: any) => a.fxDifference)]).toEqual([201, ['0.00', '0.00']]);
    await b.expectAgingIsAp('2026-01-31', '575.00');
    await b.expectAgingIsAp('2026-02-01', '550.00');
    expect(await b.items(full.id)).toEqual([{ date: '2026-01-31', delta: '50.00' }, { date: '2026-02-01', delta: '-50.00' }, { date: '2026-02-01', delta: '50.00' }]);
    expect(await b.items(half.id)).toEqual([{ date: '2026-01-31', delta: '50.00' }, { date: '2026-02-01', delta: '-50.00' }, { date: '2026-02-01', delta: '25.00' }]);
    // a loss on AP: January -100.00; February gives back the revaluation of the half still open (+25.00)
    expect([await b.fxResult('2026-01-31'), await b.fxResult('2026-02-01')]).toEqual(['-100.00', '-75.00']);
    expect(await b.balance('2100', '2026-02-01')).toBe('-550.00');
  });

  it('a revaluation dated before a settlement already in the books is 422 ledger.revaluation_before_settlement naming the item and the date; nothing is written', async () => {
    const b = await books('Revaluation before a settlement');
    const inv = await b.invoice();
    await b.arPayment({ date: '2026-02-05', amount: '400.00', rate: '1.20', allocations: [{ invoiceId: inv.id, amount: '400.00' }] }).expect(201);
    const before = await b.footprint();
    const res = await b.revalue('2026-01-31');
    expect([res.status, res.body.error?.code, res.body.error?.details]).toEqual([422, 'ledger.revaluation_before_settlement', { documentId: inv.id, settledOn: '2026-02-05' }]);
    expect(res.body.error.message).toContain(inv.id);
    expect(res.body.error.message).toContain('2026-02-05');
    expect(await b.footprint()).toEqual(before);
    // a bill too
    const b2 = await books('Revaluation before a bill settlement');
    const bill = await b2.bill();
    await b2.apPayment({ paymentDate: '2026-02-05', amount: '400.00', rate: '1.20', allocations: [{ billId: bill.id, amount: '400.00' }] }).expect(201);
    const before2 = await b2.footprint();
    const res2 = await b2.revalue('2026-01-31');
    expect([res2.status, res2.body.error?.code, res2.body.error?.details]).toEqual([422, 'ledger.revaluation_before_settlement', { documentId: bill.id, settledOn: '2026-02-05' }]);
    expect(await b2.footprint()).toEqual(before2);
    // as of the settlement's date: revalued (what is open then, at what it carries)
    await b2.revalue('2026-02-05').expect(201);
    await b2.expectAgingIsAp('2026-02-05', '690.00');
  });

  it('payables: an allocation reversed after a revaluation reopens the bill and the credit at what they carry (1.15): the shares as taken off, the revaluation\'s part of them as rows; aging = AP', async () => {
    const b = await books('AP reversal after revaluation');
    const bill = await b.bill();
    // paid 400.00 at 1.12 on Jan 20: the bill gives up 440.00, the payment 448.00 (a realized loss of 8.00); the credit 600.00 is left
    const paid = (await b.apPayment({ paymentDate: '2026-01-20', amount: '1000.00', rate: '1.12', allocations: [{ billId: bill.id, amount: '400.00' }] }).expect(201)).body;
    await b.revalue('2026-01-31').expect(201);
    await t.http.post(payablesUrl(b.orgId, `allocations/${paid.allocations[0].id}/reverse`)).set(owner.auth).send({ date: '2026-02-05' }).expect(201);
    const { rows } = await t.db.admin.query(`SELECT amount::numeric(20, 2)::text AS amount, bill_base_amount::numeric(20, 2)::text AS bill_base, payment_base_amount::numeric(20, 2)::text AS payment_base
      FROM finance.bill_allocations WHERE org_id = $1 AND bill_id = $2 ORDER BY allocation_date`, [b.orgId, bill.id]);
    // both carried at 1.15 since Jan 31 (bill 600.00 -> 690.00, credit 600.00 -> 690.00): reopened by 460.00 each, the
    // shares at what the allocation took off (440.00, 448.00) and the Jan 31 step of them as rows (the bill's +20.00, the credit's -12.00)
    expect(rows).toEqual([{ amount: '400.00', bill_base: '440.00', payment_base: '448.00' }, { amount: '-400.00', bill_base: '-440.00', payment_base: '-448.00' }]);
    const { rows: steps } = await t.db.admin.query(`SELECT x.document_id = $2 AS bill, x.base_delta::numeric(20, 2)::text AS delta FROM finance.fx_revaluation_items x
      WHERE x.org_id = $1 AND x.revaluation_date = '2026-02-05' ORDER BY 1 DESC`, [b.orgId, bill.id]);
    expect(steps).toEqual([{ bill: true, delta: '20.00' }, { bill: false, delta: '-12.00' }]);
    // what the bill carries: its base less its settlements plus its revaluation, EUR 1,000.00 at 1.15
    const { rows: [carried] } = await t.db.admin.query(`SELECT (b.base_total - (SELECT sum(a.bill_base_amount) FROM finance.bill_allocations a WHERE a.org_id = b.org_id AND a.bill_id = b.id)
      + (SELECT sum(x.base_delta) FROM finance.fx_revaluation_items x WHERE x.org_id = b.org_id AND x.document_id = b.id))::numeric(20, 2)::text AS base
      FROM finance.bills b WHERE b.org_id = $1 AND b.id = $2`, [b.orgId, bill.id]);
    expect(carried.base).toBe('1150.00');
    await b.expectAgingIsAp('2026-02-05', '0.00');
    expect(await b.balance('2100', '2026-02-05')).toBe('0.00');
    // the bill EUR 1,000.00 from 1.10 to 1.15 (-50.00), the credit EUR 1,000.00 from 1.12 to 1.15 (+30.00), the EUR
    // 1,000.00 paid out of the bank from 1.12 to 1.15 (-30.00), all unrealized: the reversal takes the allocation's realized
    // loss of 8.00 back (the Jan 31 step of the shares is on the unrealized accounts, not realized)
    expect(await b.fxResult('2026-02-05')).toBe('-50.00');
    expect([await b.balance('4300', '2026-02-05'), await b.balance('5500', '2026-02-05')]).toEqual(['0.00', '0.00']);
    const reversal = (await t.http.get(payablesUrl(b.orgId, `payments/${paid.id}`)).set(owner.auth).expect(200)).body.allocations.find((a: any) => a.reversesAllocationId);
    expect(reversal.fxDifference).toBe('-8.00');
  });
});
