import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { requestHash } from '../../src/platform/http/idempotency-key.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { onPlan, orgWithRoles, type RoleUsers } from '../support/factories.js';
import { ledgerUrl } from '../ledger/ledger-support.js';
import { createVendor, payablesUrl } from '../payables/payables-support.js';
import { rUrl, setupReceivables } from './receivables-support.js';

/**
 * A rate the client sends is checked against the rate table (base EUR; USD 0.90 from 2026-02-01):
 *  - more than 20 % off the table's latest rate on or before the date is a 422 ledger.rate_out_of_range naming both rates,
 *    the table rate's date and the tolerance, nothing written: an invoice's issue, a customer payment and its refund, a
 *    vendor payment and its refund. A refund of USD 5.00 at 90000 would have realized EUR 449,995.50 of loss.
 *  - within 20 % (0.99, 0.72) it posts as sent; with rateOverride: true it posts as sent and the audit row records the
 *    rate, the table's rate and its date; without a table rate on or before the date (January) the rate is taken as sent.
 * And an Idempotency-Key's request is what it means: a payment without currency and its retry with the base currency
 * (and a USD payment without rate and its retry with the table's rate) are one payment, customer and vendor alike.
 */
describe('a client\'s FX rate against the rate table; idempotency of what a payment means', () => {
  let t: TestApp;
  let orgId: string;
  let users: RoleUsers;
  let acc: Record<string, string>;
  let customer: string;
  let vendor: string;

  beforeAll(async () => {
    t = await createTestApp();
    ({ orgId, users } = await orgWithRoles(t, 'Rates Ltd'));
    await onPlan(t, orgId, 'professional');
    ({ acc, customer } = await setupReceivables(t, orgId, users.owner, 'EUR'));
    await t.http.post(ledgerUrl(orgId, 'fx-rates/import')).set(users.owner.auth).send({ rates: [{ currency: 'USD', date: '2026-02-01', rate: '0.90' }] }).expect(201);
    vendor = await createVendor(t, orgId, users.accountant, { name: 'Rate Vendor' });
  });
  afterAll(() => t.close());

  const count = async (table: string) => (await t.db.admin.query(`SELECT count(*)::int AS n FROM ${table} WHERE org_id = $1`, [orgId])).rows[0].n;
  /** the rows a posting writes (the audit rows last: a document's and its entry's) */
  const written = async () => Promise.all(['finance.journal_entries', 'finance.customer_payments', 'finance.customer_refunds', 'finance.bill_payments', 'finance.bill_payment_refunds', 'core.audit_logs'].map(count));
  const added = (before: number[], after: number[]) => after.slice(0, 5).map((n, i) => n - before[i]);
  const outOfRange = (rate: string) => ({
    code: 'ledger.rate_out_of_range',
    message: `rate: the rate ${rate} for USD deviates from the rate table's 0.9 (effective 2026-02-01) by more than 20%; check it, or send rateOverride: true to post at it anyway`,
    details: { rate, tableRate: '0.9', tableDate: '2026-02-01', tolerance: '20%' },
  });
  const usdPayment = (extra: object = {}) => ({ customerId: customer, date: '2026-02-10', amount: '100.00', currency: 'USD', depositAccountId: acc['1100'], method: 'bank_transfer', ...extra });
  /** a payment's stored hash as written before (its tables are append-only: their triggers set aside for the rewrite) */
  const storeHash = (table: string, id: string, hash: string) => t.db.admin.query(`BEGIN; SET LOCAL session_replication_role = replica;
    UPDATE ${table} SET request_hash = '${hash}' WHERE id = '${id}'; COMMIT;`);
  const auditAfter = async (action: string, entityId: string) => (await t.db.admin.query(
    `SELECT after FROM core.audit_logs WHERE org_id = $1 AND action = $2 AND entity_id = $3 ORDER BY id DESC LIMIT 1`, [orgId, action, entityId])).rows[0].after;

  it('refuses a customer payment, a refund and an issue at a rate far from the table\'s; nothing written', async () => {
    const before = await written();
    for (const rate of ['999999999999', '0.0000000001', '1.09']) {
      const res = await t.http.post(rUrl(orgId, 'payments')).set(users.accountant.auth).send(usdPayment({ rate })).expect(422);
      expect(res.body.error).toEqual(outOfRange(rate));
    }
    const pay = (await t.http.post(rUrl(orgId, 'payments')).set(users.accountant.auth).send(usdPayment()).expect(201)).body;
    const afterPay = await written();
    const refund = await t.http.post(rUrl(orgId, `payments/${pay.id}/refunds`)).set(users.accountant.auth).send({ date: '2026-02-12', amount: '5.00', rate: '90000' }).expect(422);
    expect(refund.body.error).toEqual(outOfRange('90000'));
    expect(await written()).toEqual(afterPay);
    expect(added(before, afterPay)).toEqual([1, 1, 0, 0, 0]);

    const draft = (await t.http.post(rUrl(orgId, 'invoices')).set(users.accountant.auth).send({ customerId: customer, invoiceDate: '2026-02-10', currency: 'USD',
      lines: [{ description: 'Work', quantity: '1', unitPrice: '100', revenueAccountId: acc['4100'] }] }).expect(201)).body;
    const issue = await t.http.post(rUrl(orgId, `invoices/${draft.id}/issue`)).set(users.accountant.auth).send({ rate: '5' }).expect(422);
    expect(issue.body.error).toEqual(outOfRange('5'));
    expect((await t.http.get(rUrl(orgId, `invoices/${draft.id}`)).set(users.viewer.auth).expect(200)).body).toMatchObject({ status: 'draft', entryId: null });
  });

  it('posts a rate within 20 %, one sent with rateOverride (recorded in the audit row), and one without a table rate of the date', async () => {
    const near = (await t.http.post(rUrl(orgId, 'payments')).set(users.accountant.auth).send(usdPayment({ rate: '0.99' })).expect(201)).body;
    expect(near.rate).toBe('0.9900000000');
    const pay = (await t.http.post(rUrl(orgId, 'payments')).set(users.accountant.auth).send(usdPayment()).expect(201)).body;
    const refund = await t.http.post(rUrl(orgId, `payments/${pay.id}/refunds`)).set(users.accountant.auth).send({ date: '2026-02-12', amount: '5.00', rate: '90000', rateOverride: true }).expect(201);
    expect(refund.body.refunds[0]).toMatchObject({ rate: '90000.0000000000', realizedFx: '-449995.50' });
    expect((await auditAfter('receivables.credit_refunded', pay.id)).rateOverride).toEqual({ rate: '90000', tableRate: '0.9', tableDate: '2026-02-01', tolerance: '20%' });
    // a payment dated before the table's first USD rate: the client's rate as sent
    const january = (await t.http.post(rUrl(orgId, 'payments')).set(users.accountant.auth).send(usdPayment({ date: '2026-01-20', rate: '5' })).expect(201)).body;
    expect(january.rate).toBe('5.0000000000');
    expect((await auditAfter('receivables.payment_received', january.id)).rateOverride).toBeUndefined();

    const draft = (await t.http.post(rUrl(orgId, 'invoices')).set(users.accountant.auth).send({ customerId: customer, invoiceDate: '2026-02-10', currency: 'USD',
      lines: [{ description: 'Work', quantity: '1', unitPrice: '100', revenueAccountId: acc['4100'] }] }).expect(201)).body;
    const issued = (await t.http.post(rUrl(orgId, `invoices/${draft.id}/issue`)).set(users.accountant.auth).send({ rate: '2', rateOverride: true }).expect(200)).body;
    expect(issued).toMatchObject({ status: 'issued', rate: '2.0000000000' });
    expect((await auditAfter('receivables.invoice_issued', draft.id)).rateOverride).toEqual({ rate: '2', tableRate: '0.9', tableDate: '2026-02-01', tolerance: '20%' });
  });

  it('refuses a vendor payment and its refund at a rate far from the table\'s; posts one with rateOverride', async () => {
    const body = { vendorId: vendor, paymentDate: '2026-02-10', amount: '100.00', currency: 'USD', bankAccountId: acc['1100'] };
    const before = await written();
    const far = await t.http.post(payablesUrl(orgId, 'payments')).set(users.accountant.auth).send({ ...body, rate: '0.0000000001' }).expect(422);
    expect(far.body.error).toEqual(outOfRange('0.0000000001'));
    expect(await written()).toEqual(before);
    const pay = (await t.http.post(payablesUrl(orgId, 'payments')).set(users.accountant.auth).send({ ...body, rate: '0.72' }).expect(201)).body;
    expect(pay.rate).toBe('0.7200000000');
    const refund = await t.http.post(payablesUrl(orgId, `payments/${pay.id}/refunds`)).set(users.accountant.auth).send({ date: '2026-02-12', amount: '5.00', rate: '90000' }).expect(422);
    expect(refund.body.error).toEqual(outOfRange('90000'));
    const overridden = await t.http.post(payablesUrl(orgId, `payments/${pay.id}/refunds`)).set(users.accountant.auth).send({ date: '2026-02-12', amount: '5.00', rate: '90000', rateOverride: true }).expect(201);
    expect(overridden.body.refunds[0]).toMatchObject({ rate: '90000.0000000000' });
    expect((await auditAfter('payables.credit_refunded', pay.id)).rateOverride).toEqual({ rate: '90000', tableRate: '0.9', tableDate: '2026-02-01', tolerance: '20%' });
  });

  it('replays a payment sent without currency (or rate) and retried with the base currency (or the table\'s rate); another rate is a 409', async () => {
    const ar = (key: string, b: object) => t.http.post(rUrl(orgId, 'payments')).set(users.accountant.auth).set('Idempotency-Key', key).send(b);
    const eur = { customerId: customer, date: '2026-02-10', amount: '40.00', depositAccountId: acc['1100'], method: 'bank_transfer' };
    const first = (await ar('ar-eur', eur).expect(201)).body;
    const before = await written();
    expect((await ar('ar-eur', { ...eur, currency: 'EUR' }).expect(201)).body.id).toBe(first.id);
    const usd = await ar('ar-usd', usdPayment()).expect(201);
    expect((await ar('ar-usd', usdPayment({ rate: '0.9' })).expect(201)).body.id).toBe(usd.body.id);
    const explicit = await ar('ar-usd-rate', usdPayment({ rate: '0.9000000000' })).expect(201);
    expect((await ar('ar-usd-rate', usdPayment()).expect(201)).body.id).toBe(explicit.body.id);
    expect((await ar('ar-usd', usdPayment({ rate: '0.95' })).expect(409)).body.error.code).toBe('receivables.idempotency_conflict');

    const ap = (key: string, b: object) => t.http.post(payablesUrl(orgId, 'payments')).set(users.accountant.auth).set('Idempotency-Key', key).send(b);
    const bill = { vendorId: vendor, paymentDate: '2026-02-10', amount: '40.00', bankAccountId: acc['1100'] };
    const vendorFirst = (await ap('ap-eur', bill).expect(201)).body;
    expect((await ap('ap-eur', { ...bill, currency: 'EUR' }).expect(201)).body.id).toBe(vendorFirst.id);
    const apUsd = (await ap('ap-usd', { ...bill, currency: 'USD' }).expect(201)).body;
    expect((await ap('ap-usd', { ...bill, currency: 'USD', rate: '0.9' }).expect(201)).body.id).toBe(apUsd.id);
    expect((await ap('ap-usd', { ...bill, currency: 'USD', rate: '0.95' }).expect(409)).body.error.code).toBe('payables.idempotency_conflict');
    // a key stored before the currency was resolved (the hash of the body as sent) still replays its request
    const old = (await ar('ar-old', eur).expect(201)).body;
    await storeHash('finance.customer_payments', old.id, requestHash(eur));
    expect((await ar('ar-old', eur).expect(201)).body.id).toBe(old.id);
    const apOld = (await ap('ap-old', bill).expect(201)).body;
    await storeHash('finance.bill_payments', apOld.id, requestHash(bill));
    expect((await ap('ap-old', bill).expect(201)).body.id).toBe(apOld.id);
    // each key recorded one payment
    expect(added(before, await written())).toEqual([6, 3, 0, 3, 0]);
  });
});
