import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { Decimal } from 'decimal.js';
import { EVENT_CATALOG } from '../../src/modules/webhooks/event-catalog.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { ManualClock } from '../support/clock.js';
import { onPlan, orgWithRoles, type RoleUsers } from '../support/factories.js';
import { fxBooks } from '../ledger/fx-support.js';
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
 *
 * A reversed allocation of a bill in EUR (base USD, fxBooks: EUR 1.10 on Jan 15, 1.15 on Jan 31, 1.20 on Feb 10; a bill
 * of EUR 1,000.00 on Jan 15) revalued between the allocation and its reversal, or paid in a revaluation's window: the
 * share comes back as the allocation took it off, and what revaluations since changed of it are the bill's (and the
 * credit's) rows on the unrealized FX accounts they moved (JournalService.restoreShare, as on AR), not a realized result:
 * the realized (4300 gain, 5500 loss) and unrealized (4310 gain, 5510 loss) FX accounts hold what the documents carry.
 */
describe('payables: a reversed allocation (its event; the void after it; FX)', () => {
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

  /** fxBooks with the reads of the FX cases: each FX account's balance, the revaluation rows per account, an allocation's reversal */
  async function fx(name: string, rates?: Record<string, string>) {
    const b = await fxBooks(t, users.owner, name, { rates });
    const fxAccounts = async (asOf: string) => {
      const out: Record<string, number> = {};
      for (const code of ['4300', '5500', '4310', '5510']) out[code] = Number(await b.balance(code, asOf));
      return out;
    };
    /** the revaluation rows of a document, in order: date, unrealized FX account and change */
    const rows = async (documentId: string) => (await t.db.admin.query(`SELECT x.revaluation_date::text AS date, a.code, x.base_delta::numeric(20, 2)::text AS delta
      FROM finance.fx_revaluation_items x JOIN finance.accounts a ON a.org_id = x.org_id AND a.id = x.fx_account_id WHERE x.org_id = $1 AND x.document_id = $2 ORDER BY x.revaluation_date, x.seq`,
    [b.orgId, documentId])).rows;
    const reverse = (allocationId: string, date: string) => t.http.post(payablesUrl(b.orgId, `allocations/${allocationId}/reverse`)).set(users.owner.auth).send({ date });
    const voidBill = (billId: string, date: string) => t.http.post(payablesUrl(b.orgId, `bills/${billId}/void`)).set(users.owner.auth).send({ date }).expect(200);
    return { ...b, fxAccounts, rows, reverse, voidBill };
  }

  it('FX: an allocation reversed after a revaluation of the rest of the bill gives the share back on the unrealized account, not out of the realized result: the void then leaves no FX result', async () => {
    const b = await fx('Bill allocation reversed after a revaluation');
    const bill = await b.bill();
    await b.revalue('2026-01-31').expect(201);
    // the share carried at 1.15 (345.00) paid at 1.20 (360.00): a realized loss of 15.00
    const paid = (await b.apPayment({ paymentDate: '2026-02-05', amount: '300.00', rate: '1.20', allocations: [{ billId: bill.id, amount: '300.00' }] }).expect(201)).body;
    expect(paid.allocations[0].fxDifference).toBe('15.00');
    // EUR 700.00 open revalued at 1.20: +35.00 on 5510
    await b.revalue('2026-02-28').expect(201);
    const reversed = (await b.reverse(paid.allocations[0].id, '2026-03-05').expect(201)).body;
    // the share comes back at 345.00, as taken off; its 15.00 of the Feb 28 step is the bill's row on 5510, the realized loss reversed
    expect(reversed.allocations.find((a: { reversesAllocationId: string | null }) => a.reversesAllocationId).billBaseAmount).toBe('-345.00');
    expect(await b.rows(bill.id)).toEqual([{ date: '2026-01-31', code: '5510', delta: '50.00' }, { date: '2026-02-28', code: '5510', delta: '35.00' },
      { date: '2026-03-05', code: '5510', delta: '15.00' }]);
    // all EUR 1,000.00 of the bill open at 1.20 (1,200.00: 100.00 unrealized), the vendor credit EUR 300.00 at 1.20
    expect(await b.fxAccounts('2026-03-05')).toEqual({ 4300: 0, 5500: 0, 4310: 0, 5510: 100 });
    await b.expectAgingIsAp('2026-03-05', '840.00');
    await b.voidBill(bill.id, '2026-03-06');
    expect(await b.fxAccounts('2026-03-31')).toEqual({ 4300: 0, 5500: 0, 4310: 0, 5510: 0 });
    await b.expectAgingIsAp('2026-03-31', '-360.00');
  });

  it('FX: an allocation paid in a revaluation\'s window and reversed after its reversal gives the share back on the unrealized account as rows (what the window realized of it unrealized again)', async () => {
    const b = await fx('Bill window allocation reversed after the reversal');
    const bill = await b.bill();
    await b.revalue('2026-01-31', true).expect(201);
    const paid = (await b.apPayment({ paymentDate: '2026-01-31', amount: '300.00', rate: '1.20', allocations: [{ billId: bill.id, amount: '300.00' }] }).expect(201)).body;
    await b.reverse(paid.allocations[0].id, '2026-02-05').expect(201);
    // out at 1.15 (345.00), back at 1.10 (330.00): the share's part of the Feb 1 reversal (-15.00 on 5510) is a row of the
    // bill, and what the payment's window realized of it goes back to 5510
    expect(await b.rows(bill.id)).toEqual([{ date: '2026-01-31', code: '5510', delta: '50.00' }, { date: '2026-02-01', code: '5510', delta: '-50.00' },
      { date: '2026-02-01', code: '5510', delta: '15.00' }, { date: '2026-02-05', code: '5510', delta: '-15.00' }]);
    expect(await b.fxAccounts('2026-02-05')).toEqual({ 4300: 0, 5500: 0, 4310: 0, 5510: 0 });
    // the bill EUR 1,000.00 at 1.10, the vendor credit EUR 300.00 at 1.20
    await b.expectAgingIsAp('2026-02-05', '740.00');
    await b.voidBill(bill.id, '2026-02-06');
    expect(await b.fxAccounts('2026-02-28')).toEqual({ 4300: 0, 5500: 0, 4310: 0, 5510: 0 });
    await b.expectAgingIsAp('2026-02-28', '-360.00');
  });

  it('FX: an allocation reversed after a revaluation of the bill and of the payment\'s credit: each share comes back on the account its own rows name, nothing realized', async () => {
    const b = await fx('Bill allocation reversed after a revaluation of both sides');
    const bill = await b.bill();
    // EUR 600.00 at 1.10, 300.00 of it allocated: the rest a credit with the vendor
    const paid = (await b.apPayment({ paymentDate: '2026-01-20', amount: '600.00', rate: '1.10', allocations: [{ billId: bill.id, amount: '300.00' }] }).expect(201)).body;
    // at 1.15: the bill's open 700.00 +35.00 and the credit's 300.00 -15.00 (AP's net a loss: both rows on 5510), the bank's EUR -600.00 a loss of 30.00
    await b.revalue('2026-01-31').expect(201);
    const reversed = (await b.reverse(paid.allocations[0].id, '2026-02-05').expect(201)).body;
    expect(reversed.allocations.map((a: { fxDifference: string }) => a.fxDifference)).toEqual(['0.00', '0.00']);
    // the bill (1,150.00) and the credit (690.00) all at 1.15; the rows of each on 5510 are what it carries there
    expect(await b.fxAccounts('2026-02-05')).toEqual({ 4300: 0, 5500: 0, 4310: 0, 5510: 50 });
    await b.expectAgingIsAp('2026-02-05', '460.00');
    expect([await b.rows(bill.id), await b.rows(paid.id)]).toEqual([
      [{ date: '2026-01-31', code: '5510', delta: '35.00' }, { date: '2026-02-05', code: '5510', delta: '15.00' }],
      [{ date: '2026-01-31', code: '5510', delta: '-15.00' }, { date: '2026-02-05', code: '5510', delta: '-15.00' }]]);
  });

  it('FX: an allocation reversed in the window of a later revaluation (its reversal posted ahead): the share\'s part goes to the unrealized account and off it with the reversal, nothing realized, no residue', async () => {
    const b = await fx('Bill allocation reversed in a later revaluation\'s window');
    const bill = await b.bill();
    // EUR 333.33 of it paid at the bill's rate (366.66 both sides: no result)
    const paid = (await b.apPayment({ paymentDate: '2026-01-20', amount: '333.33', rate: '1.10', allocations: [{ billId: bill.id, amount: '333.33' }] }).expect(201)).body;
    expect(paid.allocations[0].fxDifference).toBe('0.00');
    // at 1.15, reversed on Feb 1: the bill's open 666.67 +33.33 and the bank's EUR -333.33 a loss of 16.67, both on 5510
    await b.revalue('2026-01-31', true).expect(201);
    const reversed = (await b.reverse(paid.allocations[0].id, '2026-01-31').expect(201)).body;
    expect(reversed.allocations.map((a: { fxDifference: string }) => a.fxDifference)).toEqual(['0.00', '0.00']);
    // the share's 16.67 of the revaluation (333.33 x 0.05) on 5510 with it, and off it on Feb 1 with the revaluation's reversal
    expect(await b.rows(bill.id)).toEqual([{ date: '2026-01-31', code: '5510', delta: '33.33' }, { date: '2026-01-31', code: '5510', delta: '16.67' },
      { date: '2026-02-01', code: '5510', delta: '-33.33' }, { date: '2026-02-01', code: '5510', delta: '-16.67' }]);
    // January: all EUR 1,000.00 of the bill at 1.15 and the bank: 66.67 unrealized; February: back to the bill's own 1.10
    expect([await b.fxAccounts('2026-01-31'), await b.fxAccounts('2026-02-28')]).toEqual([{ 4300: 0, 5500: 0, 4310: 0, 5510: 66.67 }, { 4300: 0, 5500: 0, 4310: 0, 5510: 0 }]);
    // the bill at 1,150.00 then 1,100.00, the vendor credit EUR 333.33 at 1.10 (366.66)
    await b.expectAgingIsAp('2026-01-31', '783.34');
    await b.expectAgingIsAp('2026-02-28', '733.34');
  });

  it('FX: an allocation reversed on the date of a revaluation whose reversal is posted ahead, after an earlier one kept: each revaluation\'s part of the share is its own rounded step, no cent realized (r6)', async () => {
    const b = await fx('Bill allocation reversed with a pending revaluation, rounded steps', { '2026-01-15': '1.10', '2026-01-31': '1.1234', '2026-02-28': '1.20' });
    const bill = await b.bill();
    // EUR 100.05 at 1.10: 1,100.00 - 989.95 (EUR 899.95 left) = 110.05 taken off the bill, 110.06 paid out of the bank
    const paid = (await b.apPayment({ paymentDate: '2026-01-20', amount: '100.05', rate: '1.10', allocations: [{ billId: bill.id, amount: '100.05' }] }).expect(201)).body;
    // EUR 899.95 at 1.1234 (1,011.00: +21.05), then at 1.20 (1,079.94: +68.94), reversed on Mar 1
    await b.revalue('2026-01-31').expect(201);
    await b.revalue('2026-02-28', true).expect(201);
    await b.reverse(paid.allocations[0].id, '2026-02-28').expect(201);
    // the share's part of each step, the rounded values of EUR 1,000.00 less those of EUR 899.95: Jan 31's 1,123.40 - 1,011.00
    // - 110.05 = 2.35, Feb 28's 1,200.00 - 1,079.94 - 112.40 = 7.66 (not 2.34 and 7.66 + 0.01), taken off with the Feb 28
    // revaluation's reversal on Mar 1: 1,200.00 - 68.94 - 7.66 = 1,123.40, EUR 1,000.00 at 1.1234, nothing left to settle
    expect(await b.rows(bill.id)).toEqual([{ date: '2026-01-31', code: '5510', delta: '21.05' }, { date: '2026-02-28', code: '5510', delta: '68.94' },
      { date: '2026-02-28', code: '5510', delta: '2.35' }, { date: '2026-02-28', code: '5510', delta: '7.66' },
      { date: '2026-03-01', code: '5510', delta: '-68.94' }, { date: '2026-03-01', code: '5510', delta: '-7.66' }]);
    // all unrealized: in February the bill 100.00 over 1,100.00 and the bank's EUR -100.05 10.00 over 110.06; from Mar 1 23.40 and 2.34
    expect([await b.fxAccounts('2026-02-28'), await b.fxAccounts('2026-03-01')]).toEqual([{ 4300: 0, 5500: 0, 4310: 0, 5510: 110 }, { 4300: 0, 5500: 0, 4310: 0, 5510: 25.74 }]);
    await b.expectAgingIsAp('2026-02-28', '1089.94');
    await b.expectAgingIsAp('2026-03-01', '1013.34');
  });

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
