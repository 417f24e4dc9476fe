import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { EVENT_CATALOG } from '../../src/modules/webhooks/event-catalog.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { onPlan, orgWithRoles, type RoleUsers } from '../support/factories.js';
import { ledgerUrl } from '../ledger/ledger-support.js';
import { expectOpenAmountsKept, issueInvoice, rUrl, setupReceivables } from './receivables-support.js';

// ajv-formats is CommonJS: its default export is the plugin function
const addFormats = ((addFormatsModule as any).default ?? addFormatsModule) as (ajv: Ajv2020) => Ajv2020;

/**
 * Reversed allocations (base EUR):
 *  1. Invoice 120.00 of Feb 2, paid by 50.00 (Feb 5) and 70.00 (Feb 6). The 50.00 is reversed on Feb 10: 70.00 is still
 *     allocated, the void is a 409 naming it (nothing written; the database refuses it too). The 70.00 is reversed on
 *     Feb 12: nothing is allocated net, the void is taken, dated Feb 12 by default (never before the last reversal:
 *     Feb 11 is a 400, and the database refuses it too). The aging equals the AR balance at every date around.
 *  2. USD invoice 100.00 of Feb 1 at 0.90 (base 90.00), paid by a USD payment of Mar 1 at 0.95 (base 95.00): realized
 *     FX gain 5.00. Reversing the allocation on Mar 2 reverses the gain (an entry) and emits payment.allocation_reversed
 *     with that entry, what is open on the invoice again and the credit on the payment again; it validates against its
 *     catalog schema. Each reversal of (1) emitted one too, entryId null.
 */
describe('receivables: reversed allocations (void when nothing is allocated net; the reversal event)', () => {
  let t: TestApp;
  let orgId: string;
  let users: RoleUsers;
  let acc: Record<string, string>;
  let customer: string;

  beforeAll(async () => {
    t = await createTestApp();
    ({ orgId, users } = await orgWithRoles(t, 'Reversals Ltd'));
    await onPlan(t, orgId, 'professional');
    ({ acc, customer } = await setupReceivables(t, orgId, users.owner, 'EUR'));
    await t.http.post(ledgerUrl(orgId, 'fx-rates/import')).set(users.owner.auth)
      .send({ rates: [{ currency: 'USD', date: '2026-02-01', rate: '0.90' }, { currency: 'USD', date: '2026-03-01', rate: '0.95' }] }).expect(201);
  });
  afterAll(() => t.close());

  const count = async (table: string) => (await t.db.admin.query(`SELECT count(*)::int AS n FROM ${table} WHERE org_id = $1`, [orgId])).rows[0].n as number;
  const events = async (type: string) => (await t.db.admin.query(
    `SELECT payload->'payload' AS p, payload->>'version' AS v FROM core.outbox WHERE org_id = $1 AND topic = 'domain_event' AND payload->>'type' = $2 ORDER BY id`, [orgId, type])).rows;
  const pay = (body: object) => t.http.post(rUrl(orgId, 'payments')).set(users.accountant.auth).send({ customerId: customer, depositAccountId: acc['1100'], method: 'bank_transfer', ...body }).expect(201);
  const reverse = (allocationId: string, date: string) => t.http.post(rUrl(orgId, `allocations/${allocationId}/reverse`)).set(users.accountant.auth).send({ date });
  const invoiceRow = async (id: string) => (await t.db.admin.query(`SELECT status, voided_on::text, void_entry_id FROM finance.invoices WHERE id = $1`, [id])).rows[0];
  const asOwner = (sql: string, params: unknown[]) => t.db.asApi({ sub: users.owner.id, role: 'authenticated', org_id: orgId }, 'authenticated', sql, params);

  it('voids an invoice whose payment allocations were all reversed, dated no earlier than the last reversal; refused while anything is allocated net', async () => {
    const inv = await issueInvoice(t, orgId, users.accountant, { customerId: customer, invoiceDate: '2026-02-02', lines: [{ description: 'Work', quantity: '1', unitPrice: '120', revenueAccountId: acc['4100'] }] });
    const p1 = (await pay({ date: '2026-02-05', amount: '50.00', allocations: [{ invoiceId: inv.id, amount: '50.00' }] })).body;
    const p2 = (await pay({ date: '2026-02-06', amount: '70.00', allocations: [{ invoiceId: inv.id, amount: '70.00' }] })).body;
    await reverse(p1.allocations[0].id, '2026-02-10').expect(201);

    // 70.00 still allocated: a 409 naming it, nothing written; nor can SQL void it
    const entries = await count('finance.journal_entries');
    const refused = await t.http.post(rUrl(orgId, `invoices/${inv.id}/void`)).set(users.accountant.auth).send({}).expect(409);
    expect(refused.body.error).toEqual({
      code: 'receivables.has_allocations',
      message: `invoice ${inv.number} has EUR 70.00 of payments or credit notes allocated: it cannot be voided (reverse the allocations of its payments, or credit it instead)`,
    });
    await expect(asOwner(`UPDATE finance.invoices SET status = 'void', voided_on = '2026-02-12' WHERE id = $1`, [inv.id])).rejects.toThrow(/has payments or credit notes allocated/);
    expect(await invoiceRow(inv.id)).toEqual({ status: 'partially_paid', voided_on: null, void_entry_id: null });
    expect(await count('finance.journal_entries')).toBe(entries);

    await reverse(p2.allocations[0].id, '2026-02-12').expect(201);
    expect((await t.http.get(rUrl(orgId, `invoices/${inv.id}`)).set(users.viewer.auth).expect(200)).body).toMatchObject({ status: 'issued', openAmount: '120.00' });
    // never before the last reversal: the API and the database alike
    const early = await t.http.post(rUrl(orgId, `invoices/${inv.id}/void`)).set(users.accountant.auth).send({ date: '2026-02-11' }).expect(400);
    expect(early.body.error).toMatchObject({ code: 'validation_failed', message: `date must not be before 2026-02-12, the date of the last allocation or reversal of invoice ${inv.number}` });
    await expect(asOwner(`UPDATE finance.invoices SET status = 'void', voided_on = '2026-02-11' WHERE id = $1`, [inv.id])).rejects.toThrow(/before its last allocation or reversal/);
    expect(await invoiceRow(inv.id)).toEqual({ status: 'issued', voided_on: null, void_entry_id: null });
    expect(await count('finance.journal_entries')).toBe(entries);

    // nothing allocated net: voided, by default on the last reversal's date (after the invoice date)
    const voided = (await t.http.post(rUrl(orgId, `invoices/${inv.id}/void`)).set(users.accountant.auth).send({}).expect(200)).body;
    expect(voided).toMatchObject({ status: 'void', voidedOn: '2026-02-12', openAmount: '0.00' });
    const { rows: [rev] } = await t.db.admin.query(`SELECT entry_date::text AS date, reverses_entry_id FROM finance.journal_entries WHERE id = $1`, [voided.voidEntryId]);
    expect(rev).toEqual({ date: '2026-02-12', reverses_entry_id: inv.entryId });
    expect(await invoiceRow(inv.id)).toEqual({ status: 'void', voided_on: '2026-02-12', void_entry_id: voided.voidEntryId });
    expect((await events('invoice.voided')).map((e) => e.p)).toEqual([{ invoiceId: inv.id, number: inv.number, customerId: customer, voidedOn: '2026-02-12', reversalEntryId: voided.voidEntryId }]);
    const { rows: audit } = await t.db.admin.query(`SELECT actor_id FROM core.audit_logs WHERE org_id = $1 AND action = 'receivables.invoice_voided' AND entity_id = $2`, [orgId, inv.id]);
    expect(audit).toEqual([{ actor_id: users.accountant.id }]);
    // both payments are customer credit again
    for (const [p, amount] of [[p1, '50.00'], [p2, '70.00']] as const) {
      expect((await t.http.get(rUrl(orgId, `payments/${p.id}`)).set(users.viewer.auth).expect(200)).body.unallocated).toBe(amount);
    }
    // the aging is the AR balance on every date around, and the stored open amounts are what the documents say
    for (const asOf of ['2026-02-04', '2026-02-05', '2026-02-06', '2026-02-09', '2026-02-10', '2026-02-11', '2026-02-12', '2026-02-13']) {
      const aging = (await t.http.get(rUrl(orgId, `aging?asOf=${asOf}`)).set(users.viewer.auth).expect(200)).body;
      const balance = (await t.http.get(ledgerUrl(orgId, `accounts/${acc['1200']}/balance?asOf=${asOf}`)).set(users.viewer.auth).expect(200)).body;
      expect({ asOf, aging: aging.total }).toEqual({ asOf, aging: balance.baseBalance });
    }
    await expectOpenAmountsKept(t, orgId);
  });

  it('reversing an allocation emits payment.allocation_reversed (v1, catalog-valid): with the FX entry, the invoice open again and the credit back', async () => {
    const inv = await issueInvoice(t, orgId, users.accountant, { customerId: customer, invoiceDate: '2026-02-01', currency: 'USD',
      lines: [{ description: 'USD work', quantity: '1', unitPrice: '100', revenueAccountId: acc['4100'] }] });
    const p = (await pay({ date: '2026-03-01', amount: '100.00', currency: 'USD', allocations: [{ invoiceId: inv.id, amount: '100.00' }] })).body;
    expect(p.allocations[0].realizedFx).toBe('5.00');
    const before = (await events('payment.allocation_reversed')).length;
    const rev = (await reverse(p.allocations[0].id, '2026-03-02').expect(201)).body;
    const reversal = rev.allocations.find((a: any) => a.reversesAllocationId === p.allocations[0].id);
    expect(reversal.entryId).toEqual(expect.any(String));
    const emitted = (await events('payment.allocation_reversed')).slice(before);
    expect(emitted).toEqual([{
      v: '1',
      p: {
        allocationId: reversal.id, reversesAllocationId: p.allocations[0].id, paymentId: p.id, invoiceId: inv.id, invoiceNumber: inv.number, customerId: customer,
        date: '2026-03-02', currency: 'USD', amount: '100.00', invoiceOpenAmount: '100.00', invoiceStatus: 'issued', paymentUnallocated: '100.00', entryId: reversal.entryId,
      },
    }]);
    expect((await t.http.get(rUrl(orgId, `invoices/${inv.id}`)).set(users.viewer.auth).expect(200)).body).toMatchObject({ status: 'issued', openAmount: '100.00' });

    // the reversals of the first test emitted theirs too (no FX: entryId null); every payload validates against the catalog
    const all = await events('payment.allocation_reversed');
    expect(all.map((e) => [e.p.amount, e.p.invoiceOpenAmount, e.p.invoiceStatus, e.p.entryId === null])).toEqual([
      ['50.00', '50.00', 'partially_paid', true], ['70.00', '120.00', 'issued', true], ['100.00', '100.00', 'issued', false],
    ]);
    const ajv = new Ajv2020({ strict: false });
    addFormats(ajv);
    const type = EVENT_CATALOG.find((e) => e.type === 'payment.allocation_reversed')!;
    for (const payload of [...all.map((e) => e.p), type.example]) expect([ajv.validate(type.payloadSchema, payload), ajv.errorsText()]).toEqual([true, 'No errors']);
  });

  it('nothing settles an invoice, or uses a payment\'s credit, dated before the last reversal of one of its allocations (as a void): 400, nothing written', async () => {
    // invoice 100.00 of May 1, paid by A on May 1 and reversed on May 20: A settled it from May 1 to May 19
    const inv = await issueInvoice(t, orgId, users.accountant, { customerId: customer, invoiceDate: '2026-05-01', lines: [{ description: 'Work', quantity: '1', unitPrice: '100', revenueAccountId: acc['4100'] }] });
    const other = await issueInvoice(t, orgId, users.accountant, { customerId: customer, invoiceDate: '2026-05-01', lines: [{ description: 'More work', quantity: '1', unitPrice: '100', revenueAccountId: acc['4100'] }] });
    const a = (await pay({ date: '2026-05-01', amount: '100.00', allocations: [{ invoiceId: inv.id, amount: '100.00' }] })).body;
    await reverse(a.allocations[0].id, '2026-05-20').expect(201);
    const state = async () => Promise.all(['finance.customer_payments', 'finance.receivable_allocations', 'finance.customer_refunds', 'finance.invoices', 'finance.journal_entries'].map(count));
    const before = await state();
    const post = (path: string, body: object) => t.http.post(rUrl(orgId, path)).set(users.accountant.auth).send(body).expect(400);
    // payment B dated May 5 settling the invoice: it would be settled 200.00 from May 5 to May 19 (the aging at -100.00)
    const b = await post('payments', { customerId: customer, depositAccountId: acc['1100'], method: 'bank_transfer', date: '2026-05-05', amount: '100.00', allocations: [{ invoiceId: inv.id, amount: '100.00' }] });
    expect(b.body.error).toMatchObject({ code: 'validation_failed', message: `allocations[0].invoiceId: the allocation date 2026-05-05 is before 2026-05-20, the date of the last allocation reversal of invoice ${inv.number}` });
    const credited = await post(`invoices/${inv.id}/credit-notes`, { date: '2026-05-19' });
    expect(credited.body.error).toMatchObject({ code: 'validation_failed', message: `date must not be before 2026-05-20, the date of the last allocation reversal of invoice ${inv.number}` });
    // A's credit was used until May 20: allocated to another invoice or refunded before, it would be used twice
    const allocated = await post(`payments/${a.id}/allocations`, { date: '2026-05-10', allocations: [{ invoiceId: other.id, amount: '100.00' }] });
    expect(allocated.body.error).toMatchObject({ code: 'validation_failed', message: `date: the allocation dated 2026-05-10 is before 2026-05-20, the date of the last reversal of an allocation of payment ${a.id}` });
    const refunded = await post(`payments/${a.id}/refunds`, { date: '2026-05-10', amount: '100.00' });
    expect(refunded.body.error).toMatchObject({ code: 'validation_failed', message: `date: the refund dated 2026-05-10 is before 2026-05-20, the date of the last reversal of an allocation of payment ${a.id}` });
    // nor can SQL insert such an allocation (of the payment's credit, or to the invoice)
    const insert = (invoiceId: string) => asOwner(`INSERT INTO finance.receivable_allocations (org_id, invoice_id, payment_id, allocation_date, amount, invoice_base, source_base)
      VALUES ($1, $2, $3, '2026-05-10', 100, 100, 100)`, [orgId, invoiceId, a.id]);
    await expect(insert(other.id)).rejects.toThrow(`the allocation to invoice ${other.id} dated 2026-05-10 is before 2026-05-20, the date of the last allocation reversal of its payment ${a.id}`);
    await expect(insert(inv.id)).rejects.toThrow(`the allocation to invoice ${inv.id} dated 2026-05-10 is before 2026-05-20, the date of the last allocation reversal of its invoice`);
    await expect(asOwner(`INSERT INTO finance.customer_refunds (org_id, payment_id, customer_id, refund_date, amount, currency, rate, source_base, account_id, method, entry_id)
      VALUES ($1, $2, $3, '2026-05-10', 100, 'EUR', 1, 100, $4, 'bank_transfer', $5)`, [orgId, a.id, customer, acc['1100'], a.entryId]))
      .rejects.toThrow(`the refund of payment ${a.id} dated 2026-05-10 is before 2026-05-20, the date of the last reversal of an allocation of the payment`);
    expect(await state()).toEqual(before);

    // from the reversal on, all of them are taken; the aging is the AR balance on every date around
    await pay({ date: '2026-05-20', amount: '60.00', allocations: [{ invoiceId: inv.id, amount: '60.00' }] });
    await t.http.post(rUrl(orgId, `invoices/${inv.id}/credit-notes`)).set(users.accountant.auth).send({ date: '2026-05-20', lines: [{ lineNo: 1, quantity: '0.4' }] }).expect(201);
    await t.http.post(rUrl(orgId, `payments/${a.id}/allocations`)).set(users.accountant.auth).send({ date: '2026-05-20', allocations: [{ invoiceId: other.id, amount: '70.00' }] }).expect(201);
    await t.http.post(rUrl(orgId, `payments/${a.id}/refunds`)).set(users.accountant.auth).send({ date: '2026-05-21', amount: '30.00' }).expect(201);
    expect((await t.http.get(rUrl(orgId, `invoices/${inv.id}`)).set(users.viewer.auth).expect(200)).body).toMatchObject({ status: 'paid', openAmount: '0.00' });
    for (const asOf of ['2026-05-04', '2026-05-05', '2026-05-19', '2026-05-20', '2026-05-21']) {
      const aging = (await t.http.get(rUrl(orgId, `aging?asOf=${asOf}`)).set(users.viewer.auth).expect(200)).body;
      const balance = (await t.http.get(ledgerUrl(orgId, `accounts/${acc['1200']}/balance?asOf=${asOf}`)).set(users.viewer.auth).expect(200)).body;
      expect({ asOf, aging: aging.total }).toEqual({ asOf, aging: balance.baseBalance });
    }
    await expectOpenAmountsKept(t, orgId);
  });
});
