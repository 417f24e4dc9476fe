import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { addMember, createOrg, onPlan, registerUser, type TestUser } from '../support/factories.js';
import { ledgerUrl, startBooks } from '../ledger/ledger-support.js';
import { createVendor, payablesUrl } from './payables-support.js';

/**
 * A bill payment and a vendor refund take the client's rate (the bank's), as a customer payment does; an allocation
 * made later posts its FX result at the payment's rate, not the rate table's of its date. Base USD, EUR 1.10 from Jan 15:
 *  Jan 10 payment EUR 1,000 at the client's 1.30 (no table rate yet)   Dr AP 1,300.00 (credit)   Cr Cash 1,300.00
 *  Jan 15 bill EUR 1,000 at 1.10                                        Dr Rent 1,100.00          Cr AP 1,100.00
 *  Jan 25 the credit allocated to the bill: loss 200.00                 Dr FX loss 200.00         Cr AP 200.00 (base only, at 1.30)
 */
describe('payables: the client rate of payments and refunds; the allocation FX entry at the payment rate', () => {
  let t: TestApp;
  let owner: TestUser;
  let orgId: string;
  let acc: Record<string, string>;
  let vendor: string;

  beforeAll(async () => {
    t = await createTestApp();
    owner = await registerUser(t, 'owner');
    orgId = await createOrg(t, owner, 'Client Rate Inc');
    await onPlan(t, orgId, 'professional');
    acc = await startBooks(t, orgId, owner, 'USD');
    await t.http.put(payablesUrl(orgId, 'settings')).set(owner.auth).send({ apAccountId: acc['2100'], approvalRules: [{ above: '0', approvals: 0, roles: ['owner'] }] }).expect(200);
    await t.http.post(ledgerUrl(orgId, 'fx-rates/import')).set(owner.auth).send({ rates: [{ currency: 'EUR', date: '2026-01-15', rate: '1.10' }] }).expect(201);
    vendor = await createVendor(t, orgId, owner, { name: 'Euro Rent' });
  });
  afterAll(() => t.close());

  const lines = async (entryId: string) => (await t.db.admin.query(
    `SELECT a.code, l.currency, l.rate::numeric(10, 4)::text AS rate, l.base_debit::numeric(20, 2)::text AS bd, l.base_credit::numeric(20, 2)::text AS bc
     FROM finance.journal_lines l JOIN finance.accounts a ON a.org_id = l.org_id AND a.id = l.account_id WHERE l.org_id = $1 AND l.entry_id = $2 ORDER BY l.line_no`, [orgId, entryId])).rows;

  it('a payment at the client rate (none in the table that day), a later allocation whose FX entry is at that rate, a refund at the client rate', async () => {
    const pay = await t.http.post(payablesUrl(orgId, 'payments')).set(owner.auth).send({ vendorId: vendor, paymentDate: '2026-01-10', amount: '1500.00', currency: 'EUR', rate: '1.30',
      bankAccountId: acc['1100'] }).expect(201);
    expect(pay.body).toMatchObject({ rate: '1.3000000000', baseAmount: '1950.00', unallocated: '1500.00' });
    expect(await lines(pay.body.journalEntryId)).toEqual([
      { code: '2100', currency: 'EUR', rate: '1.3000', bd: '1950.00', bc: '0.00' }, { code: '1100', currency: 'EUR', rate: '1.3000', bd: '0.00', bc: '1950.00' }]);
    const { rows: [stored] } = await t.db.admin.query(`SELECT rate::numeric(10, 4)::text AS rate, base_amount::numeric(20, 2)::text AS base FROM finance.bill_payments WHERE org_id = $1 AND id = $2`, [orgId, pay.body.id]);
    expect(stored).toEqual({ rate: '1.3000', base: '1950.00' });

    const draft = await t.http.post(payablesUrl(orgId, 'bills')).set(owner.auth).send({ vendorId: vendor, billDate: '2026-01-15', currency: 'EUR',
      lines: [{ accountId: acc['5200'], unitPrice: '1000.00' }] }).expect(201);
    const bill = (await t.http.post(payablesUrl(orgId, `bills/${draft.body.id}/submit`)).set(owner.auth).send({}).expect(200)).body;
    const allocated = await t.http.post(payablesUrl(orgId, `payments/${pay.body.id}/allocations`)).set(owner.auth).send({ billId: bill.id, amount: '1000.00', date: '2026-01-25' }).expect(201);
    const allocation = allocated.body.allocations[0];
    expect(allocation).toMatchObject({ billBaseAmount: '1100.00', paymentBaseAmount: '1300.00', fxDifference: '200.00' });
    // the AP line of the FX result at the payment's 1.30, not the table's 1.10 of Jan 25
    expect(await lines(allocation.journalEntryId)).toEqual([
      { code: '5500', currency: 'USD', rate: '1.0000', bd: '200.00', bc: '0.00' }, { code: '2100', currency: 'EUR', rate: '1.3000', bd: '0.00', bc: '200.00' }]);

    // the vendor pays the rest back at the bank's 1.05: the credit carried 650.00, the bank got 525.00
    const refunded = await t.http.post(payablesUrl(orgId, `payments/${pay.body.id}/refunds`)).set(owner.auth)
      .send({ amount: '500.00', date: '2026-01-28', rate: '1.05' }).expect(201);
    const refund = refunded.body.refunds[0];
    expect(refund).toMatchObject({ rate: '1.0500000000', paymentBaseAmount: '650.00' });
    expect(await lines(refund.journalEntryId)).toEqual([
      { code: '1100', currency: 'EUR', rate: '1.0500', bd: '525.00', bc: '0.00' }, { code: '2100', currency: 'EUR', rate: '1.3000', bd: '0.00', bc: '650.00' },
      { code: '5500', currency: 'USD', rate: '1.0000', bd: '125.00', bc: '0.00' }]);
    const aging = (await t.http.get(payablesUrl(orgId, 'aging?asOf=2026-01-31')).set(owner.auth).expect(200)).body;
    expect([aging.total, aging.controlAccountBalance]).toEqual(['0.00', '0.00']);
  });

  it('a bill at the client rate: kept with the draft, posted at it; a base-currency bill ignores it', async () => {
    const draft = await t.http.post(payablesUrl(orgId, 'bills')).set(owner.auth).send({ vendorId: vendor, billDate: '2026-02-02', currency: 'EUR', rate: '1.25',
      lines: [{ accountId: acc['5200'], unitPrice: '400.00' }] }).expect(201);
    expect(draft.body).toMatchObject({ status: 'draft', rate: '1.2500000000' });
    const bill = (await t.http.post(payablesUrl(orgId, `bills/${draft.body.id}/submit`)).set(owner.auth).send({}).expect(200)).body;
    expect(bill).toMatchObject({ status: 'posted', rate: '1.2500000000' });
    const { rows: [stored] } = await t.db.admin.query(`SELECT rate::numeric(10, 4)::text AS rate, base_total::numeric(20, 2)::text AS base, journal_entry_id::text AS entry FROM finance.bills WHERE org_id = $1 AND id = $2`, [orgId, bill.id]);
    expect(stored).toMatchObject({ rate: '1.2500', base: '500.00' });
    expect(await lines(stored.entry)).toEqual([
      { code: '5200', currency: 'EUR', rate: '1.2500', bd: '500.00', bc: '0.00' }, { code: '2100', currency: 'EUR', rate: '1.2500', bd: '0.00', bc: '500.00' }]);
    const usd = await t.http.post(payablesUrl(orgId, 'bills')).set(owner.auth).send({ vendorId: vendor, billDate: '2026-02-02', currency: 'USD', rate: '1.25',
      lines: [{ accountId: acc['5200'], unitPrice: '10.00' }] }).expect(201);
    expect(usd.body.rate).toBeNull();
    const aging = (await t.http.get(payablesUrl(orgId, 'aging?asOf=2026-02-02')).set(owner.auth).expect(200)).body;
    expect([aging.total, aging.controlAccountBalance]).toEqual(['500.00', '500.00']);
  });

  it('the rate is validated as a customer payment\'s: a malformed one is a 400, one of zero is refused by the posting', async () => {
    const bad = await t.http.post(payablesUrl(orgId, 'payments')).set(owner.auth).send({ vendorId: vendor, paymentDate: '2026-01-20', amount: '10.00', currency: 'EUR', rate: '1,2',
      bankAccountId: acc['1100'] }).expect(400);
    expect(bad.body.error.code).toBe('validation_failed');
    const zero = await t.http.post(payablesUrl(orgId, 'payments')).set(owner.auth).send({ vendorId: vendor, paymentDate: '2026-01-20', amount: '10.00', currency: 'EUR', rate: '0',
      bankAccountId: acc['1100'] });
    expect([zero.status, zero.body.error.code]).toEqual([422, 'ledger.invalid_rate']);
    const { rows } = await t.db.admin.query(`SELECT count(*)::int AS n FROM finance.bill_payments WHERE org_id = $1 AND payment_date = '2026-01-20'`, [orgId]);
    expect(rows[0].n).toBe(0);
    // a bill's is kept with the draft: refused there
    const bill = await t.http.post(payablesUrl(orgId, 'bills')).set(owner.auth).send({ vendorId: vendor, billDate: '2026-01-20', currency: 'EUR', rate: '0',
      lines: [{ accountId: acc['5200'], unitPrice: '10.00' }] }).expect(400);
    expect(bill.body.error.code).toBe('validation_failed');
  });

  it('the approval rule values a bill at the larger of the client\'s rate and the table\'s: a rate typed low does not let an accountant post alone', async () => {
    const accountant = await registerUser(t, 'accountant');
    await addMember(t, orgId, accountant, 'accountant');
    await t.http.put(payablesUrl(orgId, 'settings')).set(owner.auth).send({ apAccountId: acc['2100'], approvalRules: [
      { above: '0.00', approvals: 0, roles: ['owner', 'admin', 'accountant'] }, { above: '1000.00', approvals: 1, roles: ['owner', 'admin'] }, { above: '10000.00', approvals: 2, roles: ['owner', 'admin'] }] }).expect(200);
    const submitted = async (billDate: string, rate: string, unitPrice: string) => {
      const draft = await t.http.post(payablesUrl(orgId, 'bills')).set(accountant.auth).send({ vendorId: vendor, billDate, currency: 'EUR', rate, lines: [{ accountId: acc['5200'], unitPrice }] }).expect(201);
      const bill = (await t.http.post(payablesUrl(orgId, `bills/${draft.body.id}/submit`)).set(accountant.auth).send({}).expect(200)).body;
      const { rows: [stored] } = await t.db.admin.query(`SELECT status, approvals_required, base_total::text AS base, journal_entry_id FROM finance.bills WHERE org_id = $1 AND id = $2`, [orgId, bill.id]);
      return { bill, stored };
    };
    // EUR 1,000,000.00 at "0.0001" (USD 100.00) is USD 1,100,000.00 at the table's 1.10: two approvals, nothing posted
    const low = await submitted('2026-02-10', '0.0001', '1000000.00');
    expect(low.bill).toMatchObject({ status: 'submitted', approvalsRequired: 2, approverRoles: ['owner', 'admin'], rate: '0.0001000000', baseTotal: null, journalEntryId: null });
    expect(low.stored).toEqual({ status: 'submitted', approvals_required: 2, base: null, journal_entry_id: null });
    // a client rate above the table's counts too: EUR 900.00 is USD 1,080.00 at 1.20 (990.00 at 1.10), one approval
    const high = await submitted('2026-02-10', '1.20', '900.00');
    expect(high.bill).toMatchObject({ status: 'submitted', approvalsRequired: 1 });
    // no table rate that day (before Jan 15): the client's, as before (EUR 20,000.00 at 0.01: USD 200.00, posted at once)
    const untabled = await submitted('2026-01-12', '0.01', '20000.00');
    expect(untabled.bill).toMatchObject({ status: 'posted', approvalsRequired: 0, baseTotal: '200.00' });
  });
});
