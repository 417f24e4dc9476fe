import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { onPlan, orgWithRoles, type RoleUsers } from '../support/factories.js';
import { rUrl, setupReceivables } from '../receivables/receivables-support.js';
import { createVendor, payablesUrl } from './payables-support.js';

/**
 * Input the database would refuse is a 400 naming the field, never a constraint's or a cast's message: a party's name
 * of blanks only (vendors and customers; names are trimmed, as a workspace's), and a due date computed from the payment
 * terms past 9999-12-31 (bills and invoices without a dueDate). Nothing is written.
 */
describe('payables and receivables: names of blanks, due dates past the calendar', () => {
  let t: TestApp;
  let orgId: string;
  let users: RoleUsers;
  let acc: Record<string, string>;
  let customer: string;
  let vendor: string;
  const counts = async () => (await t.db.admin.query(`
    SELECT (SELECT count(*) FROM finance.vendors WHERE org_id = $1)::int AS vendors, (SELECT count(*) FROM finance.customers WHERE org_id = $1)::int AS customers,
           (SELECT count(*) FROM finance.bills WHERE org_id = $1)::int AS bills, (SELECT count(*) FROM finance.invoices WHERE org_id = $1)::int AS invoices,
           (SELECT count(*) FROM core.audit_logs WHERE org_id = $1)::int AS audits`, [orgId])).rows[0];
  const names = async () => (await t.db.admin.query(`
    SELECT (SELECT name FROM finance.vendors WHERE org_id = $1 AND id = $2) AS vendor, (SELECT name FROM finance.customers WHERE org_id = $1 AND id = $3) AS customer`,
  [orgId, vendor, customer])).rows[0];

  beforeAll(async () => {
    t = await createTestApp({ RATE_LIMITS_ENABLED: 'false' });
    ({ orgId, users } = await orgWithRoles(t, 'Edges Ltd'));
    await onPlan(t, orgId, 'professional');
    ({ acc, customer } = await setupReceivables(t, orgId, users.owner, 'EUR'));
    vendor = await createVendor(t, orgId, users.owner, { paymentTermsDays: 30 });
  });
  afterAll(() => t.close());

  const blankName = (res: { body: any }) => {
    expect(res.body.error.code).toBe('validation_failed');
    expect(res.body.error.details).toEqual([{ field: 'name', problems: ['name must be longer than or equal to 1 characters'] }]);
  };

  it('a vendor or customer name of blanks is a 400 naming name; nothing is written', async () => {
    const before = await counts();
    const kept = await names();
    blankName(await t.http.post(payablesUrl(orgId, 'vendors')).set(users.owner.auth).send({ name: '   ' }).expect(400));
    blankName(await t.http.patch(payablesUrl(orgId, `vendors/${vendor}`)).set(users.owner.auth).send({ name: ' ' }).expect(400));
    blankName(await t.http.post(rUrl(orgId, 'customers')).set(users.owner.auth).send({ name: '\t ' }).expect(400));
    blankName(await t.http.put(rUrl(orgId, `customers/${customer}`)).set(users.owner.auth).send({ name: '  ' }).expect(400));
    expect(await counts()).toEqual(before);
    expect(await names()).toEqual(kept);
  });

  it('names are stored trimmed', async () => {
    const v = await t.http.post(payablesUrl(orgId, 'vendors')).set(users.owner.auth).send({ name: '  Beta Supplies ' }).expect(201);
    expect(v.body.name).toBe('Beta Supplies');
    const c = await t.http.put(rUrl(orgId, `customers/${customer}`)).set(users.owner.auth).send({ name: ' Alpha Ltd  ' }).expect(200);
    expect(c.body.name).toBe('Alpha Ltd');
    const { rows } = await t.db.admin.query(`SELECT (SELECT name FROM finance.vendors WHERE id = $1) AS v, (SELECT name FROM finance.customers WHERE id = $2) AS c`, [v.body.id, customer]);
    expect(rows[0]).toEqual({ v: 'Beta Supplies', c: 'Alpha Ltd' });
  });

  it('a bill or invoice whose payment terms take its due date past 9999-12-31 is a 400 naming dueDate; nothing is written', async () => {
    const before = await counts();
    const message = 'dueDate: 9999-12-20 plus 30 days is after 9999-12-31, the last day a date can be; give dueDate';
    const bill = { vendorId: vendor, billDate: '9999-12-20', lines: [{ accountId: acc['5200'], unitPrice: '10.00' }] };
    const res = await t.http.post(payablesUrl(orgId, 'bills')).set(users.owner.auth).send(bill).expect(400);
    expect(res.body.error).toEqual({ code: 'validation_failed', message, details: [{ field: 'dueDate', problems: [message] }] });
    const invoice = { customerId: customer, invoiceDate: '9999-12-20', lines: [{ description: 'Work', quantity: '1', unitPrice: '10.00', revenueAccountId: acc['4100'] }] };
    const inv = await t.http.post(rUrl(orgId, 'invoices')).set(users.owner.auth).send(invoice).expect(400);
    expect(inv.body.error).toEqual({ code: 'validation_failed', message, details: [{ field: 'dueDate', problems: [message] }] });
    expect(await counts()).toEqual(before);
    // with the due date given, or within the calendar, they are drafts
    expect((await t.http.post(payablesUrl(orgId, 'bills')).set(users.owner.auth).send({ ...bill, dueDate: '9999-12-31' }).expect(201)).body.dueDate).toBe('9999-12-31');
    expect((await t.http.post(payablesUrl(orgId, 'bills')).set(users.owner.auth).send({ ...bill, billDate: '9999-12-01' }).expect(201)).body.dueDate).toBe('9999-12-31');
    expect((await t.http.post(rUrl(orgId, 'invoices')).set(users.owner.auth).send({ ...invoice, dueDate: '9999-12-31' }).expect(201)).body.dueDate).toBe('9999-12-31');
  });
});
