import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { OpenAPIObject } from '@nestjs/swagger';
import { POSTING_ERRORS } from '../../src/modules/ledger/ledger.errors.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, onPlan, orgWithRoles, registerUser, type RoleUsers } from '../support/factories.js';
import { ledgerUrl, startBooks } from './ledger-support.js';
import { rUrl, setupReceivables } from '../receivables/receivables-support.js';
import { createVendor, payablesUrl } from '../payables/payables-support.js';

// The posting codes (POSTING_ERRORS) an operation declares are those a client can cause on it: the postings the API
// builds itself (documents, reversals, the year-end close, revaluation) never answer the others (ledger.errors.ts).
// A sample of the codes kept, produced through HTTP: the code, and nothing written.

/** operationId -> the POSTING_ERRORS codes it declares (without the `ledger.` prefix), sorted. */
const DECLARED: Record<string, string[]> = {
  postJournalEntry: POSTING_ERRORS.map((c) => c.slice('ledger.'.length)).sort(),
  postInvoice: ['account_not_postable', 'currency_not_allowed', 'invalid_amount', 'invalid_rate', 'no_fiscal_year', 'period_closed', 'rate_missing', 'rounding_account_missing'],
  reverseInvoice: ['account_not_postable', 'no_fiscal_year', 'period_closed'],
  createCreditNote: ['account_not_postable', 'currency_not_allowed', 'no_fiscal_year', 'period_closed', 'rounding_account_missing'],
  createPayment: ['account_not_postable', 'currency_not_allowed', 'invalid_amount', 'invalid_rate', 'no_fiscal_year', 'period_closed', 'rate_missing', 'unknown_currency'],
  createAllocation: ['account_not_postable', 'currency_not_allowed', 'no_fiscal_year', 'period_closed'],
  refundCustomerCredit: ['account_not_postable', 'currency_not_allowed', 'invalid_amount', 'invalid_rate', 'no_fiscal_year', 'period_closed', 'rate_missing'],
  reverseAllocation: ['account_not_postable', 'currency_not_allowed', 'no_fiscal_year', 'period_closed'],
  postRevenueRecognition: ['account_not_postable', 'currency_not_allowed', 'period_closed'],
  submitBill: ['account_not_postable', 'currency_not_allowed', 'invalid_amount', 'no_fiscal_year', 'period_closed', 'rate_missing', 'rounding_account_missing'],
  approveBill: ['account_not_postable', 'currency_not_allowed', 'invalid_amount', 'no_fiscal_year', 'period_closed', 'rounding_account_missing'],
  approveExpenseClaim: ['account_not_postable', 'currency_not_allowed', 'invalid_amount', 'no_fiscal_year', 'period_closed', 'rounding_account_missing'],
  createBillPayment: ['account_not_postable', 'books_not_started', 'currency_not_allowed', 'invalid_amount', 'invalid_rate', 'no_fiscal_year', 'period_closed', 'rate_missing', 'unknown_currency'],
  allocateBillPayment: ['account_not_postable', 'currency_not_allowed', 'no_fiscal_year', 'period_closed'],
  refundVendorCredit: ['account_not_postable', 'currency_not_allowed', 'invalid_amount', 'invalid_rate', 'no_fiscal_year', 'period_closed', 'rate_missing'],
  reverseBillAllocation: ['account_not_postable', 'currency_not_allowed', 'no_fiscal_year', 'period_closed'],
  closeFiscalYear: ['account_not_postable', 'books_not_started', 'currency_not_allowed', 'invalid_amount', 'period_closed'],
  reopenFiscalYear: ['account_not_postable'],
  reverseJournalEntry: ['account_not_postable', 'idempotency_conflict', 'no_fiscal_year', 'period_closed'],
  revalueForeignCurrency: ['account_not_postable', 'books_not_started', 'currency_not_allowed', 'invalid_amount', 'no_fiscal_year', 'period_closed', 'rate_missing'],
};

describe('the posting codes each operation declares, and a sample of them produced', () => {
  let t: TestApp;
  let orgId: string;
  let users: RoleUsers;
  let acc: Record<string, string>;
  let customer: string;
  let vendor: string;
  const entries = async (org = orgId) => Number((await t.db.admin.query('SELECT count(*) AS n FROM finance.journal_entries WHERE org_id = $1', [org])).rows[0].n);
  const count = async (table: string, org = orgId) => Number((await t.db.admin.query(`SELECT count(*) AS n FROM finance.${table} WHERE org_id = $1`, [org])).rows[0].n);
  const invoiceRow = async (id: string) =>
    (await t.db.admin.query('SELECT status, number, entry_id FROM finance.invoices WHERE org_id = $1 AND id = $2', [orgId, id])).rows[0];
  const claimState = async (id: string) => (await t.db.admin.query(`SELECT b.status, b.journal_entry_id,
      (SELECT array_agg(d.decision ORDER BY d.created_at) FROM finance.bill_decisions d WHERE d.org_id = b.org_id AND d.bill_id = b.id) AS decisions
    FROM finance.bills b WHERE b.org_id = $1 AND b.id = $2`, [orgId, id])).rows[0];
  /** A new account under `parent` (none posts to it yet, so it can be archived). */
  const newAccount = async (code: string, type: string, parent: string) =>
    (await t.http.post(ledgerUrl(orgId, 'accounts')).set(users.owner.auth).send({ code, name: `Account ${code}`, type, parentId: acc[parent] }).expect(201)).body.id as string;
  const archive = (accountId: string) => t.http.post(ledgerUrl(orgId, `accounts/${accountId}/archive`)).set(users.owner.auth).expect(200);
  /** Closes the period of `date`, runs `fn`, and opens the period again. */
  async function withClosedPeriod(date: string, fn: () => Promise<void>) {
    const periods = (await t.http.get(ledgerUrl(orgId, 'periods')).set(users.owner.auth).expect(200)).body as { id: string; startDate: string; endDate: string }[];
    const period = periods.find((p) => p.startDate <= date && p.endDate >= date)!;
    await t.http.post(ledgerUrl(orgId, `periods/${period.id}/close`)).set(users.owner.auth).send({}).expect(200);
    try {
      await fn();
    } finally {
      await t.http.post(ledgerUrl(orgId, `periods/${period.id}/reopen`)).set(users.owner.auth).send({}).expect(200);
    }
  }
  const draftInvoice = async (body: object) => (await t.http.post(rUrl(orgId, 'invoices')).set(users.accountant.auth)
    .send({ customerId: customer, lines: [{ description: 'Service', quantity: '1', unitPrice: '100.00', revenueAccountId: acc['4100'] }], ...body }).expect(201)).body.id as string;
  /** A claim of the member on `accountId`, submitted (it needs one bookkeeper's approval). */
  async function submittedClaim(accountId: string, date: string): Promise<string> {
    const claim = (await t.http.post(payablesUrl(orgId, 'expense-claims')).set(users.member.auth)
      .send({ claimDate: date, currency: 'EUR', lines: [{ accountId, amount: '42.50', currency: 'EUR', date }] }).expect(201)).body.id as string;
    await t.http.post(payablesUrl(orgId, `expense-claims/${claim}/submit`)).set(users.member.auth).expect(200);
    return claim;
  }

  beforeAll(async () => {
    t = await createTestApp();
    ({ orgId, users } = await orgWithRoles(t, 'Posting Codes Ltd'));
    await onPlan(t, orgId, 'professional');
    // base EUR and no FX rate at all: a USD posting that needs a rate from the table finds none
    ({ acc, customer } = await setupReceivables(t, orgId, users.owner, 'EUR'));
    vendor = await createVendor(t, orgId, users.accountant);
  });
  afterAll(() => t.close());

  it('each posting operation declares exactly the posting codes a client can cause on it', async () => {
    const doc = (await t.http.get('/docs-json').expect(200)).body as OpenAPIObject;
    const posting = new Set<string>(POSTING_ERRORS);
    const declared: Record<string, string[]> = {};
    for (const item of Object.values(doc.paths)) {
      for (const op of [item.get, item.put, item.post, item.patch, item.delete]) {
        if (!op?.operationId || !(op.operationId in DECLARED)) continue;
        const codes = ((op as unknown as { 'x-error-codes': { code: string }[] })['x-error-codes']).map((c) => c.code);
        declared[op.operationId] = codes.filter((c) => posting.has(c)).map((c) => c.slice('ledger.'.length)).sort();
      }
    }
    expect(declared).toEqual(DECLARED);
  });

  // ------------------------------------------------------------------ an invoice's issue
  it('issue: an invoice date in a closed period is ledger.period_closed; the invoice stays a draft, nothing is posted', async () => {
    const id = await draftInvoice({ invoiceDate: '2026-06-10' });
    const before = await entries();
    await withClosedPeriod('2026-06-10', async () => {
      const res = await t.http.post(rUrl(orgId, `invoices/${id}/issue`)).set(users.accountant.auth).send({}).expect(422);
      expect(res.body.error).toMatchObject({ code: 'ledger.period_closed', message: expect.stringContaining('2026-06-01 to 2026-06-30 is closed') });
    });
    expect(await invoiceRow(id)).toEqual({ status: 'draft', number: null, entry_id: null });
    expect(await entries()).toBe(before);
  });

  it('issue: a foreign invoice without a rate sent nor an FX rate on its date is ledger.rate_missing; nothing is written', async () => {
    const id = await draftInvoice({ invoiceDate: '2026-04-01', currency: 'USD' });
    const before = await entries();
    const res = await t.http.post(rUrl(orgId, `invoices/${id}/issue`)).set(users.accountant.auth).send({}).expect(422);
    expect(res.body.error).toEqual({ code: 'ledger.rate_missing', message: 'no USD rate on or before 2026-04-01' });
    expect(await invoiceRow(id)).toEqual({ status: 'draft', number: null, entry_id: null });
    expect(await entries()).toBe(before);
  });

  it('issue: a rate of 0 sent by the client is ledger.invalid_rate; nothing is written', async () => {
    const id = await draftInvoice({ invoiceDate: '2026-04-02', currency: 'USD' });
    const before = await entries();
    const res = await t.http.post(rUrl(orgId, `invoices/${id}/issue`)).set(users.accountant.auth).send({ rate: '0' }).expect(422);
    expect(res.body.error).toMatchObject({ code: 'ledger.invalid_rate', message: expect.stringContaining('rate must be positive') });
    expect(await invoiceRow(id)).toEqual({ status: 'draft', number: null, entry_id: null });
    expect(await entries()).toBe(before);
  });

  it('issue: a revenue account archived after the draft named it is ledger.account_not_postable; nothing is written', async () => {
    const revenue = await newAccount('4250', 'revenue', '4000');
    const id = await draftInvoice({ invoiceDate: '2026-04-03', lines: [{ description: 'Licence', quantity: '2', unitPrice: '50.00', revenueAccountId: revenue }] });
    await archive(revenue);
    const before = await entries();
    const res = await t.http.post(rUrl(orgId, `invoices/${id}/issue`)).set(users.accountant.auth).send({}).expect(422);
    expect(res.body.error).toMatchObject({ code: 'ledger.account_not_postable', message: expect.stringContaining('account 4250 is archived') });
    expect(await invoiceRow(id)).toEqual({ status: 'draft', number: null, entry_id: null });
    expect(await entries()).toBe(before);
  });

  it('void: a date no fiscal year covers is ledger.no_fiscal_year; the invoice stays issued, no reversal is posted', async () => {
    const id = await draftInvoice({ invoiceDate: '2026-04-04' });
    await t.http.post(rUrl(orgId, `invoices/${id}/issue`)).set(users.accountant.auth).send({}).expect(200);
    const before = await entries();
    const res = await t.http.post(rUrl(orgId, `invoices/${id}/void`)).set(users.accountant.auth).send({ date: '2031-01-15' }).expect(422);
    expect(res.body.error).toEqual({ code: 'ledger.no_fiscal_year', message: 'no fiscal period covers 2031-01-15' });
    expect(await invoiceRow(id)).toMatchObject({ status: 'issued', entry_id: expect.any(String) });
    expect((await t.db.admin.query('SELECT voided_on, void_entry_id FROM finance.invoices WHERE id = $1', [id])).rows[0]).toEqual({ voided_on: null, void_entry_id: null });
    expect(await entries()).toBe(before);
  });

  // ------------------------------------------------------------------ customer payments
  it('payment: a currency the ledger does not know is ledger.unknown_currency; no payment, no entry', async () => {
    const [payments, before] = [await count('customer_payments'), await entries()];
    const res = await t.http.post(rUrl(orgId, 'payments')).set(users.accountant.auth)
      .send({ customerId: customer, date: '2026-04-05', amount: '10.00', currency: 'QQQ', depositAccountId: acc['1100'], method: 'bank_transfer' }).expect(422);
    expect(res.body.error).toEqual({ code: 'ledger.unknown_currency', message: 'currency QQQ is not known' });
    expect([await count('customer_payments'), await entries()]).toEqual([payments, before]);
  });

  it('allocation: the FX entry of a foreign credit allocated later is at the payment rate: no rate of its date is needed (none here)', async () => {
    const invoice = await draftInvoice({ invoiceDate: '2026-04-06', currency: 'USD' });
    await t.http.post(rUrl(orgId, `invoices/${invoice}/issue`)).set(users.accountant.auth).send({ rate: '0.9' }).expect(200);
    const payment = (await t.http.post(rUrl(orgId, 'payments')).set(users.accountant.auth)
      .send({ customerId: customer, date: '2026-04-07', amount: '100.00', currency: 'USD', rate: '0.95', depositAccountId: acc['1100'], method: 'bank_transfer' }).expect(201)).body.id;
    const [allocations, before] = [await count('receivable_allocations'), await entries()];
    const res = await t.http.post(rUrl(orgId, `payments/${payment}/allocations`)).set(users.accountant.auth)
      .send({ date: '2026-04-08', allocations: [{ invoiceId: invoice, amount: '100.00' }] }).expect(201);
    expect(res.body.allocations).toEqual([expect.objectContaining({ invoiceId: invoice, realizedFx: '5.00' })]);
    expect([await count('receivable_allocations'), await entries()]).toEqual([allocations + 1, before + 1]);
    const { rows } = await t.db.admin.query(`SELECT l.currency, l.rate::numeric(10, 4)::text AS rate FROM finance.journal_lines l WHERE l.org_id = $1 AND l.entry_id = $2 ORDER BY l.line_no`,
      [orgId, res.body.allocations[0].entryId]);
    expect(rows).toEqual([{ currency: 'USD', rate: '0.9500' }, { currency: 'USD', rate: '0.9500' }, { currency: 'EUR', rate: '1.0000' }]);
    expect(await invoiceRow(invoice)).toMatchObject({ status: 'paid' });
  });

  // ------------------------------------------------------------------ vendor payments
  it('vendor payment: a date in a closed period is ledger.period_closed; no payment, no entry', async () => {
    const [payments, before] = [await count('bill_payments'), await entries()];
    await withClosedPeriod('2026-07-03', async () => {
      const res = await t.http.post(payablesUrl(orgId, 'payments')).set(users.accountant.auth)
        .send({ vendorId: vendor, paymentDate: '2026-07-03', amount: '25.00', bankAccountId: acc['1100'] }).expect(422);
      expect(res.body.error).toMatchObject({ code: 'ledger.period_closed', message: expect.stringContaining('2026-07-01 to 2026-07-31 is closed') });
    });
    expect([await count('bill_payments'), await entries()]).toEqual([payments, before]);
  });

  it('vendor payment: a foreign payment without an FX rate on its date is ledger.rate_missing; no payment, no entry', async () => {
    const [payments, before] = [await count('bill_payments'), await entries()];
    const res = await t.http.post(payablesUrl(orgId, 'payments')).set(users.accountant.auth)
      .send({ vendorId: vendor, paymentDate: '2026-04-09', amount: '25.00', currency: 'USD', bankAccountId: acc['1100'] }).expect(422);
    expect(res.body.error).toEqual({ code: 'ledger.rate_missing', message: 'no USD rate on or before 2026-04-09' });
    expect([await count('bill_payments'), await entries()]).toEqual([payments, before]);
  });

  it('vendor payment: an AP account archived after the settings named it is ledger.account_not_postable; no payment, no entry', async () => {
    // an organization of its own: its AP account is archived for good
    const owner = await registerUser(t, 'ap-owner');
    const org = await createOrg(t, owner, 'Archived AP Ltd');
    await onPlan(t, org, 'professional');
    const accounts = await startBooks(t, org, owner);
    const ap = (await t.http.post(ledgerUrl(org, 'accounts')).set(owner.auth).send({ code: '2150', name: 'Trade creditors', type: 'liability', parentId: accounts['2000'] }).expect(201)).body.id;
    await t.http.put(payablesUrl(org, 'settings')).set(owner.auth).send({ apAccountId: ap, approvalRules: [{ above: '0', approvals: 0, roles: ['owner'] }] }).expect(200);
    const payee = await createVendor(t, org, owner);
    await t.http.post(ledgerUrl(org, `accounts/${ap}/archive`)).set(owner.auth).expect(200);
    const res = await t.http.post(payablesUrl(org, 'payments')).set(owner.auth)
      .send({ vendorId: payee, paymentDate: '2026-04-10', amount: '25.00', bankAccountId: accounts['1100'] }).expect(422);
    expect(res.body.error).toMatchObject({ code: 'ledger.account_not_postable', message: expect.stringContaining('account 2150 is archived') });
    expect([await count('bill_payments', org), await entries(org)]).toEqual([0, 0]);
  });

  it('vendor payment before the books are started (a vendor exists already) is ledger.books_not_started; nothing is written', async () => {
    const owner = await registerUser(t, 'no-books-owner');
    const org = await createOrg(t, owner, 'No Books Ltd');
    await onPlan(t, org, 'professional');
    const payee = await createVendor(t, org, owner);
    const res = await t.http.post(payablesUrl(org, 'payments')).set(owner.auth)
      .send({ vendorId: payee, paymentDate: '2026-04-10', amount: '25.00', bankAccountId: '00000000-0000-4000-8000-000000000001' }).expect(422);
    expect(res.body.error.code).toBe('ledger.books_not_started');
    expect([await count('bill_payments', org), await entries(org)]).toEqual([0, 0]);
  });

  // ------------------------------------------------------------------ an expense claim's approval
  it('claim approval: a claim date in a period closed since the submission is ledger.period_closed; the claim stays submitted, nothing is posted', async () => {
    const claim = await submittedClaim(acc['5200'], '2026-08-12');
    const before = await entries();
    await withClosedPeriod('2026-08-12', async () => {
      const res = await t.http.post(payablesUrl(orgId, `expense-claims/${claim}/approve`)).set(users.accountant.auth).send({}).expect(422);
      expect(res.body.error).toMatchObject({ code: 'ledger.period_closed', message: expect.stringContaining('2026-08-01 to 2026-08-31 is closed') });
    });
    expect(await claimState(claim)).toEqual({ status: 'submitted', journal_entry_id: null, decisions: ['submit'] });
    expect(await entries()).toBe(before);
  });

  it('claim approval: an expense account archived since the claim named it is ledger.account_not_postable; the claim stays submitted', async () => {
    const travel = await newAccount('5250', 'expense', '5000');
    const claim = await submittedClaim(travel, '2026-04-11');
    await archive(travel);
    const before = await entries();
    const res = await t.http.post(payablesUrl(orgId, `expense-claims/${claim}/approve`)).set(users.accountant.auth).send({}).expect(422);
    expect(res.body.error).toMatchObject({ code: 'ledger.account_not_postable', message: expect.stringContaining('account 5250 is archived') });
    expect(await claimState(claim)).toEqual({ status: 'submitted', journal_entry_id: null, decisions: ['submit'] });
    expect(await entries()).toBe(before);
  });

  it('claim approval never meets a missing FX rate: the submission already looked it up (ledger.rate_missing there), and rates are never deleted', async () => {
    const claim = (await t.http.post(payablesUrl(orgId, 'expense-claims')).set(users.member.auth)
      .send({ claimDate: '2026-04-12', currency: 'USD', lines: [{ accountId: acc['5200'], amount: '9.00', currency: 'USD', date: '2026-04-12' }] }).expect(201)).body.id;
    const res = await t.http.post(payablesUrl(orgId, `expense-claims/${claim}/submit`)).set(users.member.auth).expect(422);
    expect(res.body.error).toEqual({ code: 'ledger.rate_missing', message: 'no USD rate on or before 2026-04-12' });
    expect(await claimState(claim)).toEqual({ status: 'draft', journal_entry_id: null, decisions: null });
  });

  // ------------------------------------------------------------------ ledger operations
  it('revaluation: no FX rate on or before its date for a foreign balance is ledger.rate_missing; nothing is posted', async () => {
    await t.http.post(ledgerUrl(orgId, 'journal-entries')).set(users.owner.auth).send({ date: '2026-04-13', lines: [
      { accountId: acc['1100'], debit: '10.00', currency: 'USD', rate: '0.9' }, { accountId: acc['3100'], credit: '9.00' }] }).expect(201);
    const before = await entries();
    const res = await t.http.post(ledgerUrl(orgId, 'fx-revaluations')).set(users.owner.auth).send({ date: '2026-04-30' }).expect(422);
    expect(res.body.error).toEqual({ code: 'ledger.rate_missing', message: 'no USD rate on or before 2026-04-30' });
    expect(await entries()).toBe(before);
  });

  it('reversal: a date in a closed period is ledger.period_closed; the entry stays unreversed', async () => {
    const entry = (await t.http.post(ledgerUrl(orgId, 'journal-entries')).set(users.owner.auth).send({ date: '2026-09-02', lines: [
      { accountId: acc['1100'], debit: '5.00' }, { accountId: acc['3100'], credit: '5.00' }] }).expect(201)).body.id;
    const before = await entries();
    await withClosedPeriod('2026-09-02', async () => {
      const res = await t.http.post(ledgerUrl(orgId, `journal-entries/${entry}/reverse`)).set(users.owner.auth).send({}).expect(422);
      expect(res.body.error).toMatchObject({ code: 'ledger.period_closed', message: expect.stringContaining('2026-09-01 to 2026-09-30 is closed') });
    });
    expect(await entries()).toBe(before);
    expect((await t.http.get(ledgerUrl(orgId, `journal-entries/${entry}`)).set(users.owner.auth).expect(200)).body.reversedByEntryId).toBeNull();
  });
});
