import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { Decimal } from 'decimal.js';
import { EVENT_CATALOG } from '../../src/modules/webhooks/event-catalog.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { ManualClock } from '../support/clock.js';
import { onPlan, orgWithRoles, type RoleUsers } from '../support/factories.js';
import { ledgerUrl, startBooks } from '../ledger/ledger-support.js';
import { createVendor, payablesUrl } from './payables-support.js';

// ajv-formats is CommonJS: its default export is the plugin function
const addFormats = ((addFormatsModule as any).default ?? addFormatsModule) as (ajv: Ajv2020) => Ajv2020;

/**
 * A reversed bill allocation (EUR books, the application clock on 2026-03-10): bill B-1 of 300.00 (Feb 2) is paid in
 * full on Feb 5 (bill.paid) and the allocation reversed on Feb 9. The reversal emits bill_payment.allocation_reversed
 * (the bill open and posted again, the payment's credit back, no FX entry), valid against its catalog schema. The bill,
 * nothing allocated net, is voided; not before Feb 9 (the reversal: a 400, nothing written), on Feb 9 it is. The AP
 * aging is the AP balance on every date around.
 */
describe('payables: a reversed allocation (its event; the void after it)', () => {
  const clock = new ManualClock();
  let t: TestApp;
  let orgId: string;
  let users: RoleUsers;
  let acc: Record<string, string>;
  let vendor: string;
  const url = (p: string) => payablesUrl(orgId, p);

  beforeAll(async () => {
    clock.advance(Date.parse('2026-03-10T12:00:00Z') - clock.now());
    t = await createTestApp({}, { clock });
    ({ orgId, users } = await orgWithRoles(t, 'Reversed Bills Ltd'));
    await onPlan(t, orgId, 'professional');
    acc = await startBooks(t, orgId, users.owner);
    vendor = await createVendor(t, orgId, users.accountant, { name: 'Bounced Vendor' });
  });
  afterAll(() => t.close());

  const events = async (type: string) => (await t.db.admin.query(
    `SELECT payload->'payload' AS p, payload->>'version' AS v FROM core.outbox WHERE org_id = $1 AND topic = 'domain_event' AND payload->>'type' = $2 ORDER BY id`, [orgId, type])).rows;

  it('emits bill_payment.allocation_reversed; the bill is voided no earlier than the reversal; aging = AP balance', async () => {
    const draft = (await t.http.post(url('bills')).set(users.accountant.auth)
      .send({ vendorId: vendor, billNumber: 'B-1', billDate: '2026-02-02', lines: [{ accountId: acc['5200'], unitPrice: '300.00' }] }).expect(201)).body;
    const bill = (await t.http.post(url(`bills/${draft.id}/submit`)).set(users.accountant.auth).expect(200)).body;
    expect(bill.status).toBe('posted');
    const paid = (await t.http.post(url('payments')).set(users.accountant.auth)
      .send({ vendorId: vendor, bankAccountId: acc['1100'], paymentDate: '2026-02-05', amount: '300.00', allocations: [{ billId: bill.id, amount: '300.00' }] }).expect(201)).body;
    expect((await events('bill.paid')).map((e) => e.p.billId)).toEqual([bill.id]);

    const reversed = (await t.http.post(url(`allocations/${paid.allocations[0].id}/reverse`)).set(users.accountant.auth).send({ date: '2026-02-09' }).expect(201)).body;
    const reversal = reversed.allocations.find((a: any) => a.reversesAllocationId === paid.allocations[0].id);
    expect(reversed.unallocated).toBe('300.00');
    const emitted = await events('bill_payment.allocation_reversed');
    expect(emitted).toEqual([{
      v: '1',
      p: {
        billId: bill.id, kind: 'bill', partyType: 'vendor', partyId: vendor, currency: 'EUR', total: '300.00',
        allocationId: reversal.id, reversesAllocationId: paid.allocations[0].id, paymentId: paid.id, date: '2026-02-09', amount: '300.00',
        openAmount: '300.00', status: 'posted', paymentUnallocated: '300.00', journalEntryId: null,
      },
    }]);
    const ajv = new Ajv2020({ strict: false });
    addFormats(ajv);
    const type = EVENT_CATALOG.find((e) => e.type === 'bill_payment.allocation_reversed')!;
    for (const payload of [emitted[0].p, type.example]) expect([ajv.validate(type.payloadSchema, payload), ajv.errorsText()]).toEqual([true, 'No errors']);

    // nothing allocated net; dated before the reversal the void would drop the bill while the payment still counted it used
    const entries = async () => (await t.db.admin.query(`SELECT count(*)::int AS n FROM finance.journal_entries WHERE org_id = $1`, [orgId])).rows[0].n;
    const before = await entries();
    const early = await t.http.post(url(`bills/${bill.id}/void`)).set(users.accountant.auth).send({ date: '2026-02-08' }).expect(400);
    expect(early.body.error).toMatchObject({ code: 'validation_failed', message: 'date must not be before 2026-02-09, the date of the last allocation or reversal of bill B-1' });
    expect(await entries()).toBe(before);
    expect((await t.db.admin.query(`SELECT status, voided_on FROM finance.bills WHERE id = $1`, [bill.id])).rows[0]).toEqual({ status: 'posted', voided_on: null });
    expect(await events('bill.voided')).toEqual([]);
    const voided = (await t.http.post(url(`bills/${bill.id}/void`)).set(users.accountant.auth).send({ date: '2026-02-09' }).expect(200)).body;
    expect(voided).toMatchObject({ status: 'voided', voidedOn: '2026-02-09' });
    expect((await events('bill.voided')).map((e) => [e.p.billId, e.p.voidedOn])).toEqual([[bill.id, '2026-02-09']]);

    for (const asOf of ['2026-02-04', '2026-02-05', '2026-02-08', '2026-02-09', '2026-02-10']) {
      const aging = (await t.http.get(url(`aging?asOf=${asOf}`)).set(users.viewer.auth).expect(200)).body;
      const balance = (await t.http.get(ledgerUrl(orgId, `accounts/${acc['2100']}/balance?asOf=${asOf}`)).set(users.viewer.auth).expect(200)).body;
      expect({ asOf, offBalance: new Decimal(aging.total).plus(balance.baseBalance).toFixed(2) }).toEqual({ asOf, offBalance: '0.00' });
    }
  });

  it('nothing settles a bill, or uses a payment\'s credit, dated before the last reversal of one of its allocations (as a void): 400, nothing written', async () => {
    const posted = async (billNumber: string) => {
      const draft = (await t.http.post(url('bills')).set(users.accountant.auth)
        .send({ vendorId: vendor, billNumber, billDate: '2026-02-10', lines: [{ accountId: acc['5200'], unitPrice: '300.00' }] }).expect(201)).body;
      return (await t.http.post(url(`bills/${draft.id}/submit`)).set(users.accountant.auth).expect(200)).body.id as string;
    };
    const [bill, other] = [await posted('B-2'), await posted('B-3')];
    // P paid B-2 on Feb 10 and was reversed on Feb 20: it settled B-2 (and used P's credit) from Feb 10 to Feb 19
    const p = (await t.http.post(url('payments')).set(users.accountant.auth)
      .send({ vendorId: vendor, bankAccountId: acc['1100'], paymentDate: '2026-02-10', amount: '300.00', allocations: [{ billId: bill, amount: '300.00' }] }).expect(201)).body;
    await t.http.post(url(`allocations/${p.allocations[0].id}/reverse`)).set(users.accountant.auth).send({ date: '2026-02-20' }).expect(201);
    const state = async () => (await t.db.admin.query(`SELECT (SELECT count(*) FROM finance.bill_payments WHERE org_id = $1)::int AS payments,
      (SELECT count(*) FROM finance.bill_allocations WHERE org_id = $1)::int AS allocations, (SELECT count(*) FROM finance.bill_payment_refunds WHERE org_id = $1)::int AS refunds,
      (SELECT count(*) FROM finance.journal_entries WHERE org_id = $1)::int AS entries`, [orgId])).rows[0];
    const before = await state();
    const refused = (path: string, body: object) => t.http.post(url(path)).set(users.accountant.auth).send(body).expect(400);
    // payment Q of Feb 12 paying B-2: it would be settled 600.00 from Feb 12 to Feb 19 (the aging at -300.00)
    const q = await refused('payments', { vendorId: vendor, bankAccountId: acc['1100'], paymentDate: '2026-02-12', amount: '300.00', allocations: [{ billId: bill, amount: '300.00' }] });
    expect(q.body.error).toMatchObject({ code: 'validation_failed', message: `allocations[0]: the allocation date 2026-02-12 is before 2026-02-20, the date of the last allocation reversal of bill ${bill}` });
    const allocated = await refused(`payments/${p.id}/allocations`, { billId: other, amount: '300.00', date: '2026-02-15' });
    expect(allocated.body.error).toMatchObject({ code: 'validation_failed', message: `date: the allocation dated 2026-02-15 is before 2026-02-20, the date of the last reversal of an allocation of payment ${p.id}` });
    const refunded = await refused(`payments/${p.id}/refunds`, { amount: '300.00', date: '2026-02-15' });
    expect(refunded.body.error).toMatchObject({ code: 'validation_failed', message: `date: the refund dated 2026-02-15 is before 2026-02-20, the date of the last reversal of an allocation of payment ${p.id}` });
    // nor can SQL insert such an allocation (of the payment's credit, or to the bill)
    const insert = (billId: string) => t.db.asApi({ sub: users.accountant.id, role: 'authenticated', org_id: orgId }, 'authenticated',
      `INSERT INTO finance.bill_allocations (org_id, payment_id, bill_id, allocation_date, amount, bill_base_amount, payment_base_amount, created_by)
       VALUES ($1, $2, $3, '2026-02-15', 300, 300, 300, $4)`, [orgId, p.id, billId, users.accountant.id]);
    await expect(insert(other)).rejects.toThrow(`the allocation to bill ${other} dated 2026-02-15 is before 2026-02-20, the date of the last allocation reversal of its payment ${p.id}`);
    await expect(insert(bill)).rejects.toThrow(`the allocation to bill ${bill} dated 2026-02-15 is before 2026-02-20, the date of the last allocation reversal of its bill`);
    expect(await state()).toEqual(before);

    // from the reversal on, all of them are taken; the aging is the AP balance on every date around
    await t.http.post(url('payments')).set(users.accountant.auth)
      .send({ vendorId: vendor, bankAccountId: acc['1100'], paymentDate: '2026-02-20', amount: '100.00', allocations: [{ billId: bill, amount: '100.00' }] }).expect(201);
    await t.http.post(url(`payments/${p.id}/allocations`)).set(users.accountant.auth).send({ billId: bill, amount: '200.00', date: '2026-02-20' }).expect(201);
    await t.http.post(url(`payments/${p.id}/refunds`)).set(users.accountant.auth).send({ amount: '100.00', date: '2026-02-21' }).expect(201);
    expect((await t.http.get(url(`bills/${bill}`)).set(users.viewer.auth).expect(200)).body).toMatchObject({ status: 'paid', openAmount: '0.00' });
    for (const asOf of ['2026-02-11', '2026-02-12', '2026-02-19', '2026-02-20', '2026-02-21']) {
      const aging = (await t.http.get(url(`aging?asOf=${asOf}`)).set(users.viewer.auth).expect(200)).body;
      const balance = (await t.http.get(ledgerUrl(orgId, `accounts/${acc['2100']}/balance?asOf=${asOf}`)).set(users.viewer.auth).expect(200)).body;
      expect({ asOf, offBalance: new Decimal(aging.total).plus(balance.baseBalance).toFixed(2) }).toEqual({ asOf, offBalance: '0.00' });
    }
  });
});
