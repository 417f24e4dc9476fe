import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, onPlan, registerUser, type TestUser } from '../support/factories.js';
import { startBooks } from '../ledger/ledger-support.js';

// The money fields of the ledger, receivables and payables requests share their patterns and messages
// (src/platform/http/money.ts): the same bad amount, rate, percent, quantity, currency or payment method is refused
// with the same words by all three modules, and nothing is written.
describe('money fields: one pattern and one message in ledger, receivables and payables', () => {
  let t: TestApp;
  let owner: TestUser;
  let orgId: string;
  const ID = '00000000-0000-4000-8000-000000000000';
  const url = (p: string) => `/v1/orgs/${orgId}/${p}`;
  const MSG = {
    amount: (f: string) => `${f} must be a non-negative decimal string with at most 4 decimals, e.g. "120.50"`,
    rate: (f: string) => `${f} must be a positive decimal string with at most 10 decimals`,
    percent: (f: string) => `${f} must be a percent between 0 and 100 with at most 4 decimals, e.g. "20" or "7.5"`,
    quantity: (f: string) => `${f} must be a decimal string with at most 4 decimals, e.g. "2.5"`,
    currency: (f: string) => `${f} must be an ISO 4217 code like EUR`,
    method: (f: string) => `${f} must be one of the following values: bank_transfer, card, cash, check, other`,
  };

  /** The 400's problems per field, from the validation_failed details. */
  async function refused(path: string, body: object): Promise<Record<string, string[]>> {
    const res = await t.http.post(url(path)).set(owner.auth).send(body);
    expect([res.status, res.body.error.code]).toEqual([400, 'validation_failed']);
    return Object.fromEntries((res.body.error.details as { field: string; problems: string[] }[]).map((d) => [d.field, d.problems]));
  }
  async function rows() {
    const { rows: [r] } = await t.db.admin.query(`SELECT
      (SELECT count(*)::int FROM finance.journal_entries WHERE org_id = $1) AS entries, (SELECT count(*)::int FROM finance.fx_rates WHERE org_id = $1) AS rates,
      (SELECT count(*)::int FROM finance.tax_codes WHERE org_id = $1) AS "taxCodes", (SELECT count(*)::int FROM finance.invoices WHERE org_id = $1) AS invoices,
      (SELECT count(*)::int FROM finance.customer_payments WHERE org_id = $1) AS "customerPayments", (SELECT count(*)::int FROM finance.bills WHERE org_id = $1) AS bills,
      (SELECT count(*)::int FROM finance.bill_payments WHERE org_id = $1) AS "billPayments"`, [orgId]);
    return r;
  }

  beforeAll(async () => {
    t = await createTestApp();
    owner = await registerUser(t, 'money-fields');
    orgId = await createOrg(t, owner, 'Money Fields Ltd');
    await onPlan(t, orgId, 'enterprise');
    await startBooks(t, orgId, owner);
  });
  afterAll(() => t.close());

  it('amount, currency, rate and payment method: a journal line, an FX rate, a customer payment and a bill payment', async () => {
    const before = await rows();
    const bad = { amount: '1.23456', currency: 'eur', rate: '1,5', method: 'paypal' };

    const entry = await refused('ledger/journal-entries', { date: '2026-01-15', lines: [
      { accountId: ID, debit: bad.amount, currency: bad.currency, rate: bad.rate }, { accountId: ID, credit: '1.00' }] });
    expect(entry).toEqual({ 'lines.0.debit': [MSG.amount('debit')], 'lines.0.currency': [MSG.currency('currency')], 'lines.0.rate': [MSG.rate('rate')] });

    const fx = await refused('ledger/fx-rates', { currency: bad.currency, date: '2026-01-31', rate: bad.rate });
    expect(fx).toEqual({ currency: [MSG.currency('currency')], rate: [MSG.rate('rate')] });

    const received = await refused('receivables/payments', {
      customerId: ID, date: '2026-01-31', amount: bad.amount, currency: bad.currency, rate: bad.rate, depositAccountId: ID, method: bad.method });
    expect(received).toEqual({ amount: [MSG.amount('amount')], currency: [MSG.currency('currency')], rate: [MSG.rate('rate')], method: [MSG.method('method')] });

    const paid = await refused('payables/payments', {
      vendorId: ID, paymentDate: '2026-01-31', amount: bad.amount, currency: bad.currency, bankAccountId: ID, method: bad.method });
    expect(paid).toEqual({ amount: [MSG.amount('amount')], currency: [MSG.currency('currency')], method: [MSG.method('method')] });

    expect(await rows()).toEqual(before);
  });

  it('percent and quantity: a tax code, an invoice line and a bill line', async () => {
    const before = await rows();
    const taxCode = await refused('ledger/tax-codes', { code: 'VAT75', name: 'VAT 7.5 %', rate: '7,5', salesAccountId: ID, purchaseAccountId: ID });
    expect(taxCode).toEqual({ rate: [MSG.percent('rate')] });

    const invoice = await refused('receivables/invoices', { customerId: ID, invoiceDate: '2026-01-10', currency: 'Eur', lines: [
      { description: 'Consulting', quantity: '2,5', unitPrice: '-1', discountPercent: '7,5', revenueAccountId: ID }] });
    expect(invoice).toEqual({
      currency: [MSG.currency('currency')], 'lines.0.quantity': [MSG.quantity('quantity')], 'lines.0.unitPrice': [MSG.amount('unitPrice')],
      'lines.0.discountPercent': [MSG.percent('discountPercent')],
    });

    const bill = await refused('payables/bills', { vendorId: ID, billDate: '2026-01-10', currency: 'Eur', lines: [{ accountId: ID, quantity: '2,5', unitPrice: '-1' }] });
    expect(bill).toEqual({ currency: [MSG.currency('currency')], 'lines.0.quantity': [MSG.quantity('quantity')], 'lines.0.unitPrice': [MSG.amount('unitPrice')] });

    expect(await rows()).toEqual(before);
  });
});
