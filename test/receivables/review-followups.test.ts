import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import Ajv2020Module from 'ajv/dist/2020.js';
import { PDFParse } from 'pdf-parse';
import { createTestApp, type TestApp } from '../support/app.js';
import { onPlan, orgWithRoles, type RoleUsers } from '../support/factories.js';
import { ledgerUrl } from '../ledger/ledger-support.js';
import { RECEIVABLES_EVENT_TYPES } from '../../src/modules/receivables/receivables.events.js';
import { issueInvoice, rUrl, setupReceivables } from './receivables-support.js';

const Ajv2020 = ((Ajv2020Module as any).default ?? Ajv2020Module) as typeof import('ajv/dist/2020.js').default;
const validatorOf = (type: string) => new Ajv2020({ strict: false, validateFormats: false }).compile(RECEIVABLES_EVENT_TYPES.find((e) => e.type === type)!.payloadSchema);

/**
 * Follow-ups of a review of receivables (base EUR):
 *  - A USD payment of 110,000,000.21 at 1.0857142857 is worth exactly 119,428,571.654999999997: 119,428,571.65, as
 *    PostgreSQL rounds it (the payment trigger, the aging). Rounded to decimal.js's default 20 digits first
 *    (119,428,571.655) it was 119,428,571.66 on the AR line, a 0.01 rounding line, and the aging 0.01 off the AR account;
 *    paid against a USD invoice of the same amount and rate, the customer stayed 0.01 in the aging with nothing open.
 *  - Allocating customer credit emits payment.allocated (one per allocation); a credit note's invoice.issued names the
 *    invoice it credits.
 *  - A credit limit is removed with null (PUT) and null creates a customer without one.
 *  - A draft of a customer archived since is not issued (422 receivables.customer_archived); a void invoice's PDF is
 *    marked VOID and shows no amount due.
 */
describe('receivables: review follow-ups', () => {
  let t: TestApp;
  let orgId: string;
  let users: RoleUsers;
  let acc: Record<string, string>;

  beforeAll(async () => {
    t = await createTestApp();
    ({ orgId, users } = await orgWithRoles(t, 'Followup Ltd'));
    await onPlan(t, orgId, 'professional');
    ({ acc } = await setupReceivables(t, orgId, users.owner, 'EUR'));
    await t.http.post(ledgerUrl(orgId, 'fx-rates/import')).set(users.owner.auth)
      .send({ rates: [{ currency: 'USD', date: '2026-02-01', rate: '0.90' }] }).expect(201);
  });
  afterAll(() => t.close());

  const newCustomer = async (name: string) => (await t.http.post(rUrl(orgId, 'customers')).set(users.owner.auth).send({ name }).expect(201)).body.id as string;
  const entryLines = async (entryId: string) => (await t.db.admin.query(
    `SELECT a.code, l.base_debit::numeric(20, 2)::text AS base_debit, l.base_credit::numeric(20, 2)::text AS base_credit
       FROM finance.journal_lines l JOIN finance.accounts a ON a.org_id = l.org_id AND a.id = l.account_id
      WHERE l.entry_id = $1 ORDER BY l.line_no`, [entryId])).rows;
  /** The aging's total and the AR control account's balance as of the date, and the customer's row of the aging. */
  const agingAndAr = async (asOf: string, customerId: string) => {
    const aging = (await t.http.get(rUrl(orgId, `aging?asOf=${asOf}`)).set(users.viewer.auth).expect(200)).body;
    const ar = (await t.http.get(ledgerUrl(orgId, `accounts/${acc['1200']}/balance?asOf=${asOf}`)).set(users.viewer.auth).expect(200)).body;
    return { aging: aging.total as string, ar: ar.baseBalance as string, customer: (aging.rows as { partyId: string; total: string }[]).find((r) => r.partyId === customerId)?.total };
  };
  const outboxAfter = async (id: string) => (await t.db.admin.query(
    `SELECT payload->>'type' AS type, (payload->>'version')::int AS version, payload->'payload' AS payload FROM core.outbox WHERE org_id = $1 AND id > $2 ORDER BY id`, [orgId, id])).rows;
  const lastOutboxId = async () => (await t.db.admin.query(`SELECT coalesce(max(id), 0)::text AS id FROM core.outbox WHERE org_id = $1`, [orgId])).rows[0].id as string;

  // the rate 1.0857142857 (chosen for its rounding) is more than 20 % off the table's 0.90: rateOverride
  it('a large USD payment is valued as PostgreSQL values it: no rounding line, the aging equals the AR account', async () => {
    const c = await newCustomer('Big Payer');
    const res = await t.http.post(rUrl(orgId, 'payments')).set(users.accountant.auth)
      .send({ customerId: c, date: '2026-02-10', amount: '110000000.21', currency: 'USD', rate: '1.0857142857', rateOverride: true, depositAccountId: acc['1100'], method: 'bank_transfer' }).expect(201);
    expect(res.body.unallocated).toBe('110000000.21');
    expect(await entryLines(res.body.entryId)).toEqual([
      { code: '1100', base_debit: '119428571.65', base_credit: '0.00' },
      { code: '1200', base_debit: '0.00', base_credit: '119428571.65' },
    ]);
    const after = await agingAndAr('2026-02-10', c);
    expect(after).toEqual({ aging: '-119428571.65', ar: '-119428571.65', customer: '-119428571.65' });
  });

  it('a large USD invoice paid in full at its own rate leaves nothing in the aging', async () => {
    const c = await newCustomer('Big Buyer');
    const draft = (await t.http.post(rUrl(orgId, 'invoices')).set(users.owner.auth).send({ customerId: c, invoiceDate: '2026-02-10', currency: 'USD',
      lines: [{ description: 'Plant', quantity: '1', unitPrice: '110000000.21', revenueAccountId: acc['4100'] }] }).expect(201)).body;
    const inv = (await t.http.post(rUrl(orgId, `invoices/${draft.id}/issue`)).set(users.owner.auth).send({ rate: '1.0857142857', rateOverride: true }).expect(200)).body;
    const before = await agingAndAr('2026-02-10', c);
    expect(before.customer).toBe('119428571.65');
    const pay = await t.http.post(rUrl(orgId, 'payments')).set(users.accountant.auth)
      .send({ customerId: c, date: '2026-02-10', amount: '110000000.21', currency: 'USD', rate: '1.0857142857', rateOverride: true, depositAccountId: acc['1100'], method: 'bank_transfer',
        allocations: [{ invoiceId: inv.id, amount: '110000000.21' }] }).expect(201);
    expect(pay.body.unallocated).toBe('0.00');
    expect((await t.http.get(rUrl(orgId, `invoices/${inv.id}`)).set(users.viewer.auth).expect(200)).body.status).toBe('paid');
    expect((await entryLines(pay.body.entryId)).map((l) => l.code)).toEqual(['1100', '1200']); // no rounding (5600) nor FX line
    const after = await agingAndAr('2026-02-10', c);
    expect(after.customer ?? '0.00').toBe('0.00');
    expect(after.aging).toBe(after.ar);
    const open = (await t.db.admin.query(`SELECT sum(open_base)::numeric(20, 2)::text AS open FROM finance.receivable_open_amounts WHERE org_id = $1 AND customer_id = $2`, [orgId, c])).rows[0].open;
    expect(open).toBe('0.00');
  });

  it('allocating customer credit emits payment.allocated per allocation, with what is open after it', async () => {
    const c = await newCustomer('Credit User');
    const inv = await issueInvoice(t, orgId, users.owner, { customerId: c, invoiceDate: '2026-03-01', lines: [{ description: 'W', quantity: '1', unitPrice: '100', revenueAccountId: acc['4100'] }] });
    const pay = (await t.http.post(rUrl(orgId, 'payments')).set(users.owner.auth)
      .send({ customerId: c, date: '2026-03-05', amount: '60.00', depositAccountId: acc['1100'], method: 'bank_transfer' }).expect(201)).body;
    let mark = await lastOutboxId();
    const allocated = await t.http.post(rUrl(orgId, `payments/${pay.id}/allocations`)).set(users.owner.auth)
      .send({ date: '2026-03-06', allocations: [{ invoiceId: inv.id, amount: '60.00' }] }).expect(201);
    const allocationId = allocated.body.allocations[0].id;
    let events = await outboxAfter(mark);
    expect(events).toEqual([{ type: 'payment.allocated', version: 1, payload: {
      allocationId, paymentId: pay.id, invoiceId: inv.id, invoiceNumber: inv.number, customerId: c, date: '2026-03-06', currency: 'EUR', amount: '60.00',
      invoiceOpenAmount: '40.00', invoiceStatus: 'partially_paid', paymentUnallocated: '0.00', entryId: null,
    } }]);
    const validate = validatorOf('payment.allocated');
    expect([validate(events[0].payload), validate.errors]).toEqual([true, null]);
    expect((await t.http.get(rUrl(orgId, `invoices/${inv.id}`)).set(users.viewer.auth).expect(200)).body).toMatchObject({ status: 'partially_paid', openAmount: '40.00' });

    // the rest, in two allocations of one request: each event says what is open after it; invoice.paid with the last
    const pay2 = (await t.http.post(rUrl(orgId, 'payments')).set(users.owner.auth)
      .send({ customerId: c, date: '2026-03-07', amount: '50.00', depositAccountId: acc['1100'], method: 'bank_transfer' }).expect(201)).body;
    mark = await lastOutboxId();
    await t.http.post(rUrl(orgId, `payments/${pay2.id}/allocations`)).set(users.owner.auth)
      .send({ date: '2026-03-07', allocations: [{ invoiceId: inv.id, amount: '30.00' }, { invoiceId: inv.id, amount: '10.00' }] }).expect(201);
    events = await outboxAfter(mark);
    expect(events.map((e) => [e.type, e.payload.amount ?? null, e.payload.invoiceOpenAmount ?? null, e.payload.invoiceStatus ?? null, e.payload.paymentUnallocated ?? null]))
      .toEqual([['invoice.paid', null, null, null, null], ['payment.allocated', '30.00', '10.00', 'partially_paid', '20.00'], ['payment.allocated', '10.00', '0.00', 'paid', '10.00']]);
    for (const e of events.filter((x) => x.type === 'payment.allocated')) expect([validate(e.payload), validate.errors]).toEqual([true, null]);
    const ids = (await t.db.admin.query(`SELECT id::text FROM finance.receivable_allocations WHERE org_id = $1 AND payment_id = $2 ORDER BY seq`, [orgId, pay2.id])).rows.map((r) => r.id);
    expect(events.filter((x) => x.type === 'payment.allocated').map((e) => e.payload.allocationId)).toEqual(ids);
  });

  it('a credit note\'s invoice.issued names the invoice it credits', async () => {
    const c = await newCustomer('Credited');
    const inv2 = await issueInvoice(t, orgId, users.owner, { customerId: c, invoiceDate: '2026-03-01', lines: [{ description: 'W', quantity: '1', unitPrice: '100', revenueAccountId: acc['4100'] }] });
    const mark = await lastOutboxId();
    const cn = (await t.http.post(rUrl(orgId, `invoices/${inv2.id}/credit-notes`)).set(users.owner.auth).send({ date: '2026-03-07', lines: [{ lineNo: 1, quantity: '0.1' }] }).expect(201)).body;
    const issued = (await outboxAfter(mark)).filter((e) => e.type === 'invoice.issued');
    expect(issued).toEqual([{ type: 'invoice.issued', version: 1, payload: {
      invoiceId: cn.id, kind: 'credit_note', number: cn.number, customerId: c, invoiceDate: '2026-03-07', dueDate: '2026-03-07', currency: 'EUR', total: '10.00',
      entryId: cn.entryId, creditedInvoiceId: inv2.id,
    } }]);
    const validateIssued = validatorOf('invoice.issued');
    expect([validateIssued(issued[0].payload), validateIssued.errors]).toEqual([true, null]);
  });

  it('a credit limit is removed with null, audited; a customer is created with null: no limit', async () => {
    const created = (await t.http.post(rUrl(orgId, 'customers')).set(users.owner.auth).send({ name: 'Limited', creditLimit: '100.00' }).expect(201)).body;
    expect(created.creditLimit).toBe('100.00');
    const updated = await t.http.put(rUrl(orgId, `customers/${created.id}`)).set(users.owner.auth).send({ creditLimit: null }).expect(200);
    expect(updated.body.creditLimit).toBeNull();
    const stored = (await t.db.admin.query(`SELECT credit_limit FROM finance.customers WHERE org_id = $1 AND id = $2`, [orgId, created.id])).rows[0];
    expect(stored.credit_limit).toBeNull();
    const audit = (await t.db.admin.query(`SELECT before->>'creditLimit' AS before, after->'creditLimit' AS after FROM core.audit_logs
      WHERE org_id = $1 AND action = 'receivables.customer_updated' AND entity_id = $2`, [orgId, created.id])).rows;
    expect(audit).toEqual([{ before: '100.00', after: null }]);
    // an invoice above the old limit issues now
    await issueInvoice(t, orgId, users.accountant, { customerId: created.id, invoiceDate: '2026-03-01', lines: [{ description: 'W', quantity: '1', unitPrice: '500', revenueAccountId: acc['4100'] }] });

    const none = await t.http.post(rUrl(orgId, 'customers')).set(users.owner.auth).send({ name: 'No Limit', creditLimit: null }).expect(201);
    expect(none.body.creditLimit).toBeNull();
    expect((await t.db.admin.query(`SELECT credit_limit FROM finance.customers WHERE org_id = $1 AND id = $2`, [orgId, none.body.id])).rows[0].credit_limit).toBeNull();
  });

  it('a draft of a customer archived since is not issued (422 receivables.customer_archived, nothing written)', async () => {
    const c = await newCustomer('Archived Soon');
    const draft = (await t.http.post(rUrl(orgId, 'invoices')).set(users.owner.auth)
      .send({ customerId: c, invoiceDate: '2026-03-02', lines: [{ description: 'W', quantity: '1', unitPrice: '100', revenueAccountId: acc['4100'] }] }).expect(201)).body;
    await t.http.post(rUrl(orgId, `customers/${c}/archive`)).set(users.owner.auth).send({}).expect(200);
    const count = async () => (await t.db.admin.query(`SELECT
        (SELECT count(*) FROM finance.journal_entries WHERE org_id = $1)::int AS entries,
        (SELECT count(*) FROM core.outbox WHERE org_id = $1 AND payload->>'type' = 'invoice.issued')::int AS events,
        (SELECT status FROM finance.invoices WHERE org_id = $1 AND id = $2) AS status`, [orgId, draft.id])).rows[0];
    const before = await count();
    const res = await t.http.post(rUrl(orgId, `invoices/${draft.id}/issue`)).set(users.owner.auth).send({}).expect(422);
    expect(res.body.error.code).toBe('receivables.customer_archived');
    expect(res.body.error.message).toContain('Archived Soon');
    expect(await count()).toEqual({ ...before, status: 'draft' });
    // the draft can still be deleted
    await t.http.delete(rUrl(orgId, `invoices/${draft.id}`)).set(users.owner.auth).expect(204);
  });

  it('a void invoice\'s PDF is marked VOID and shows no amount due', async () => {
    const c = await newCustomer('Voided');
    const inv = await issueInvoice(t, orgId, users.owner, { customerId: c, invoiceDate: '2026-03-01', lines: [{ description: 'W', quantity: '1', unitPrice: '100', revenueAccountId: acc['4100'] }] });
    const pdfText = async () => {
      const res = await t.http.get(rUrl(orgId, `invoices/${inv.id}/pdf`)).set(users.owner.auth).buffer(true).parse((r, cb) => {
        const chunks: Buffer[] = []; r.on('data', (b: Buffer) => chunks.push(b)); r.on('end', () => cb(null, Buffer.concat(chunks)));
      }).expect(200);
      const parser = new PDFParse({ data: new Uint8Array(res.body as Buffer) });
      try { return (await parser.getText()).text; } finally { await parser.destroy(); }
    };
    const issued = await pdfText();
    expect(issued).not.toContain('VOID');
    expect(issued).toContain('Amount due: 100.00 EUR');
    await t.http.post(rUrl(orgId, `invoices/${inv.id}/void`)).set(users.owner.auth).send({ date: '2026-03-03' }).expect(200);
    const voided = await pdfText();
    expect(voided).toContain(`Invoice ${inv.number} - VOID`);
    expect(voided).toContain('VOID (voided on 2026-03-03)');
    expect(voided).not.toContain('Amount due');
  });
});
