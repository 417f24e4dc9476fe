import jwt from 'jsonwebtoken';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { addMember, createOrg, onEnterprisePlan, registerUser, type TestUser } from '../support/factories.js';
import { ledgerUrl, startBooks } from '../ledger/ledger-support.js';
import { payablesUrl } from '../payables/payables-support.js';
import { findEverywhere } from './columns.js';
import { partySubject } from '../../src/modules/privacy/audit-sealing.js';

describe('POST /v1/orgs/{orgId}/privacy/vendors/{vendorId}/erasure: a natural-person vendor', () => {
  let t: TestApp;
  let owner: TestUser;
  let orgId: string;
  let acc: Record<string, string>;

  beforeAll(async () => {
    t = await createTestApp();
    owner = await registerUser(t, 'owner');
    orgId = await createOrg(t, owner, 'Books Ltd');
    await onEnterprisePlan(t, orgId);
    acc = await startBooks(t, orgId, owner);
  });
  afterAll(() => t.close());

  it('blanks contact fields and pseudonymizes the name; the posted bill keeps amounts and number; the trial balance is unchanged; audited without personal data', async () => {
    const person = { name: 'Quentin Vendorsson', contactPerson: 'Quentin Vendorsson', email: 'quentin.vendorsson@example.test', phone: '+49 170 5551234',
      taxId: 'DE999888777', billingAddress: 'Privatweg 7, 10115 Berlin' };
    const vendor = (await t.http.post(payablesUrl(orgId, 'vendors')).set(owner.auth).send(person).expect(201)).body;
    const bill = (await t.http.post(payablesUrl(orgId, 'bills')).set(owner.auth)
      .send({ vendorId: vendor.id, billDate: '2026-02-10', lines: [{ accountId: acc['5200'], unitPrice: '250.00' }] }).expect(201)).body;
    await t.http.post(payablesUrl(orgId, `bills/${bill.id}/submit`)).set(owner.auth).expect(200);
    const tbBefore = (await t.http.get(ledgerUrl(orgId, 'reports/trial-balance')).set(owner.auth).expect(200)).body;
    const billBefore = (await t.http.get(payablesUrl(orgId, `bills/${bill.id}`)).set(owner.auth).expect(200)).body;

    const res = await t.http.post(`/v1/orgs/${orgId}/privacy/vendors/${vendor.id}/erasure`).set(owner.auth).expect(200);
    expect(res.body).toMatchObject({ party: 'vendor', partyId: vendor.id, name: `Erased vendor ${vendor.id.slice(0, 8)}` });

    const shown = (await t.http.get(payablesUrl(orgId, `vendors/${vendor.id}`)).set(owner.auth).expect(200)).body;
    expect(shown).toMatchObject({ name: `Erased vendor ${vendor.id.slice(0, 8)}`, contactPerson: null, email: null, phone: null, taxId: null, billingAddress: null });
    const billAfter = (await t.http.get(payablesUrl(orgId, `bills/${bill.id}`)).set(owner.auth).expect(200)).body;
    expect({ ...billAfter, vendor: undefined, vendorName: undefined }).toEqual({ ...billBefore, vendor: undefined, vendorName: undefined });
    expect((await t.http.get(ledgerUrl(orgId, 'reports/trial-balance')).set(owner.auth).expect(200)).body).toEqual(tbBefore);

    const audit = await t.db.admin.query(`SELECT after FROM core.audit_logs WHERE action = 'party.erased' AND entity_id = $1`, [vendor.id]);
    expect(audit.rows).toEqual([{ after: { party: 'vendor', erased: true } }]);
    // nowhere: the audit snapshots of its creation held it sealed with the vendor's key, which the erasure deleted
    for (const needle of [person.email, person.phone, person.billingAddress, person.name]) {
      expect(await findEverywhere(t.db.admin, needle)).toEqual([]);
    }
    const created = (await t.http.get(`/v1/orgs/${orgId}/audit-logs?action=payables.vendor_created&entityId=${vendor.id}`).set(owner.auth).expect(200)).body.items[0];
    expect(created.after).toMatchObject({ id: vendor.id, name: '[erased]', email: '[erased]', phone: '[erased]', billingAddress: '[erased]' });
  });

  it('erases a natural-person customer the same way (the catalog\'s customer party table)', async () => {
    const customer = (await t.http.post(`/v1/orgs/${orgId}/receivables/customers`).set(owner.auth)
      .send({ name: 'Ruth Customerova', contactPerson: 'Ruth Customerova', email: 'ruth.customerova@example.test', phone: '+420 777 123 456' }).expect(201)).body;
    const res = await t.http.post(`/v1/orgs/${orgId}/privacy/customers/${customer.id}/erasure`).set(owner.auth).expect(200);
    expect(res.body).toMatchObject({ party: 'customer', partyId: customer.id, name: `Erased customer ${customer.id.slice(0, 8)}` });
    const row = await t.db.admin.query('SELECT name, contact_person, email, phone FROM finance.customers WHERE id = $1', [customer.id]);
    expect(row.rows).toEqual([{ name: `Erased customer ${customer.id.slice(0, 8)}`, contact_person: null, email: null, phone: null }]);
    expect(await findEverywhere(t.db.admin, 'ruth.customerova@example.test')).toEqual([]);
  });

  it('a service key erases too, and its erasure deletes the party\'s key: the sealed snapshots read as erased', async () => {
    const vendor = (await t.http.post(payablesUrl(orgId, 'vendors')).set(owner.auth)
      .send({ name: 'Sven Servicemann', email: 'sven.servicemann@example.test' }).expect(201)).body;
    const keys = async () => (await t.db.admin.query('SELECT count(*)::int AS n FROM core.personal_data_keys WHERE subject = $1', [partySubject('vendor', orgId, vendor.id)])).rows[0].n;
    expect(await keys()).toBe(1);
    const service = jwt.sign({ role: 'service_role', iss: 'supabase', service: 'crm-sync' }, t.config.auth.supabaseJwtSecret, { algorithm: 'HS256', expiresIn: 600 });
    const res = await t.http.post(`/v1/orgs/${orgId}/privacy/vendors/${vendor.id}/erasure`).set('Authorization', `Bearer ${service}`).expect(200);
    expect(res.body).toMatchObject({ party: 'vendor', partyId: vendor.id, name: `Erased vendor ${vendor.id.slice(0, 8)}` });
    expect(await keys()).toBe(0);
    const audit = await t.db.admin.query(`SELECT actor_id, after FROM core.audit_logs WHERE action = 'party.erased' AND entity_id = $1`, [vendor.id]);
    expect(audit.rows).toEqual([{ actor_id: 'service:crm-sync', after: { party: 'vendor', erased: true } }]);
    expect(await findEverywhere(t.db.admin, 'sven.servicemann@example.test')).toEqual([]);
  });

  it('a viewer cannot erase (403), another organization\'s vendor is not found (404), nor is a malformed id', async () => {
    const viewer = await registerUser(t, 'viewer');
    await addMember(t, orgId, viewer, 'viewer');
    const vendor = (await t.http.post(payablesUrl(orgId, 'vendors')).set(owner.auth).send({ name: 'Kept Vendor', email: 'kept@example.test' }).expect(201)).body;
    await t.http.post(`/v1/orgs/${orgId}/privacy/vendors/${vendor.id}/erasure`).set(viewer.auth).expect(403);
    const other = await registerUser(t, 'other');
    const otherOrg = await createOrg(t, other, 'Other Ltd');
    const res = await t.http.post(`/v1/orgs/${otherOrg}/privacy/vendors/${vendor.id}/erasure`).set(other.auth).expect(404);
    expect(res.body.error.code).toBe('privacy.party_not_found');
    await t.http.post(`/v1/orgs/${orgId}/privacy/vendors/not-a-uuid/erasure`).set(owner.auth).expect(404); // as every malformed id
    const kept = (await t.http.get(payablesUrl(orgId, `vendors/${vendor.id}`)).set(owner.auth).expect(200)).body;
    expect(kept).toMatchObject({ name: 'Kept Vendor', email: 'kept@example.test' });
  });
});
