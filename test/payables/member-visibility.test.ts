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
});
