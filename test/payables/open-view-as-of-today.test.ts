import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, onPlan, registerUser, type TestUser } from '../support/factories.js';
import { semanticUrl } from '../agents/agents-support.js';
import { startBooks } from '../ledger/ledger-support.js';
import { createVendor, payablesUrl } from './payables-support.js';

/**
 * semantic.v_ap_open is "as of today" (20270210650100, review r3): a bill dated after today is not open yet, a payment
 * allocated after today has not settled anything yet, a bill voided by a reversal dated after today is open until then,
 * as finance.ap_aging counts them; before, the view read the documents as they stood whatever their dates. The view's
 * today is the database's (current_date): the documents are dated around it. Books in USD, bills in USD.
 */
describe('payables: semantic.v_ap_open as of today', () => {
  let t: TestApp;
  let owner: TestUser;

  beforeAll(async () => {
    t = await createTestApp();
    owner = await registerUser(t, 'ap-open-today-owner');
  });
  afterAll(() => t.close());

  it('shows a bill dated later not yet, a later allocation not yet settled, a bill voided later still open: what ap_aging counts today', async () => {
    const { rows: [day] } = await t.db.admin.query<{ start: string; [k: string]: string }>(`
      SELECT date_trunc('month', current_date - 20)::date::text AS start, (current_date - 10)::text AS m10, (current_date - 5)::text AS m5,
        (current_date - 3)::text AS m3, (current_date - 1)::text AS m1, current_date::text AS today, (current_date + 2)::text AS p2,
        (current_date + 3)::text AS p3, (current_date + 4)::text AS p4`);
    const orgId = await createOrg(t, owner, 'AP open today');
    await onPlan(t, orgId, 'professional');
    // one fiscal year from the first of the month 20 days back: every date below is in it
    const acc = await startBooks(t, orgId, owner, 'USD', day.start);
    await t.http.put(payablesUrl(orgId, 'settings')).set(owner.auth).send({ apAccountId: acc['2100'], approvalRules: [{ above: '0', approvals: 0, roles: ['owner'] }] }).expect(200);
    const vendor = await createVendor(t, orgId, owner, { name: 'Today Supplies', defaultCurrency: 'USD' });
    const url = (p: string) => payablesUrl(orgId, p);
    const bill = async (billDate: string, amount: string): Promise<string> => {
      const draft = (await t.http.post(url('bills')).set(owner.auth).send({ vendorId: vendor, billDate, currency: 'USD', lines: [{ accountId: acc['5200'], unitPrice: amount }] }).expect(201)).body;
      const posted = (await t.http.post(url(`bills/${draft.id}/submit`)).set(owner.auth).send({}).expect(200)).body;
      expect(posted.status).toBe('posted');
      return posted.id;
    };
    const pay = (paymentDate: string, amount: string, billId: string) => t.http.post(url('payments')).set(owner.auth)
      .send({ vendorId: vendor, paymentDate, amount, currency: 'USD', bankAccountId: acc['1100'], allocations: [{ billId, amount }] }).expect(201);

    const paidLater = await bill(day.m10, '100.00');
    await pay(day.p3, '40.00', paidLater);
    const datedLater = await bill(day.p2, '50.00');
    const voidedLater = await bill(day.m5, '70.00');
    expect((await t.http.post(url(`bills/${voidedLater}/void`)).set(owner.auth).send({ date: day.p4 }).expect(200)).body.status).toBe('voided');
    const paidInPart = await bill(day.m3, '30.00');
    await pay(day.m1, '10.00', paidInPart);

    // what the books hold: the later payment's allocation, the later bill, the later void, each with its date
    const { rows: stored } = await t.db.admin.query(`
      SELECT b.id::text, b.status, b.bill_date::text, b.voided_on::text, (SELECT string_agg(a.allocation_date::text || ' ' || a.amount::text, ', ')
        FROM finance.bill_allocations a WHERE a.org_id = b.org_id AND a.bill_id = b.id) AS allocations
      FROM finance.bills b WHERE b.org_id = $1 ORDER BY b.bill_date`, [orgId]);
    expect(stored).toEqual([
      { id: paidLater, status: 'posted', bill_date: day.m10, voided_on: null, allocations: `${day.p3} 40.0000` },
      { id: voidedLater, status: 'voided', bill_date: day.m5, voided_on: day.p4, allocations: null },
      { id: paidInPart, status: 'posted', bill_date: day.m3, voided_on: null, allocations: `${day.m1} 10.0000` },
      { id: datedLater, status: 'posted', bill_date: day.p2, voided_on: null, allocations: null },
    ]);

    // the view today, through the semantic query route: the later bill not shown, the later payment not taken off, the later void still open
    const res = await t.http.post(semanticUrl(orgId)).set(owner.auth)
      .send({ sql: `SELECT bill_id, open_amount::numeric(20, 2)::text AS open, open_base_amount::numeric(20, 2)::text AS base, bucket FROM semantic.v_ap_open ORDER BY bill_date` }).expect(200);
    expect(res.body.rows).toEqual([
      [paidLater, '100.00', '100.00', 'current'],
      [voidedLater, '70.00', '70.00', 'current'],
      [paidInPart, '20.00', '20.00', 'current'],
    ]);

    // and it agrees with the aging as of today, party by party
    const claims = { sub: owner.id, role: 'authenticated', org_id: orgId };
    const aging = await t.db.as(claims, 'authenticated', `SELECT party_id, sum(amount)::numeric(20, 2)::text AS amount FROM finance.ap_aging(current_date) GROUP BY party_id`);
    const view = await t.db.as(claims, 'authenticated', `SELECT party_id, sum(open_base_amount)::numeric(20, 2)::text AS amount FROM semantic.v_ap_open GROUP BY party_id`);
    expect(view).toEqual([{ party_id: vendor, amount: '190.00' }]);
    expect(view).toEqual(aging);
  });
});
