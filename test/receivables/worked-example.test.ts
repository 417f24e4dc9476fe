import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, registerUser, type TestUser, onPlan } from '../support/factories.js';
import { ledgerUrl } from '../ledger/ledger-support.js';
import { expectOpenAmountsKept, issueInvoice, rUrl, setupReceivables } from './receivables-support.js';

/**
 * Receivables in USD (base), computed by hand:
 *  Jan 10 invoice A (Alpha) 10 × 100.00 + VAT 20 %     AR 1,200.00 | Sales 1,000.00, VAT 200.00; due Feb 9
 *  Jan 15 invoice B (Beta) EUR 1,000.00 at 1.10       AR 1,100.00 | Sales 1,100.00; due Feb 14
 *  Jan 20 payment 500.00 on A                         Cash 500.00 | AR 500.00
 *  Jan 25 invoice C (Alpha) 2 × 250.00 + VAT          AR 600.00 | Sales 500.00, VAT 100.00; due Feb 24
 *  Jan 28 credit note of C, line 1 × 1                Sales 250.00, VAT 50.00 | AR 300.00
 *  Feb  5 payment 400.00 on A                         Cash 400.00 | AR 400.00   (A open 300.00)
 *  Feb 20 payment EUR 1,000.00 on B at 1.15           Cash 1,150.00 | AR 1,100.00, FX gain 50.00
 * Jan 31: TB cash 500, AR 2,100 | VAT 250, sales 2,350 (= 2,600); aging all current: A 700 + B 1,100 + C 300 = 2,100.
 * Mar 15: TB cash 2,050, AR 600 | VAT 250, sales 2,350, FX gain 50 (= 2,650); aging A 300 (34 days: 31-60), C 300 (19 days: 1-30).
 * P&L Jan 1 – Mar 15: revenue 2,400 (sales 2,350 + FX 50), net 2,400. BS Mar 15: assets 2,650 = liabilities 250 + earnings 2,400.
 */
describe('receivables: a worked quarter', () => {
  let t: TestApp;
  let owner: TestUser;
  let orgId: string;
  let acc: Record<string, string>;
  let vat: string;
  let alpha: string;
  let beta: string;

  beforeAll(async () => {
    t = await createTestApp();
    owner = await registerUser(t, 'owner');
    orgId = await createOrg(t, owner, 'Quarter Inc');
    await onPlan(t, orgId, 'professional'); // EUR documents are multi-currency: full accounting
    ({ acc, vat, customer: alpha } = await setupReceivables(t, orgId, owner));
    beta = (await t.http.post(rUrl(orgId, 'customers')).set(owner.auth).send({ name: 'Beta GmbH', defaultCurrency: 'EUR' }).expect(201)).body.id;
    await t.http.post(ledgerUrl(orgId, 'fx-rates/import')).set(owner.auth)
      .send({ rates: [{ currency: 'EUR', date: '2026-01-15', rate: '1.10' }, { currency: 'EUR', date: '2026-02-20', rate: '1.15' }] }).expect(201);
  });
  afterAll(() => t.close());

  const aging = async (q: string) => (await t.http.get(rUrl(orgId, `aging?${q}`)).set(owner.auth).expect(200)).body;
  const tb = async (asOf: string) => (await t.http.get(ledgerUrl(orgId, `reports/trial-balance?asOf=${asOf}`)).set(owner.auth).expect(200)).body;
  const arBalance = async (asOf: string) => (await t.http.get(ledgerUrl(orgId, `accounts/${acc['1200']}/balance?asOf=${asOf}`)).set(owner.auth).expect(200)).body;

  it('posts invoices, payments, a credit note and a realized FX gain; statements and aging equal the hand figures', async () => {
    const a = await issueInvoice(t, orgId, owner, { customerId: alpha, invoiceDate: '2026-01-10', total: '1200.00',
      lines: [{ description: 'Consulting', quantity: '10', unitPrice: '100.00', taxCodeId: vat, revenueAccountId: acc['4100'] }] });
    expect(a).toMatchObject({ number: 'INV-2026-000001', status: 'issued', subtotal: '1000.00', taxTotal: '200.00', total: '1200.00', openAmount: '1200.00', dueDate: '2026-02-09' });
    expect(a.taxes).toEqual([expect.objectContaining({ code: 'VAT20', net: '1000.00', tax: '200.00' })]);
    const entryA = (await t.http.get(ledgerUrl(orgId, `journal-entries/${a.entryId}`)).set(owner.auth).expect(200)).body;
    expect(entryA.lines.map((l: any) => [l.accountCode, l.debit, l.credit, l.counterpartyId])).toEqual([
      ['1200', '1200.00', '0.00', alpha], ['4100', '0.00', '1000.00', alpha], ['2200', '0.00', '200.00', alpha]]);
    expect(JSON.stringify(entryA)).not.toContain('ap@alpha.example'); // contact data stays in the party row

    const b = await issueInvoice(t, orgId, owner, { customerId: beta, invoiceDate: '2026-01-15',
      lines: [{ description: 'Licence', quantity: '1', unitPrice: '1000.00', revenueAccountId: acc['4100'] }] });
    expect(b).toMatchObject({ number: 'INV-2026-000002', currency: 'EUR', rate: '1.1000000000', total: '1000.00' });

    const pay1 = await t.http.post(rUrl(orgId, 'payments')).set(owner.auth).send({ customerId: alpha, date: '2026-01-20', amount: '500.00', depositAccountId: acc['1100'], method: 'bank_transfer',
      allocations: [{ invoiceId: a.id, amount: '500.00' }] }).expect(201);
    expect(pay1.body).toMatchObject({ unallocated: '0.00', allocations: [expect.objectContaining({ invoiceId: a.id, amount: '500.00', realizedFx: '0.00' })] });
    expect((await t.http.get(rUrl(orgId, `invoices/${a.id}`)).set(owner.auth).expect(200)).body).toMatchObject({ status: 'partially_paid', openAmount: '700.00' });

    const c = await issueInvoice(t, orgId, owner, { customerId: alpha, invoiceDate: '2026-01-25',
      lines: [{ description: 'Workshop', quantity: '2', unitPrice: '250.00', taxCodeId: vat, revenueAccountId: acc['4100'] }] });
    const cn = await t.http.post(rUrl(orgId, `invoices/${c.id}/credit-notes`)).set(owner.auth).send({ date: '2026-01-28', lines: [{ lineNo: 1, quantity: '1' }] }).expect(201);
    expect(cn.body).toMatchObject({ kind: 'credit_note', number: 'CN-2026-000001', creditedInvoiceId: c.id, subtotal: '250.00', taxTotal: '50.00', total: '300.00' });
    expect((await t.http.get(rUrl(orgId, `invoices/${c.id}`)).set(owner.auth).expect(200)).body).toMatchObject({ status: 'partially_paid', openAmount: '300.00' });

    await t.http.post(rUrl(orgId, 'payments')).set(owner.auth).send({ customerId: alpha, date: '2026-02-05', amount: '400.00', depositAccountId: acc['1100'], method: 'card',
      allocations: [{ invoiceId: a.id, amount: '400.00' }] }).expect(201);
    const payB = await t.http.post(rUrl(orgId, 'payments')).set(owner.auth).send({ customerId: beta, date: '2026-02-20', amount: '1000.00', currency: 'EUR', depositAccountId: acc['1100'], method: 'bank_transfer',
      allocations: [{ invoiceId: b.id, amount: '1000.00' }] }).expect(201);
    expect(payB.body).toMatchObject({ rate: '1.1500000000', allocations: [expect.objectContaining({ realizedFx: '50.00' })] });
    const entryB = (await t.http.get(ledgerUrl(orgId, `journal-entries/${payB.body.entryId}`)).set(owner.auth).expect(200)).body;
    expect(entryB.lines.map((l: any) => [l.accountCode, l.currency, l.debit, l.credit, l.baseDebit, l.baseCredit])).toEqual([
      ['1100', 'EUR', '1000.00', '0.00', '1150.00', '0.00'], ['1200', 'EUR', '0.00', '1000.00', '0.00', '1100.00'], ['4300', 'USD', '0.00', '50.00', '0.00', '50.00']]);
    expect((await t.http.get(rUrl(orgId, `invoices/${b.id}`)).set(owner.auth).expect(200)).body).toMatchObject({ status: 'paid', openAmount: '0.00' });

    // ---- January 31
    const tbJan = await tb('2026-01-31');
    expect(tbJan.rows.map((r: any) => [r.code, r.debit, r.credit])).toEqual([
      ['1100', '500.00', '0.00'], ['1200', '2100.00', '0.00'], ['2200', '0.00', '250.00'], ['4100', '0.00', '2350.00']]);
    const agJan = await aging('asOf=2026-01-31');
    expect(agJan).toMatchObject({ asOf: '2026-01-31', baseCurrency: 'USD', bucketLabels: ['current', '1-30', '31-60', '61-90', '>90'], total: '2100.00' });
    expect(agJan.rows.map((r: any) => [r.partyName, r.buckets.map((x: any) => x.amount), r.total])).toEqual([
      ['Alpha Ltd', ['1000.00', '0.00', '0.00', '0.00', '0.00'], '1000.00'], ['Beta GmbH', ['1100.00', '0.00', '0.00', '0.00', '0.00'], '1100.00']]);
    expect((await arBalance('2026-01-31')).baseBalance).toBe(agJan.total);
    expect(agJan).toMatchObject({ partyCount: 2 });
    expect(agJan.nextCursor).toBeUndefined();
    // a page of one customer at a time: the totals over both on every page, the rows as in the whole report
    const first = await aging('asOf=2026-01-31&limit=1');
    expect(first).toMatchObject({ partyCount: 2, total: '2100.00', totals: agJan.totals, rows: [agJan.rows[0]] });
    const second = await aging(`asOf=2026-01-31&limit=1&cursor=${first.nextCursor}`);
    expect(second).toMatchObject({ partyCount: 2, total: '2100.00', rows: [agJan.rows[1]] });
    expect(second.nextCursor).toBeUndefined();

    // ---- March 15
    const tbMar = await tb('2026-03-15');
    expect(tbMar.rows.map((r: any) => [r.code, r.debit, r.credit])).toEqual([
      ['1100', '2050.00', '0.00'], ['1200', '600.00', '0.00'], ['2200', '0.00', '250.00'], ['4100', '0.00', '2350.00'], ['4300', '0.00', '50.00']]);
    expect(tbMar).toMatchObject({ totalDebit: '2650.00', totalCredit: '2650.00', balanced: true });
    const pl = (await t.http.get(ledgerUrl(orgId, 'reports/profit-and-loss?from=2026-01-01&to=2026-03-15')).set(owner.auth).expect(200)).body;
    expect(pl).toMatchObject({ totalRevenue: '2400.00', totalExpenses: '0.00', netIncome: '2400.00' });
    const bs = (await t.http.get(ledgerUrl(orgId, 'reports/balance-sheet?asOf=2026-03-15')).set(owner.auth).expect(200)).body;
    expect(bs).toMatchObject({ totalAssets: '2650.00', totalLiabilities: '250.00', currentEarnings: '2400.00', balanced: true });
    const agMar = await aging('asOf=2026-03-15');
    expect(agMar.total).toBe('600.00');
    expect((await arBalance('2026-03-15')).baseBalance).toBe('600.00');
    expect(agMar.rows.map((r: any) => [r.partyName, r.buckets.map((x: any) => x.amount)])).toEqual([['Alpha Ltd', ['0.00', '300.00', '300.00', '0.00', '0.00']]]);
    const custom = await aging('asOf=2026-03-15&buckets=15,30,60');
    expect(custom.bucketLabels).toEqual(['current', '1-15', '16-30', '31-60', '>60']);
    expect(custom.totals.map((x: any) => x.amount)).toEqual(['0.00', '0.00', '300.00', '300.00', '0.00']);
    const csv = await t.http.get(rUrl(orgId, 'aging?asOf=2026-03-15&format=csv')).set(owner.auth).expect(200);
    expect(csv.text.split('\r\n')).toEqual(expect.arrayContaining(['customer_id,customer,current,1-30,31-60,61-90,>90,total', ',Total,0.00,300.00,300.00,0.00,0.00,600.00']));

    // the semantic views, as the owner's role sees them (security_invoker: the caller's policies)
    const client = await t.db.admin.connect();
    try {
      await client.query('BEGIN');
      await client.query(`SELECT set_config('request.jwt.claims', $1, true)`, [JSON.stringify({ sub: owner.id, org_id: orgId, role: 'authenticated' })]);
      await client.query('SET LOCAL ROLE authenticated');
      const open = await client.query(`SELECT customer_name, number, open_amount::text, open_amount_base::text, bucket FROM semantic.v_ar_open ORDER BY number`);
      expect(open.rows.map((r) => [r.customer_name, r.number, r.open_amount, r.open_amount_base])).toEqual([
        ['Alpha Ltd', 'INV-2026-000001', '300.0000', '300.00'], ['Alpha Ltd', 'INV-2026-000003', '300.0000', '300.00']]);
      const revenue = await client.query(`SELECT customer_name, month::text, invoiced::text, credited::text, recognized::text FROM semantic.v_revenue_by_customer ORDER BY 1, 2`);
      expect(revenue.rows.map((r) => [r.customer_name, r.month, Number(r.invoiced), Number(r.credited), Number(r.recognized)])).toEqual([
        ['Alpha Ltd', '2026-01-01', 1500, 250, 1250], ['Beta GmbH', '2026-01-01', 1100, 0, 1100]]);
      const cash = await client.query(`SELECT month::text, activity, cash_in::text, cash_out::text FROM semantic.v_cash_flow ORDER BY 1, 2`);
      expect(cash.rows.map((r) => [r.month, r.activity, Number(r.cash_in), Number(r.cash_out)])).toEqual([
        ['2026-01-01', 'operating', 500, 0], ['2026-02-01', 'operating', 1550, 0]]);
      const undocumented = await client.query(`
        SELECT c.relname || '.' || a.attname AS col FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'semantic' AND c.relname IN ('v_ar_open', 'v_revenue_by_customer', 'v_cash_flow') AND a.attnum > 0 AND col_description(c.oid, a.attnum) IS NULL`);
      expect(undocumented.rows).toEqual([]);
    } finally {
      await client.query('ROLLBACK');
      client.release();
    }

    // the database's own view of what is open agrees
    const { rows } = await t.db.admin.query(`SELECT count(*)::int AS n FROM finance.invoices WHERE org_id = $1 AND status <> 'draft'`, [orgId]);
    expect(rows[0].n).toBe(4);
  });

  it('keeps the open amount of every document through payments, a credit note and FX; the aging from them equals the settlements\' sums at every date', async () => {
    await expectOpenAmountsKept(t, orgId);
  });
});
