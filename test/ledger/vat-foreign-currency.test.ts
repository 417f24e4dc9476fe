import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, onPlan, registerUser, type TestUser } from '../support/factories.js';
import { balanceDrift, ledgerUrl, startBooks } from './ledger-support.js';
import { issueInvoice, rUrl, setupReceivables } from '../receivables/receivables-support.js';
import { createVendor, payablesUrl } from '../payables/payables-support.js';

/**
 * VAT on a foreign-currency line is owed to (or reclaimed from) the tax office in the base currency, fixed at the
 * transaction's rate: the tax line posts in the base currency, so the tax accounts (2200 output, 1300 input) equal the VAT
 * report on every date, the VAT paid in the base currency leaves them at 0.00, and an FX revaluation never moves them.
 * Base EUR; USD 0.90 from Mar 1, 0.95 from Mar 31, 1.00 from Jun 30.
 *  Mar 2 sale USD 1,000 + VAT 200 at 0.90        Dr AR 1,080.00 (USD 1,200)   Cr Sales 900.00 (USD 1,000)   Cr 2200 180.00 (EUR)
 *  Mar 5 purchase USD 500 + VAT 100 at 0.90      Dr Rent 450.00 (USD 500)     Dr 1300 90.00 (EUR)           Cr 2100 540.00 (USD 600)
 *  Mar 31 revaluation at 0.95: AR +60.00, 2100 -30.00; nothing on 2200 and 1300 (before: 2200 -10.00, 1300 +5.00)
 *  Apr 10 VAT paid: Dr 2200 180.00, Cr 1300 90.00, Cr bank 90.00: both at 0.00
 *  Jun 30 revaluation at 1.00: nothing on 2200 and 1300, still 0.00
 */
describe('ledger: tax on foreign-currency lines is posted in the base currency and never revalued', () => {
  let t: TestApp;
  let owner: TestUser;
  beforeAll(async () => {
    t = await createTestApp();
    owner = await registerUser(t, 'owner');
  });
  afterAll(() => t.close());

  const RATES = [{ currency: 'USD', date: '2026-03-01', rate: '0.90' }, { currency: 'USD', date: '2026-03-31', rate: '0.95' }, { currency: 'USD', date: '2026-06-30', rate: '1.00' }];

  async function books(name: string, o: { receivables?: boolean } = {}) {
    const orgId = await createOrg(t, owner, name);
    await onPlan(t, orgId, 'professional');
    let acc: Record<string, string>;
    let vat: string;
    if (o.receivables) {
      ({ acc, vat } = await setupReceivables(t, orgId, owner, 'EUR'));
      await t.http.put(payablesUrl(orgId, 'settings')).set(owner.auth).send({ apAccountId: acc['2100'], approvalRules: [{ above: '0', approvals: 0, roles: ['owner'] }] }).expect(200);
    } else {
      acc = await startBooks(t, orgId, owner, 'EUR');
      vat = (await t.http.post(ledgerUrl(orgId, 'tax-codes')).set(owner.auth)
        .send({ code: 'VAT20', name: 'VAT 20 %', rate: '20', salesAccountId: acc['2200'], purchaseAccountId: acc['1300'] }).expect(201)).body.id;
    }
    await t.http.post(ledgerUrl(orgId, 'fx-rates/import')).set(owner.auth).send({ rates: RATES }).expect(201);
    const url = (p: string) => ledgerUrl(orgId, p);
    const post = (body: object) => t.http.post(url('journal-entries')).set(owner.auth).send(body);
    const balance = async (code: string, asOf: string) => (await t.http.get(url(`accounts/${acc[code]}/balance?asOf=${asOf}`)).set(owner.auth).expect(200)).body;
    const vatReport = async (from: string, to: string) => (await t.http.get(url(`reports/vat?from=${from}&to=${to}`)).set(owner.auth).expect(200)).body;
    /** the VAT report from the first day of the books to `asOf`, and the tax accounts' balances then: they agree */
    const expectVatIsAccounts = async (asOf: string, want: { output: string; input: string }) => {
      const r = await vatReport('2026-01-01', asOf);
      const out = (await balance('2200', asOf)).baseBalance as string;
      const inp = (await balance('1300', asOf)).baseBalance as string;
      expect({ asOf, report: { output: r.totalOutputTax, input: r.totalInputTax }, accounts: { output: (-Number(out)).toFixed(2), input: inp } })
        .toEqual({ asOf, report: want, accounts: want });
    };
    const revalue = async (date: string) => (await t.http.post(url('fx-revaluations')).set(owner.auth).send({ date }).expect(201)).body;
    const codeOf = Object.fromEntries(Object.entries(acc).map(([code, id]) => [id, code]));
    const revalued = (r: { adjustments: { accountId: string; difference: string }[] }) => r.adjustments.map((a) => [codeOf[a.accountId], a.difference]).sort();
    /** the tax accounts' lines as stored, per account and currency */
    const taxAccountsInDb = async () => (await t.db.admin.query(
      `SELECT a.code, l.currency, count(*)::int AS lines, (sum(l.debit) - sum(l.credit))::numeric(20, 2)::text AS net,
              (sum(l.base_debit) - sum(l.base_credit))::numeric(20, 2)::text AS base_net, bool_and(l.rate = 1) AS rate_1
       FROM finance.journal_lines l JOIN finance.accounts a ON a.org_id = l.org_id AND a.id = l.account_id
       WHERE l.org_id = $1 AND a.code IN ('2200', '1300') GROUP BY a.code, l.currency ORDER BY a.code, l.currency`, [orgId])).rows;
    return { orgId, acc, vat, url, post, balance, vatReport, expectVatIsAccounts, revalue, revalued, taxAccountsInDb };
  }

  const shape = (l: any) => ({ accountCode: l.accountCode, currency: l.currency, debit: l.debit, credit: l.credit, rate: l.rate, baseDebit: l.baseDebit, baseCredit: l.baseCredit, taxRole: l.taxRole });

  it('journal entries: the USD sale\'s and purchase\'s tax lines in EUR; the VAT report is the accounts on every date; paid, they stay at 0.00 through revaluations', async () => {
    const b = await books('Vat FX Entries Ltd');
    const { acc, vat } = b;
    const sale = (await b.post({ date: '2026-03-02', memo: 'USD sale', lines: [
      { accountId: acc['1200'], debit: '1200.00', currency: 'USD' }, { accountId: acc['4100'], credit: '1000.00', currency: 'USD', taxCodeId: vat }] }).expect(201)).body;
    expect(sale.lines.map(shape)).toEqual([
      { accountCode: '1200', currency: 'USD', debit: '1200.00', credit: '0.00', rate: '0.9000000000', baseDebit: '1080.00', baseCredit: '0.00', taxRole: null },
      { accountCode: '4100', currency: 'USD', debit: '0.00', credit: '1000.00', rate: '0.9000000000', baseDebit: '0.00', baseCredit: '900.00', taxRole: 'output_base' },
      { accountCode: '2200', currency: 'EUR', debit: '0.00', credit: '180.00', rate: '1.0000000000', baseDebit: '0.00', baseCredit: '180.00', taxRole: 'output_tax' },
    ]);
    expect(sale.lines[2].description).toBe('VAT20 20.0000% on 1000.00 (USD 200.00 at 0.9)');
    const purchase = (await b.post({ date: '2026-03-05', memo: 'USD rent', lines: [
      { accountId: acc['5200'], debit: '500.00', currency: 'USD', taxCodeId: vat }, { accountId: acc['2100'], credit: '600.00', currency: 'USD' }] }).expect(201)).body;
    expect(purchase.lines.map(shape)).toEqual([
      { accountCode: '5200', currency: 'USD', debit: '500.00', credit: '0.00', rate: '0.9000000000', baseDebit: '450.00', baseCredit: '0.00', taxRole: 'input_base' },
      { accountCode: '1300', currency: 'EUR', debit: '90.00', credit: '0.00', rate: '1.0000000000', baseDebit: '90.00', baseCredit: '0.00', taxRole: 'input_tax' },
      { accountCode: '2100', currency: 'USD', debit: '0.00', credit: '600.00', rate: '0.9000000000', baseDebit: '0.00', baseCredit: '540.00', taxRole: null },
    ]);
    await b.expectVatIsAccounts('2026-03-05', { output: '180.00', input: '90.00' });

    // only what is owed in USD is revalued: the receivable and the payable, not the tax
    expect(b.revalued(await b.revalue('2026-03-31'))).toEqual([['1200', '60.00'], ['2100', '-30.00']]);
    await b.expectVatIsAccounts('2026-03-31', { output: '180.00', input: '90.00' });
    expect((await b.vatReport('2026-03-01', '2026-03-31')).rows[0]).toMatchObject({ taxableSales: '900.00', outputTax: '180.00', taxablePurchases: '450.00', inputTax: '90.00', net: '90.00' });

    // the VAT return settled in EUR: both tax accounts at 0.00
    await b.post({ date: '2026-04-10', memo: 'VAT paid to the tax office', lines: [
      { accountId: acc['2200'], debit: '180.00' }, { accountId: acc['1300'], credit: '90.00' }, { accountId: acc['1100'], credit: '90.00' }] }).expect(201);
    for (const code of ['2200', '1300']) {
      expect(await b.balance(code, '2026-04-30')).toMatchObject({ baseBalance: '0.00', currencies: [{ currency: 'EUR', balance: '0.00', baseBalance: '0.00' }] });
    }
    expect(b.revalued(await b.revalue('2026-06-30'))).toEqual([['1200', '60.00'], ['2100', '-30.00']]);
    for (const code of ['2200', '1300']) expect((await b.balance(code, '2026-06-30')).baseBalance).toBe('0.00');
    // no line of the tax accounts in another currency, none from a revaluation, nothing left on them
    expect(await b.taxAccountsInDb()).toEqual([
      { code: '1300', currency: 'EUR', lines: 2, net: '0.00', base_net: '0.00', rate_1: true },
      { code: '2200', currency: 'EUR', lines: 2, net: '0.00', base_net: '0.00', rate_1: true },
    ]);
    expect(await balanceDrift(t, b.orgId)).toEqual([]);
  });

  it('a batch entry\'s tax in EUR with the rounding line it had; a one-currency entry still balances in its currency; a reversal mirrors the EUR tax', async () => {
    const b = await books('Vat FX Batch Ltd');
    const { acc, vat } = b;
    const batch = (await t.http.post(b.url('journal-entries/batch?mode=independent')).set(owner.auth).send({ entries: [
      // USD 1.26 = 1.05 + 0.21 at 0.90: 1.13 against 0.95 + 0.19, as before the rounding account takes the 0.01
      { date: '2026-03-02', lines: [{ accountId: acc['1200'], debit: '1.26', currency: 'USD' }, { accountId: acc['4100'], credit: '1.05', currency: 'USD', taxCodeId: vat }] },
      // USD 1,200.01 against 1,000.00 + 200.00: within a cent in EUR, but it does not balance in USD
      { date: '2026-03-02', lines: [{ accountId: acc['1200'], debit: '1200.01', currency: 'USD' }, { accountId: acc['4100'], credit: '1000.00', currency: 'USD', taxCodeId: vat }] },
    ] }).expect(201)).body;
    expect(batch.results.map((r: any) => [r.status, r.error?.code])).toEqual([['posted', undefined], ['rejected', 'ledger.unbalanced']]);
    expect(batch.results[1].error.message).toContain('entry does not balance in USD: debits 1200.01 and credits 1200.00');
    const small = (await t.http.get(b.url(`journal-entries/${batch.results[0].id}`)).set(owner.auth).expect(200)).body;
    expect(small.lines.map((l: any) => ({ ...shape(l), isRounding: l.isRounding }))).toEqual([
      { accountCode: '1200', currency: 'USD', debit: '1.26', credit: '0.00', rate: '0.9000000000', baseDebit: '1.13', baseCredit: '0.00', taxRole: null, isRounding: false },
      { accountCode: '4100', currency: 'USD', debit: '0.00', credit: '1.05', rate: '0.9000000000', baseDebit: '0.00', baseCredit: '0.95', taxRole: 'output_base', isRounding: false },
      { accountCode: '2200', currency: 'EUR', debit: '0.00', credit: '0.19', rate: '1.0000000000', baseDebit: '0.00', baseCredit: '0.19', taxRole: 'output_tax', isRounding: false },
      { accountCode: '5600', currency: 'EUR', debit: '0.01', credit: '0.00', rate: '1.0000000000', baseDebit: '0.01', baseCredit: '0.00', taxRole: null, isRounding: true },
    ]);
    // the same refusal for a single entry
    const single = await b.post({ date: '2026-03-02', lines: [{ accountId: acc['1200'], debit: '1200.01', currency: 'USD' }, { accountId: acc['4100'], credit: '1000.00', currency: 'USD', taxCodeId: vat }] }).expect(422);
    expect(single.body.error).toMatchObject({ code: 'ledger.unbalanced', message: 'entry does not balance in USD: debits 1200.01 and credits 1200.00' });

    const reversal = (await t.http.post(b.url(`journal-entries/${small.id}/reverse`)).set(owner.auth).send({ date: '2026-03-20' }).expect(201)).body;
    expect(reversal.lines.map(shape)[2]).toEqual({ accountCode: '2200', currency: 'EUR', debit: '0.19', credit: '0.00', rate: '1.0000000000', baseDebit: '0.19', baseCredit: '0.00', taxRole: 'output_tax' });
    await b.expectVatIsAccounts('2026-03-31', { output: '0.00', input: '0.00' });
    expect(await b.taxAccountsInDb()).toEqual([{ code: '2200', currency: 'EUR', lines: 2, net: '0.00', base_net: '0.00', rate_1: true }]);
  });

  it('documents: a USD invoice, its credit note, a voided invoice, a bill and a voided bill post their tax in EUR; the revaluation leaves it', async () => {
    const b = await books('Vat FX Documents Ltd', { receivables: true });
    const { orgId, acc, vat } = b;
    const customer = (await t.http.post(rUrl(orgId, 'customers')).set(owner.auth).send({ name: 'US Buyer Inc', defaultCurrency: 'USD' }).expect(201)).body.id;
    const vendor = await createVendor(t, orgId, owner, { name: 'US Landlord Inc', defaultCurrency: 'USD' });
    const entryLines = async (id: string) => (await t.http.get(b.url(`journal-entries/${id}`)).set(owner.auth).expect(200)).body.lines.map(shape);
    const taxLine = async (id: string) => (await entryLines(id)).filter((l: any) => l.taxRole?.endsWith('_tax'));

    const invoice = (unitPrice: string, date: string) => issueInvoice(t, orgId, owner, { customerId: customer, invoiceDate: date, currency: 'USD',
      lines: [{ description: 'Licence', quantity: '1', unitPrice, taxCodeId: vat, revenueAccountId: acc['4100'] }] });
    const credited = await invoice('1000.00', '2026-03-02');
    expect(await entryLines(credited.entryId)).toEqual([
      { accountCode: '1200', currency: 'USD', debit: '1200.00', credit: '0.00', rate: '0.9000000000', baseDebit: '1080.00', baseCredit: '0.00', taxRole: null },
      { accountCode: '4100', currency: 'USD', debit: '0.00', credit: '1000.00', rate: '0.9000000000', baseDebit: '0.00', baseCredit: '900.00', taxRole: 'output_base' },
      { accountCode: '2200', currency: 'EUR', debit: '0.00', credit: '180.00', rate: '1.0000000000', baseDebit: '0.00', baseCredit: '180.00', taxRole: 'output_tax' },
    ]);
    const creditNote = (await t.http.post(rUrl(orgId, `invoices/${credited.id}/credit-notes`)).set(owner.auth)
      .send({ date: '2026-03-10', lines: [{ lineNo: 1, quantity: '0.5' }] }).expect(201)).body;
    expect(await taxLine(creditNote.entryId)).toEqual([
      { accountCode: '2200', currency: 'EUR', debit: '90.00', credit: '0.00', rate: '1.0000000000', baseDebit: '90.00', baseCredit: '0.00', taxRole: 'output_tax' }]);
    const voided = await invoice('500.00', '2026-03-03');
    const voidedInvoice = (await t.http.post(rUrl(orgId, `invoices/${voided.id}/void`)).set(owner.auth).send({ date: '2026-03-15' }).expect(200)).body;
    expect(await taxLine(voidedInvoice.voidEntryId)).toEqual([
      { accountCode: '2200', currency: 'EUR', debit: '90.00', credit: '0.00', rate: '1.0000000000', baseDebit: '90.00', baseCredit: '0.00', taxRole: 'output_tax' }]);

    const bill = async (unitPrice: string, date: string) => {
      const draft = await t.http.post(payablesUrl(orgId, 'bills')).set(owner.auth).send({ vendorId: vendor, billDate: date, currency: 'USD',
        lines: [{ accountId: acc['5200'], unitPrice, taxCodeId: vat }] }).expect(201);
      return (await t.http.post(payablesUrl(orgId, `bills/${draft.body.id}/submit`)).set(owner.auth).send({}).expect(200)).body;
    };
    const kept = await bill('500.00', '2026-03-05');
    expect(await entryLines(kept.journalEntryId)).toEqual([
      { accountCode: '5200', currency: 'USD', debit: '500.00', credit: '0.00', rate: '0.9000000000', baseDebit: '450.00', baseCredit: '0.00', taxRole: 'input_base' },
      { accountCode: '1300', currency: 'EUR', debit: '90.00', credit: '0.00', rate: '1.0000000000', baseDebit: '90.00', baseCredit: '0.00', taxRole: 'input_tax' },
      { accountCode: '2100', currency: 'USD', debit: '0.00', credit: '600.00', rate: '0.9000000000', baseDebit: '0.00', baseCredit: '540.00', taxRole: null },
    ]);
    const cancelled = await bill('200.00', '2026-03-06');
    const voidedBill = (await t.http.post(payablesUrl(orgId, `bills/${cancelled.id}/void`)).set(owner.auth).send({ date: '2026-03-16', reason: 'entered twice' }).expect(200)).body;
    expect(await taxLine(voidedBill.voidEntryId)).toEqual([
      { accountCode: '1300', currency: 'EUR', debit: '0.00', credit: '36.00', rate: '1.0000000000', baseDebit: '0.00', baseCredit: '36.00', taxRole: 'input_tax' }]);

    // the invoice's open USD 600 and the bill's USD 600 are revalued per item; the tax accounts are not
    expect(b.revalued(await b.revalue('2026-03-31'))).toEqual([['1200', '30.00'], ['2100', '-30.00']]);
    await b.expectVatIsAccounts('2026-03-31', { output: '90.00', input: '90.00' });
    expect(await b.taxAccountsInDb()).toEqual([
      { code: '1300', currency: 'EUR', lines: 3, net: '90.00', base_net: '90.00', rate_1: true },
      { code: '2200', currency: 'EUR', lines: 4, net: '-90.00', base_net: '-90.00', rate_1: true },
    ]);
    expect(await balanceDrift(t, orgId)).toEqual([]);
  });

  it('books with a USD tax line posted before: the revaluation leaves the tax line out, so the tax account keeps the base value the VAT report has', async () => {
    const b = await books('Vat FX Old Books Ltd');
    const { orgId, acc, vat } = b;
    // the entry as the API posted it before: the tax line in the sale's currency and rate
    const [{ entry }] = await t.db.asApi({ sub: owner.id, org_id: orgId }, 'authenticated', 'SELECT entry FROM finance.post_journal_entry($1::jsonb, $2::jsonb)', [JSON.stringify({
      date: '2026-03-02', memo: 'USD sale', source: 'manual', lines: [
        { accountId: acc['1200'], debit: '1200.00', currency: 'USD' },
        { accountId: acc['4100'], credit: '1000.00', currency: 'USD', taxCodeId: vat, taxRole: 'output_base' },
        { accountId: acc['2200'], credit: '200.00', currency: 'USD', taxCodeId: vat, taxRole: 'output_tax', description: 'VAT20 20.0000% on 1000.00' }] }),
    JSON.stringify({ action: 'ledger.entry_posted' })]);
    expect(entry.lines[2]).toMatchObject({ currency: 'USD', credit: '200.0000', baseCredit: '180.0000', taxRole: 'output_tax' });
    expect(b.revalued(await b.revalue('2026-03-31'))).toEqual([['1200', '60.00']]);
    await b.expectVatIsAccounts('2026-03-31', { output: '180.00', input: '0.00' });
    await b.post({ date: '2026-04-10', memo: 'VAT paid to the tax office', lines: [{ accountId: acc['2200'], debit: '180.00' }, { accountId: acc['1100'], credit: '180.00' }] }).expect(201);
    expect((await b.balance('2200', '2026-04-30')).baseBalance).toBe('0.00');
    expect(b.revalued(await b.revalue('2026-06-30'))).toEqual([['1200', '60.00']]);
    expect((await b.balance('2200', '2026-06-30')).baseBalance).toBe('0.00');
  });
  it('a bank account a tax code (0 %, archived) names is still revalued; only the foreign tax lines are left out', async () => {
    const b = await books('Vat FX Zero Code Ltd');
    const { acc } = b;
    await b.post({ date: '2026-03-02', memo: 'USD loan received', lines: [
      { accountId: acc['1100'], debit: '1000.00', currency: 'USD' }, { accountId: acc['4100'], credit: '1000.00', currency: 'USD' }] }).expect(201);
    const code = (await t.http.post(b.url('tax-codes')).set(owner.auth)
      .send({ code: 'EX0', name: 'Exempt', rate: '0', salesAccountId: acc['1100'], purchaseAccountId: acc['1100'] }).expect(201)).body.id;
    await t.http.post(b.url(`tax-codes/${code}/archive`)).set(owner.auth).send({}).expect(200);
    const r = await b.revalue('2026-03-31');
    expect(b.revalued(r)).toEqual([['1100', '50.00']]);
    expect(r.adjustments[0]).toMatchObject({ currency: 'USD', balance: '1000.00', baseBefore: '900.00', baseAfter: '950.00', difference: '50.00' });
    expect(await b.balance('1100', '2026-03-31')).toMatchObject({ baseBalance: '950.00', currencies: [{ currency: 'USD', balance: '1000.00', baseBalance: '950.00' }] });
    const { rows } = await t.db.admin.query(`SELECT l.currency, l.debit::numeric(20, 2)::text AS debit, l.base_debit::numeric(20, 2)::text AS base_debit FROM finance.journal_lines l
      WHERE l.org_id = $1 AND l.entry_id = $2 AND l.account_id = $3`, [b.orgId, r.entry.id, acc['1100']]);
    expect(rows).toEqual([{ currency: 'USD', debit: '0.00', base_debit: '50.00' }]);
  });

  it('an old revaluation of a USD tax line (its phantom on 2200) is brought back by the next revaluation once the VAT is paid', async () => {
    const b = await books('Vat FX Old Phantom Ltd');
    const { orgId, acc, vat } = b;
    const sql = (p: object) => t.db.asApi({ sub: owner.id, org_id: orgId }, 'authenticated', 'SELECT entry FROM finance.post_journal_entry($1::jsonb, $2::jsonb)',
      [JSON.stringify(p), JSON.stringify({ action: 'ledger.entry_posted' })]);
    // the USD sale as the API posted it before tax lines were in the base currency, and the March 31 revaluation of
    // 2200 that the code of then posted (USD -200.00 carried at 180.00, valued 190.00 at 0.95; AR's pair left out)
    await sql({ date: '2026-03-02', memo: 'USD sale', source: 'manual', lines: [
      { accountId: acc['1200'], debit: '1200.00', currency: 'USD' },
      { accountId: acc['4100'], credit: '1000.00', currency: 'USD', taxCodeId: vat, taxRole: 'output_base' },
      { accountId: acc['2200'], credit: '200.00', currency: 'USD', taxCodeId: vat, taxRole: 'output_tax', description: 'VAT20 20.0000% on 1000.00' }] });
    const s = (await t.http.get(b.url('settings')).set(owner.auth).expect(200)).body;
    const loss = s.fxUnrealizedLossAccountId ?? s.fxLossAccountId;
    await sql({ date: '2026-03-31', memo: 'FX revaluation as of 2026-03-31', source: 'system', lines: [
      { accountId: acc['2200'], currency: 'USD', rate: '0.95', baseCredit: '10.00', description: 'FX revaluation of USD -200.00 at 0.95' },
      { accountId: loss, debit: '10.00', description: 'FX revaluation of USD -200.00 at 0.95' }] });
    await b.post({ date: '2026-04-10', memo: 'VAT paid', lines: [{ accountId: acc['2200'], debit: '180.00' }, { accountId: acc['1100'], credit: '180.00' }] }).expect(201);
    expect((await b.balance('2200', '2026-04-30')).baseBalance).toBe('-10.00');
    // 2200 without its tax line: USD 0.00 carried at -10.00, worth 0.00; the tax line keeps its 180.00
    const r = await b.revalue('2026-06-30');
    expect(b.revalued(r)).toEqual([['1200', '120.00'], ['2200', '10.00']]);
    expect(r.adjustments.find((a: any) => a.accountId === acc['2200'])).toMatchObject({ currency: 'USD', balance: '0.00', baseBefore: '-10.00', baseAfter: '0.00', difference: '10.00' });
    expect((await b.balance('2200', '2026-06-30')).baseBalance).toBe('0.00');
    await b.expectVatIsAccounts('2026-03-05', { output: '180.00', input: '0.00' });
    expect(await b.taxAccountsInDb()).toEqual([
      { code: '2200', currency: 'EUR', lines: 1, net: '180.00', base_net: '180.00', rate_1: true },
      { code: '2200', currency: 'USD', lines: 3, net: '-200.00', base_net: '-180.00', rate_1: false },
    ]);
    // done: nothing left to revalue on 2200
    expect(b.revalued(await b.revalue('2026-09-30'))).toEqual([]);
    expect(await balanceDrift(t, orgId)).toEqual([]);
  });

  it('an old USD tax line whose VAT is paid in USD: what the payment settled is valued, once, and the account stays at 0.00 (r15)', async () => {
    const b = await books('Vat FX Paid In USD Ltd');
    const { orgId, acc, vat } = b;
    await t.db.asApi({ sub: owner.id, org_id: orgId }, 'authenticated', 'SELECT entry FROM finance.post_journal_entry($1::jsonb, $2::jsonb)', [JSON.stringify({
      date: '2026-03-02', memo: 'USD sale', source: 'manual', lines: [
        { accountId: acc['1200'], debit: '1200.00', currency: 'USD' },
        { accountId: acc['4100'], credit: '1000.00', currency: 'USD', taxCodeId: vat, taxRole: 'output_base' },
        { accountId: acc['2200'], credit: '200.00', currency: 'USD', taxCodeId: vat, taxRole: 'output_tax', description: 'VAT20 20.0000% on 1000.00' }] }),
    JSON.stringify({ action: 'ledger.entry_posted' })]);
    // the VAT paid in USD at 0.95: 2200 holds USD 0.00, carried at +10.00 (the tax 180.00 owed, 190.00 paid)
    await b.post({ date: '2026-04-10', memo: 'VAT paid in USD', lines: [
      { accountId: acc['2200'], debit: '200.00', currency: 'USD' }, { accountId: acc['1100'], credit: '200.00', currency: 'USD' }] }).expect(201);
    expect((await b.balance('2200', '2026-04-30')).baseBalance).toBe('10.00');
    // June 30 at 1.00: AR 1,080.00 → 1,200.00, the bank -190.00 → -200.00, 2200's 10.00 → 0.00 (the payment's rate
    // difference, once); nothing of the tax line is left in the balance to keep at its own rate
    const r = await b.revalue('2026-06-30');
    expect(b.revalued(r)).toEqual([['1100', '-10.00'], ['1200', '120.00'], ['2200', '-10.00']]);
    expect(r.adjustments.find((a: any) => a.accountId === acc['2200'])).toMatchObject({ currency: 'USD', balance: '0.00', baseBefore: '10.00', baseAfter: '0.00', difference: '-10.00' });
    expect((await b.balance('2200', '2026-06-30')).baseBalance).toBe('0.00');
    // and not again at the next date (it was revalued for ever, by the rate, before)
    expect(b.revalued(await b.revalue('2026-09-30'))).toEqual([]);
    expect((await b.balance('2200', '2026-09-30')).baseBalance).toBe('0.00');
    expect(await balanceDrift(t, orgId)).toEqual([]);
  });

  it('a tax code cannot name a control account of receivables or payables (its tax would sit on AR/AP apart from the aging): 422, nothing written (r15)', async () => {
    const b = await books('Vat Control Account Ltd', { receivables: true });
    const { orgId, acc, vat } = b;
    const codes = async () => (await t.db.admin.query('SELECT code, sales_account_id FROM finance.tax_codes WHERE org_id = $1 ORDER BY code', [orgId])).rows;
    const audits = async () => (await t.db.admin.query(`SELECT count(*)::int AS n FROM core.audit_logs WHERE org_id = $1 AND action LIKE 'ledger.tax_code_%'`, [orgId])).rows[0].n;
    const [before, auditsBefore] = [await codes(), await audits()];
    const created = await t.http.post(b.url('tax-codes')).set(owner.auth)
      .send({ code: 'VATAR', name: 'VAT on AR', rate: '20', salesAccountId: acc['1200'], purchaseAccountId: acc['1300'] }).expect(422);
    expect(created.body.error).toMatchObject({ code: 'ledger.control_account', message: expect.stringMatching(/^salesAccountId: account 1200 is the AR control account of receivables/) });
    const updated = await t.http.patch(b.url(`tax-codes/${vat}`)).set(owner.auth).send({ purchaseAccountId: acc['2100'] }).expect(422);
    expect(updated.body.error).toMatchObject({ code: 'ledger.control_account', message: expect.stringMatching(/^purchaseAccountId: account 2100 is the AP control account of payables/) });
    expect([await codes(), await audits()]).toEqual([before, auditsBefore]);
  });

  it('a SEK sale whose tax rounds to EUR 0.00 posts with its tax line in SEK (base 0.00), which the revaluation leaves alone', async () => {
    const b = await books('Vat FX Tiny SEK Ltd');
    const { acc, vat } = b;
    await t.http.post(b.url('fx-rates/import')).set(owner.auth).send({ rates: [{ currency: 'SEK', date: '2026-03-01', rate: '0.09' }, { currency: 'SEK', date: '2026-03-31', rate: '0.5' }] }).expect(201);
    const body = { date: '2026-03-02', memo: 'tiny SEK sale', lines: [
      { accountId: acc['1200'], debit: '0.06', currency: 'SEK' }, { accountId: acc['4100'], credit: '0.05', currency: 'SEK', taxCodeId: vat }] };
    const sale = (await b.post(body).expect(201)).body;
    expect(sale.lines.map((l: any) => ({ ...shape(l), isRounding: l.isRounding }))).toEqual([
      { accountCode: '1200', currency: 'SEK', debit: '0.06', credit: '0.00', rate: '0.0900000000', baseDebit: '0.01', baseCredit: '0.00', taxRole: null, isRounding: false },
      { accountCode: '4100', currency: 'SEK', debit: '0.00', credit: '0.05', rate: '0.0900000000', baseDebit: '0.00', baseCredit: '0.00', taxRole: 'output_base', isRounding: false },
      { accountCode: '2200', currency: 'SEK', debit: '0.00', credit: '0.01', rate: '0.0900000000', baseDebit: '0.00', baseCredit: '0.00', taxRole: 'output_tax', isRounding: false },
      { accountCode: '5600', currency: 'EUR', debit: '0.00', credit: '0.01', rate: '1.0000000000', baseDebit: '0.00', baseCredit: '0.01', taxRole: null, isRounding: true },
    ]);
    const batch = (await t.http.post(b.url('journal-entries/batch?mode=independent')).set(owner.auth).send({ entries: [body] }).expect(201)).body;
    expect(batch.results.map((r: any) => r.status)).toEqual(['posted']);
    expect(await b.taxAccountsInDb()).toEqual([{ code: '2200', currency: 'SEK', lines: 2, net: '-0.02', base_net: '0.00', rate_1: false }]);
    // SEK 0.12 on 1200 at 0.5: 0.06 for 0.02; the tax lines stay at 0.00
    expect(b.revalued(await b.revalue('2026-03-31'))).toEqual([['1200', '0.04']]);
    expect((await b.balance('2200', '2026-03-31')).baseBalance).toBe('0.00');
  });

  it('the retry of an entry posted before request hashes (its tax then in USD) replays it', async () => {
    const b = await books('Vat FX Legacy Key Ltd');
    const { orgId, acc, vat } = b;
    const dto = { date: '2026-03-02', memo: 'USD sale', lines: [
      { accountId: acc['1200'], debit: '1200.00', currency: 'USD' }, { accountId: acc['4100'], credit: '1000.00', currency: 'USD', taxCodeId: vat }] };
    // the payload the API built for dto before tax lines were in the base currency, posted with the key and no
    // requestHash: the function stores the md5 of the payload, as before migration 20270206001100
    const legacy = { date: '2026-03-02', memo: 'USD sale', source: 'manual', idempotencyKey: 'legacy-usd', lines: [
      { accountId: acc['1200'], debit: '1200.00', currency: 'USD' },
      { accountId: acc['4100'], credit: '1000.00', currency: 'USD', taxCodeId: vat, taxRole: 'output_base' },
      { accountId: acc['2200'], credit: '200.00', currency: 'USD', description: 'VAT20 20.0000% on 1000.00', taxCodeId: vat, taxRole: 'output_tax' }] };
    const [{ entry }] = await t.db.asApi({ sub: owner.id, org_id: orgId }, 'authenticated', 'SELECT entry FROM finance.post_journal_entry($1::jsonb, $2::jsonb)',
      [JSON.stringify(legacy), JSON.stringify({ action: 'ledger.entry_posted' })]);
    const { rows: [stored] } = await t.db.admin.query('SELECT request_hash FROM finance.journal_entries WHERE org_id = $1 AND id = $2', [orgId, entry.id]);
    expect(stored.request_hash).toMatch(/^[0-9a-f]{32}$/);
    const retry = await t.http.post(b.url('journal-entries')).set(owner.auth).set('Idempotency-Key', 'legacy-usd').send(dto).expect(200);
    expect(retry.body.id).toBe(entry.id);
    expect(retry.body.lines.map(shape)[2]).toMatchObject({ accountCode: '2200', currency: 'USD', credit: '200.00', baseCredit: '180.00' });
    expect((await t.http.post(b.url('journal-entries/batch?mode=independent')).set(owner.auth).send({ entries: [{ ...dto, idempotencyKey: 'legacy-usd' }] }).expect(201)).body.results)
      .toEqual([{ index: 0, status: 'replayed', id: entry.id }]);
    // another request with the key is still a conflict
    const other = await t.http.post(b.url('journal-entries')).set(owner.auth).set('Idempotency-Key', 'legacy-usd').send({ ...dto, memo: 'another sale' }).expect(409);
    expect(other.body.error.code).toBe('ledger.idempotency_conflict');
    const { rows } = await t.db.admin.query('SELECT count(*)::int AS n FROM finance.journal_entries WHERE org_id = $1', [orgId]);
    expect(rows).toEqual([{ n: 1 }]);
  });
});
