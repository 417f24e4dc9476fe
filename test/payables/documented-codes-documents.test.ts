import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { OpenAPIObject } from '@nestjs/swagger';
import type { Response } from 'supertest';
import { createTestApp, type TestApp } from '../support/app.js';
import { tableContents } from '../support/database.js';
import { addMember, createOrg, onPlan, orgWithRoles, registerUser, type RoleUsers, type TestUser } from '../support/factories.js';
import { ledgerUrl, startBooks } from '../ledger/ledger-support.js';
import { createVendor, payablesUrl } from './payables-support.js';

const CLAIM_HAS_NONE = ['payables.vendor_archived', 'payables.due_before_bill', 'ledger.tax_code_archived', 'tax_code.not_found', 'ledger.books_not_started'];
/**
 * Codes these operations cannot answer, so they do not declare them (payables.controller.ts):
 *  - a bill has one currency (currency_mismatch is a claim line's); a draft exists only on started books, of a vendor never deleted;
 *  - a claim has no vendor, tax code or due date, and reads no ledger settings (its accounts exist only on started books);
 *  - a submission is no approval (the approval's checks); an approval, allocation, refund or reversal reads the AP account
 *    the submission or payment read already (never payables.account_not_allowed);
 *  - an API key comments too (never auth.user_required); a member reads only their own claims (another's is a 404);
 *  - a void of a revalued bill or claim takes its revaluation off the FX accounts the revaluation needed, which the
 *    settings never unset (never ledger.fx_accounts_missing).
 */
const NOT_DECLARED: Record<string, string[]> = {
  createBill: ['payables.currency_mismatch'],
  updateBill: ['payables.currency_mismatch', 'ledger.books_not_started', 'vendor.not_found'],
  createExpenseClaim: CLAIM_HAS_NONE,
  updateExpenseClaim: CLAIM_HAS_NONE,
  submitBill: ['payables.not_submitted', 'payables.own_bill', 'payables.role_not_allowed', 'payables.already_approved'],
  approveBill: ['payables.account_not_allowed'],
  approveExpenseClaim: ['payables.account_not_allowed'],
  allocateBillPayment: ['payables.account_not_allowed'],
  refundVendorCredit: ['payables.account_not_allowed'],
  reverseBillAllocation: ['payables.account_not_allowed'],
  commentOnBill: ['auth.user_required'],
  commentOnExpenseClaim: ['auth.user_required'],
  submitExpenseClaim: ['payables.claim_not_own'],
  voidBill: ['ledger.fx_accounts_missing'],
  voidExpenseClaim: ['payables.claim_not_own', 'ledger.fx_accounts_missing'],
};

/**
 * The documented codes of the payables operations on vendors, settings and the content and workflow of bills and
 * expense claims, each produced over HTTP: the status, the code, a message naming the problem, and nothing written
 * (the organization's payables rows, journal entries and audit rows are as before the request). The postings these
 * operations refuse are in documented-codes-postings.test.ts. Codes an operation cannot answer are not declared
 * (payables.controller.ts says why next to each list).
 */
describe('payables: every documented code of the vendor, settings, document and workflow operations', () => {
  let t: TestApp;
  /** started books (standard chart, EUR), default payables settings */
  let orgId: string;
  let users: RoleUsers;
  /** a second member (claims of another person) */
  let member2: TestUser;
  let acc: Record<string, string>;
  let vendor: string;
  let vat: string;
  /** books not started; one vendor */
  let noBooks: string;
  let noBooksOwner: TestUser;
  let noBooksVendor: string;

  /** The organization's payables rows, entries and audit rows, by content: a refused request leaves all of them as they were. */
  const state = (org = orgId) => tableContents(t.db.admin, { tables: ['finance.vendors', 'finance.bills', 'finance.bill_lines', 'finance.bill_decisions', 'finance.payables_settings', 'finance.journal_entries', 'core.audit_logs'], orgId: org });

  /** Sends the request and expects the refusal: status, code and a message containing `message`; nothing written. */
  async function refused(send: () => PromiseLike<Response>, status: number, code: string, message: string, org = orgId): Promise<void> {
    const before = await state(org);
    const res = await send();
    expect({ status: res.status, code: res.body.error?.code }).toEqual({ status, code });
    expect(res.body.error.message).toContain(message);
    expect(await state(org)).toEqual(before);
  }

  const url = (path: string, org = orgId) => payablesUrl(org, path);
  const line = (o: object = {}) => ({ accountId: acc['5200'], unitPrice: '100.00', ...o });
  const draftBill = async (o: object = {}) => (await t.http.post(url('bills')).set(users.accountant.auth)
    .send({ vendorId: vendor, billDate: '2026-03-02', lines: [line()], ...o }).expect(201)).body.id as string;
  const claimLine = (o: object = {}) => ({ accountId: acc['5200'], amount: '40.00', currency: 'EUR', date: '2026-03-03', ...o });
  const draftClaim = async (who: TestUser, o: object = {}) => (await t.http.post(url('expense-claims')).set(who.auth)
    .send({ claimDate: '2026-03-03', currency: 'EUR', lines: [claimLine()], ...o }).expect(201)).body.id as string;
  const submit = (path: string, who: TestUser) => t.http.post(url(`${path}/submit`)).set(who.auth).expect(200);

  beforeAll(async () => {
    t = await createTestApp();
    ({ orgId, users } = await orgWithRoles(t, 'Documented Codes Ltd'));
    await onPlan(t, orgId, 'enterprise'); // API keys (api_access)
    member2 = await registerUser(t, 'member2');
    await addMember(t, orgId, member2, 'member');
    acc = await startBooks(t, orgId, users.owner);
    vendor = await createVendor(t, orgId, users.accountant);
    vat = (await t.http.post(ledgerUrl(orgId, 'tax-codes')).set(users.owner.auth)
      .send({ code: 'VAT20', name: 'VAT 20 %', rate: '20', salesAccountId: acc['2200'], purchaseAccountId: acc['1300'] }).expect(201)).body.id;

    noBooksOwner = await registerUser(t, 'no-books-owner');
    noBooks = await createOrg(t, noBooksOwner, 'No Books Yet Ltd');
    await onPlan(t, noBooks, 'professional');
    noBooksVendor = await createVendor(t, noBooks, noBooksOwner);
  });
  afterAll(() => t.close());

  it('the operations do not declare the codes they cannot answer', async () => {
    const doc = (await t.http.get('/docs-json').expect(200)).body as OpenAPIObject;
    const declared: Record<string, string[]> = {};
    for (const item of Object.values(doc.paths)) {
      for (const op of [item.get, item.put, item.post, item.patch, item.delete]) {
        if (!op?.operationId || !(op.operationId in NOT_DECLARED)) continue;
        const codes = ((op as unknown as { 'x-error-codes': { code: string }[] })['x-error-codes']).map((c) => c.code);
        declared[op.operationId] = NOT_DECLARED[op.operationId].filter((c) => codes.includes(c));
      }
    }
    expect(declared).toEqual(Object.fromEntries(Object.keys(NOT_DECLARED).map((k) => [k, []])));
  });

  it('an API key comments on a bill and a claim (as the service, never 403 auth.user_required)', async () => {
    const key = (await t.http.post(`/v1/orgs/${orgId}/api-keys`).set(users.owner.auth).send({ name: 'comments', scopes: ['payables:read', 'payables:write'] }).expect(201)).body.secret;
    const bill = await draftBill();
    const claim = await draftClaim(users.member);
    for (const path of [`bills/${bill}`, `expense-claims/${claim}`]) {
      const res = await t.http.post(url(`${path}/comments`)).set({ Authorization: `Bearer ${key}` }).send({ comment: 'receipt attached?' }).expect(200);
      expect(res.body.decisions.map((d: { decision: string; actorRole: string; comment: string }) => [d.decision, d.actorRole, d.comment])).toEqual([['comment', 'service', 'receipt attached?']]);
    }
    const { rows } = await t.db.admin.query(`SELECT count(*)::int AS n FROM finance.bill_decisions WHERE org_id = $1 AND bill_id = ANY($2::uuid[]) AND decision = 'comment' AND actor_role = 'service'`, [orgId, [bill, claim]]);
    expect(rows[0].n).toBe(2);
  });

  // ------------------------------------------------------------------ vendors
  it('createVendor and updateVendor: a default currency the ledger does not know is 422 ledger.unknown_currency', async () => {
    await refused(() => t.http.post(url('vendors')).set(users.accountant.auth).send({ name: 'Qux GmbH', defaultCurrency: 'QQQ' }),
      422, 'ledger.unknown_currency', 'currency QQQ is not known');
    await refused(() => t.http.patch(url(`vendors/${vendor}`)).set(users.accountant.auth).send({ defaultCurrency: 'QQQ' }),
      422, 'ledger.unknown_currency', 'currency QQQ is not known');
  });

  // ------------------------------------------------------------------ books not started
  it('before the books are started: settings (read and write), the aging and a new bill are 422 ledger.books_not_started', async () => {
    const notStarted = 'the books of this organization are not started';
    const owner = noBooksOwner.auth;
    await refused(() => t.http.get(url('settings', noBooks)).set(owner), 422, 'ledger.books_not_started', notStarted, noBooks);
    await refused(() => t.http.put(url('settings', noBooks)).set(owner).send({ apAccountId: randomUUID(), approvalRules: [{ above: '0', approvals: 0, roles: ['owner'] }] }),
      422, 'ledger.books_not_started', notStarted, noBooks);
    await refused(() => t.http.get(url('aging', noBooks)).set(owner), 422, 'ledger.books_not_started', notStarted, noBooks);
    await refused(() => t.http.post(url('bills', noBooks)).set(owner).send({ vendorId: noBooksVendor, billDate: '2026-03-01', lines: [{ accountId: randomUUID(), unitPrice: '10.00' }] }),
      422, 'ledger.books_not_started', notStarted, noBooks);
  });

  // ------------------------------------------------------------------ settings
  it('updatePayablesSettings: an AP account that is no liability is 422 payables.account_not_allowed; thresholds twice are 400 payables.invalid_rules', async () => {
    const rules = [{ above: '0', approvals: 0, roles: ['owner'] }];
    await refused(() => t.http.put(url('settings')).set(users.owner.auth).send({ apAccountId: acc['5200'], approvalRules: rules }),
      422, 'payables.account_not_allowed', 'apAccountId: account 5200 is not an active, postable liability account');
    await refused(() => t.http.put(url('settings')).set(users.owner.auth)
      .send({ apAccountId: acc['2100'], approvalRules: [...rules, { above: '500', approvals: 1, roles: ['owner'] }, { above: '500.00', approvals: 2, roles: ['admin'] }] }),
    400, 'payables.invalid_rules', 'approvalRules: thresholds must be distinct');
    expect((await t.http.get(url('settings')).set(users.owner.auth).expect(200)).body.isDefault).toBe(true);
  });

  // ------------------------------------------------------------------ a bill's content
  it('createBill: zero total, due before the bill date, an archived tax code and an unknown currency are refused; no bill is written', async () => {
    const send = (o: object) => () => t.http.post(url('bills')).set(users.accountant.auth).send({ vendorId: vendor, billDate: '2026-03-02', lines: [line()], ...o });
    await refused(send({ lines: [line({ unitPrice: '0' })] }), 400, 'payables.empty', 'the total is zero');
    await refused(send({ dueDate: '2026-03-01' }), 400, 'payables.due_before_bill', 'dueDate 2026-03-01 is before billDate 2026-03-02');
    await refused(send({ currency: 'QQQ' }), 422, 'ledger.unknown_currency', 'currency QQQ is not known');
    const old = (await t.http.post(ledgerUrl(orgId, 'tax-codes')).set(users.owner.auth)
      .send({ code: 'OLD7', name: 'Old 7 %', rate: '7', salesAccountId: acc['2200'], purchaseAccountId: acc['1300'] }).expect(201)).body.id;
    await t.http.post(ledgerUrl(orgId, `tax-codes/${old}/archive`)).set(users.owner.auth).expect(200);
    await refused(send({ lines: [line(), line({ taxCodeId: old })] }), 422, 'ledger.tax_code_archived', 'lines[1].taxCodeId: tax code OLD7 is archived');
  });

  it('updateBill: each content check refuses the new content and leaves the draft as it was', async () => {
    const id = await draftBill({ billNumber: 'UPD-1', lines: [line({ taxCodeId: vat })] });
    const send = (o: object) => () => t.http.patch(url(`bills/${id}`)).set(users.accountant.auth).send({ billDate: '2026-03-04', lines: [line()], ...o });
    await refused(send({ total: '99.00' }), 400, 'payables.total_mismatch', 'total: the client sent 99.00 but the lines add up to 100.00');
    await refused(send({ lines: [line({ accountId: acc['4100'] })] }), 422, 'payables.account_not_allowed', 'lines[0].accountId: account 4100 is a revenue account, not an expense or asset account');
    await refused(send({ lines: [line({ unitPrice: '0.00' })] }), 400, 'payables.empty', 'the total is zero');
    await refused(send({ dueDate: '2026-03-03' }), 400, 'payables.due_before_bill', 'dueDate 2026-03-03 is before billDate 2026-03-04');
    await refused(send({ currency: 'QQQ' }), 422, 'ledger.unknown_currency', 'currency QQQ is not known');
    const unknownTax = randomUUID();
    await refused(send({ lines: [line({ taxCodeId: unknownTax })] }), 404, 'tax_code.not_found', `tax_code ${unknownTax} was not found`);
    const old = (await t.http.post(ledgerUrl(orgId, 'tax-codes')).set(users.owner.auth)
      .send({ code: 'OLD5', name: 'Old 5 %', rate: '5', salesAccountId: acc['2200'], purchaseAccountId: acc['1300'] }).expect(201)).body.id;
    await t.http.post(ledgerUrl(orgId, `tax-codes/${old}/archive`)).set(users.owner.auth).expect(200);
    await refused(send({ lines: [line({ taxCodeId: old })] }), 422, 'ledger.tax_code_archived', 'lines[0].taxCodeId: tax code OLD5 is archived');
    // the vendor archived since the draft was entered
    const gone = await createVendor(t, orgId, users.accountant, { name: 'Gone Ltd' });
    const ofGone = await draftBill({ vendorId: gone });
    await t.http.post(url(`vendors/${gone}/archive`)).set(users.accountant.auth).expect(200);
    await refused(() => t.http.patch(url(`bills/${ofGone}`)).set(users.accountant.auth).send({ billDate: '2026-03-04', lines: [line()] }),
      422, 'payables.vendor_archived', 'vendor Gone Ltd is archived');
    const bill = (await t.http.get(url(`bills/${id}`)).set(users.accountant.auth).expect(200)).body;
    expect(bill).toMatchObject({ status: 'draft', billNumber: 'UPD-1', billDate: '2026-03-02', total: '120.00', lines: [{ taxCodeId: vat }] });
  });

  // ------------------------------------------------------------------ a claim's content
  it('createExpenseClaim: wrong total, zero total, a line in another currency and an unknown currency are refused; no claim is written', async () => {
    const send = (o: object) => () => t.http.post(url('expense-claims')).set(users.member.auth).send({ claimDate: '2026-03-03', currency: 'EUR', lines: [claimLine()], ...o });
    await refused(send({ total: '41.00' }), 400, 'payables.total_mismatch', 'total: the client sent 41.00 but the lines add up to 40.00');
    await refused(send({ lines: [claimLine({ amount: '0' })] }), 400, 'payables.empty', 'the total is zero');
    await refused(send({ lines: [claimLine(), claimLine({ currency: 'USD' })] }), 422, 'payables.currency_mismatch', 'lines[1].currency is USD, the claim is in EUR');
    await refused(send({ currency: 'QQQ', lines: [claimLine({ currency: 'QQQ' })] }), 422, 'ledger.unknown_currency', 'currency QQQ is not known');
  });

  it('updateExpenseClaim: a revenue account, zero total, a line in another currency and an unknown currency are refused; the draft stays', async () => {
    const id = await draftClaim(users.member);
    const send = (o: object) => () => t.http.patch(url(`expense-claims/${id}`)).set(users.member.auth).send({ claimDate: '2026-03-05', currency: 'EUR', lines: [claimLine()], ...o });
    await refused(send({ lines: [claimLine({ accountId: acc['4100'] })] }), 422, 'payables.account_not_allowed', 'lines[0].accountId: account 4100 is a revenue account');
    await refused(send({ lines: [claimLine({ amount: '0.00' })] }), 400, 'payables.empty', 'the total is zero');
    await refused(send({ lines: [claimLine({ currency: 'GBP' })] }), 422, 'payables.currency_mismatch', 'lines[0].currency is GBP, the claim is in EUR');
    await refused(send({ currency: 'QQQ', lines: [claimLine({ currency: 'QQQ' })] }), 422, 'ledger.unknown_currency', 'currency QQQ is not known');
    expect((await t.http.get(url(`expense-claims/${id}`)).set(users.member.auth).expect(200)).body).toMatchObject({ status: 'draft', billDate: '2026-03-03', total: '40.00' });
  });

  // ------------------------------------------------------------------ a claim's submission and withdrawal
  it('submitExpenseClaim and voidExpenseClaim: a submitted claim is 409 payables.not_editable; another member s claim is 404 (never payables.claim_not_own)', async () => {
    const submitted = await draftClaim(users.member);
    await submit(`expense-claims/${submitted}`, users.member);
    await refused(() => t.http.post(url(`expense-claims/${submitted}/submit`)).set(users.member.auth), 409, 'payables.not_editable', `expense_claim ${submitted} is submitted: only a draft or rejected one can be submitted`);
    await refused(() => t.http.post(url(`expense-claims/${submitted}/void`)).set(users.member.auth).send({}), 409, 'payables.not_editable', `expense_claim ${submitted} is submitted: only a draft, rejected or posted one can be voided (reject it first)`);
    // a member reads only their own claims: another member's is not found, so these operations do not declare claim_not_own
    const draft = await draftClaim(users.member);
    await refused(() => t.http.post(url(`expense-claims/${draft}/submit`)).set(member2.auth), 404, 'expense_claim.not_found', `expense_claim ${draft} was not found`);
    await refused(() => t.http.post(url(`expense-claims/${draft}/void`)).set(member2.auth).send({}), 404, 'expense_claim.not_found', `expense_claim ${draft} was not found`);
  });

  // ------------------------------------------------------------------ approval and rejection
  it('rejectBill: a draft is 409 payables.not_submitted; a bill whose rule needs an owner or admin is 403 payables.role_not_allowed for an accountant', async () => {
    const draft = await draftBill();
    await refused(() => t.http.post(url(`bills/${draft}/reject`)).set(users.owner.auth).send({ reason: 'no' }), 409, 'payables.not_submitted', `bill ${draft} is draft: only a submitted one can be rejected`);
    // 1,500.00: one approval by an owner or admin (the default rules)
    const big = await draftBill({ lines: [line({ unitPrice: '1500.00' })] });
    await submit(`bills/${big}`, users.accountant);
    await refused(() => t.http.post(url(`bills/${big}/reject`)).set(users.accountant.auth).send({ reason: 'no' }),
      403, 'payables.role_not_allowed', 'rejecting this bill needs the role owner or admin; you are accountant');
  });

  it('rejectExpenseClaim: a draft is 409 payables.not_submitted; above 1,000.00 an accountant is 403 payables.role_not_allowed', async () => {
    const draft = await draftClaim(users.member);
    await refused(() => t.http.post(url(`expense-claims/${draft}/reject`)).set(users.owner.auth).send({ reason: 'no' }),
      409, 'payables.not_submitted', `expense_claim ${draft} is draft: only a submitted one can be rejected`);
    const big = await draftClaim(users.member, { lines: [claimLine({ amount: '1500.00' })] });
    await submit(`expense-claims/${big}`, users.member);
    await refused(() => t.http.post(url(`expense-claims/${big}/reject`)).set(users.accountant.auth).send({ reason: 'no' }),
      403, 'payables.role_not_allowed', 'rejecting this expense_claim needs the role owner or admin; you are accountant');
  });

  it('approveExpenseClaim: not submitted, the approver s own claim, a role the rule leaves out and a second approval by the same person are refused', async () => {
    const draft = await draftClaim(users.member);
    await refused(() => t.http.post(url(`expense-claims/${draft}/approve`)).set(users.owner.auth).send({}),
      409, 'payables.not_submitted', `expense_claim ${draft} is draft: only a submitted one can be approved`);
    // an accountant's own claim: any bookkeeper but them approves it
    const own = await draftClaim(users.accountant);
    await submit(`expense-claims/${own}`, users.accountant);
    await refused(() => t.http.post(url(`expense-claims/${own}/approve`)).set(users.accountant.auth).send({}),
      403, 'payables.own_bill', `you created expense_claim ${own}: another approver must approve it`);
    const big = await draftClaim(users.member, { lines: [claimLine({ amount: '1500.00' })] });
    await submit(`expense-claims/${big}`, users.member);
    await refused(() => t.http.post(url(`expense-claims/${big}/approve`)).set(users.accountant.auth).send({}),
      403, 'payables.role_not_allowed', 'approving this expense_claim needs the role owner or admin; you are accountant');
    // 15,000.00: two approvals by owners or admins; the admin's second one does not count
    const huge = await draftClaim(users.member, { lines: [claimLine({ amount: '15000.00' })] });
    await submit(`expense-claims/${huge}`, users.member);
    await t.http.post(url(`expense-claims/${huge}/approve`)).set(users.admin.auth).send({}).expect(200);
    await refused(() => t.http.post(url(`expense-claims/${huge}/approve`)).set(users.admin.auth).send({}),
      409, 'payables.already_approved', `you have already approved this submission of expense_claim ${huge}; it needs another approver`);
    expect((await t.http.get(url(`expense-claims/${huge}`)).set(users.owner.auth).expect(200)).body).toMatchObject({ status: 'submitted', approvalsGiven: 1, journalEntryId: null });
  });
});
