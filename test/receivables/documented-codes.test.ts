import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { tableContents } from '../support/database.js';
import { ManualClock } from '../support/clock.js';
import { createOrg, onPlan, orgWithRoles, registerUser, type RoleUsers, type TestUser } from '../support/factories.js';
import { ledgerUrl } from '../ledger/ledger-support.js';
import { rUrl, setupReceivables } from './receivables-support.js';

// Every error code the receivables operations document, produced over HTTP where no other test produces it: the status,
// the code, the message naming the problem, and nothing written (the organization's documents, payments, allocations,
// journal, audit and outbox are as before). One organization per state: books started with the standard chart (EUR),
// books not started, and books without a chart (no rounding nor FX accounts) whose receivables settings come late.

/** The tables a refused receivables request could write, per organization. */
const TABLES = ['finance.customers', 'finance.invoices', 'finance.invoice_lines', 'finance.customer_payments', 'finance.customer_refunds', 'finance.receivable_allocations',
  'finance.receivables_settings', 'finance.revenue_recognition_runs', 'finance.revenue_recognitions', 'finance.document_numbers', 'finance.journal_entries',
  'finance.journal_lines', 'finance.settings', 'core.audit_logs', 'core.outbox'];

type Res = { status: number; body: any };

describe('receivables: the documented error codes of its operations, produced', () => {
  let t: TestApp;
  const clock = new ManualClock();
  let orgId: string;
  let users: RoleUsers;
  let acc: Record<string, string>;
  let vat: string;
  let customer: string;

  const footprint = (org: string) => tableContents(t.db.admin, { tables: TABLES, orgId: org });
  /** Sends `request`, expects `status` and the error `code` with a message naming the problem, and that nothing was written. */
  async function refused(org: string, request: () => Promise<Res>, status: number, code: string, message: string | RegExp) {
    const before = await footprint(org);
    const res = await request();
    expect({ status: res.status, code: res.body.error?.code }).toEqual({ status, code });
    expect(res.body.error.message).toEqual(typeof message === 'string' ? expect.stringContaining(message) : expect.stringMatching(message));
    expect(await footprint(org)).toEqual(before);
  }
  const as = (who: TestUser) => ({
    get: (org: string, path: string) => t.http.get(rUrl(org, path)).set(who.auth),
    post: (org: string, path: string, body: object = {}) => t.http.post(rUrl(org, path)).set(who.auth).send(body),
    put: (org: string, path: string, body: object) => t.http.put(rUrl(org, path)).set(who.auth).send(body),
    ledger: (org: string, path: string, body?: object, method: 'post' | 'patch' = 'post') => t.http[method](ledgerUrl(org, path)).set(who.auth).send(body ?? {}),
  });
  const a = () => as(users.accountant);
  const o = () => as(users.owner);
  const line = (extra: object = {}) => ({ description: 'Service', quantity: '1', unitPrice: '100.00', revenueAccountId: acc['4100'], ...extra });
  const draft = async (body: object, org = orgId, who = users.accountant) =>
    (await as(who).post(org, 'invoices', { customerId: customer, invoiceDate: '2026-04-01', lines: [line()], ...body }).expect(201)).body.id as string;
  const issued = async (body: object, rate?: string, org = orgId, who = users.accountant) => {
    const id = await draft(body, org, who);
    return (await as(who).post(org, `invoices/${id}/issue`, rate ? { rate } : {}).expect(200)).body as { id: string; number: string };
  };
  const payment = async (body: object, org = orgId, who = users.accountant) =>
    (await as(who).post(org, 'payments', { customerId: customer, date: '2026-04-20', amount: '100.00', depositAccountId: acc['1100'], method: 'bank_transfer', ...body }).expect(201)).body;
  const newAccount = async (org: string, who: TestUser, body: object) => (await as(who).ledger(org, 'accounts', { name: 'Account', ...body }).expect(201)).body.id as string;
  const periodOf = async (org: string, who: TestUser, date: string) =>
    ((await t.http.get(ledgerUrl(org, 'periods')).set(who.auth).expect(200)).body as { id: string; startDate: string; endDate: string }[]).find((p) => p.startDate <= date && p.endDate >= date)!.id;
  /** Closes the period of `date` in the main organization, runs `fn`, and opens it again. */
  async function withClosedPeriod(date: string, fn: () => Promise<void>) {
    const period = await periodOf(orgId, users.owner, date);
    await o().ledger(orgId, `periods/${period}/close`).expect(200);
    try {
      await fn();
    } finally {
      await o().ledger(orgId, `periods/${period}/reopen`).expect(200);
    }
  }
  let fxAccounts = 0;
  /**
   * Runs `fn` with the realized FX gain and loss accounts of the main organization both set to a new revenue account,
   * archived once set (`archived`; nothing posted to it) or taking USD only (`usd`), then restores them.
   */
  async function withFxAccount(kind: 'archived' | 'usd', fn: (code: string) => Promise<void>) {
    const settings = (await t.http.get(ledgerUrl(orgId, 'settings')).set(users.owner.auth).expect(200)).body;
    const code = String(4980 + fxAccounts++);
    const account = await newAccount(orgId, users.owner, { code, type: 'revenue', parentId: acc['4000'], ...(kind === 'usd' ? { currency: 'USD' } : {}) });
    await o().ledger(orgId, 'settings', { fxGainAccountId: account, fxLossAccountId: account }, 'patch').expect(200);
    if (kind === 'archived') await o().ledger(orgId, `accounts/${account}/archive`).expect(200);
    try {
      await fn(code);
    } finally {
      await o().ledger(orgId, 'settings', { fxGainAccountId: settings.fxGainAccountId, fxLossAccountId: settings.fxLossAccountId }, 'patch').expect(200);
    }
  }

  beforeAll(async () => {
    t = await createTestApp({}, { clock });
    ({ orgId, users } = await orgWithRoles(t, 'Receivables Codes Ltd'));
    await onPlan(t, orgId, 'professional');
    ({ acc, vat, customer } = await setupReceivables(t, orgId, users.owner, 'EUR'));
    // a USD rate from April in the table; never a CHF rate (a CHF payment or refund without a rate finds none)
    await a().ledger(orgId, 'fx-rates', { currency: 'USD', date: '2026-04-01', rate: '0.95' }).expect(201);
  });
  afterAll(() => t.close());

  it('documents none of the codes its operations cannot answer', async () => {
    const doc = (await t.http.get('/docs-json').expect(200)).body;
    const codes = (path: string, method: string) => (doc.paths[`/v1/orgs/{orgId}/receivables/${path}`][method]['x-error-codes'] as { code: string }[]).map((c) => c.code);
    // a draft exists only once the books are started; the create reads them first
    expect(codes('invoices', 'post')).toContain('ledger.books_not_started');
    expect(codes('invoices/{invoiceId}', 'put')).not.toContain('ledger.books_not_started');
    expect(codes('invoices/{invoiceId}/issue', 'post')).not.toContain('ledger.books_not_started');
    // an issued invoice or a payment had the settings, which are never unset; a line still deferred keeps its account in them
    for (const code of ['receivables.settings_missing', 'receivables.deferred_account_missing']) expect(codes('invoices/{invoiceId}/credit-notes', 'post')).not.toContain(code);
    // a revalued invoice's share goes back to the unrealized FX accounts its revaluation needed (never unset)
    expect(codes('invoices/{invoiceId}/credit-notes', 'post')).not.toContain('receivables.fx_accounts_missing');
    // a void takes a revalued invoice's revaluation off those same accounts
    for (const code of ['ledger.fx_accounts_missing', 'receivables.fx_accounts_missing']) expect(codes('invoices/{invoiceId}/void', 'post')).not.toContain(code);
    for (const path of ['payments/{customerPaymentId}/allocations', 'payments/{customerPaymentId}/refunds', 'allocations/{receivableAllocationId}/reverse']) {
      expect(codes(path, 'post')).not.toContain('receivables.settings_missing');
    }
    expect(codes('revenue-recognition/runs', 'post')).not.toContain('receivables.deferred_account_missing');
    // the PDF route answers its errors as JSON
    expect(Object.keys(doc.paths['/v1/orgs/{orgId}/receivables/invoices/{invoiceId}/pdf'].get.responses['409'].content)).toContain('application/json');
  });

  // ------------------------------------------------------------------ customers and drafts
  it('customers: a default currency the ledger does not know is 422 ledger.unknown_currency on create and update', async () => {
    await refused(orgId, () => a().post(orgId, 'customers', { name: 'Quux Ltd', defaultCurrency: 'QQQ' }), 422, 'ledger.unknown_currency', 'currency QQQ is not known');
    await refused(orgId, () => a().put(orgId, `customers/${customer}`, { defaultCurrency: 'QQQ' }), 422, 'ledger.unknown_currency', 'currency QQQ is not known');
  });

  it('settings: a group account for AR is 422 receivables.account_not_postable; the settings stay as they were', async () => {
    await refused(orgId, () => o().put(orgId, 'settings', { arAccountId: acc['1000'], deferredRevenueAccountId: acc['2400'] }), 422, 'receivables.account_not_postable',
      'arAccountId: account 1000 is a group account; use one of its children');
  });

  it('invoices: an unknown currency is 422 ledger.unknown_currency; before the books are started 422 ledger.books_not_started; a draft has no PDF (409)', async () => {
    await refused(orgId, () => a().post(orgId, 'invoices', { customerId: customer, invoiceDate: '2026-04-01', currency: 'QQQ', lines: [line()] }),
      422, 'ledger.unknown_currency', 'currency QQQ is not known');
    const bareOwner = await registerUser(t, 'bare-owner');
    const bare = await createOrg(t, bareOwner, 'No Books Receivables Ltd');
    await onPlan(t, bare, 'professional');
    const bareCustomer = (await as(bareOwner).post(bare, 'customers', { name: 'Early Ltd' }).expect(201)).body.id;
    await refused(bare, () => as(bareOwner).post(bare, 'invoices', { customerId: bareCustomer, invoiceDate: '2026-04-01',
      lines: [line({ revenueAccountId: randomUUID() })] }), 422, 'ledger.books_not_started', 'not started');
    const id = await draft({});
    await refused(orgId, () => a().get(orgId, `invoices/${id}/pdf`), 409, 'receivables.invalid_status', 'a draft has no number yet: issue it first');
  });

  it('a draft replaced with what a new draft refuses keeps its content: each code of the update', async () => {
    const id = await draft({ invoiceDate: '2026-04-02' });
    const archivedCustomer = (await a().post(orgId, 'customers', { name: 'Gone Ltd' }).expect(201)).body.id;
    await a().post(orgId, `customers/${archivedCustomer}/archive`).expect(200);
    const body = { customerId: customer, invoiceDate: '2026-04-02', lines: [line()] };
    const missing = randomUUID();
    const cases: [object, number, string, string][] = [
      [{ customerId: missing }, 422, 'receivables.unknown_customer', `customer ${missing} does not exist`],
      [{ customerId: archivedCustomer }, 422, 'receivables.customer_archived', 'customer Gone Ltd is archived'],
      [{ lines: [line({ taxCodeId: missing })] }, 422, 'receivables.unknown_tax_code', `tax code ${missing} does not exist`],
      [{ lines: [line({ revenueAccountId: acc['4000'] })] }, 422, 'receivables.account_not_postable', 'account 4000 is a group account'],
      [{ total: '1.00' }, 400, 'receivables.total_mismatch', 'total 1.00 differs from the total computed from the lines, 100.00'],
      [{ lines: [line({ quantity: '0' })] }, 400, 'receivables.invalid_amount', 'lines[0].quantity must be positive'],
      [{ currency: 'QQQ' }, 422, 'ledger.unknown_currency', 'currency QQQ is not known'],
    ];
    for (const [change, status, code, message] of cases) {
      await refused(orgId, () => a().put(orgId, `invoices/${id}`, { ...body, ...change }), status, code, message).catch((err) => {
        throw new Error(`${code}: ${err.message}`);
      });
    }
  });

  // ------------------------------------------------------------------ issue
  it('issue: no fiscal year, a revenue account of another currency, a base value too large, an invoice issued already: each refuses it', async () => {
    const late = await draft({ invoiceDate: '2031-01-15' });
    await refused(orgId, () => a().post(orgId, `invoices/${late}/issue`), 422, 'ledger.no_fiscal_year', 'no fiscal period covers 2031-01-15');
    const usdRevenue = await newAccount(orgId, users.accountant, { code: '4199', type: 'revenue', parentId: acc['4000'], currency: 'USD' });
    const euro = await draft({ invoiceDate: '2026-04-03', lines: [line({ revenueAccountId: usdRevenue })] });
    await refused(orgId, () => a().post(orgId, `invoices/${euro}/issue`), 422, 'ledger.currency_not_allowed', '4199');
    const huge = await draft({ invoiceDate: '2026-04-03', currency: 'USD', lines: [line({ unitPrice: '9999999999999' })] });
    await refused(orgId, () => a().post(orgId, `invoices/${huge}/issue`, { rate: '999999999999', rateOverride: true }), 422, 'ledger.invalid_amount', /./);
    const done = await issued({ invoiceDate: '2026-04-03' });
    await refused(orgId, () => a().post(orgId, `invoices/${done.id}/issue`), 409, 'receivables.not_draft', `invoice ${done.number} is already issued`);
  });

  // ------------------------------------------------------------------ void and credit notes
  it('void: into a closed period 422 ledger.period_closed; its revenue account emptied and archived since 422 ledger.account_not_postable', async () => {
    const inv = await issued({ invoiceDate: '2026-05-05' });
    await withClosedPeriod('2026-11-10', () => refused(orgId, () => a().post(orgId, `invoices/${inv.id}/void`, { date: '2026-11-10' }), 422, 'ledger.period_closed', '2026-11-01 to 2026-11-30 is closed'));
    const revenue = await newAccount(orgId, users.accountant, { code: '4198', type: 'revenue', parentId: acc['4000'] });
    const gone = await issued({ invoiceDate: '2026-05-06', lines: [line({ revenueAccountId: revenue })] });
    await o().ledger(orgId, 'journal-entries', { date: '2026-05-07', lines: [{ accountId: revenue, debit: '100.00' }, { accountId: acc['1100'], credit: '100.00' }] }).expect(201);
    await o().ledger(orgId, `accounts/${revenue}/archive`).expect(200);
    await refused(orgId, () => a().post(orgId, `invoices/${gone.id}/void`), 422, 'ledger.account_not_postable', 'account 4198 is archived');
    // and a credit note of it: the same archived account
    await refused(orgId, () => a().post(orgId, `invoices/${gone.id}/credit-notes`, { date: '2026-05-08' }), 422, 'ledger.account_not_postable', 'account 4198 is archived');
  });

  it('credit note: of a draft 409 receivables.invalid_status; a closed period, no fiscal year, a tax account of another currency: each refuses it', async () => {
    const id = await draft({ invoiceDate: '2026-05-09' });
    await refused(orgId, () => a().post(orgId, `invoices/${id}/credit-notes`, { date: '2026-05-09' }), 409, 'receivables.invalid_status', 'this invoice is draft');
    const inv = await issued({ invoiceDate: '2026-05-10', lines: [line({ taxCodeId: vat })] });
    await withClosedPeriod('2026-11-11', () => refused(orgId, () => a().post(orgId, `invoices/${inv.id}/credit-notes`, { date: '2026-11-11' }), 422, 'ledger.period_closed', '2026-11-01 to 2026-11-30 is closed'));
    await refused(orgId, () => a().post(orgId, `invoices/${inv.id}/credit-notes`, { date: '2031-01-15' }), 422, 'ledger.no_fiscal_year', 'no fiscal period covers 2031-01-15');
    const usdTax = await newAccount(orgId, users.accountant, { code: '2299', type: 'liability', parentId: acc['2000'], currency: 'USD' });
    await a().ledger(orgId, `tax-codes/${vat}`, { salesAccountId: usdTax }, 'patch').expect(200);
    try {
      await refused(orgId, () => a().post(orgId, `invoices/${inv.id}/credit-notes`, { date: '2026-05-11' }), 422, 'ledger.currency_not_allowed', '2299');
    } finally {
      await a().ledger(orgId, `tax-codes/${vat}`, { salesAccountId: acc['2200'] }, 'patch').expect(200);
    }
  });

  // ------------------------------------------------------------------ payments
  it('payment: each input and posting refusal of the create, nothing recorded', async () => {
    const draftId = await draft({ invoiceDate: '2026-04-04' });
    const usdInvoice = await issued({ invoiceDate: '2026-04-04', currency: 'USD' }, '0.9');
    const pay = (body: object) => () => a().post(orgId, 'payments', { customerId: customer, date: '2026-04-21', amount: '100.00', depositAccountId: acc['1100'], method: 'bank_transfer', ...body });
    await refused(orgId, pay({ date: '2031-01-15' }), 422, 'ledger.no_fiscal_year', 'no fiscal period covers 2031-01-15');
    await refused(orgId, pay({ currency: 'CHF' }), 422, 'ledger.rate_missing', 'no CHF rate on or before 2026-04-21');
    await refused(orgId, pay({ currency: 'USD', rate: '0' }), 422, 'ledger.invalid_rate', /rate/);
    await refused(orgId, pay({ currency: 'USD', rate: '999999999999', rateOverride: true, amount: '9999999999999' }), 422, 'ledger.invalid_amount', /./);
    await refused(orgId, pay({ depositAccountId: acc['1000'] }), 422, 'receivables.account_not_postable', 'depositAccountId: account 1000 is a group account');
    await refused(orgId, pay({ amount: '0' }), 400, 'receivables.invalid_amount', 'amount must be positive with at most 2 decimals');
    await refused(orgId, pay({ allocations: [{ invoiceId: draftId, amount: '10.00' }] }), 409, 'receivables.invalid_status', 'the invoice is draft; only issued invoices take payments');
    // a realized FX difference (the invoice at 0.9, the payment at 0.95) to an FX account archived, or of another currency
    const fx = pay({ currency: 'USD', rate: '0.95', allocations: [{ invoiceId: usdInvoice.id, amount: '100.00' }] });
    await withFxAccount('archived', (code) => refused(orgId, fx, 422, 'ledger.account_not_postable', `account ${code} is archived`));
    await withFxAccount('usd', (code) => refused(orgId, fx, 422, 'ledger.currency_not_allowed', code));
  });

  it('allocation: each input refusal and the FX posting refusals; nothing allocated', async () => {
    const other = (await a().post(orgId, 'customers', { name: 'Beta Ltd' }).expect(201)).body.id;
    const theirs = await issued({ invoiceDate: '2026-04-05', customerId: other });
    const draftId = await draft({ invoiceDate: '2026-04-05' });
    const small = await issued({ invoiceDate: '2026-04-05', lines: [line({ unitPrice: '50.00' })] });
    const usdInvoice = await issued({ invoiceDate: '2026-04-05', currency: 'USD' }, '0.9');
    const credit = (await payment({ date: '2026-04-22' })).id;
    const usdCredit = (await payment({ date: '2026-04-22', currency: 'USD', rate: '0.95' })).id;
    const allocate = (p: string, invoiceId: string, amount: string) => () => a().post(orgId, `payments/${p}/allocations`, { date: '2026-04-23', allocations: [{ invoiceId, amount }] });
    await refused(orgId, allocate(credit, small.id, '0'), 400, 'receivables.invalid_amount', 'allocations[0].amount must be positive');
    await refused(orgId, allocate(credit, small.id, '60.00'), 409, 'receivables.over_allocation', `more than is open on invoice ${small.number} (50.00)`);
    await refused(orgId, allocate(credit, small.id, '150.00'), 422, 'receivables.exceeds_payment', 'more than the payment has left to allocate (100.00)');
    await refused(orgId, allocate(credit, theirs.id, '10.00'), 422, 'receivables.wrong_customer', 'belongs to another customer than the payment');
    await refused(orgId, allocate(credit, usdInvoice.id, '10.00'), 422, 'receivables.currency_mismatch', 'is in USD, the payment in EUR');
    await refused(orgId, allocate(credit, draftId, '10.00'), 409, 'receivables.invalid_status', 'the invoice is draft');
    await withFxAccount('archived', (code) => refused(orgId, allocate(usdCredit, usdInvoice.id, '100.00'), 422, 'ledger.account_not_postable', `account ${code} is archived`));
    await withFxAccount('usd', (code) => refused(orgId, allocate(usdCredit, usdInvoice.id, '100.00'), 422, 'ledger.currency_not_allowed', code));
  });

  it('refund: each input and posting refusal; nothing refunded', async () => {
    const credit = (await payment({ date: '2026-04-24' })).id;
    const usdCredit = (await payment({ date: '2026-04-24', currency: 'USD', rate: '0.95' })).id;
    const chfCredit = (await payment({ date: '2026-04-24', currency: 'CHF', rate: '1.05' })).id;
    const hugeCredit = (await payment({ date: '2026-04-24', currency: 'USD', rate: '0.0001', rateOverride: true, amount: '9999999999999' })).id;
    const refund = (p: string, body: object) => () => a().post(orgId, `payments/${p}/refunds`, { date: '2026-04-25', amount: '10.00', ...body });
    await withClosedPeriod('2026-11-12', () => refused(orgId, refund(credit, { date: '2026-11-12' }), 422, 'ledger.period_closed', '2026-11-01 to 2026-11-30 is closed'));
    await refused(orgId, refund(credit, { date: '2031-01-15' }), 422, 'ledger.no_fiscal_year', 'no fiscal period covers 2031-01-15');
    await refused(orgId, refund(chfCredit, {}), 422, 'ledger.rate_missing', 'no CHF rate on or before 2026-04-25');
    await refused(orgId, refund(usdCredit, { rate: '0' }), 422, 'ledger.invalid_rate', /rate/);
    await refused(orgId, refund(hugeCredit, { amount: '9999999999999', rate: '999999999999', rateOverride: true }), 422, 'ledger.invalid_amount', /./);
    await refused(orgId, refund(credit, { amount: '0' }), 400, 'receivables.invalid_amount', 'amount must be positive with at most 2 decimals');
    await refused(orgId, refund(credit, { accountId: acc['1000'] }), 422, 'receivables.account_not_postable', 'accountId: account 1000 is a group account');
    await withFxAccount('archived', (code) => refused(orgId, refund(usdCredit, { rate: '1.0' }), 422, 'ledger.account_not_postable', `account ${code} is archived`));
    await withFxAccount('usd', (code) => refused(orgId, refund(usdCredit, { rate: '1.0' }), 422, 'ledger.currency_not_allowed', code));
  });

  it('allocation reversal: a credit note allocation 409; no fiscal year; the FX accounts archived or of another currency since do not matter', async () => {
    const inv = await issued({ invoiceDate: '2026-04-06' });
    await a().post(orgId, `invoices/${inv.id}/credit-notes`, { date: '2026-04-07', lines: [{ lineNo: 1, quantity: '0.5' }] }).expect(201);
    const { rows: [cnAllocation] } = await t.db.admin.query('SELECT id FROM finance.receivable_allocations WHERE org_id = $1 AND invoice_id = $2 AND credit_note_id IS NOT NULL', [orgId, inv.id]);
    const reverse = (id: string, date = '2026-04-26') => () => a().post(orgId, `allocations/${id}/reverse`, { date });
    await refused(orgId, reverse(cnAllocation.id), 409, 'receivables.invalid_status', 'allocation cannot be undone');
    const paid = await payment({ date: '2026-04-20', allocations: [{ invoiceId: inv.id, amount: '10.00' }] });
    await refused(orgId, reverse(paid.allocations[0].id, '2031-01-15'), 422, 'ledger.no_fiscal_year', 'no fiscal period covers 2031-01-15');
    const usdInvoice = await issued({ invoiceDate: '2026-04-06', currency: 'USD' }, '0.9');
    const usdPaid = await payment({ date: '2026-04-20', currency: 'USD', rate: '0.95', allocations: [{ invoiceId: usdInvoice.id, amount: '50.00' }] });
    // the reversal posts its result back on the account the original's went to (read from its entry), not on the
    // settings' FX accounts of now: archived or taking USD only, they are not used
    const fxAccountOf = async (entryId: string) => (await t.db.admin.query(
      `SELECT a.code FROM finance.journal_lines l JOIN finance.accounts a ON a.org_id = l.org_id AND a.id = l.account_id
       WHERE l.org_id = $1 AND l.entry_id = $2 AND a.code NOT IN ('1100', '1200')`, [orgId, entryId])).rows.map((r) => r.code);
    const originalFx = await fxAccountOf(usdPaid.allocations[0].entryId);
    expect(originalFx).toHaveLength(1);
    await withFxAccount('archived', async () => {
      const reversed = (await reverse(usdPaid.allocations[0].id)().expect(201)).body;
      const entryId = reversed.allocations.find((x: { reversesAllocationId: string | null }) => x.reversesAllocationId === usdPaid.allocations[0].id).entryId;
      expect(await fxAccountOf(entryId)).toEqual(originalFx);
    });
  });

  it('allocation reversal: a result whose account its original entry does not tell goes to the settings\' FX account: archived or of another currency, it is refused', async () => {
    // USD 100 at 0.9 and USD 100 at 1.0, one payment at 0.95 settles both: a gain of EUR 5 and a loss of EUR 5, no result line in its entry
    const [cheap, dear] = [await issued({ invoiceDate: '2026-04-08', currency: 'USD' }, '0.9'), await issued({ invoiceDate: '2026-04-08', currency: 'USD' }, '1.0')];
    const both = await payment({ date: '2026-04-27', currency: 'USD', rate: '0.95', amount: '200.00',
      allocations: [{ invoiceId: cheap.id, amount: '100.00' }, { invoiceId: dear.id, amount: '100.00' }] });
    const { rows: entryLines } = await t.db.admin.query(`SELECT a.code FROM finance.journal_lines l JOIN finance.accounts a ON a.org_id = l.org_id AND a.id = l.account_id
      WHERE l.org_id = $1 AND l.entry_id = $2 ORDER BY a.code`, [orgId, both.entryId]);
    expect(entryLines.map((r) => r.code)).toEqual(['1100', '1200', '1200']);
    const gain = both.allocations.find((x: { invoiceId: string }) => x.invoiceId === cheap.id);
    const reverse = () => a().post(orgId, `allocations/${gain.id}/reverse`, { date: '2026-04-28' });
    await withFxAccount('archived', (code) => refused(orgId, reverse, 422, 'ledger.account_not_postable', `account ${code} is archived`));
    await withFxAccount('usd', (code) => refused(orgId, reverse, 422, 'ledger.currency_not_allowed', `account ${code} only takes USD, not EUR`));
  });

  // ------------------------------------------------------------------ revenue recognition
  it('revenue recognition: no open period from its date on 422 ledger.period_closed; a revenue account archived or of another currency since the issue', async () => {
    // a run is never dated after today (receivables.recognition_date_future): the clock is on Dec 31, 2026 at least here
    const ahead = Math.max(0, Date.parse('2026-12-31T12:00:00Z') - clock.now());
    clock.advance(ahead);
    try {
      // each case in an organization of its own: a run recognizes every line due by its date
      const december = await issued({ invoiceDate: '2026-12-01', lines: [line({ serviceStart: '2026-12-01', serviceEnd: '2026-12-31' })] });
      expect(december.number).toBeTruthy();
      const period = await periodOf(orgId, users.owner, '2026-12-15');
      await o().ledger(orgId, `periods/${period}/close`).expect(200);
      try {
        await refused(orgId, () => a().post(orgId, 'revenue-recognition/runs', { date: '2026-12-15' }), 422, 'ledger.period_closed', 'the period of 2026-12-15 is closed and no open period follows it');
      } finally {
        await o().ledger(orgId, `periods/${period}/reopen`).expect(200);
      }
      for (const [code, name, account] of [['ledger.account_not_postable', 'Archived Revenue Ltd', {}], ['ledger.currency_not_allowed', 'Dollar Revenue Ltd', { currency: 'USD' }]] as const) {
        const owner = await registerUser(t, 'rr-owner');
        const org = await createOrg(t, owner, name);
        await onPlan(t, org, 'professional');
        const setup = await setupReceivables(t, org, owner, 'EUR');
        const revenue = await newAccount(org, owner, { code: '4197', type: 'revenue', parentId: setup.acc['4000'], ...account });
        const body = { customerId: setup.customer, invoiceDate: '2026-06-01', lines: [line({ revenueAccountId: revenue, serviceStart: '2026-06-01', serviceEnd: '2026-06-30' })] };
        const id = (await as(owner).post(org, 'invoices', body).expect(201)).body.id;
        await as(owner).post(org, `invoices/${id}/issue`).expect(200);
        // nothing has posted to the revenue account yet (the issue credits deferred revenue): it can be archived
        if (code === 'ledger.account_not_postable') await as(owner).ledger(org, `accounts/${revenue}/archive`).expect(200);
        await refused(org, () => as(owner).post(org, 'revenue-recognition/runs', { date: '2026-06-15' }), 422, code, '4197');
      }
    } finally {
      clock.advance(-ahead);
    }
  });

  // ------------------------------------------------------------------ books without a chart
  it('without receivables settings, rounding or FX accounts: settings_missing, deferred_account_missing, rounding_account_missing, fx_accounts_missing', async () => {
    const owner = await registerUser(t, 'plain-owner');
    const plain = await createOrg(t, owner, 'Plain Receivables Ltd');
    await onPlan(t, plain, 'professional');
    const p = as(owner);
    await p.ledger(plain, 'books', { baseCurrency: 'EUR', fiscalYearStart: '2026-01-01', template: 'none' }).expect(201);
    const x: Record<string, string> = {};
    for (const [code, type] of [['1100', 'asset'], ['1200', 'asset'], ['2400', 'liability'], ['4100', 'revenue']]) x[code] = await newAccount(plain, owner, { code, type });
    const buyer = (await p.post(plain, 'customers', { name: 'Plain Buyer' }).expect(201)).body.id;
    const plainDraft = async (body: object) => (await p.post(plain, 'invoices', { customerId: buyer, invoiceDate: '2026-04-01', lines: [line({ revenueAccountId: x['4100'] })], ...body }).expect(201)).body.id as string;
    const plainIssued = async (body: object, rate?: string) => {
      const id = await plainDraft(body);
      return (await p.post(plain, `invoices/${id}/issue`, rate ? { rate } : {}).expect(200)).body as { id: string };
    };
    const missing = 'the receivables settings are not set';
    const first = await plainDraft({});
    await refused(plain, () => p.post(plain, `invoices/${first}/issue`), 422, 'receivables.settings_missing', missing);
    await refused(plain, () => p.post(plain, 'payments', { customerId: buyer, date: '2026-04-20', amount: '10.00', depositAccountId: x['1100'], method: 'cash' }),
      422, 'receivables.settings_missing', missing);
    await refused(plain, () => p.post(plain, 'revenue-recognition/runs', { date: '2026-04-30' }), 422, 'receivables.settings_missing', missing);

    await p.put(plain, 'settings', { arAccountId: x['1200'] }).expect(200);
    const deferred = await plainDraft({ lines: [line({ revenueAccountId: x['4100'], serviceStart: '2026-04-01', serviceEnd: '2026-04-30' })] });
    await refused(plain, () => p.post(plain, `invoices/${deferred}/issue`), 422, 'receivables.deferred_account_missing', 'set deferredRevenueAccountId');
    // three lines of 0.01 USD at 0.5: 0.01 in EUR each, 0.02 the receivable
    const cents = await plainDraft({ currency: 'USD', lines: [1, 2, 3].map(() => line({ revenueAccountId: x['4100'], unitPrice: '0.01' })) });
    await refused(plain, () => p.post(plain, `invoices/${cents}/issue`, { rate: '0.5' }), 422, 'ledger.rounding_account_missing', /rounding/);
    // two at 1.00 USD at 0.335 post 0.67 on both sides; crediting one takes 0.33 off the receivable (0.67 − 0.34) and 0.34 off revenue
    const two = await plainIssued({ currency: 'USD', lines: [line({ revenueAccountId: x['4100'], quantity: '2', unitPrice: '1.00' })] }, '0.335');
    await refused(plain, () => p.post(plain, `invoices/${two.id}/credit-notes`, { date: '2026-04-02', lines: [{ lineNo: 1, quantity: '1' }] }), 422, 'ledger.rounding_account_missing', /rounding/);

    // realized FX (an invoice at 0.9, a payment at 0.95) without the FX gain and loss accounts
    const fxMissing = 'a realized FX difference needs fxGainAccountId and fxLossAccountId';
    const usdInvoice = await plainIssued({ currency: 'USD' }, '0.9');
    const pay = (body: object) => p.post(plain, 'payments', { customerId: buyer, date: '2026-04-20', amount: '100.00', currency: 'USD', rate: '0.95', depositAccountId: x['1100'], method: 'cash', ...body });
    await refused(plain, () => pay({ allocations: [{ invoiceId: usdInvoice.id, amount: '100.00' }] }), 422, 'receivables.fx_accounts_missing', fxMissing);
    await p.ledger(plain, 'fx-rates', { currency: 'USD', date: '2026-04-01', rate: '0.95' }).expect(201);
    const credit = (await pay({}).expect(201)).body.id;
    await refused(plain, () => p.post(plain, `payments/${credit}/allocations`, { date: '2026-04-21', allocations: [{ invoiceId: usdInvoice.id, amount: '100.00' }] }),
      422, 'receivables.fx_accounts_missing', fxMissing);
    await refused(plain, () => p.post(plain, `payments/${credit}/refunds`, { date: '2026-04-21', amount: '10.00', rate: '1.0' }), 422, 'receivables.fx_accounts_missing', fxMissing);
    // an allocation whose result its entry does not tell: a payment at 1.0 of invoices at 0.9 and 1.1 (a gain and a loss
    // of 10.00 net to none, so the payment's entry has no FX line), one allocation reversed: its result goes to the
    // settings' account. (An allocation reversed in the window of a later revaluation gives the share back on the
    // unrealized FX accounts alone since r8's fix: no realized account needed)
    const [cheap, dear] = [await plainIssued({ currency: 'USD' }, '0.9'), await plainIssued({ currency: 'USD' }, '1.1')];
    const both = (await pay({ rate: '1.0', amount: '200.00', allocations: [{ invoiceId: cheap.id, amount: '100.00' }, { invoiceId: dear.id, amount: '100.00' }] }).expect(201)).body;
    expect(both.allocations.map((a: { realizedFx: string }) => a.realizedFx).sort()).toEqual(['-10.00', '10.00']);
    await refused(plain, () => p.post(plain, `allocations/${both.allocations[0].id}/reverse`, { date: '2026-04-21' }), 422, 'receivables.fx_accounts_missing', fxMissing);
  });
});
