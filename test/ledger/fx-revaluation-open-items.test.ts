import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { registerUser, type TestUser } from '../support/factories.js';
import { expectOpenAmountsKept, issueInvoice, rUrl } from '../receivables/receivables-support.js';
import { createVendor, payablesUrl } from '../payables/payables-support.js';
import { ledgerUrl } from './ledger-support.js';
import { fxLedger, setupPayables } from './fx-support.js';

/**
 * FX revaluation of open receivables and payables, worked by hand (base USD; EUR 1.10 on Jan 15, 1.15 on Jan 31, 1.20 on Feb 10):
 *  Jan 15 invoice EUR 1,000 at 1.10                  Dr AR 1,100.00                  Cr Sales 1,100.00
 *  Jan 31 revaluation at 1.15                        Dr AR 50.00 (base only)         Cr Unrealized FX gain 50.00
 *  (autoReverse: Feb 1 its reversal                  Dr Unrealized FX gain 50.00     Cr AR 50.00)
 *  Feb 10 payment EUR 1,000 at 1.20                  Dr Cash 1,200.00                Cr AR 1,150.00 (1,100.00 reversed), Cr FX gain 50.00 (100.00)
 * Total gain over the invoice's life (1.20 - 1.10) x 1,000 = 100.00 either way, AR 0 after the payment, and the aging
 * (base) equals the AR account on every day. A vendor bill is the same with the signs reversed (losses, AP).
 */
describe('FX revaluation of open items: the agings follow the control accounts, the gain is counted once', () => {
  let t: TestApp;
  let owner: TestUser;

  beforeAll(async () => {
    t = await createTestApp();
    owner = await registerUser(t, 'owner');
  });
  afterAll(() => t.close());

  async function books(name: string) {
    const b = await fxLedger(t, owner, name, { payables: false });
    const { orgId } = b;
    const revalue = async (date: string, autoReverse: boolean) => (await b.revalue(date, autoReverse).expect(201)).body;
    const items = async () => (await t.db.admin.query(
      `SELECT subledger, document_id::text, revaluation_date::text AS date, rate::numeric(10, 4)::text AS rate, base_delta::numeric(20, 2)::text AS delta
       FROM finance.fx_revaluation_items WHERE org_id = $1 ORDER BY seq`, [orgId])).rows;
    return { ...b, revalue, items };
  }

  for (const autoReverse of [false, true]) {
    it(`receivables${autoReverse ? ' (autoReverse)' : ''}: aging equals AR at every step, realized gain only since the revaluation, 100.00 in total`, async () => {
      const { orgId, acc, balance, revalue, items, arAging: agingTotal } = await books(`AR revalued ${autoReverse}`);
      const customer = (await t.http.post(rUrl(orgId, 'customers')).set(owner.auth).send({ name: 'Euro GmbH', defaultCurrency: 'EUR' }).expect(201)).body.id;
      const expectAgingIsAr = async (asOf: string, want: string) => {
        expect({ asOf, ar: await balance('1200', asOf), aging: await agingTotal(asOf) }).toEqual({ asOf, ar: want, aging: want });
      };

      const inv = await issueInvoice(t, orgId, owner, { customerId: customer, invoiceDate: '2026-01-15',
        lines: [{ description: 'Licence', quantity: '1', unitPrice: '1000.00', revenueAccountId: acc['4100'] }] });
      expect(inv).toMatchObject({ currency: 'EUR', rate: '1.1000000000', total: '1000.00' });
      await expectAgingIsAr('2026-01-15', '1100.00');

      const reval = await revalue('2026-01-31', autoReverse);
      expect(reval.adjustments).toEqual([expect.objectContaining({ accountId: acc['1200'], currency: 'EUR', balance: '1000.00', baseBefore: '1100.00', baseAfter: '1150.00', difference: '50.00' })]);
      expect(reval.entry.lines.map((l: any) => [l.accountCode, l.baseDebit, l.baseCredit])).toEqual([['1200', '50.00', '0.00'], ['4310', '0.00', '50.00']]);
      await expectAgingIsAr('2026-01-31', '1150.00');
      await expectAgingIsAr('2026-02-01', autoReverse ? '1100.00' : '1150.00');
      await expectOpenAmountsKept(t, orgId);
      // reversed alone, the AR account would leave the aging: refused, as a document's entry is
      const refused = await t.http.post(ledgerUrl(orgId, `journal-entries/${reval.entry.id}/reverse`)).set(owner.auth).send({});
      expect([refused.status, refused.body.error.code]).toEqual([422, 'ledger.entry_of_document']);
      // revalued again as of the same date: each item is already carried at the rate
      expect((await revalue('2026-01-31', false)).entry).toBeNull();
      expect(await items()).toEqual([
        { subledger: 'receivables', document_id: inv.id, date: '2026-01-31', rate: '1.1500', delta: '50.00' },
        ...(autoReverse ? [{ subledger: 'receivables', document_id: inv.id, date: '2026-02-01', rate: '1.1000', delta: '-50.00' }] : [])]);

      const pay = await t.http.post(rUrl(orgId, 'payments')).set(owner.auth).send({ customerId: customer, date: '2026-02-10', amount: '1000.00', currency: 'EUR',
        depositAccountId: acc['1100'], method: 'bank_transfer', allocations: [{ invoiceId: inv.id, amount: '1000.00' }] }).expect(201);
      const realized = autoReverse ? '100.00' : '50.00';
      expect(pay.body).toMatchObject({ rate: '1.2000000000', allocations: [expect.objectContaining({ invoiceId: inv.id, realizedFx: realized })] });
      const entry = (await t.http.get(ledgerUrl(orgId, `journal-entries/${pay.body.entryId}`)).set(owner.auth).expect(200)).body;
      expect(entry.lines.map((l: any) => [l.accountCode, l.baseDebit, l.baseCredit])).toEqual([
        ['1100', '1200.00', '0.00'], ['1200', '0.00', autoReverse ? '1100.00' : '1150.00'], ['4300', '0.00', realized]]);
      const { rows: [allocation] } = await t.db.admin.query(
        `SELECT invoice_base::numeric(20, 2)::text AS invoice_base, source_base::numeric(20, 2)::text AS source_base FROM finance.receivable_allocations WHERE org_id = $1`, [orgId]);
      expect(allocation).toEqual({ invoice_base: autoReverse ? '1100.00' : '1150.00', source_base: '1200.00' });
      await expectAgingIsAr('2026-02-10', '0.00');
      // the whole gain once: realized + unrealized = (1.20 - 1.10) x 1,000
      expect([await balance('4300', '2026-02-28'), await balance('4310', '2026-02-28')]).toEqual([`-${realized}`, autoReverse ? '0.00' : '-50.00']);
      expect((await revalue('2026-02-28', false)).entry).toBeNull();
      const { rows: [open] } = await t.db.admin.query(`SELECT open_base::numeric(20, 2)::text AS open_base FROM finance.receivable_open_amounts WHERE org_id = $1 AND document_id = $2`, [orgId, inv.id]);
      expect(open.open_base).toBe('0.00');
      await expectOpenAmountsKept(t, orgId);
    });

    it(`payables${autoReverse ? ' (autoReverse)' : ''}: aging equals AP at every step, realized loss only since the revaluation, 100.00 in total`, async () => {
      const { orgId, acc, balance, revalue, items } = await books(`AP revalued ${autoReverse}`);
      await setupPayables(t, orgId, owner, acc);
      const vendor = await createVendor(t, orgId, owner, { name: 'Euro Supplies', defaultCurrency: 'EUR' });
      const aging = async (asOf: string) => (await t.http.get(payablesUrl(orgId, `aging?asOf=${asOf}`)).set(owner.auth).expect(200)).body;
      const expectAgingIsAp = async (asOf: string, want: string) => {
        const a = await aging(asOf);
        expect({ asOf, ap: a.controlAccountBalance, aging: a.total }).toEqual({ asOf, ap: want, aging: want });
        expect(await balance('2100', asOf)).toBe(want === '0.00' ? '0.00' : `-${want}`);
      };

      const draft = await t.http.post(payablesUrl(orgId, 'bills')).set(owner.auth).send({ vendorId: vendor, billDate: '2026-01-15', currency: 'EUR',
        lines: [{ accountId: acc['5200'], unitPrice: '1000.00' }] }).expect(201);
      const bill = (await t.http.post(payablesUrl(orgId, `bills/${draft.body.id}/submit`)).set(owner.auth).send({}).expect(200)).body;
      expect(bill).toMatchObject({ status: 'posted', rate: '1.1000000000' });
      await expectAgingIsAp('2026-01-15', '1100.00');

      const reval = await revalue('2026-01-31', autoReverse);
      expect(reval.adjustments).toEqual([expect.objectContaining({ accountId: acc['2100'], currency: 'EUR', balance: '-1000.00', baseBefore: '-1100.00', baseAfter: '-1150.00', difference: '-50.00' })]);
      expect(reval.entry.lines.map((l: any) => [l.accountCode, l.baseDebit, l.baseCredit])).toEqual([['2100', '0.00', '50.00'], ['5510', '50.00', '0.00']]);
      await expectAgingIsAp('2026-01-31', '1150.00');
      await expectAgingIsAp('2026-02-01', autoReverse ? '1100.00' : '1150.00');
      expect((await revalue('2026-01-31', false)).entry).toBeNull();
      expect(await items()).toEqual([
        { subledger: 'payables', document_id: bill.id, date: '2026-01-31', rate: '1.1500', delta: '50.00' },
        ...(autoReverse ? [{ subledger: 'payables', document_id: bill.id, date: '2026-02-01', rate: '1.1000', delta: '-50.00' }] : [])]);

      const pay = await t.http.post(payablesUrl(orgId, 'payments')).set(owner.auth).send({ vendorId: vendor, paymentDate: '2026-02-10', amount: '1000.00', currency: 'EUR',
        bankAccountId: acc['1100'], allocations: [{ billId: bill.id, amount: '1000.00' }] }).expect(201);
      const realized = autoReverse ? '100.00' : '50.00';
      expect(pay.body).toMatchObject({ rate: '1.2000000000', allocations: [expect.objectContaining({ billBaseAmount: autoReverse ? '1100.00' : '1150.00', paymentBaseAmount: '1200.00', fxDifference: realized })] });
      const entry = (await t.http.get(ledgerUrl(orgId, `journal-entries/${pay.body.journalEntryId}`)).set(owner.auth).expect(200)).body;
      expect(entry.lines.map((l: any) => [l.accountCode, l.baseDebit, l.baseCredit])).toEqual([
        ['2100', autoReverse ? '1100.00' : '1150.00', '0.00'], ['5500', realized, '0.00'], ['1100', '0.00', '1200.00']]);
      const { rows: [allocation] } = await t.db.admin.query(
        `SELECT bill_base_amount::numeric(20, 2)::text AS bill_base, payment_base_amount::numeric(20, 2)::text AS payment_base FROM finance.bill_allocations WHERE org_id = $1`, [orgId]);
      expect(allocation).toEqual({ bill_base: autoReverse ? '1100.00' : '1150.00', payment_base: '1200.00' });
      await expectAgingIsAp('2026-02-10', '0.00');
      expect([await balance('5500', '2026-02-28'), await balance('5510', '2026-02-28')]).toEqual([realized, autoReverse ? '0.00' : '50.00']);
      expect((await revalue('2026-02-28', false)).entry).toBeNull();
    });
  }

  it('a payment credit revalued and allocated later: settled at what it carries; the allocation entry is at the payment rate, not the rate table', async () => {
    const { orgId, acc, balance, revalue, arAging: agingTotal } = await books('AR credit revalued');
    const customer = (await t.http.post(rUrl(orgId, 'customers')).set(owner.auth).send({ name: 'Credit GmbH', defaultCurrency: 'EUR' }).expect(201)).body.id;
    // paid in advance at the bank's 1.12 (no table rate that day), revalued at 1.15 (credit 1,120.00 -> 1,150.00: a loss of 30.00)
    const pay = await t.http.post(rUrl(orgId, 'payments')).set(owner.auth).send({ customerId: customer, date: '2026-01-20', amount: '1000.00', currency: 'EUR', rate: '1.12',
      depositAccountId: acc['1100'], method: 'bank_transfer' }).expect(201);
    const reval = await revalue('2026-01-31', false);
    // the EUR cash (1,000.00 at 1.12) gains 30.00 as well, as one balance
    // (the pairs of lines come in account id order)
    expect(reval.entry.lines.map((l: any) => [l.accountCode, l.baseDebit, l.baseCredit]).sort()).toEqual([['1100', '30.00', '0.00'], ['1200', '0.00', '30.00'], ['4310', '0.00', '30.00'], ['5510', '30.00', '0.00']]);
    expect([await balance('1200', '2026-01-31'), await agingTotal('2026-01-31')]).toEqual(['-1150.00', '-1150.00']);
    const inv = await issueInvoice(t, orgId, owner, { customerId: customer, invoiceDate: '2026-02-10',
      lines: [{ description: 'Licence', quantity: '1', unitPrice: '1000.00', revenueAccountId: acc['4100'] }] });
    const allocated = await t.http.post(rUrl(orgId, `payments/${pay.body.id}/allocations`)).set(owner.auth)
      .send({ date: '2026-02-10', allocations: [{ invoiceId: inv.id, amount: '1000.00' }] }).expect(201);
    // the credit carries 1,150.00, the invoice 1,200.00: a realized loss of 50.00
    expect(allocated.body.allocations).toEqual([expect.objectContaining({ invoiceId: inv.id, realizedFx: '-50.00' })]);
    const entryId = allocated.body.allocations[0].entryId;
    const { rows } = await t.db.admin.query(
      `SELECT a.code, l.rate::numeric(10, 4)::text AS rate, l.base_debit::numeric(20, 2)::text AS bd, l.base_credit::numeric(20, 2)::text AS bc
       FROM finance.journal_lines l JOIN finance.accounts a ON a.org_id = l.org_id AND a.id = l.account_id WHERE l.org_id = $1 AND l.entry_id = $2 ORDER BY l.line_no`, [orgId, entryId]);
    expect(rows).toEqual([
      { code: '1200', rate: '1.1200', bd: '1150.00', bc: '0.00' }, { code: '1200', rate: '1.1200', bd: '0.00', bc: '1200.00' }, { code: '5500', rate: '1.0000', bd: '50.00', bc: '0.00' }]);
    expect([await balance('1200', '2026-02-10'), await agingTotal('2026-02-10')]).toEqual(['0.00', '0.00']);
    await expectOpenAmountsKept(t, orgId);
  });
});
