import type { TestApp } from '../support/app.js';
import type { TestUser } from '../support/factories.js';

export function payablesUrl(orgId: string, path: string): string {
  return `/v1/orgs/${orgId}/payables/${path}`;
}

/** Creates a vendor through the API and answers its id. */
export async function createVendor(t: TestApp, orgId: string, who: TestUser, body: object = {}): Promise<string> {
  const res = await t.http.post(payablesUrl(orgId, 'vendors')).set(who.auth)
    .send({ name: 'Acme Supplies', email: 'ap@acme.example', paymentTermsDays: 30, ...body }).expect(201);
  return res.body.id;
}
