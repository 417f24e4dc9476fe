import type { TestApp } from '../support/app.js';
import type { TestUser } from '../support/factories.js';
import { ledgerUrl, startBooks } from '../ledger/ledger-support.js';

export const rUrl = (orgId: string, path: string) => `/v1/orgs/${orgId}/receivables/${path}`;

/** Books in `base`, a deferred revenue account, receivables settings, a VAT 20 % code and one customer. */
export async function setupReceivables(t: TestApp, orgId: string, owner: TestUser, base = 'USD') {
  const acc = await startBooks(t, orgId, owner, base);
  const deferred = await t.http.post(ledgerUrl(orgId, 'accounts')).set(owner.auth).send({ code: '2400', name: 'Deferred revenue', type: 'liability', parentId: acc['2000'] }).expect(201);
  acc['2400'] = deferred.body.id;
  await t.http.put(rUrl(orgId, 'settings')).set(owner.auth).send({ arAccountId: acc['1200'], deferredRevenueAccountId: acc['2400'] }).expect(200);
  const vat = (await t.http.post(ledgerUrl(orgId, 'tax-codes')).set(owner.auth)
    .send({ code: 'VAT20', name: 'VAT 20 %', rate: '20', salesAccountId: acc['2200'], purchaseAccountId: acc['1300'] }).expect(201)).body.id as string;
  const customer = (await t.http.post(rUrl(orgId, 'customers')).set(owner.auth).send({ name: 'Alpha Ltd', email: 'ap@alpha.example', paymentTermsDays: 30 }).expect(201)).body.id as string;
  return { acc, vat, customer };
}

/** Creates and issues an invoice; answers the issued invoice. */
export async function issueInvoice(t: TestApp, orgId: string, user: TestUser, body: object) {
  const draft = await t.http.post(rUrl(orgId, 'invoices')).set(user.auth).send(body).expect(201);
  return (await t.http.post(rUrl(orgId, `invoices/${draft.body.id}/issue`)).set(user.auth).send({}).expect(200)).body;
}
