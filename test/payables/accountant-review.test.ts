import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Decimal } from 'decimal.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { ManualClock } from '../support/clock.js';
import { createOrg, onPlan, orgWithRoles, type RoleUsers } from '../support/factories.js';
import { ledgerUrl, startBooks } from '../ledger/ledger-support.js';
import { createVendor, payablesUrl } from './payables-support.js';

/**
 * What an accountant's review of payables found (EUR books, the application clock on 2026-03-10):
 *  1. one vendor bill entered twice (V-777, 300.00) could be posted twice and paid by one payment of 600.00;
 *  2. a posted bill could never be cancelled (void took drafts only, the ledger refuses to reverse a document's entry);
 *  3. partial payments were valued one at a time: GBP 0.05 at 0.5 (base 0.03) paid 0.01 four times took 0.04 base;
 *  4. an allocation or its reversal with no FX result posted nothing, so nothing checked its date's period;
 *  5. expense claim amounts were rounded to the currency (10.005 EUR → 10.01, JPY 1234.5 → 1235, 0.004 → 0.00);
 *  6. a retried bill payment was recorded twice (createBillPayment ignored the Idempotency-Key header).
 * January 2026 is closed in beforeAll, after a January bill, payment and allocation were recorded in it.
 */
describe('payables: an accountant\'s review', () => {
  const clock = new ManualClock();
  let t: TestApp;
  let orgId: string;
  let users: RoleUsers;
  let acc: Record<string, string>;
  let vendor: string;
  let january: { bill: string; payment: string; allocation: string; openPayment: string; openBill: string };
  const url = (p: string) => payablesUrl(orgId, p);

  function bill(body: object, vendorId = vendor) {
    return t.http.post(url('bills')).set(users.accountant.auth).send({ vendorId, billDate: '2026-02-02', lines: [{ accountId: acc['5200'], unitPrice: '300.00' }], ...body });
  }
  /** A bill posted at submission (at or under the no-approval threshold). */
  async function postedBill(body: object, vendorId = vendor): Promise<any> {
    const b = (await bill(body, vendorId).expect(201)).body;
    return (await t.http.post(url(`bills/${b.id}/submit`)).set(users.accountant.auth).expect(200)).body;
  }
  const payment = (body: object) => t.http.post(url('payments')).set(users.accountant.auth).send({ vendorId: vendor, bankAccountId: acc['1100'], ...body });
  async function counts(): Promise<string> {
    const { rows } = await t.db.admin.query(`SELECT
      (SELECT count(*) FROM finance.bills WHERE org_id = $1) || '/' || (SELECT count(*) FROM finance.bill_payments WHERE org_id = $1) || '/' ||
      (SELECT count(*) FROM finance.bill_allocations WHERE org_id = $1) || '/' || (SELECT count(*) FROM finance.journal_entries WHERE org_id = $1) AS v`, [orgId]);
    return rows[0].v as string;
  }
  async function aging(asOf: string): Promise<any> {
    return (await t.http.get(url(`aging?asOf=${asOf}`)).set(users.viewer.auth).expect(200)).body;
  }
  /** The AP aging total is the AP control account's balance on each date (credit positive in the aging, debit minus credit in the ledger). */
  async function expectAgingIsApBalance(dates: string[]): Promise<void> {
    for (const asOf of dates) {
      const a = await aging(asOf);
      const balance = (await t.http.get(ledgerUrl(orgId, `accounts/${acc['2100']}/balance?asOf=${asOf}`)).set(users.viewer.auth).expect(200)).body;
      expect({ asOf, offBalance: new Decimal(a.total).plus(balance.baseBalance).toFixed(2) }).toEqual({ asOf, offBalance: '0.00' });
    }
  }
  const vendorRow = async (asOf: string, vendorId: string) => (await aging(asOf)).rows.find((r: any) => r.partyId === vendorId);

  beforeAll(async () => {
    clock.advance(Date.parse('2026-03-10T12:00:00Z') - clock.now());
    t = await createTestApp({}, { clock });
    ({ orgId, users } = await orgWithRoles(t, 'Reviewed Ltd'));
    await onPlan(t, orgId, 'professional');
    acc = await startBooks(t, orgId, users.owner);
    vendor = await createVendor(t, orgId, users.accountant, { name: 'Main Vendor' });
    await t.http.post(ledgerUrl(orgId, 'fx-rates/import')).set(users.owner.auth).send({ rates: [{ currency: 'GBP', date: '2026-01-01', rate: '0.5' }] }).expect(201);

    // January: a bill paid by an allocation of Jan 20 (EUR: no FX result, no entry of its own); a bill and a credit left open
    const jb = await postedBill({ billNumber: 'JAN-1', billDate: '2026-01-05', lines: [{ accountId: acc['5200'], unitPrice: '100.00' }] });
    const jp = (await payment({ paymentDate: '2026-01-15', amount: '100.00', reference: 'JAN-P' }).expect(201)).body;
    const ja = (await t.http.post(url(`payments/${jp.id}/allocations`)).set(users.accountant.auth).send({ billId: jb.id, amount: '100.00', date: '2026-01-20' }).expect(201)).body;
    expect(ja.allocations[0]).toMatchObject({ date: '2026-01-20', journalEntryId: null });
    const ob = await postedBill({ billNumber: 'JAN-2', billDate: '2026-01-06', lines: [{ accountId: acc['5200'], unitPrice: '40.00' }] });
    const op = (await payment({ paymentDate: '2026-01-16', amount: '40.00', reference: 'JAN-OPEN' }).expect(201)).body;
    january = { bill: jb.id, payment: jp.id, allocation: ja.allocations[0].id, openPayment: op.id, openBill: ob.id };
    const periods = (await t.http.get(ledgerUrl(orgId, 'periods')).set(users.owner.auth).expect(200)).body;
    await t.http.post(ledgerUrl(orgId, `periods/${periods.find((p: any) => p.startDate === '2026-01-01').id}/close`)).set(users.owner.auth).expect(200);
  });
  afterAll(() => t.close());

  it('1. a vendor\'s bill number is entered once per vendor (case and blanks ignored): the second is a 409 naming the first; nothing written', async () => {
    const first = await postedBill({ billNumber: 'V-777' });
    const before = await counts();
    for (const number of ['V-777', ' v-777 ']) {
      const again = await bill({ billNumber: number }).expect(409);
      expect(again.body.error).toEqual({
        code: 'payables.duplicate_bill_number', details: { billId: first.id },
        message: `billNumber: the vendor's bill ${number} is entered already, as bill ${first.id} (posted); void that one first to enter it again`,
      });
    }
    // nor by editing another draft to that number
    const draft = (await bill({ billNumber: 'V-778' }).expect(201)).body;
    const edited = await t.http.patch(url(`bills/${draft.id}`)).set(users.accountant.auth).send({ billNumber: 'V-777', billDate: '2026-02-02', lines: [{ accountId: acc['5200'], unitPrice: '300.00' }] }).expect(409);
    expect(edited.body.error).toMatchObject({ code: 'payables.duplicate_bill_number', details: { billId: first.id } });
    // a draft keeps its own number when edited; another vendor may use the same number
    await t.http.patch(url(`bills/${draft.id}`)).set(users.accountant.auth).send({ billNumber: 'v-778', billDate: '2026-02-03', lines: [{ accountId: acc['5200'], unitPrice: '30.00' }] }).expect(200);
    const other = await createVendor(t, orgId, users.accountant, { name: 'Other Vendor', email: 'ap@other.example' });
    await bill({ billNumber: 'V-777' }, other).expect(201);

    // entered twice at once: one of them
    const raced = await Promise.all(Array.from({ length: 6 }, () => bill({ billNumber: 'RACE-1' })));
    expect(raced.map((r) => r.status).sort()).toEqual([201, 409, 409, 409, 409, 409]);
    const { rows } = await t.db.admin.query(`SELECT lower(btrim(bill_number)) AS n, count(*)::int AS c FROM finance.bills
      WHERE org_id = $1 AND vendor_id = $2 AND status <> 'voided' AND bill_number IS NOT NULL GROUP BY 1 ORDER BY 1`, [orgId, vendor]);
    expect(rows).toEqual([{ n: 'jan-1', c: 1 }, { n: 'jan-2', c: 1 }, { n: 'race-1', c: 1 }, { n: 'v-777', c: 1 }, { n: 'v-778', c: 1 }]);
    expect((await counts()).split('/').slice(1)).toEqual(before.split('/').slice(1)); // no payment, allocation or entry

    // voided, the number is free again (a bill entered by mistake is entered anew)
    const raceId = raced.find((r) => r.status === 201)!.body.id;
    await t.http.post(url(`bills/${raceId}/void`)).set(users.accountant.auth).send({ reason: 'wrong lines' }).expect(200);
    await bill({ billNumber: 'race-1' }).expect(201);
  });

  it('2. a posted bill with nothing allocated is voided: the reversal of its entry (today by default), status voided, audited, an event; out of the aging from then', async () => {
    const posted = await postedBill({ billNumber: 'V-900', lines: [{ accountId: acc['5200'], unitPrice: '250.00' }] });
    expect(posted.status).toBe('posted');
    // the ledger sends whoever tries to reverse the entry there to the bill
    const viaLedger = await t.http.post(ledgerUrl(orgId, `journal-entries/${posted.journalEntryId}/reverse`)).set(users.accountant.auth).send({}).expect(422);
    expect(viaLedger.body.error).toMatchObject({ code: 'ledger.entry_of_document', message: expect.stringContaining(`bill V-900 (void the bill: POST payables/bills/${posted.id}/void`) });

    const voided = (await t.http.post(url(`bills/${posted.id}/void`)).set(users.accountant.auth).send({ reason: 'vendor cancelled the order' }).expect(200)).body;
    expect(voided).toMatchObject({ id: posted.id, status: 'voided', openAmount: '0.00', journalEntryId: posted.journalEntryId, voidedOn: '2026-03-10', voidEntryId: expect.any(String) });
    const { rows: [entry] } = await t.db.admin.query(`SELECT entry_date::text AS date, reverses_entry_id, memo FROM finance.journal_entries WHERE org_id = $1 AND id = $2`, [orgId, voided.voidEntryId]);
    expect(entry).toEqual({ date: '2026-03-10', reverses_entry_id: posted.journalEntryId, memo: 'Void of bill V-900' });
    const { rows: lines } = await t.db.admin.query(`SELECT a.code, sum(l.base_debit - l.base_credit)::text AS net FROM finance.journal_lines l JOIN finance.accounts a ON a.org_id = l.org_id AND a.id = l.account_id
      WHERE l.org_id = $1 AND l.entry_id = ANY($2::uuid[]) GROUP BY a.code ORDER BY a.code`, [orgId, [posted.journalEntryId, voided.voidEntryId]]);
    expect(lines).toEqual([{ code: '2100', net: '0.0000' }, { code: '5200', net: '0.0000' }]);
    // in the aging until the day before the void, not from the void date on; the aging is the AP balance every day
    expect((await vendorRow('2026-03-09', vendor))?.total).toBeDefined();
    const owedBefore = new Decimal((await vendorRow('2026-03-09', vendor)).total);
    expect(new Decimal((await vendorRow('2026-03-10', vendor))?.total ?? 0).toFixed(2)).toBe(owedBefore.minus(250).toFixed(2));
    await expectAgingIsApBalance(['2026-02-01', '2026-02-02', '2026-03-09', '2026-03-10']);
    const audit = await t.db.admin.query(`SELECT before->>'status' AS b, after->>'status' AS a, after->>'reason' AS reason, after->>'voidEntryId' AS e FROM core.audit_logs
      WHERE org_id = $1 AND entity_id = $2 AND action = 'payables.bill_voided'`, [orgId, posted.id]);
    expect(audit.rows).toEqual([{ b: 'posted', a: 'voided', reason: 'vendor cancelled the order', e: voided.voidEntryId }]);
    const events = await t.db.admin.query(`SELECT payload->'payload' AS p FROM core.outbox WHERE org_id = $1 AND payload->>'type' = 'bill.voided' AND payload->'payload'->>'billId' = $2`, [orgId, posted.id]);
    expect(events.rows.map((r) => r.p)).toEqual([expect.objectContaining({ voidedOn: '2026-03-10', reversalEntryId: voided.voidEntryId, voidedBy: users.accountant.id })]);
    // once: not voided again, not paid, not changed by SQL; its number is free
    expect((await t.http.post(url(`bills/${posted.id}/void`)).set(users.accountant.auth).send({}).expect(409)).body.error.code).toBe('payables.not_editable');
    const pay = await payment({ paymentDate: '2026-03-10', amount: '250.00', allocations: [{ billId: posted.id, amount: '250.00' }] }).expect(409);
    expect(pay.body.error.code).toBe('payables.not_open');
    await expect(t.db.asApi({ sub: users.owner.id, role: 'authenticated', org_id: orgId }, 'authenticated', `UPDATE finance.bills SET status = 'posted' WHERE id = $1`, [posted.id]))
      .rejects.toThrow(/is voided: it cannot be changed/);
    await bill({ billNumber: 'V-900' }).expect(201);
  });

  it('2. a posted bill with a payment allocated is a 409 until the allocation is reversed; a date in a closed period or before the bill is refused', async () => {
    const posted = await postedBill({ billNumber: 'V-901', lines: [{ accountId: acc['5200'], unitPrice: '80.00' }] });
    const paid = (await payment({ paymentDate: '2026-02-10', amount: '30.00', allocations: [{ billId: posted.id, amount: '30.00' }] }).expect(201)).body;
    const before = await counts();
    const refused = await t.http.post(url(`bills/${posted.id}/void`)).set(users.accountant.auth).send({}).expect(409);
    expect(refused.body.error).toEqual({ code: 'payables.has_allocations', message: 'bill V-901 has EUR 30.00 paid: reverse its allocations first, then void it' });
    // nor by SQL: the database refuses a void while something is allocated, or with an entry that is not the bill's reversal
    await expect(t.db.asApi({ sub: users.owner.id, role: 'authenticated', org_id: orgId }, 'authenticated',
      `UPDATE finance.bills SET status = 'voided', voided_on = '2026-02-10', void_entry_id = $2 WHERE id = $1`, [posted.id, paid.journalEntryId])).rejects.toThrow(/void entry must be the reversal/);
    await t.http.post(url(`allocations/${paid.allocations[0].id}/reverse`)).set(users.accountant.auth).send({ date: '2026-02-11' }).expect(201);
    // dated in closed January, or before the bill: nothing is written
    const closed = await t.http.post(url(`bills/${january.openBill}/void`)).set(users.accountant.auth).send({ date: '2026-01-31' }).expect(422);
    expect(closed.body.error).toMatchObject({ code: 'ledger.period_closed', message: expect.stringContaining('2026-01-01 to 2026-01-31 is closed') });
    const early = await t.http.post(url(`bills/${posted.id}/void`)).set(users.accountant.auth).send({ date: '2026-02-01' }).expect(400);
    expect(early.body.error).toMatchObject({ code: 'validation_failed', message: 'date must not be before the bill date 2026-02-02' });
    expect((await counts()).split('/').slice(0, 2)).toEqual(before.split('/').slice(0, 2));
    expect((await t.http.get(url(`bills/${january.openBill}`)).set(users.viewer.auth).expect(200)).body).toMatchObject({ status: 'posted', voidedOn: null, voidEntryId: null });
    // reversed, nothing is allocated: voided on the date given
    const voided = (await t.http.post(url(`bills/${posted.id}/void`)).set(users.accountant.auth).send({ date: '2026-02-12' }).expect(200)).body;
    expect(voided).toMatchObject({ status: 'voided', voidedOn: '2026-02-12' });
    // the payment has its 30.00 as credit with the vendor again
    expect((await t.http.get(url(`payments/${paid.id}`)).set(users.viewer.auth).expect(200)).body.unallocated).toBe('30.00');
    await expectAgingIsApBalance(['2026-02-10', '2026-02-11', '2026-02-12']);
  });

  it('3. partial payments of a foreign bill take the difference of its rounded open base: GBP 0.05 at 0.5 paid 0.01 at a time ends at exactly 0', async () => {
    const gbp = await createVendor(t, orgId, users.accountant, { name: 'Pence Ltd', email: 'ap@pence.example', defaultCurrency: 'GBP' });
    const posted = await postedBill({ billDate: '2026-02-03', currency: 'GBP', lines: [{ accountId: acc['5200'], unitPrice: '0.05' }] }, gbp);
    expect(posted).toMatchObject({ total: '0.05', rate: '0.5000000000', baseTotal: '0.03' });
    const pay = () => t.http.post(url('payments')).set(users.accountant.auth)
      .send({ vendorId: gbp, currency: 'GBP', paymentDate: '2026-02-04', amount: '0.01', bankAccountId: acc['1100'], allocations: [{ billId: posted.id, amount: '0.01' }] }).expect(201);
    for (let i = 0; i < 4; i++) await pay();
    const billBases = async () => (await t.db.admin.query(`SELECT bill_base_amount::text AS b FROM finance.bill_allocations WHERE org_id = $1 AND bill_id = $2 ORDER BY created_at, id`, [orgId, posted.id])).rows.map((r) => r.b);
    expect(await billBases()).toEqual(['0.0100', '0.0000', '0.0100', '0.0000']);
    expect((await t.http.get(url(`bills/${posted.id}`)).set(users.viewer.auth).expect(200)).body).toMatchObject({ status: 'partially_paid', openAmount: '0.01' });
    // GBP 0.01 is still owed, at 0.5: 0.01 (it was -0.01)
    expect(await vendorRow('2026-02-04', gbp)).toMatchObject({ total: '0.01' });
    await pay();
    expect(await billBases()).toEqual(['0.0100', '0.0000', '0.0100', '0.0000', '0.0100']);
    expect((await t.http.get(url(`bills/${posted.id}`)).set(users.viewer.auth).expect(200)).body).toMatchObject({ status: 'paid', openAmount: '0.00' });
    expect(await vendorRow('2026-02-04', gbp)).toBeUndefined();

    // the payment's side likewise: GBP 0.05 (base 0.03) allocated 0.01 at a time keeps its last 0.01 of credit at 0.01
    const owed = await postedBill({ billDate: '2026-02-03', currency: 'GBP', lines: [{ accountId: acc['5200'], unitPrice: '0.04' }] }, gbp);
    const credit = (await t.http.post(url('payments')).set(users.accountant.auth)
      .send({ vendorId: gbp, currency: 'GBP', paymentDate: '2026-02-05', amount: '0.05', bankAccountId: acc['1100'] }).expect(201)).body;
    for (let i = 0; i < 4; i++) await t.http.post(url(`payments/${credit.id}/allocations`)).set(users.accountant.auth).send({ billId: owed.id, amount: '0.01' }).expect(201);
    const { rows } = await t.db.admin.query(`SELECT string_agg(payment_base_amount::text, ' ' ORDER BY created_at, id) AS p, string_agg(bill_base_amount::text, ' ' ORDER BY created_at, id) AS b
      FROM finance.bill_allocations WHERE org_id = $1 AND payment_id = $2`, [orgId, credit.id]);
    expect(rows[0]).toEqual({ p: '0.0100 0.0000 0.0100 0.0000', b: '0.0000 0.0100 0.0000 0.0100' });
    // the bill paid (its 0.02 base whole), the payment's GBP 0.01 of credit at 0.01
    expect(await vendorRow('2026-02-05', gbp)).toMatchObject({ total: '-0.01' });
    await expectAgingIsApBalance(['2026-02-03', '2026-02-04', '2026-02-05']);
  });

  it('4. an allocation or its reversal with no FX result dated in a closed period is refused with the ledger\'s code; nothing is written', async () => {
    const before = await counts();
    // no date: the payment's, Jan 16, in closed January (it took it silently)
    const allocate = await t.http.post(url(`payments/${january.openPayment}/allocations`)).set(users.accountant.auth).send({ billId: january.openBill, amount: '40.00' }).expect(422);
    expect(allocate.body.error).toEqual({ code: 'ledger.period_closed', message: 'the fiscal period 2026-01-01 to 2026-01-31 is closed' });
    // the reversal of the Jan 20 allocation, by default on its date
    const reverse = await t.http.post(url(`allocations/${january.allocation}/reverse`)).set(users.accountant.auth).send({}).expect(422);
    expect(reverse.body.error.code).toBe('ledger.period_closed');
    // a date no fiscal period covers
    const uncovered = await t.http.post(url(`payments/${january.openPayment}/allocations`)).set(users.accountant.auth).send({ billId: january.openBill, amount: '40.00', date: '2027-02-01' }).expect(422);
    expect(uncovered.body.error).toEqual({ code: 'ledger.no_fiscal_year', message: 'no fiscal period covers 2027-02-01' });
    expect(await counts()).toBe(before);
    expect((await t.http.get(url(`bills/${january.openBill}`)).set(users.viewer.auth).expect(200)).body).toMatchObject({ status: 'posted', openAmount: '40.00' });
    expect((await t.http.get(url(`bills/${january.bill}`)).set(users.viewer.auth).expect(200)).body).toMatchObject({ status: 'paid' });
    // in an open period they are made
    await t.http.post(url(`payments/${january.openPayment}/allocations`)).set(users.accountant.auth).send({ billId: january.openBill, amount: '40.00', date: '2026-02-01' }).expect(201);
    await t.http.post(url(`allocations/${january.allocation}/reverse`)).set(users.accountant.auth).send({ date: '2026-02-01' }).expect(201);
    await expectAgingIsApBalance(['2026-01-31', '2026-02-01']);
  });

  it('5. an expense claim amount with more decimals than its currency has is a 400 naming the line, never rounded; nothing written', async () => {
    const line = (amount: string, currency = 'EUR') => ({ accountId: acc['5200'], amount, currency, date: '2026-02-05' });
    const claim = (body: object) => t.http.post(url('expense-claims')).set(users.member.auth).send({ claimDate: '2026-02-06', currency: 'EUR', ...body });
    const before = await counts();
    const cases: [object, string][] = [
      [{ lines: [line('10.005')] }, 'lines[0].amount must have at most 2 decimals for EUR (got 10.005)'],
      [{ currency: 'JPY', lines: [line('1234.5', 'JPY')] }, 'lines[0].amount must have at most 0 decimals for JPY (got 1234.5)'],
      [{ lines: [line('12.00'), line('0.004')] }, 'lines[1].amount must have at most 2 decimals for EUR (got 0.004)'],
    ];
    for (const [body, message] of cases) expect((await claim(body).expect(400)).body.error).toEqual({ code: 'payables.invalid_amount', message });
    expect(await counts()).toBe(before);
    // in the currency's units it is kept as sent; an edit is checked the same way
    const ok = (await claim({ lines: [line('10.01'), line('0.40')] }).expect(201)).body;
    expect(ok).toMatchObject({ total: '10.41', lines: [expect.objectContaining({ gross: '10.01' }), expect.objectContaining({ gross: '0.40' })] });
    const yen = (await claim({ currency: 'JPY', lines: [line('1234', 'JPY')] }).expect(201)).body;
    expect(yen.total).toBe('1234');
    const edit = await t.http.patch(url(`expense-claims/${ok.id}`)).set(users.member.auth).send({ claimDate: '2026-02-06', currency: 'EUR', lines: [line('7.125')] }).expect(400);
    expect(edit.body.error).toEqual({ code: 'payables.invalid_amount', message: 'lines[0].amount must have at most 2 decimals for EUR (got 7.125)' });
    expect((await t.http.get(url(`expense-claims/${ok.id}`)).set(users.member.auth).expect(200)).body.total).toBe('10.41');
  });

  it('6. a bill payment is recorded once per Idempotency-Key: a retry answers the first payment, another request with the key is a 409', async () => {
    const open = await postedBill({ billNumber: 'V-950', lines: [{ accountId: acc['5200'], unitPrice: '120.00' }] });
    const body = { vendorId: vendor, paymentDate: '2026-03-02', amount: '120.00', bankAccountId: acc['1100'], reference: 'RETRY-1', allocations: [{ billId: open.id, amount: '120.00' }] };
    const post = (key: string, b: object = body, who = users.accountant) => t.http.post(url('payments')).set(who.auth).set('Idempotency-Key', key).send(b);
    const written = async () => (await t.db.admin.query(`SELECT (SELECT count(*)::int FROM finance.bill_payments WHERE org_id = $1) AS payments,
      (SELECT count(*)::int FROM finance.journal_entries WHERE org_id = $1) AS entries, (SELECT count(*)::int FROM core.audit_logs WHERE org_id = $1 AND action = 'payables.payment_created') AS audits,
      (SELECT count(*)::int FROM core.outbox WHERE org_id = $1 AND payload->>'type' = 'bill.paid') AS paid`, [orgId])).rows[0];
    const before = await written();

    const first = await post('pay-retry-1').expect(201);
    expect(first.body).toMatchObject({ amount: '120.00', unallocated: '0.00', allocations: [expect.objectContaining({ billId: open.id, amount: '120.00' })] });
    // the retry (the first answer was lost): the same payment, nothing recorded again (the bill is paid: it would have been a 409)
    const again = await post('pay-retry-1').expect(201);
    expect(again.body).toEqual(first.body);
    const once = { payments: before.payments + 1, entries: before.entries + 1, audits: before.audits + 1, paid: before.paid + 1 };
    expect(await written()).toEqual(once);
    const { rows: [stored] } = await t.db.admin.query(`SELECT idempotency_key, request_hash FROM finance.bill_payments WHERE org_id = $1 AND id = $2`, [orgId, first.body.id]);
    expect(stored).toEqual({ idempotency_key: 'pay-retry-1', request_hash: expect.stringMatching(/^[0-9a-f]{64}$/) });

    // the key with another request; a key too long; nothing written
    const other = await post('pay-retry-1', { ...body, amount: '121.00' }).expect(409);
    expect(other.body.error).toEqual({ code: 'payables.idempotency_conflict', message: 'the Idempotency-Key "pay-retry-1" was already used for a different payment' });
    const tooLong = await post('k'.repeat(201)).expect(400);
    expect(tooLong.body.error).toMatchObject({ code: 'validation_failed', details: [{ field: 'Idempotency-Key', problems: ['Idempotency-Key must be at most 200 characters'] }] });
    expect(await written()).toEqual(once);

    // concurrent retries of a credit (no bill): one payment, every answer it
    const credit = { vendorId: vendor, paymentDate: '2026-03-03', amount: '15.00', bankAccountId: acc['1100'], reference: 'RACE' };
    const racing = await Promise.all(Array.from({ length: 6 }, () => post('pay-race', credit)));
    expect(racing.map((r) => r.status)).toEqual(Array(6).fill(201));
    expect(new Set(racing.map((r) => r.body.id)).size).toBe(1);
    expect(await written()).toEqual({ ...once, payments: once.payments + 1, entries: once.entries + 1, audits: once.audits + 1 });
    // without a key, each request is a payment of its own (as before); the key is the organization's own
    await t.http.post(url('payments')).set(users.accountant.auth).send(credit).expect(201);
    await t.http.post(url('payments')).set(users.accountant.auth).send(credit).expect(201);
    expect((await written()).payments).toBe(once.payments + 3);
    const elsewhere = await createOrg(t, users.owner, 'Elsewhere Ltd');
    await onPlan(t, elsewhere, 'professional');
    const elsewhereAcc = await startBooks(t, elsewhere, users.owner);
    const elsewhereVendor = await createVendor(t, elsewhere, users.owner);
    const theirs = await t.http.post(payablesUrl(elsewhere, 'payments')).set(users.owner.auth).set('Idempotency-Key', 'pay-race')
      .send({ ...credit, vendorId: elsewhereVendor, bankAccountId: elsewhereAcc['1100'] }).expect(201);
    expect(theirs.body.id).not.toBe(racing[0].body.id);
  });
});
