import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { onPlan, orgWithRoles, type RoleUsers } from '../support/factories.js';
import { ledgerUrl } from '../ledger/ledger-support.js';
import { issueInvoice, rUrl, setupReceivables } from '../receivables/receivables-support.js';
import { createVendor, payablesUrl } from './payables-support.js';

/**
 * The AP and AR control accounts of the settings: every later payment, refund and FX result posts to them. Replaced
 * while the old one carries open items, those could never be settled there (it would keep their balance for ever).
 * So a replacement waits until the old account carries nothing.
 */
describe('payables and receivables: a control account is replaced only while it carries nothing', () => {
  let t: TestApp;
  let orgId: string;
  let users: RoleUsers;
  let acc: Record<string, string>;
  let customer: string;

  beforeAll(async () => {
    t = await createTestApp();
    ({ orgId, users } = await orgWithRoles(t, 'Control Account Ltd'));
    await onPlan(t, orgId, 'professional');
    ({ acc, customer } = await setupReceivables(t, orgId, users.owner, 'EUR'));
  });
  afterAll(() => t.close());

  const account = async (code: string, type: string, parent: string) =>
    (await t.http.post(ledgerUrl(orgId, 'accounts')).set(users.owner.auth).send({ code, name: `Control ${code}`, type, parentId: acc[parent] }).expect(201)).body.id as string;

  it('AP: refused while a bill is open on the old account (409, settings unchanged); accepted once it is paid', async () => {
    const vendor = await createVendor(t, orgId, users.accountant);
    const ap2 = await account('2110', 'liability', '2000');
    const bill = await t.http.post(payablesUrl(orgId, 'bills')).set(users.accountant.auth)
      .send({ vendorId: vendor, billDate: '2026-03-01', lines: [{ accountId: acc['5200'], unitPrice: '100.00' }] }).expect(201);
    await t.http.post(payablesUrl(orgId, `bills/${bill.body.id}/submit`)).set(users.accountant.auth).expect(200);
    const rules = [{ above: '0', approvals: 0, roles: ['owner'] }];
    const refused = await t.http.put(payablesUrl(orgId, 'settings')).set(users.owner.auth).send({ apAccountId: ap2, approvalRules: rules }).expect(409);
    expect(refused.body.error.code).toBe('payables.control_account_in_use');
    expect(refused.body.error.message).toMatch(/-100\.00 EUR/);
    expect((await t.http.get(payablesUrl(orgId, 'settings')).set(users.owner.auth).expect(200)).body.apAccountId).toBe(acc['2100']);
    await t.http.post(payablesUrl(orgId, 'payments')).set(users.accountant.auth)
      .send({ vendorId: vendor, paymentDate: '2026-03-05', amount: '100.00', bankAccountId: acc['1100'], allocations: [{ billId: bill.body.id, amount: '100.00' }] }).expect(201);
    const moved = await t.http.put(payablesUrl(orgId, 'settings')).set(users.owner.auth).send({ apAccountId: ap2, approvalRules: rules }).expect(200);
    expect(moved.body.apAccountId).toBe(ap2);
  });

  it('AR: refused while an invoice is open on the old account (409, settings unchanged); accepted once it is paid', async () => {
    const ar2 = await account('1210', 'asset', '1000');
    const invoice = await issueInvoice(t, orgId, users.owner, { customerId: customer, invoiceDate: '2026-03-01',
      lines: [{ description: 'Work', quantity: '1', unitPrice: '50.00', revenueAccountId: acc['4100'] }] });
    const settings = { arAccountId: ar2, deferredRevenueAccountId: acc['2400'] };
    const refused = await t.http.put(rUrl(orgId, 'settings')).set(users.owner.auth).send(settings).expect(409);
    expect(refused.body.error.code).toBe('receivables.control_account_in_use');
    expect((await t.http.get(rUrl(orgId, 'settings')).set(users.owner.auth).expect(200)).body.arAccountId).toBe(acc['1200']);
    await t.http.post(rUrl(orgId, 'payments')).set(users.owner.auth)
      .send({ customerId: customer, date: '2026-03-10', amount: '50.00', depositAccountId: acc['1100'], method: 'bank_transfer', allocations: [{ invoiceId: invoice.id, amount: '50.00' }] }).expect(201);
    expect((await t.http.put(rUrl(orgId, 'settings')).set(users.owner.auth).send(settings).expect(200)).body.arAccountId).toBe(ar2);
    // the deferred revenue account likewise, while revenue waits in it to be recognized
    await issueInvoice(t, orgId, users.owner, { customerId: customer, invoiceDate: '2026-04-01',
      lines: [{ description: 'Support', quantity: '1', unitPrice: '120.00', revenueAccountId: acc['4100'], serviceStart: '2026-04-01', serviceEnd: '2027-03-31' }] });
    const deferred2 = await account('2410', 'liability', '2000');
    const moved = await t.http.put(rUrl(orgId, 'settings')).set(users.owner.auth).send({ arAccountId: ar2, deferredRevenueAccountId: deferred2 }).expect(409);
    expect(moved.body.error).toMatchObject({ code: 'receivables.control_account_in_use', message: expect.stringContaining('deferred revenue') });
    expect((await t.http.get(rUrl(orgId, 'settings')).set(users.owner.auth).expect(200)).body.deferredRevenueAccountId).toBe(acc['2400']);
  });
});
