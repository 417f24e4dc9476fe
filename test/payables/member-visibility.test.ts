import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { onPlan, orgWithRoles, type RoleUsers, type TestUser } from '../support/factories.js';
import { startBooks } from '../ledger/ledger-support.js';
import { createVendor, payablesUrl } from './payables-support.js';

/**
 * A member sees their own expense claims only (GET expense-claims/:id of another's is 404), so neither the payments
 * nor the AP aging show them another employee's claim or reimbursement; vendors' stay visible to them. As of Feb 10:
 *  vendor bill 200.00 (Feb 1, due Mar 3), paid 50.00 Feb 6          → vendor open 150.00 current
 *  admin's claim 432.10 (Feb 4), reimbursed 400.00 Feb 6           → admin open 32.10, 1-30
 *  member's claim 80.00 (Feb 5), reimbursed 30.00 Feb 7            → member open 50.00, 1-30
 *  AP = 232.10; the member's aging: 150.00 + 50.00 = 200.00.
 */
describe('payables: a member and other people\'s expense claims', () => {
  let t: TestApp;
  let orgId: string;
  let users: RoleUsers;
  let acc: Record<string, string>;
  let vendorId: string;
  let adminClaim: string;
  let vendorPayment: string;
  let adminReimbursement: string;
  let memberReimbursement: string;
  const url = (p: string) => payablesUrl(orgId, p);

  async function approvedClaim(who: TestUser, date: string, amount: string, description: string): Promise<string> {
    const claim = (await t.http.post(url('expense-claims')).set(who.auth).send({
      claimDate: date, currency: 'EUR', memo: 'private', lines: [{ accountId: acc['5200'], amount, currency: 'EUR', date, description }],
    }).expect(201)).body;
    await t.http.post(url(`expense-claims/${claim.id}/submit`)).set(who.auth).expect(200);
    await t.http.post(url(`expense-claims/${claim.id}/approve`)).set(users.accountant.auth).send({}).expect(200);
    return claim.id;
  }
  const pay = async (body: object): Promise<string> =>
    (await t.http.post(url('payments')).set(users.accountant.auth).send({ bankAccountId: acc['1100'], ...body }).expect(201)).body.id;

  beforeAll(async () => {
    t = await createTestApp();
    ({ orgId, users } = await orgWithRoles(t, 'Claims Ltd'));
    await onPlan(t, orgId, 'professional');
    acc = await startBooks(t, orgId, users.owner);
    vendorId = await createVendor(t, orgId, users.accountant, { name: 'Acme Supplies', paymentTermsDays: 30 });
    const bill = (await t.http.post(url('bills')).set(users.accountant.auth).send({
      vendorId, billNumber: 'V-1', billDate: '2026-02-01', total: '200.00', lines: [{ accountId: acc['5200'], description: 'Rent', quantity: '1', unitPrice: '200.00' }],
    }).expect(201)).body;
    expect((await t.http.post(url(`bills/${bill.id}/submit`)).set(users.accountant.auth).expect(200)).body.status).toBe('posted');
    adminClaim = await approvedClaim(users.admin, '2026-02-04', '432.10', 'hotel minibar');
    const memberClaim = await approvedClaim(users.member, '2026-02-05', '80.00', 'taxi');
    vendorPayment = await pay({ vendorId, paymentDate: '2026-02-06', amount: '50.00', allocations: [{ billId: bill.id, amount: '50.00' }] });
    adminReimbursement = await pay({ claimantId: users.admin.id, paymentDate: '2026-02-06', amount: '400.00', allocations: [{ billId: adminClaim, amount: '400.00' }] });
    memberReimbursement = await pay({ claimantId: users.member.id, paymentDate: '2026-02-07', amount: '30.00', allocations: [{ billId: memberClaim, amount: '30.00' }] });
  });
  afterAll(() => t.close());

  const summary = (p: any) => ({ id: p.id, vendorId: p.vendorId, claimantId: p.claimantId, amount: p.amount, bills: p.allocations.map((a: any) => a.billId) });

  it('lists a member vendor payments and their own reimbursements only, page by page; the other claimant\'s payment answers 404', async () => {
    const rows = await t.db.admin.query(`SELECT id FROM finance.bill_payments WHERE org_id = $1`, [orgId]);
    expect(rows.rows.map((r) => r.id).sort()).toEqual([vendorPayment, adminReimbursement, memberReimbursement].sort());
    await t.http.get(url(`expense-claims/${adminClaim}`)).set(users.member.auth).expect(404);

    const mine = (await t.http.get(url('payments')).set(users.member.auth).expect(200)).body;
    expect(mine.items.map(summary)).toEqual([
      { id: memberReimbursement, vendorId: null, claimantId: users.member.id, amount: '30.00', bills: [expect.any(String)] },
      { id: vendorPayment, vendorId, claimantId: null, amount: '50.00', bills: [expect.any(String)] },
    ]);
    expect(mine.nextCursor).toBeUndefined();
    // filtered by the query, not after it: a page of one is followed by exactly the one other visible payment
    const first = (await t.http.get(url('payments?limit=1')).set(users.member.auth).expect(200)).body;
    expect(first.items.map((p: any) => p.id)).toEqual([memberReimbursement]);
    const second = (await t.http.get(url(`payments?limit=1&cursor=${encodeURIComponent(first.nextCursor)}`)).set(users.member.auth).expect(200)).body;
    expect({ ids: second.items.map((p: any) => p.id), nextCursor: second.nextCursor }).toEqual({ ids: [vendorPayment], nextCursor: undefined });

    const other = await t.http.get(url(`payments/${adminReimbursement}`)).set(users.member.auth).expect(404);
    expect(other.body.error).toMatchObject({ code: 'bill_payment.not_found' });
    expect(JSON.stringify(other.body)).not.toContain('432.10');
    expect(summary((await t.http.get(url(`payments/${memberReimbursement}`)).set(users.member.auth).expect(200)).body)).toMatchObject({ claimantId: users.member.id, amount: '30.00' });
    expect(summary((await t.http.get(url(`payments/${vendorPayment}`)).set(users.member.auth).expect(200)).body)).toMatchObject({ vendorId, amount: '50.00' });
  });

  it('still shows an accountant and a viewer every payment', async () => {
    for (const who of [users.accountant, users.viewer]) {
      const all = (await t.http.get(url('payments')).set(who.auth).expect(200)).body;
      expect(all.items.map((p: any) => p.id).sort()).toEqual([vendorPayment, adminReimbursement, memberReimbursement].sort());
      expect(summary((await t.http.get(url(`payments/${adminReimbursement}`)).set(who.auth).expect(200)).body))
        .toEqual({ id: adminReimbursement, vendorId: null, claimantId: users.admin.id, amount: '400.00', bills: [adminClaim] });
    }
  });

  it('ages for a member the vendors and their own claims only, in the rows and the totals', async () => {
    const zero = { current: '0.00', '1-30': '0.00', '31-60': '0.00', '61-90': '0.00', '>90': '0.00' };
    const vendorRow = { partyType: 'vendor', partyId: vendorId, partyName: 'Acme Supplies', buckets: { ...zero, current: '150.00' }, total: '150.00' };
    const memberRow = { partyType: 'employee', partyId: users.member.id, partyName: null, buckets: { ...zero, '1-30': '50.00' }, total: '50.00' };
    const adminRow = { partyType: 'employee', partyId: users.admin.id, partyName: null, buckets: { ...zero, '1-30': '32.10' }, total: '32.10' };
    const byParty = (rows: any[]) => [...rows].sort((a, b) => a.partyId.localeCompare(b.partyId));

    const mine = (await t.http.get(url('aging?asOf=2026-02-10')).set(users.member.auth).expect(200)).body;
    expect(byParty(mine.rows)).toEqual(byParty([vendorRow, memberRow]));
    expect({ totals: mine.totals, total: mine.total, controlAccountBalance: mine.controlAccountBalance })
      .toEqual({ totals: { ...zero, current: '150.00', '1-30': '50.00' }, total: '200.00', controlAccountBalance: '232.10' });
    const csv = (await t.http.get(url('aging?asOf=2026-02-10&format=csv')).set(users.member.auth).expect(200)).text;
    expect(csv).not.toContain(users.admin.id);
    expect(csv).toContain('Total,150.00,50.00,0.00,0.00,0.00,200.00');

    const all = (await t.http.get(url('aging?asOf=2026-02-10')).set(users.accountant.auth).expect(200)).body;
    expect(byParty(all.rows)).toEqual(byParty([vendorRow, memberRow, adminRow]));
    expect({ totals: all.totals, total: all.total, controlAccountBalance: all.controlAccountBalance })
      .toEqual({ totals: { ...zero, current: '150.00', '1-30': '82.10' }, total: '232.10', controlAccountBalance: '232.10' });
  });

  /**
   * The FX revaluation rows of open items (finance.fx_revaluation_items) follow their documents: base USD, EUR at 1.10
   * from Feb 1 and 1.20 on Feb 28, everything in EUR: a vendor bill of 200.00 paid 50.00, the admin's claim of
   * 432.10 reimbursed 500.00 (400.00 allocated: a credit of 100.00 left), the member's of 80.00 reimbursed 50.00 (30.00
   * allocated: a credit of 20.00). Revalued as of Feb 28, each open item gets a row; the member reads those of the
   * vendor bill and of their own claim and reimbursement, not the admin's (their rate and base change give the amount).
   */
  it('shows a member the FX revaluation rows of vendors\' documents and of their own claim and reimbursement only', async () => {
    const fx = await orgWithRoles(t, 'FX Claims Ltd');
    const o = fx.users;
    const u = (p: string) => payablesUrl(fx.orgId, p);
    await onPlan(t, fx.orgId, 'professional');
    const books = await startBooks(t, fx.orgId, o.owner, 'USD');
    await t.http.post(`/v1/orgs/${fx.orgId}/ledger/fx-rates/import`).set(o.owner.auth).send({ rates: [
      { currency: 'EUR', date: '2026-02-01', rate: '1.10' }, { currency: 'EUR', date: '2026-02-28', rate: '1.20' }] }).expect(201);
    const vendor = await createVendor(t, fx.orgId, o.accountant, { name: 'Euro Supplies', defaultCurrency: 'EUR' });
    const bill = (await t.http.post(u('bills')).set(o.accountant.auth).send({
      vendorId: vendor, billNumber: 'E-1', billDate: '2026-02-02', currency: 'EUR', lines: [{ accountId: books['5200'], description: 'Rent', quantity: '1', unitPrice: '200.00' }],
    }).expect(201)).body.id;
    expect((await t.http.post(u(`bills/${bill}/submit`)).set(o.accountant.auth).expect(200)).body.status).toBe('posted');
    const claim = async (who: TestUser, date: string, amount: string) => {
      const id = (await t.http.post(u('expense-claims')).set(who.auth).send({
        claimDate: date, currency: 'EUR', lines: [{ accountId: books['5200'], amount, currency: 'EUR', date, description: 'trip' }],
      }).expect(201)).body.id;
      await t.http.post(u(`expense-claims/${id}/submit`)).set(who.auth).expect(200);
      await t.http.post(u(`expense-claims/${id}/approve`)).set(o.accountant.auth).send({}).expect(200);
      return id as string;
    };
    const paid = async (body: object) => (await t.http.post(u('payments')).set(o.accountant.auth)
      .send({ bankAccountId: books['1100'], currency: 'EUR', ...body }).expect(201)).body.id as string;
    const adminsClaim = await claim(o.admin, '2026-02-04', '432.10');
    const membersClaim = await claim(o.member, '2026-02-05', '80.00');
    await paid({ vendorId: vendor, paymentDate: '2026-02-06', amount: '50.00', allocations: [{ billId: bill, amount: '50.00' }] });
    const adminsPayment = await paid({ claimantId: o.admin.id, paymentDate: '2026-02-06', amount: '500.00', allocations: [{ billId: adminsClaim, amount: '400.00' }] });
    const membersPayment = await paid({ claimantId: o.member.id, paymentDate: '2026-02-07', amount: '50.00', allocations: [{ billId: membersClaim, amount: '30.00' }] });
    await t.http.post(`/v1/orgs/${fx.orgId}/ledger/fx-revaluations`).set(o.owner.auth).send({ date: '2026-02-28', autoReverse: false }).expect(201);

    // the rows are all there: each open item revalued from 1.10 to 1.20 (a payment credit as its aging shows it, negative)
    const { rows: stored } = await t.db.admin.query(`SELECT document_id::text AS id, rate::numeric(10, 2)::text AS rate, base_delta::numeric(20, 2)::text AS delta
      FROM finance.fx_revaluation_items WHERE org_id = $1 AND subledger = 'payables' ORDER BY document_id`, [fx.orgId]);
    const all = [
      { id: bill, rate: '1.20', delta: '15.00' }, { id: adminsClaim, rate: '1.20', delta: '3.21' }, { id: adminsPayment, rate: '1.20', delta: '-10.00' },
      { id: membersClaim, rate: '1.20', delta: '5.00' }, { id: membersPayment, rate: '1.20', delta: '-2.00' },
    ].sort((a, b) => a.id.localeCompare(b.id));
    expect(stored).toEqual(all);

    const read = `SELECT document_id::text AS id, rate::numeric(10, 2)::text AS rate, base_delta::numeric(20, 2)::text AS delta FROM finance.fx_revaluation_items ORDER BY document_id`;
    const claimsOf = (who: TestUser) => ({ sub: who.id, role: 'authenticated', org_id: fx.orgId });
    const own = all.filter((r) => [bill, membersClaim, membersPayment].includes(r.id));
    expect(await t.db.as(claimsOf(o.member), 'authenticated', read)).toEqual(own);
    expect(await t.db.asApi(claimsOf(o.member), 'authenticated', read)).toEqual(own);
    // the admin's rows are there for everyone else
    for (const who of [o.owner, o.admin, o.accountant, o.viewer]) expect(await t.db.as(claimsOf(who), 'authenticated', read)).toEqual(all);
    // the member's aging still adds the revaluations: the bill 150.00 x 1.20 = 180.00; their claim 50.00 x 1.20 = 60.00
    // less their credit 20.00 x 1.20 = 24.00
    const aging = (await t.http.get(u('aging?asOf=2026-02-28')).set(o.member.auth).expect(200)).body;
    expect(aging.rows.map((r: any) => [r.partyId, r.total]).sort()).toEqual([[o.member.id, '36.00'], [vendor, '180.00']].sort());
  });
});
