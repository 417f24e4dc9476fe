import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, onPlan, registerUser, type TestUser } from '../support/factories.js';
import { issueInvoice, rUrl, setupReceivables } from './receivables-support.js';

/**
 * Amounts in the currency's minor units, not in two decimals (KWD has 3, JPY none): the invoice.paid event's total
 * and a customer's credit limit (in the base currency). And the codes the payment routes answer are declared on
 * their operations (the test app's response contract, checked at close, turns an undeclared code into a 500).
 */
describe('receivables: amounts in the currency\'s minor units; declared error codes', () => {
  let t: TestApp;
  let owner: TestUser;

  beforeAll(async () => {
    t = await createTestApp();
    owner = await registerUser(t, 'minor-units-owner');
  });
  afterAll(() => t.close());

  async function orgIn(base: string) {
    const orgId = await createOrg(t, owner, `Books in ${base}`);
    await onPlan(t, orgId, 'professional');
    return { orgId, ...(await setupReceivables(t, orgId, owner, base)) };
  }
  const paidEvents = async (orgId: string) => (await t.db.admin.query(
    `SELECT payload->'payload' AS p FROM core.outbox WHERE org_id = $1 AND topic = 'domain_event' AND payload->>'type' = 'invoice.paid' ORDER BY id`, [orgId])).rows.map((r) => r.p);

  it('invoice.paid carries the total in the invoice currency\'s minor units (KWD 3, JPY 0)', async () => {
    for (const [base, price, total] of [['KWD', '100.125', '100.125'], ['JPY', '1500', '1500']]) {
      const { orgId, acc, customer } = await orgIn(base);
      const inv = await issueInvoice(t, orgId, owner, { customerId: customer, invoiceDate: '2026-02-01', lines: [{ description: 'Work', quantity: '1', unitPrice: price, revenueAccountId: acc['4100'] }] });
      expect(inv).toMatchObject({ currency: base, total });
      await t.http.post(rUrl(orgId, 'payments')).set(owner.auth)
        .send({ customerId: customer, date: '2026-02-10', amount: total, depositAccountId: acc['1100'], method: 'bank_transfer', allocations: [{ invoiceId: inv.id, amount: total }] }).expect(201);
      expect(await paidEvents(orgId)).toEqual([{ invoiceId: inv.id, number: inv.number, customerId: customer, total, paidOn: '2026-02-10' }]);
    }
  });

  it('a revenue recognition run answers each line\'s amount in the invoice currency\'s minor units (KWD 3, JPY 0), as stored', async () => {
    for (const [base, price, jan] of [['KWD', '3650.365', '310.031'], ['JPY', '36500', '3100']]) {
      const { orgId, acc, customer } = await orgIn(base);
      // 365 days of service: KWD 10.001 a day, JPY 100 a day; January is 31 days of it
      const inv = await issueInvoice(t, orgId, owner, { customerId: customer, invoiceDate: '2026-01-01', lines: [
        { description: 'Support 2026', quantity: '1', unitPrice: price, revenueAccountId: acc['4100'], serviceStart: '2026-01-01', serviceEnd: '2026-12-31' }] });
      const run = (await t.http.post(rUrl(orgId, 'revenue-recognition/runs')).set(owner.auth).send({ date: '2026-01-31' }).expect(200)).body;
      expect(run.lines).toEqual([{ invoiceId: inv.id, lineNo: 1, amount: jan, recognizedThrough: '2026-01-31' }]);
      const { rows } = await t.db.admin.query(`SELECT amount::text FROM finance.revenue_recognitions WHERE org_id = $1 AND invoice_id = $2`, [orgId, inv.id]);
      expect(rows.map((r) => Number(r.amount))).toEqual([Number(jan)]);
      // a replay answers the same
      expect((await t.http.post(rUrl(orgId, 'revenue-recognition/runs')).set(owner.auth).send({ date: '2026-01-31' }).expect(200)).body).toMatchObject({ replayed: true, lines: run.lines });
    }
  });

  it('a credit limit is in the base currency: answered in its minor units, refused finer; before the books, as entered', async () => {
    const kwd = await orgIn('KWD');
    const created = await t.http.post(rUrl(kwd.orgId, 'customers')).set(owner.auth).send({ name: 'Gulf Trading', creditLimit: '5000.125' }).expect(201);
    expect(created.body.creditLimit).toBe('5000.125');
    const whole = await t.http.put(rUrl(kwd.orgId, `customers/${created.body.id}`)).set(owner.auth).send({ creditLimit: '7000' }).expect(200);
    expect(whole.body.creditLimit).toBe('7000.000');
    expect((await t.http.get(rUrl(kwd.orgId, `customers/${created.body.id}`)).set(owner.auth).expect(200)).body.creditLimit).toBe('7000.000');

    const jpy = await orgIn('JPY');
    const customers = async () => (await t.db.admin.query('SELECT name, credit_limit::text FROM finance.customers WHERE org_id = $1 ORDER BY name', [jpy.orgId])).rows;
    const before = await customers();
    const finer = await t.http.post(rUrl(jpy.orgId, 'customers')).set(owner.auth).send({ name: 'Tokyo KK', creditLimit: '5000.5' }).expect(400);
    expect(finer.body.error).toEqual({ code: 'receivables.invalid_amount', message: 'creditLimit must have at most 0 decimals (it is in the base currency)' });
    expect(await customers()).toEqual(before);
    const yen = await t.http.post(rUrl(jpy.orgId, 'customers')).set(owner.auth).send({ name: 'Tokyo KK', creditLimit: '5000' }).expect(201);
    expect(yen.body.creditLimit).toBe('5000');
    const finerUpdate = await t.http.put(rUrl(jpy.orgId, `customers/${yen.body.id}`)).set(owner.auth).send({ creditLimit: '10.25' }).expect(400);
    expect(finerUpdate.body.error.code).toBe('receivables.invalid_amount');
    expect((await customers()).find((c) => c.name === 'Tokyo KK')).toEqual({ name: 'Tokyo KK', credit_limit: '5000.0000' });

    // no books, no base currency yet: the limit is answered as entered (never rounded)
    const noBooks = await createOrg(t, owner, 'No Books Yet');
    await onPlan(t, noBooks, 'professional');
    const early = await t.http.post(rUrl(noBooks, 'customers')).set(owner.auth).send({ name: 'Early Bird', creditLimit: '10.1234' }).expect(201);
    expect(early.body.creditLimit).toBe('10.1234');
  });

  it('an unknown invoice in an allocation is a declared 404, with the payment and later; nothing is written', async () => {
    const { orgId, acc, customer } = await orgIn('EUR');
    const missing = '00000000-0000-4000-8000-000000000000';
    const pay = (await t.http.post(rUrl(orgId, 'payments')).set(owner.auth)
      .send({ customerId: customer, date: '2026-02-10', amount: '50.00', depositAccountId: acc['1100'], method: 'bank_transfer' }).expect(201)).body;
    const written = async () => (await t.db.admin.query(`SELECT (SELECT count(*)::int FROM finance.customer_payments WHERE org_id = $1) AS payments,
      (SELECT count(*)::int FROM finance.receivable_allocations WHERE org_id = $1) AS allocations, (SELECT count(*)::int FROM finance.journal_entries WHERE org_id = $1) AS entries`, [orgId])).rows[0];
    const before = await written();

    const withPayment = await t.http.post(rUrl(orgId, 'payments')).set(owner.auth)
      .send({ customerId: customer, date: '2026-02-10', amount: '20.00', depositAccountId: acc['1100'], method: 'bank_transfer', allocations: [{ invoiceId: missing, amount: '20.00' }] }).expect(404);
    expect(withPayment.body.error).toEqual({ code: 'invoice.not_found', message: `invoice ${missing} was not found` });
    const later = await t.http.post(rUrl(orgId, `payments/${pay.id}/allocations`)).set(owner.auth).send({ date: '2026-02-11', allocations: [{ invoiceId: missing, amount: '20.00' }] }).expect(404);
    expect(later.body.error).toEqual({ code: 'invoice.not_found', message: `invoice ${missing} was not found` });

    expect(await written()).toEqual(before);
    expect((await t.http.get(rUrl(orgId, `payments/${pay.id}`)).set(owner.auth).expect(200)).body).toMatchObject({ unallocated: '50.00', allocations: [] });
  });
});
