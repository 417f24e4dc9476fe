import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { registerUser, type TestUser } from '../support/factories.js';
import { rUrl } from '../receivables/receivables-support.js';
import { payablesUrl } from '../payables/payables-support.js';
import { fxBooks } from './fx-support.js';

/**
 * FX revaluation with autoReverse and settlements around its reversal (base USD; EUR 1.10 Jan 15, 1.20 Jan 20, 1.25 Jan 25,
 * 1.15 Jan 31, 1.12 Feb 5, 1.20 Feb 10; an invoice or bill of EUR 1,000.00 on Jan 15 at 1.10):
 *  - a month-end revaluation with autoReverse after a settlement dated on or after the reversal date is posted (the
 *    reversal brings the item back first); one dated before the reversal date is still refused;
 *  - two autoReverse revaluations reversed on the same day leave the item carrying its own rate again;
 *  - an allocation of a revalued item dated before a later allocation of it is refused (AR and AP), as is a credit note of a
 *    revalued invoice, and a refund or an allocation of a revalued payment credit dated before a later use of that credit;
 *  - so is the reversal of an allocation dated before a later allocation of the revalued invoice or bill, or before a later
 *    use of the revalued payment credit (AR and AP).
 */
describe('FX revaluation with autoReverse: settlements after its reversal, reversals on one day, backdated settlements', () => {
  let t: TestApp;
  let owner: TestUser;

  beforeAll(async () => {
    t = await createTestApp();
    owner = await registerUser(t, 'owner');
  });
  afterAll(() => t.close());

  async function books(name: string) {
    const b = await fxBooks(t, owner, name, { rates: {
      '2026-01-15': '1.10', '2026-01-31': '1.15', '2026-01-20': '1.20', '2026-01-25': '1.25', '2026-02-05': '1.12', '2026-02-10': '1.20' } });
    const { orgId, balance, expectAgingIsAr, expectAgingIsAp } = b;
    const items = async (documentId: string) => (await t.db.admin.query(
      `SELECT revaluation_date::text AS date, base_delta::numeric(20, 2)::text AS delta FROM finance.fx_revaluation_items WHERE org_id = $1 AND document_id = $2 ORDER BY seq`,
      [orgId, documentId])).rows;
    const footprint = async () => (await t.db.admin.query(`SELECT
      (SELECT count(*) FROM finance.journal_entries WHERE org_id = $1)::int AS entries, (SELECT count(*) FROM finance.fx_revaluation_items WHERE org_id = $1)::int AS items,
      (SELECT count(*) FROM finance.invoices WHERE org_id = $1 AND status = 'void')::int AS void_invoices,
      (SELECT count(*) FROM finance.bills WHERE org_id = $1 AND status = 'voided')::int AS void_bills,
      (SELECT count(*) FROM core.audit_logs WHERE org_id = $1)::int AS audit`, [orgId])).rows[0];
    /** runs `check` (refused requests): nothing is written, and AR and AP (aging = control account) are as before on `dates` */
    const expectAgingUnchanged = async (dates: string[], check: () => Promise<void>) => {
      const ar = await Promise.all(dates.map((d) => balance('1200', d)));
      const ap = await Promise.all(dates.map(async (d) => (await t.http.get(payablesUrl(orgId, `aging?asOf=${d}`)).set(owner.auth).expect(200)).body.controlAccountBalance as string));
      const before = await footprint();
      await check();
      expect(await footprint()).toEqual(before);
      for (const [i, d] of dates.entries()) {
        await expectAgingIsAr(d, ar[i]);
        await expectAgingIsAp(d, ap[i]);
      }
    };
    return { ...b, items, footprint, expectAgingUnchanged };
  }

  it('a month-end revaluation with autoReverse after a payment dated after the reversal date is posted: AR = aging on Jan 31, Feb 1 and Feb 10 (0.00), FX 100.00 over the life', async () => {
    const b = await books('Revalued with autoReverse after a later payment');
    const inv = await b.invoice();
    const paid = await b.arPayment({ date: '2026-02-10', amount: '1000.00', rate: '1.20', allocations: [{ invoiceId: inv.id, amount: '1000.00' }] });
    expect([paid.status, paid.body.allocations?.[0]?.realizedFx]).toEqual([201, '100.00']);
    const reval = await b.revalue('2026-01-31', true);
    expect([reval.status, reval.body.error?.code, reval.body.reversal?.date]).toEqual([201, undefined, '2026-02-01']);
    expect(await b.items(inv.id)).toEqual([{ date: '2026-01-31', delta: '50.00' }, { date: '2026-02-01', delta: '-50.00' }]);
    await b.expectAgingIsAr('2026-01-31', '1150.00');
    await b.expectAgingIsAr('2026-02-01', '1100.00');
    await b.expectAgingIsAr('2026-02-10', '0.00');
    expect(await b.fxResult('2026-01-31')).toBe('50.00');
    expect(await b.fxResult('2026-02-28')).toBe('100.00');
    // a settlement dated before the reversal date is still in the way, with autoReverse or without
    const b2 = await books('Revalued with autoReverse before a payment in the window');
    const inv2 = await b2.invoice();
    await b2.arPayment({ date: '2026-01-25', amount: '400.00', rate: '1.25', allocations: [{ invoiceId: inv2.id, amount: '400.00' }] }).expect(201);
    const before = await b2.footprint();
    const res = await b2.revalue('2026-01-20', true);
    expect([res.status, res.body.error?.code, res.body.error?.details]).toEqual([422, 'ledger.revaluation_before_settlement', { documentId: inv2.id, settledOn: '2026-01-25' }]);
    expect(res.body.error.message).toContain('2026-02-01');
    expect(await b2.footprint()).toEqual(before);
  });

  it('two autoReverse revaluations (Jan 20 at 1.20, Jan 31 at 1.15) reversed on Feb 1 leave the item at 1.10: 400 paid Feb 5 at 1.12 realizes 8.00, AR = aging = 660.00', async () => {
    const b = await books('Two reversals on one day');
    const inv = await b.invoice();
    await b.revalue('2026-01-20', true).expect(201);
    await b.revalue('2026-01-31', true).expect(201);
    const { rows } = await t.db.admin.query(`SELECT revaluation_date::text AS date, base_delta::numeric(20, 2)::text AS delta, rate::numeric(20, 4)::text AS rate
      FROM finance.fx_revaluation_items WHERE org_id = $1 AND document_id = $2 ORDER BY seq`, [b.orgId, inv.id]);
    expect(rows).toEqual([
      { date: '2026-01-20', delta: '100.00', rate: '1.2000' }, { date: '2026-02-01', delta: '-100.00', rate: '1.1000' },
      { date: '2026-01-31', delta: '-50.00', rate: '1.1500' }, { date: '2026-02-01', delta: '50.00', rate: '1.1000' },
    ]);
    await b.expectAgingIsAr('2026-01-31', '1150.00');
    await b.expectAgingIsAr('2026-02-01', '1100.00');
    const paid = await b.arPayment({ date: '2026-02-05', amount: '400.00', rate: '1.12', allocations: [{ invoiceId: inv.id, amount: '400.00' }] });
    expect([paid.status, paid.body.allocations?.[0]?.realizedFx]).toEqual([201, '8.00']);
    const { rows: [allocation] } = await t.db.admin.query(`SELECT invoice_base::numeric(20, 2)::text AS invoice_base FROM finance.receivable_allocations
      WHERE org_id = $1 AND invoice_id = $2`, [b.orgId, inv.id]);
    expect(allocation).toEqual({ invoice_base: '440.00' });
    await b.expectAgingIsAr('2026-02-05', '660.00');
    expect(await b.fxResult('2026-02-05')).toBe('8.00');
  });

  it('an allocation of a revalued invoice or bill dated before a later allocation of it is 422 before_later_settlement naming that date; nothing is written', async () => {
    const b = await books('Backdated payment of a revalued invoice');
    const inv = await b.invoice();
    await b.revalue('2026-01-31', true).expect(201);
    await b.arPayment({ date: '2026-02-05', amount: '400.00', rate: '1.12', allocations: [{ invoiceId: inv.id, amount: '400.00' }] }).expect(201);
    const before = await b.footprint();
    const res = await b.arPayment({ date: '2026-01-31', amount: '600.00', rate: '1.15', allocations: [{ invoiceId: inv.id, amount: '600.00' }] });
    expect([res.status, res.body.error?.code, res.body.error?.details]).toEqual([422, 'receivables.before_later_settlement', { documentId: inv.id, settledOn: '2026-02-05' }]);
    expect(res.body.error.message).toContain('2026-02-05');
    expect(await b.footprint()).toEqual(before);
    await b.expectAgingIsAr('2026-01-31', '1150.00');
    await b.expectAgingIsAr('2026-02-05', '660.00');
    // dated on the later allocation's date: recorded
    const ok = await b.arPayment({ date: '2026-02-05', amount: '600.00', rate: '1.12', allocations: [{ invoiceId: inv.id, amount: '600.00' }] });
    expect([ok.status, ok.body.allocations?.[0]?.realizedFx]).toEqual([201, '12.00']);
    await b.expectAgingIsAr('2026-02-05', '0.00');

    const b2 = await books('Backdated payment of a revalued bill');
    const bill = await b2.bill();
    await b2.revalue('2026-01-31', true).expect(201);
    await b2.apPayment({ paymentDate: '2026-02-05', amount: '400.00', rate: '1.12', allocations: [{ billId: bill.id, amount: '400.00' }] }).expect(201);
    const before2 = await b2.footprint();
    const res2 = await b2.apPayment({ paymentDate: '2026-01-31', amount: '600.00', rate: '1.15', allocations: [{ billId: bill.id, amount: '600.00' }] });
    expect([res2.status, res2.body.error?.code, res2.body.error?.details]).toEqual([422, 'payables.before_later_settlement', { documentId: bill.id, settledOn: '2026-02-05' }]);
    expect(res2.body.error.message).toContain('2026-02-05');
    expect(await b2.footprint()).toEqual(before2);
    await b2.expectAgingIsAp('2026-01-31', '1150.00');
    await b2.expectAgingIsAp('2026-02-05', '660.00');
  });

  it('a credit note of a revalued invoice dated before a later allocation of it is 422 before_later_settlement naming that date; nothing is written', async () => {
    const b = await books('Backdated credit note of a revalued invoice');
    const inv = await b.invoice();
    await b.revalue('2026-01-31', true).expect(201);
    await b.arPayment({ date: '2026-02-05', amount: '400.00', rate: '1.12', allocations: [{ invoiceId: inv.id, amount: '400.00' }] }).expect(201);
    const before = await b.footprint();
    const res = await t.http.post(rUrl(b.orgId, `invoices/${inv.id}/credit-notes`)).set(owner.auth).send({ date: '2026-01-31', lines: [{ lineNo: 1, quantity: '0.5' }] });
    expect([res.status, res.body.error?.code, res.body.error?.details]).toEqual([422, 'receivables.before_later_settlement', { documentId: inv.id, settledOn: '2026-02-05' }]);
    expect(res.body.error.message).toContain('2026-02-05');
    expect(await b.footprint()).toEqual(before);
    await b.expectAgingIsAr('2026-01-31', '1150.00');
    await b.expectAgingIsAr('2026-02-05', '660.00');
    // dated on the later allocation's date: issued
    await t.http.post(rUrl(b.orgId, `invoices/${inv.id}/credit-notes`)).set(owner.auth).send({ date: '2026-02-05', lines: [{ lineNo: 1, quantity: '0.5' }] }).expect(201);
    await b.expectAgingIsAr('2026-02-05', '110.00');
  });

  it('a refund or an allocation of a revalued payment credit dated before a later use of it is 422 before_later_settlement (AR and AP); nothing is written', async () => {
    const b = await books('Backdated use of a revalued customer credit');
    const [inv, inv2] = [await b.invoice(), await b.invoice()];
    const pay = await b.arPayment({ date: '2026-01-15', amount: '1000.00', rate: '1.10', allocations: [] }).expect(201);
    await b.revalue('2026-01-31', true).expect(201);
    expect((await b.items(pay.body.id)).length).toBe(2);
    await t.http.post(rUrl(b.orgId, `payments/${pay.body.id}/allocations`)).set(owner.auth).send({ date: '2026-02-05', allocations: [{ invoiceId: inv.id, amount: '400.00' }] }).expect(201);
    await b.expectAgingUnchanged(['2026-01-31', '2026-02-05'], async () => {
      const refund = await t.http.post(rUrl(b.orgId, `payments/${pay.body.id}/refunds`)).set(owner.auth).send({ date: '2026-01-31', amount: '100.00' });
      expect([refund.status, refund.body.error?.code, refund.body.error?.details]).toEqual([422, 'receivables.before_later_settlement', { documentId: pay.body.id, settledOn: '2026-02-05' }]);
      expect(refund.body.error.message).toContain('2026-02-05');
      const used = await t.http.post(rUrl(b.orgId, `payments/${pay.body.id}/allocations`)).set(owner.auth).send({ date: '2026-01-31', allocations: [{ invoiceId: inv2.id, amount: '100.00' }] });
      expect([used.status, used.body.error?.code, used.body.error?.details]).toEqual([422, 'receivables.before_later_settlement', { documentId: pay.body.id, settledOn: '2026-02-05' }]);
      expect(used.body.error.message).toContain('2026-02-05');
    });
    // dated on the later use's date: refunded
    await t.http.post(rUrl(b.orgId, `payments/${pay.body.id}/refunds`)).set(owner.auth).send({ date: '2026-02-05', amount: '100.00' }).expect(201);

    const b2 = await books('Backdated use of a revalued vendor credit');
    const [bill, bill2] = [await b2.bill(), await b2.bill()];
    const credit = await b2.apPayment({ paymentDate: '2026-01-15', amount: '1000.00', rate: '1.10', allocations: [] }).expect(201);
    await b2.revalue('2026-01-31', true).expect(201);
    expect((await b2.items(credit.body.id)).length).toBe(2);
    await t.http.post(payablesUrl(b2.orgId, `payments/${credit.body.id}/allocations`)).set(owner.auth).send({ date: '2026-02-05', billId: bill.id, amount: '400.00' }).expect(201);
    await b2.expectAgingUnchanged(['2026-01-31', '2026-02-05'], async () => {
      const refund = await t.http.post(payablesUrl(b2.orgId, `payments/${credit.body.id}/refunds`)).set(owner.auth).send({ date: '2026-01-31', amount: '100.00' });
      expect([refund.status, refund.body.error?.code, refund.body.error?.details]).toEqual([422, 'payables.before_later_settlement', { documentId: credit.body.id, settledOn: '2026-02-05' }]);
      expect(refund.body.error.message).toContain('2026-02-05');
      const used = await t.http.post(payablesUrl(b2.orgId, `payments/${credit.body.id}/allocations`)).set(owner.auth).send({ date: '2026-01-31', billId: bill2.id, amount: '100.00' });
      expect([used.status, used.body.error?.code, used.body.error?.details]).toEqual([422, 'payables.before_later_settlement', { documentId: credit.body.id, settledOn: '2026-02-05' }]);
      expect(used.body.error.message).toContain('2026-02-05');
    });
    await t.http.post(payablesUrl(b2.orgId, `payments/${credit.body.id}/refunds`)).set(owner.auth).send({ date: '2026-02-05', amount: '100.00' }).expect(201);
  });

  it('the reversal of an allocation dated before a later allocation of the revalued invoice or bill is 422 before_later_settlement (AR and AP); nothing is written', async () => {
    const b = await books('Backdated reversal on a revalued invoice');
    const inv = await b.invoice();
    await b.revalue('2026-01-31', true).expect(201);
    const first = await b.arPayment({ date: '2026-02-01', amount: '300.00', rate: '1.15', allocations: [{ invoiceId: inv.id, amount: '300.00' }] }).expect(201);
    await b.arPayment({ date: '2026-02-05', amount: '400.00', rate: '1.12', allocations: [{ invoiceId: inv.id, amount: '400.00' }] }).expect(201);
    const { rows: [allocation] } = await t.db.admin.query(`SELECT id FROM finance.receivable_allocations WHERE org_id = $1 AND payment_id = $2`, [b.orgId, first.body.id]);
    await b.expectAgingUnchanged(['2026-02-01', '2026-02-05'], async () => {
      const res = await t.http.post(rUrl(b.orgId, `allocations/${allocation.id}/reverse`)).set(owner.auth).send({ date: '2026-02-01' });
      expect([res.status, res.body.error?.code, res.body.error?.details]).toEqual([422, 'receivables.before_later_settlement', { documentId: inv.id, settledOn: '2026-02-05' }]);
      expect(res.body.error.message).toContain('2026-02-05');
    });
    await b.expectAgingIsAr('2026-02-05', '330.00');
    // dated on the later allocation's date: reversed, the 300.00 open again at the rate the invoice has then (+330.00 at
    // 1.10) and a credit of the payment again at its own rate (-345.00 at 1.15)
    await t.http.post(rUrl(b.orgId, `allocations/${allocation.id}/reverse`)).set(owner.auth).send({ date: '2026-02-05' }).expect(201);
    await b.expectAgingIsAr('2026-02-05', '315.00');

    const b2 = await books('Backdated reversal on a revalued bill');
    const bill = await b2.bill();
    await b2.revalue('2026-01-31', true).expect(201);
    const paid = await b2.apPayment({ paymentDate: '2026-02-01', amount: '300.00', rate: '1.15', allocations: [{ billId: bill.id, amount: '300.00' }] }).expect(201);
    await b2.apPayment({ paymentDate: '2026-02-05', amount: '400.00', rate: '1.12', allocations: [{ billId: bill.id, amount: '400.00' }] }).expect(201);
    const { rows: [billAllocation] } = await t.db.admin.query(`SELECT id FROM finance.bill_allocations WHERE org_id = $1 AND payment_id = $2`, [b2.orgId, paid.body.id]);
    await b2.expectAgingUnchanged(['2026-02-01', '2026-02-05'], async () => {
      const res = await t.http.post(payablesUrl(b2.orgId, `allocations/${billAllocation.id}/reverse`)).set(owner.auth).send({ date: '2026-02-01' });
      expect([res.status, res.body.error?.code, res.body.error?.details]).toEqual([422, 'payables.before_later_settlement', { documentId: bill.id, settledOn: '2026-02-05' }]);
      expect(res.body.error.message).toContain('2026-02-05');
    });
    await b2.expectAgingIsAp('2026-02-05', '330.00');
    await t.http.post(payablesUrl(b2.orgId, `allocations/${billAllocation.id}/reverse`)).set(owner.auth).send({ date: '2026-02-05' }).expect(201);
    await b2.expectAgingIsAp('2026-02-05', '315.00');
  });

  it('the reversal of an allocation of a revalued payment credit dated before a later use of that credit is 422 before_later_settlement (AR and AP); nothing is written', async () => {
    const b = await books('Backdated reversal of a use of a revalued customer credit');
    const [inv, inv2] = [await b.invoice(), await b.invoice()];
    const pay = await b.arPayment({ date: '2026-01-15', amount: '1000.00', rate: '1.10', allocations: [] }).expect(201);
    await b.revalue('2026-01-31', true).expect(201);
    await t.http.post(rUrl(b.orgId, `payments/${pay.body.id}/allocations`)).set(owner.auth).send({ date: '2026-02-01', allocations: [{ invoiceId: inv.id, amount: '300.00' }] }).expect(201);
    await t.http.post(rUrl(b.orgId, `payments/${pay.body.id}/allocations`)).set(owner.auth).send({ date: '2026-02-05', allocations: [{ invoiceId: inv2.id, amount: '400.00' }] }).expect(201);
    const { rows: [allocation] } = await t.db.admin.query(`SELECT id FROM finance.receivable_allocations WHERE org_id = $1 AND invoice_id = $2`, [b.orgId, inv.id]);
    await b.expectAgingUnchanged(['2026-02-01', '2026-02-05'], async () => {
      const res = await t.http.post(rUrl(b.orgId, `allocations/${allocation.id}/reverse`)).set(owner.auth).send({ date: '2026-02-01' });
      expect([res.status, res.body.error?.code, res.body.error?.details]).toEqual([422, 'receivables.before_later_settlement', { documentId: pay.body.id, settledOn: '2026-02-05' }]);
      expect(res.body.error.message).toContain('2026-02-05');
    });
    // dated on the later use's date: reversed
    await t.http.post(rUrl(b.orgId, `allocations/${allocation.id}/reverse`)).set(owner.auth).send({ date: '2026-02-05' }).expect(201);
    await b.expectAgingIsAr('2026-02-05', await b.balance('1200', '2026-02-05'));

    const b2 = await books('Backdated reversal of a use of a revalued vendor credit');
    const [bill, bill2] = [await b2.bill(), await b2.bill()];
    const credit = await b2.apPayment({ paymentDate: '2026-01-15', amount: '1000.00', rate: '1.10', allocations: [] }).expect(201);
    await b2.revalue('2026-01-31', true).expect(201);
    await t.http.post(payablesUrl(b2.orgId, `payments/${credit.body.id}/allocations`)).set(owner.auth).send({ date: '2026-02-01', billId: bill.id, amount: '300.00' }).expect(201);
    await t.http.post(payablesUrl(b2.orgId, `payments/${credit.body.id}/allocations`)).set(owner.auth).send({ date: '2026-02-05', billId: bill2.id, amount: '400.00' }).expect(201);
    const { rows: [billAllocation] } = await t.db.admin.query(`SELECT id FROM finance.bill_allocations WHERE org_id = $1 AND bill_id = $2`, [b2.orgId, bill.id]);
    await b2.expectAgingUnchanged(['2026-02-01', '2026-02-05'], async () => {
      const res = await t.http.post(payablesUrl(b2.orgId, `allocations/${billAllocation.id}/reverse`)).set(owner.auth).send({ date: '2026-02-01' });
      expect([res.status, res.body.error?.code, res.body.error?.details]).toEqual([422, 'payables.before_later_settlement', { documentId: credit.body.id, settledOn: '2026-02-05' }]);
      expect(res.body.error.message).toContain('2026-02-05');
    });
    await t.http.post(payablesUrl(b2.orgId, `allocations/${billAllocation.id}/reverse`)).set(owner.auth).send({ date: '2026-02-05' }).expect(201);
    const ap = (await t.http.get(payablesUrl(b2.orgId, 'aging?asOf=2026-02-05')).set(owner.auth).expect(200)).body;
    expect(ap.total).toBe(ap.controlAccountBalance);
  });
});
