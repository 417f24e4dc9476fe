import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { onPlan, orgWithRoles, type RoleUsers } from '../support/factories.js';
import { ledgerUrl } from '../ledger/ledger-support.js';
import { expectOpenAmountsKept, issueInvoice, rUrl, setupReceivables } from './receivables-support.js';

/**
 * Fixes from an accountant's review of receivables (base EUR, fiscal year 2026 in monthly periods):
 *  1. An invoice of 0.00 (a line discounted 100 %, or priced 0.00) is issued without a journal entry: numbered, paid at
 *     once, audited, invoice.issued (entryId null) and invoice.paid; voided, it has nothing to reverse. A credit note of
 *     0.00 is refused (receivables.nothing_to_credit).
 *  2. An allocation or its reversal with no FX difference posts nothing, yet changes what was open as of its date: a
 *     date in a closed period (or in none) is refused with the ledger's codes, as a posting dated then would be.
 *  3. An archived customer's open invoice can still be paid, allocated and refunded; new invoices stay refused.
 *  4. A due date before the invoice date is refused on create and update (receivables.due_before_invoice).
 *  5. createPayment and refundCustomerCredit take an Idempotency-Key: a retry records one payment (one refund).
 */
describe('receivables: fixes from an accountant\'s review', () => {
  let t: TestApp;
  let orgId: string;
  let users: RoleUsers;
  let acc: Record<string, string>;
  let vat: string;
  let customer: string;

  beforeAll(async () => {
    t = await createTestApp();
    ({ orgId, users } = await orgWithRoles(t, 'Review Ltd'));
    await onPlan(t, orgId, 'professional');
    ({ acc, vat, customer } = await setupReceivables(t, orgId, users.owner, 'EUR'));
  });
  afterAll(async () => {
    await expectOpenAmountsKept(t, orgId);
    await t.close();
  });

  const count = async (from: string, params: unknown[] = []) => (await t.db.admin.query(`SELECT count(*)::int AS n FROM ${from}`, [orgId, ...params])).rows[0].n as number;
  const entries = () => count('finance.journal_entries WHERE org_id = $1');
  const events = async (type: string, key: string, id: string) => (await t.db.admin.query(
    `SELECT payload->'payload' AS p FROM core.outbox WHERE org_id = $1 AND topic = 'domain_event' AND payload->>'type' = $2 AND payload->'payload'->>$3 = $4 ORDER BY id`,
    [orgId, type, key, id])).rows.map((r) => r.p);
  const audits = async (action: string, id: string) => (await t.db.admin.query(
    `SELECT actor_id, before, after FROM core.audit_logs WHERE org_id = $1 AND action = $2 AND entity_id = $3`, [orgId, action, id])).rows;
  const line = (extra: object = {}) => ({ description: 'Consulting', quantity: '1', unitPrice: '100.00', revenueAccountId: acc['4100'], ...extra });
  const draft = async (body: object) => (await t.http.post(rUrl(orgId, 'invoices')).set(users.accountant.auth).send({ customerId: customer, ...body }).expect(201)).body;

  it('issues an invoice of 0.00 paid and numbered, without a journal entry; voids it without one; refuses a credit note of 0.00', async () => {
    const before = await entries();
    const discounted = await draft({ invoiceDate: '2026-03-02', series: 'ZERO', lines: [line({ discountPercent: '100', taxCodeId: vat })] });
    const free = await draft({ invoiceDate: '2026-03-02', series: 'ZERO', lines: [line({ unitPrice: '0.00' })] });
    for (const [i, d] of [discounted, free].entries()) {
      const number = `ZERO-2026-00000${i + 1}`;
      const res = await t.http.post(rUrl(orgId, `invoices/${d.id}/issue`)).set(users.accountant.auth).send({}).expect(200);
      expect(res.body).toMatchObject({ id: d.id, status: 'paid', number, total: '0.00', openAmount: '0.00', overdue: false, entryId: null, rate: '1.0000000000' });
      const { rows: [row] } = await t.db.admin.query(`SELECT status, number, entry_id, base_total::text FROM finance.invoices WHERE org_id = $1 AND id = $2`, [orgId, d.id]);
      expect(row).toEqual({ status: 'paid', number, entry_id: null, base_total: '0.0000' });
      expect(await events('invoice.issued', 'invoiceId', d.id)).toEqual([{
        invoiceId: d.id, kind: 'invoice', number, customerId: customer, invoiceDate: '2026-03-02', dueDate: '2026-04-01', currency: 'EUR', total: '0.00', entryId: null,
      }]);
      expect(await events('invoice.paid', 'invoiceId', d.id)).toEqual([{ invoiceId: d.id, number, customerId: customer, total: '0.00', paidOn: '2026-03-02' }]);
      expect(await audits('receivables.invoice_issued', d.id)).toEqual([
        { actor_id: users.accountant.id, before: { status: 'draft' }, after: { status: 'paid', entryId: null, rate: '1', number } }]);
    }
    expect(await entries()).toBe(before);
    // nothing to pay on it
    const pay = await t.http.post(rUrl(orgId, 'payments')).set(users.accountant.auth).send({ customerId: customer, date: '2026-03-03', amount: '1.00', depositAccountId: acc['1100'],
      method: 'bank_transfer', allocations: [{ invoiceId: free.id, amount: '1.00' }] }).expect(409);
    expect(pay.body.error.code).toBe('receivables.over_allocation');

    // voided: no entry to reverse, none posted
    const voided = await t.http.post(rUrl(orgId, `invoices/${free.id}/void`)).set(users.accountant.auth).send({ date: '2026-03-05' }).expect(200);
    expect(voided.body).toMatchObject({ status: 'void', voidedOn: '2026-03-05', voidEntryId: null, entryId: null });
    expect(await events('invoice.voided', 'invoiceId', free.id)).toEqual([{ invoiceId: free.id, number: 'ZERO-2026-000002', customerId: customer, voidedOn: '2026-03-05', reversalEntryId: null }]);
    expect(await audits('receivables.invoice_voided', free.id)).toEqual([
      { actor_id: users.accountant.id, before: { status: 'paid' }, after: { status: 'void', voidedOn: '2026-03-05', voidEntryId: null } }]);
    expect(await entries()).toBe(before);

    // a credit note of the line discounted 100 % credits nothing: refused, nothing written; the other line still credits
    const mixed = await issueInvoice(t, orgId, users.accountant, { customerId: customer, invoiceDate: '2026-03-04', lines: [line({ discountPercent: '100' }), line()] });
    const issuedEntries = await entries();
    const notes = () => count(`finance.invoices WHERE org_id = $1 AND kind = 'credit_note'`);
    const notesBefore = await notes();
    const nothing = await t.http.post(rUrl(orgId, `invoices/${mixed.id}/credit-notes`)).set(users.accountant.auth).send({ date: '2026-03-06', lines: [{ lineNo: 1 }] }).expect(422);
    expect(nothing.body.error).toMatchObject({ code: 'receivables.nothing_to_credit', message: 'the lines credited come to 0.00: there is nothing to credit' });
    expect([await notes(), await entries()]).toEqual([notesBefore, issuedEntries]);
    const credited = await t.http.post(rUrl(orgId, `invoices/${mixed.id}/credit-notes`)).set(users.accountant.auth).send({ date: '2026-03-06', lines: [{ lineNo: 2 }] }).expect(201);
    expect(credited.body).toMatchObject({ kind: 'credit_note', status: 'issued', total: '100.00' });
    expect((await t.http.get(rUrl(orgId, `invoices/${mixed.id}`)).set(users.viewer.auth).expect(200)).body).toMatchObject({ status: 'paid', openAmount: '0.00' });
  });

  it('refuses a due date before the invoice date on create and update (422), writing nothing', async () => {
    const invoices = () => count('finance.invoices WHERE org_id = $1');
    const n = await invoices();
    const created = await t.http.post(rUrl(orgId, 'invoices')).set(users.accountant.auth)
      .send({ customerId: customer, invoiceDate: '2026-03-10', dueDate: '2026-03-09', lines: [line()] }).expect(422);
    expect(created.body.error).toEqual({ code: 'receivables.due_before_invoice', message: 'dueDate 2026-03-09 is before invoiceDate 2026-03-10' });
    expect(await invoices()).toBe(n);

    const d = await draft({ invoiceDate: '2026-03-10', dueDate: '2026-03-10', lines: [line()] }); // due the same day: fine
    const updated = await t.http.put(rUrl(orgId, `invoices/${d.id}`)).set(users.accountant.auth)
      .send({ customerId: customer, invoiceDate: '2026-03-12', dueDate: '2026-03-11', lines: [line({ unitPrice: '50.00' })] }).expect(422);
    expect(updated.body.error.code).toBe('receivables.due_before_invoice');
    const { rows: [row] } = await t.db.admin.query(`SELECT invoice_date::text, due_date::text, total::text FROM finance.invoices WHERE org_id = $1 AND id = $2`, [orgId, d.id]);
    expect(row).toEqual({ invoice_date: '2026-03-10', due_date: '2026-03-10', total: '100.0000' });
    expect(await audits('receivables.invoice_updated', d.id)).toEqual([]);
    await t.http.delete(rUrl(orgId, `invoices/${d.id}`)).set(users.accountant.auth).expect(204);
  });

  it('pays, allocates to and refunds an archived customer\'s open invoice; a new invoice for it stays refused', async () => {
    const gone = (await t.http.post(rUrl(orgId, 'customers')).set(users.owner.auth).send({ name: 'Gone GmbH' }).expect(201)).body.id as string;
    const inv = await issueInvoice(t, orgId, users.accountant, { customerId: gone, invoiceDate: '2026-03-03', lines: [line()] });
    await t.http.post(rUrl(orgId, `customers/${gone}/archive`)).set(users.accountant.auth).expect(200);

    const refused = await t.http.post(rUrl(orgId, 'invoices')).set(users.accountant.auth).send({ customerId: gone, invoiceDate: '2026-03-20', lines: [line()] }).expect(422);
    expect(refused.body.error.code).toBe('receivables.customer_archived');

    const pay = await t.http.post(rUrl(orgId, 'payments')).set(users.accountant.auth).send({ customerId: gone, date: '2026-03-20', amount: '150.00', depositAccountId: acc['1100'],
      method: 'bank_transfer', allocations: [{ invoiceId: inv.id, amount: '60.00' }] }).expect(201);
    expect(pay.body).toMatchObject({ customerId: gone, amount: '150.00', unallocated: '90.00', allocations: [expect.objectContaining({ invoiceId: inv.id, amount: '60.00' })] });
    const more = await t.http.post(rUrl(orgId, `payments/${pay.body.id}/allocations`)).set(users.accountant.auth)
      .send({ date: '2026-03-21', allocations: [{ invoiceId: inv.id, amount: '40.00' }] }).expect(201);
    expect(more.body.unallocated).toBe('50.00');
    const refund = await t.http.post(rUrl(orgId, `payments/${pay.body.id}/refunds`)).set(users.accountant.auth).send({ date: '2026-03-22', amount: '50.00' }).expect(201);
    expect(refund.body).toMatchObject({ unallocated: '0.00', refunds: [expect.objectContaining({ amount: '50.00' })] });

    const { rows: [invoice] } = await t.db.admin.query(`SELECT status FROM finance.invoices WHERE org_id = $1 AND id = $2`, [orgId, inv.id]);
    expect(invoice.status).toBe('paid');
    const { rows: settled } = await t.db.admin.query(`SELECT amount::text FROM finance.receivable_allocations WHERE org_id = $1 AND invoice_id = $2 ORDER BY seq`, [orgId, inv.id]);
    expect(settled.map((r) => r.amount)).toEqual(['60.0000', '40.0000']);
    expect(await count('finance.customer_refunds WHERE org_id = $1 AND customer_id = $2', [gone])).toBe(1);
    const balance = (await t.http.get(ledgerUrl(orgId, `accounts/${acc['1200']}/balance?asOf=2026-03-22`)).set(users.viewer.auth).expect(200)).body;
    const aging = (await t.http.get(rUrl(orgId, 'aging?asOf=2026-03-22')).set(users.viewer.auth).expect(200)).body;
    expect(aging.total).toBe(balance.baseBalance);
    expect(aging.rows.find((r: any) => r.partyId === gone)).toBeUndefined();
  });

  it('refuses an allocation, a reversal and an invoice of 0.00 dated in a closed period or in none, though they post nothing', async () => {
    const inv = await issueInvoice(t, orgId, users.accountant, { customerId: customer, invoiceDate: '2026-01-10', lines: [line()] });
    const pay = (await t.http.post(rUrl(orgId, 'payments')).set(users.accountant.auth).send({ customerId: customer, date: '2026-01-20', amount: '100.00',
      depositAccountId: acc['1100'], method: 'bank_transfer' }).expect(201)).body;
    const first = await t.http.post(rUrl(orgId, `payments/${pay.id}/allocations`)).set(users.accountant.auth)
      .send({ date: '2026-01-21', allocations: [{ invoiceId: inv.id, amount: '30.00' }] }).expect(201);
    const allocationId = first.body.allocations[0].id as string;
    expect(first.body.allocations[0].entryId).toBeNull(); // same rate on both sides: nothing posted
    const zero = await draft({ invoiceDate: '2026-01-15', series: 'ZJAN', lines: [line({ discountPercent: '100' })] });
    const january = (await t.http.get(ledgerUrl(orgId, 'periods')).set(users.viewer.auth).expect(200)).body.find((p: any) => p.startDate === '2026-01-01');
    await t.http.post(ledgerUrl(orgId, `periods/${january.id}/close`)).set(users.owner.auth).expect(200);
    const agingJan = async () => (await t.http.get(rUrl(orgId, 'aging?asOf=2026-01-31')).set(users.viewer.auth).expect(200)).body.total;
    const closedAging = await agingJan();
    const allocations = () => count('finance.receivable_allocations WHERE org_id = $1');
    const n = await allocations();

    const allocate = (date: string) => t.http.post(rUrl(orgId, `payments/${pay.id}/allocations`)).set(users.accountant.auth).send({ date, allocations: [{ invoiceId: inv.id, amount: '20.00' }] });
    const reverse = (date: string) => t.http.post(rUrl(orgId, `allocations/${allocationId}/reverse`)).set(users.accountant.auth).send({ date });
    for (const res of [await allocate('2026-01-25'), await reverse('2026-01-27')]) {
      expect(res.status).toBe(422);
      expect(res.body.error).toMatchObject({ code: 'ledger.period_closed', message: 'the fiscal period 2026-01-01 to 2026-01-31 is closed' });
    }
    const issued = await t.http.post(rUrl(orgId, `invoices/${zero.id}/issue`)).set(users.accountant.auth).send({}).expect(422);
    expect(issued.body.error.code).toBe('ledger.period_closed');
    const noYear = await allocate('2027-02-01').expect(422);
    expect(noYear.body.error).toMatchObject({ code: 'ledger.no_fiscal_year', message: 'no fiscal period covers 2027-02-01' });
    expect(await allocations()).toBe(n);
    expect(await agingJan()).toBe(closedAging);
    const { rows: [stillDraft] } = await t.db.admin.query(`SELECT status, number FROM finance.invoices WHERE org_id = $1 AND id = $2`, [orgId, zero.id]);
    expect(stillDraft).toEqual({ status: 'draft', number: null });

    // dated in February (open), both go through
    await allocate('2026-02-02').expect(201);
    await reverse('2026-02-03').expect(201);
    expect(await allocations()).toBe(n + 2);
    expect(await agingJan()).toBe(closedAging);
    await t.http.post(ledgerUrl(orgId, `periods/${january.id}/reopen`)).set(users.owner.auth).expect(200);
  });

  it('records a payment once per Idempotency-Key: a retry answers the first payment, another request with the key is a 409', async () => {
    const body = { customerId: customer, date: '2026-04-01', amount: '75.00', depositAccountId: acc['1100'], method: 'bank_transfer', reference: 'RETRY-1' };
    const post = (key: string, b: object = body) => t.http.post(rUrl(orgId, 'payments')).set(users.accountant.auth).set('Idempotency-Key', key).send(b);
    const payments = () => count('finance.customer_payments WHERE org_id = $1');
    const [n, e] = [await payments(), await entries()];

    const first = await post('pay-retry-1').expect(201);
    const again = await post('pay-retry-1').expect(201);
    expect(again.body).toEqual(first.body);
    expect([await payments(), await entries()]).toEqual([n + 1, e + 1]);
    const { rows: [stored] } = await t.db.admin.query(`SELECT idempotency_key, request_hash FROM finance.customer_payments WHERE org_id = $1 AND id = $2`, [orgId, first.body.id]);
    expect(stored).toEqual({ idempotency_key: 'pay-retry-1', request_hash: expect.stringMatching(/^[0-9a-f]{64}$/) });
    expect(await audits('receivables.payment_received', first.body.id)).toHaveLength(1);
    expect(await events('payment.received', 'paymentId', first.body.id)).toHaveLength(1);

    const other = await post('pay-retry-1', { ...body, amount: '76.00' }).expect(409);
    expect(other.body.error).toMatchObject({ code: 'receivables.idempotency_conflict', message: 'the Idempotency-Key "pay-retry-1" was already used for a different payment' });
    const tooLong = await post('k'.repeat(201)).expect(400);
    expect(tooLong.body.error).toMatchObject({ code: 'validation_failed', details: [{ field: 'Idempotency-Key', problems: ['Idempotency-Key must be at most 200 characters'] }] });
    // without a key, each request is a payment of its own (as before)
    await t.http.post(rUrl(orgId, 'payments')).set(users.accountant.auth).send(body).expect(201);
    expect([await payments(), await entries()]).toEqual([n + 2, e + 2]);

    // concurrent retries: one payment
    const racing = await Promise.all(Array.from({ length: 6 }, () => post('pay-race', { ...body, reference: 'RACE' })));
    expect(racing.map((r) => r.status)).toEqual(Array(6).fill(201));
    expect(new Set(racing.map((r) => r.body.id)).size).toBe(1);
    expect([await payments(), await entries()]).toEqual([n + 3, e + 3]);
    expect(await audits('receivables.payment_received', racing[0].body.id)).toHaveLength(1);
  });

  it('refunds once per Idempotency-Key: a retry answers the payment as after the first refund; the key for another refund is a 409', async () => {
    const pay = (await t.http.post(rUrl(orgId, 'payments')).set(users.accountant.auth).send({ customerId: customer, date: '2026-04-02', amount: '90.00',
      depositAccountId: acc['1100'], method: 'bank_transfer' }).expect(201)).body;
    const other = (await t.http.post(rUrl(orgId, 'payments')).set(users.accountant.auth).send({ customerId: customer, date: '2026-04-02', amount: '90.00',
      depositAccountId: acc['1100'], method: 'bank_transfer' }).expect(201)).body;
    const refund = (paymentId: string, b: object) => t.http.post(rUrl(orgId, `payments/${paymentId}/refunds`)).set(users.accountant.auth).set('Idempotency-Key', 'refund-1').send(b);
    const refunds = () => count('finance.customer_refunds WHERE org_id = $1');
    const [n, e] = [await refunds(), await entries()];

    // concurrent retries: one refund, every answer the payment as after it
    const racing = await Promise.all(Array.from({ length: 5 }, () => refund(pay.id, { date: '2026-04-03', amount: '30.00' })));
    const first = racing[0];
    expect(first.status).toBe(201);
    expect(first.body).toMatchObject({ id: pay.id, unallocated: '60.00', refunds: [expect.objectContaining({ amount: '30.00' })] });
    expect(racing.map((r) => [r.status, r.body])).toEqual(Array(5).fill([201, first.body]));
    expect((await refund(pay.id, { date: '2026-04-03', amount: '30.00' }).expect(201)).body).toEqual(first.body);
    expect([await refunds(), await entries()]).toEqual([n + 1, e + 1]);
    expect(await audits('receivables.credit_refunded', pay.id)).toHaveLength(1);

    for (const [paymentId, b] of [[pay.id, { date: '2026-04-03', amount: '31.00' }], [other.id, { date: '2026-04-03', amount: '30.00' }]] as const) {
      const res = await refund(paymentId, b).expect(409);
      expect(res.body.error).toMatchObject({ code: 'receivables.idempotency_conflict', message: 'the Idempotency-Key "refund-1" was already used for a different refund' });
    }
    expect([await refunds(), await entries()]).toEqual([n + 1, e + 1]);
    // a payment's key and a refund's are apart
    await t.http.post(rUrl(orgId, `payments/${other.id}/refunds`)).set(users.accountant.auth).set('Idempotency-Key', 'pay-retry-1').send({ date: '2026-04-03', amount: '10.00' }).expect(201);
  });
});
