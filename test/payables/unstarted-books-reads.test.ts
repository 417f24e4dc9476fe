import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { onPlan, orgWithRoles, type RoleUsers } from '../support/factories.js';
import { payablesUrl } from './payables-support.js';

/**
 * Reading a payables document by id before the books are started: there is none (a bill or payment needs the books),
 * so the answer is the document's 404, never the 422 ledger.books_not_started (which these reads do not declare: the
 * test app's contract check would turn it into a failure). GET payments/{id} valued the payment in the base currency
 * before finding that no payment had the id.
 */
describe('payables: a document read by id on an organization whose books are not started', () => {
  let t: TestApp;
  let orgId: string;
  let users: RoleUsers;
  const url = (p: string) => payablesUrl(orgId, p);

  beforeAll(async () => {
    t = await createTestApp();
    ({ orgId, users } = await orgWithRoles(t, 'Not Started Ltd'));
    await onPlan(t, orgId, 'professional');
  });
  afterAll(() => t.close());

  it('GET payments/{id}: 404 bill_payment.not_found, for a bookkeeper and a member', async () => {
    expect((await t.db.admin.query(`SELECT count(*)::int AS n FROM finance.settings WHERE org_id = $1`, [orgId])).rows[0].n).toBe(0);
    const id = randomUUID();
    for (const who of [users.accountant, users.member]) {
      const res = await t.http.get(url(`payments/${id}`)).set(who.auth);
      expect({ status: res.status, code: res.body.error?.code, message: res.body.error?.message }).toEqual({ status: 404, code: 'bill_payment.not_found', message: expect.stringContaining(id) });
    }
    // the list answered so already: no payment, nothing to value
    expect((await t.http.get(url('payments')).set(users.accountant.auth).expect(200)).body).toEqual({ items: [] });
  });

  it('the other reads by id answer their 404 too (bills, expense claims, vendors)', async () => {
    const id = randomUUID();
    for (const [path, code] of [[`bills/${id}`, 'bill.not_found'], [`expense-claims/${id}`, 'expense_claim.not_found'], [`vendors/${id}`, 'vendor.not_found']]) {
      const res = await t.http.get(url(path)).set(users.accountant.auth);
      expect({ path, status: res.status, code: res.body.error?.code }).toEqual({ path, status: 404, code });
    }
  });
});
