import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { registerUser, type TestUser } from '../support/factories.js';
import { expectOpenAmountsKept, rUrl } from '../receivables/receivables-support.js';
import { payablesUrl } from '../payables/payables-support.js';
import { pauseNext, releaseAll, waitsForLockOrAnswers } from '../auth/lock-order.js';
import { ledgerRepository } from '../../src/modules/ledger/ledger.repository.js';
import { ledgerUrl } from './ledger-support.js';
import { fxBooks } from './fx-support.js';

/**
 * FX revaluation of open items, the follow-ups (base USD; EUR 1.10 on Jan 15, 1.15 on Jan 31, 1.20 on Feb 10): an
 * invoice or bill of EUR 1,000.00 at 1.10 is carried at 1,150.00 after the Jan 31 revaluation (+50.00 on AR, unrealized
 * gain; on AP, unrealized loss).
 *  - a void takes the 50.00 off the control account too (back off the unrealized FX account): aging = account after it;
 *  - a credit note takes what the invoice carries, as an allocation does (the difference to its own base is realized FX);
 *  - a settlement, credit, refund, reversal or void dated before the item's last revaluation is 422 *.before_revaluation;
 *  - an allocation in flight while a revaluation runs waits for it (the revaluation drains postings), then settles
 *    what the item carries since;
 *  - an allocation's reversal posts its FX result to the account the original went to, whatever the settings say now;
 *  - semantic.v_ar_open / v_ap_open show the carried base.
 */
describe('FX revaluation of open items: voids, credit notes, dates before a revaluation, the race with allocations, views', () => {
  let t: TestApp;
  let owner: TestUser;

  beforeAll(async () => {
    t = await createTestApp();
    owner = await registerUser(t, 'owner');
  });
  afterEach(() => releaseAll());
  afterAll(() => t.close());

  async function books(name: string) {
    const b = await fxBooks(t, owner, name);
    const { orgId } = b;
    const revalue = async (date: string, autoReverse = false) => (await b.revalue(date, autoReverse).expect(201)).body;
    const items = async () => (await t.db.admin.query(
      `SELECT subledger, document_id::text, revaluation_date::text AS date, base_delta::numeric(20, 2)::text AS delta
       FROM finance.fx_revaluation_items WHERE org_id = $1 ORDER BY seq`, [orgId])).rows;
    const expectAgingIsAp = async (asOf: string, want: string) => {
      await b.expectAgingIsAp(asOf, want);
      expect(await b.balance('2100', asOf)).toBe(want === '0.00' ? '0.00' : `-${want}`);
    };
    /** the rows a refused request could have written */
    const footprint = async () => (await t.db.admin.query(`SELECT
      (SELECT count(*) FROM finance.journal_entries WHERE org_id = $1)::int AS entries, (SELECT count(*) FROM finance.receivable_allocations WHERE org_id = $1)::int AS ar_allocations,
      (SELECT count(*) FROM finance.customer_payments WHERE org_id = $1)::int AS ar_payments, (SELECT count(*) FROM finance.customer_refunds WHERE org_id = $1)::int AS ar_refunds,
      (SELECT count(*) FROM finance.invoices WHERE org_id = $1)::int AS invoices, (SELECT count(*) FROM finance.invoices WHERE org_id = $1 AND status = 'void')::int AS void_invoices,
      (SELECT count(*) FROM finance.bill_allocations WHERE org_id = $1)::int AS ap_allocations, (SELECT count(*) FROM finance.bill_payments WHERE org_id = $1)::int AS ap_payments,
      (SELECT count(*) FROM finance.bill_payment_refunds WHERE org_id = $1)::int AS ap_refunds, (SELECT count(*) FROM finance.bills WHERE org_id = $1 AND status = 'voided')::int AS void_bills,
      (SELECT count(*) FROM finance.fx_revaluation_items WHERE org_id = $1)::int AS items, (SELECT count(*) FROM core.audit_logs WHERE org_id = $1)::int AS audit`, [orgId])).rows[0];
    return { ...b, revalue, items, expectAgingIsAp, footprint };
  }

  it('a revalued invoice voided: the revaluation leaves AR too (back off the unrealized gain), aging = AR; a void dated before the revaluation is 422', async () => {
    const b = await books('AR void revalued');
    const inv = await b.invoice();
    await b.revalue('2026-01-31');
    await b.expectAgingIsAr('2026-01-31', '1150.00');
    const before = await b.footprint();
    const early = await t.http.post(rUrl(b.orgId, `invoices/${inv.id}/void`)).set(owner.auth).send({ date: '2026-01-20' });
    expect([early.status, early.body.error.code, early.body.error.details]).toEqual([422, 'receivables.before_revaluation', { documentId: inv.id, revaluationDate: '2026-01-31' }]);
    expect(await b.footprint()).toEqual(before);

    const voided = await t.http.post(rUrl(b.orgId, `invoices/${inv.id}/void`)).set(owner.auth).send({ date: '2026-02-05' }).expect(200);
    expect(voided.body).toMatchObject({ status: 'void', voidedOn: '2026-02-05' });
    await b.expectAgingIsAr('2026-02-05', '0.00');
    await b.expectAgingIsAr('2026-01-31', '1150.00');
    // the unrealized gain the revaluation booked is taken back with the invoice; the revenue is reversed at its own rate
    expect([await b.balance('4310', '2026-02-05'), await b.balance('4100', '2026-02-05')]).toEqual(['0.00', '0.00']);
    expect(await b.items()).toEqual([
      { subledger: 'receivables', document_id: inv.id, date: '2026-01-31', delta: '50.00' }, { subledger: 'receivables', document_id: inv.id, date: '2026-02-05', delta: '-50.00' }]);
    const { rows: [open] } = await t.db.admin.query(`SELECT open_base::numeric(20, 2)::text AS open_base FROM finance.receivable_open_amounts WHERE org_id = $1 AND document_id = $2`, [b.orgId, inv.id]);
    expect(open.open_base).toBe('0.00');
    const { rows: audit } = await t.db.admin.query(`SELECT action FROM core.audit_logs WHERE org_id = $1 AND action IN ('receivables.invoice_voided', 'ledger.fx_revaluation_posted') ORDER BY id`, [b.orgId]);
    expect(audit.map((r) => r.action)).toEqual(['ledger.fx_revaluation_posted', 'ledger.fx_revaluation_posted', 'receivables.invoice_voided']);
    await expectOpenAmountsKept(t, b.orgId);
    // nothing left to revalue
    expect((await b.revalue('2026-02-10')).entry).toBeNull();
  });

  it('a revalued bill voided: the revaluation leaves AP too (back off the unrealized loss), aging = AP; a void dated before the revaluation is 422', async () => {
    const b = await books('AP void revalued');
    const bill = await b.bill();
    await b.revalue('2026-01-31');
    await b.expectAgingIsAp('2026-01-31', '1150.00');
    const before = await b.footprint();
    const early = await t.http.post(payablesUrl(b.orgId, `bills/${bill.id}/void`)).set(owner.auth).send({ date: '2026-01-20' });
    expect([early.status, early.body.error.code, early.body.error.details]).toEqual([422, 'payables.before_revaluation', { documentId: bill.id, revaluationDate: '2026-01-31' }]);
    expect(await b.footprint()).toEqual(before);

    await t.http.post(payablesUrl(b.orgId, `bills/${bill.id}/void`)).set(owner.auth).send({ date: '2026-02-05' }).expect(200);
    await b.expectAgingIsAp('2026-02-05', '0.00');
    await b.expectAgingIsAp('2026-01-31', '1150.00');
    expect([await b.balance('5510', '2026-02-05'), await b.balance('5200', '2026-02-05')]).toEqual(['0.00', '0.00']);
    expect(await b.items()).toEqual([
      { subledger: 'payables', document_id: bill.id, date: '2026-01-31', delta: '50.00' }, { subledger: 'payables', document_id: bill.id, date: '2026-02-05', delta: '-50.00' }]);
    expect((await b.revalue('2026-02-10')).entry).toBeNull();
  });

  it('credit notes of a revalued invoice settle what it carries, as an allocation: the revaluation part is realized FX, AR and aging reach 0 together', async () => {
    const b = await books('AR credit note revalued');
    const inv = await b.invoice();
    await b.revalue('2026-01-31');
    // half: the invoice carries 1,150.00 at 1.15; what stays open (EUR 500.00) carries 575.00, so the credit takes 575.00;
    // its own base at the invoice rate is 550.00: the credited half's 25.00 of revaluation comes off the unrealized gain
    // (a credit note moves no cash: nothing is realized)
    const half = await t.http.post(rUrl(b.orgId, `invoices/${inv.id}/credit-notes`)).set(owner.auth).send({ date: '2026-02-05', lines: [{ lineNo: 1, quantity: '0.5' }] }).expect(201);
    const entry = (await t.http.get(ledgerUrl(b.orgId, `journal-entries/${half.body.entryId}`)).set(owner.auth).expect(200)).body;
    expect(entry.lines.map((l: any) => [l.accountCode, l.baseDebit, l.baseCredit])).toEqual([['1200', '0.00', '575.00'], ['4100', '550.00', '0.00'], ['4310', '25.00', '0.00']]);
    await b.expectAgingIsAr('2026-02-05', '575.00');
    await t.http.post(rUrl(b.orgId, `invoices/${inv.id}/credit-notes`)).set(owner.auth).send({ date: '2026-02-06' }).expect(201);
    await b.expectAgingIsAr('2026-02-06', '0.00');
    const { rows } = await t.db.admin.query(
      `SELECT invoice_base::numeric(20, 2)::text AS invoice_base, source_base::numeric(20, 2)::text AS source_base FROM finance.receivable_allocations
       WHERE org_id = $1 AND invoice_id = $2 ORDER BY allocation_date`, [b.orgId, inv.id]);
    // each allocation takes its share at the invoice's rate; the share's revaluation (25.00 each) leaves as the credit note's
    // row on the account it took it off (finance.fx_revaluation_items, linked to its entry)
    expect(rows).toEqual([{ invoice_base: '550.00', source_base: '550.00' }, { invoice_base: '550.00', source_base: '550.00' }]);
    const { rows: taken } = await t.db.admin.query(`SELECT x.revaluation_date::text AS date, x.base_delta::numeric(20, 2)::text AS delta, a.code FROM finance.fx_revaluation_items x
      JOIN finance.accounts a ON a.org_id = x.org_id AND a.id = x.fx_account_id JOIN finance.journal_entries e ON e.org_id = x.org_id AND e.id = x.entry_id
      WHERE x.org_id = $1 AND x.document_id = $2 AND e.source = 'invoice' ORDER BY x.seq`, [b.orgId, inv.id]);
    expect(taken).toEqual([{ date: '2026-02-05', delta: '-25.00', code: '4310' }, { date: '2026-02-06', delta: '-25.00', code: '4310' }]);
    // the revenue fully reversed at its rate; the unrealized gain (50.00) taken off with the invoice, no realized result
    expect([await b.balance('4100', '2026-02-06'), await b.balance('4310', '2026-02-06'), await b.balance('5500', '2026-02-06')]).toEqual(['0.00', '0.00', '0.00']);
    const { rows: [open] } = await t.db.admin.query(`SELECT open_base::numeric(20, 2)::text AS open_base FROM finance.receivable_open_amounts WHERE org_id = $1 AND document_id = $2`, [b.orgId, inv.id]);
    expect(open.open_base).toBe('0.00');
    // before the revaluation: refused
    const other = await b.invoice('2026-01-20');
    // (not as of Feb 1: the first invoice was credited after it, ledger.revaluation_before_settlement)
    await b.revalue('2026-02-06');
    const early = await t.http.post(rUrl(b.orgId, `invoices/${other.id}/credit-notes`)).set(owner.auth).send({ date: '2026-01-25' });
    expect([early.status, early.body.error.code, early.body.error.details?.revaluationDate]).toEqual([422, 'receivables.before_revaluation', '2026-02-06']);
    await expectOpenAmountsKept(t, b.orgId);
  });

  it('receivables: an allocation, a payment, a refund and a reversal dated before the last revaluation of an item they take from are 422 receivables.before_revaluation', async () => {
    const b = await books('AR before revaluation');
    const inv = await b.invoice();
    const pay = (body: object) => t.http.post(rUrl(b.orgId, 'payments')).set(owner.auth).send({ customerId: b.customer, amount: '100.00', currency: 'EUR', rate: '1.12',
      depositAccountId: b.acc['1100'], method: 'bank_transfer', ...body });
    const paid = (await pay({ date: '2026-01-20', allocations: [{ invoiceId: inv.id, amount: '100.00' }] }).expect(201)).body;
    const credit = (await pay({ date: '2026-01-20' }).expect(201)).body;
    await b.revalue('2026-01-31');
    const before = await b.footprint();
    const requests: [string, () => Promise<any>][] = [
      ['allocation', () => t.http.post(rUrl(b.orgId, `payments/${credit.id}/allocations`)).set(owner.auth).send({ date: '2026-01-25', allocations: [{ invoiceId: inv.id, amount: '10.00' }] })],
      ['payment', () => pay({ date: '2026-01-25', allocations: [{ invoiceId: inv.id, amount: '10.00' }] })],
      ['refund', () => t.http.post(rUrl(b.orgId, `payments/${credit.id}/refunds`)).set(owner.auth).send({ date: '2026-01-25', amount: '10.00', rate: '1.12' })],
      ['reversal', () => t.http.post(rUrl(b.orgId, `allocations/${paid.allocations[0].id}/reverse`)).set(owner.auth).send({ date: '2026-01-25' })],
    ];
    for (const [what, send] of requests) {
      const res = await send();
      expect({ what, status: res.status, code: res.body.error?.code, date: res.body.error?.details?.revaluationDate }).toEqual({ what, status: 422, code: 'receivables.before_revaluation', date: '2026-01-31' });
    }
    expect(await b.footprint()).toEqual(before);
    // on the revaluation's date: settled at what the items carry since
    await t.http.post(rUrl(b.orgId, `payments/${credit.id}/allocations`)).set(owner.auth).send({ date: '2026-01-31', allocations: [{ invoiceId: inv.id, amount: '100.00' }] }).expect(201);
    await b.expectAgingIsAr('2026-01-31', await b.balance('1200', '2026-01-31'));
    await expectOpenAmountsKept(t, b.orgId);
  });

  it('payables: an allocation, a payment, a refund and a reversal dated before the last revaluation of an item they take from are 422 payables.before_revaluation', async () => {
    const b = await books('AP before revaluation');
    const bill = await b.bill();
    const pay = (body: object) => t.http.post(payablesUrl(b.orgId, 'payments')).set(owner.auth).send({ vendorId: b.vendor, amount: '100.00', currency: 'EUR', rate: '1.12',
      bankAccountId: b.acc['1100'], ...body });
    const paid = (await pay({ paymentDate: '2026-01-20', allocations: [{ billId: bill.id, amount: '100.00' }] }).expect(201)).body;
    const credit = (await pay({ paymentDate: '2026-01-20' }).expect(201)).body;
    await b.revalue('2026-01-31');
    const before = await b.footprint();
    const requests: [string, () => Promise<any>][] = [
      ['allocation', () => t.http.post(payablesUrl(b.orgId, `payments/${credit.id}/allocations`)).set(owner.auth).send({ date: '2026-01-25', billId: bill.id, amount: '10.00' })],
      ['payment', () => pay({ paymentDate: '2026-01-25', allocations: [{ billId: bill.id, amount: '10.00' }] })],
      ['refund', () => t.http.post(payablesUrl(b.orgId, `payments/${credit.id}/refunds`)).set(owner.auth).send({ date: '2026-01-25', amount: '10.00', rate: '1.12' })],
      ['reversal', () => t.http.post(payablesUrl(b.orgId, `allocations/${paid.allocations[0].id}/reverse`)).set(owner.auth).send({ date: '2026-01-25' })],
    ];
    for (const [what, send] of requests) {
      const res = await send();
      expect({ what, status: res.status, code: res.body.error?.code, date: res.body.error?.details?.revaluationDate }).toEqual({ what, status: 422, code: 'payables.before_revaluation', date: '2026-01-31' });
    }
    expect(await b.footprint()).toEqual(before);
  });

  it('an allocation while a revaluation is between its read and its insert waits for it, then settles what the invoice carries since (no stale change)', async () => {
    const b = await books('AR revaluation race');
    const inv = await b.invoice();
    const credit = (await t.http.post(rUrl(b.orgId, 'payments')).set(owner.auth).send({ customerId: b.customer, date: '2026-02-10', amount: '1000.00', currency: 'EUR',
      depositAccountId: b.acc['1100'], method: 'bank_transfer' }).expect(201)).body;
    // the revaluation is paused after it read the open items (its first rate look-up), before it posts and writes their changes
    const paused = pauseNext(ledgerRepository, 'effectiveRate');
    const revaluation = t.http.post(ledgerUrl(b.orgId, 'fx-revaluations')).set(owner.auth).send({ date: '2026-01-31' }).then((r) => r);
    await paused.reached;
    const allocation = t.http.post(rUrl(b.orgId, `payments/${credit.id}/allocations`)).set(owner.auth)
      .send({ date: '2026-02-10', allocations: [{ invoiceId: inv.id, amount: '1000.00' }] }).then((r) => r);
    expect(await waitsForLockOrAnswers(t.db.admin, allocation, paused)).toBe('waiting');
    paused.release();
    expect((await revaluation).status).toBe(201);
    const allocated = await allocation;
    expect(allocated.status).toBe(201);
    // the invoice carried 1,150.00 once revalued: the realized gain is only the move since (1.20 - 1.15)
    expect(allocated.body.allocations).toEqual([expect.objectContaining({ invoiceId: inv.id, realizedFx: '50.00' })]);
    const { rows: [row] } = await t.db.admin.query(`SELECT invoice_base::numeric(20, 2)::text AS invoice_base FROM finance.receivable_allocations WHERE org_id = $1`, [b.orgId]);
    expect(row.invoice_base).toBe('1150.00');
    await b.expectAgingIsAr('2026-02-10', '0.00');
    const { rows: [open] } = await t.db.admin.query(`SELECT open_base::numeric(20, 2)::text AS open_base FROM finance.receivable_open_amounts WHERE org_id = $1 AND document_id = $2`, [b.orgId, inv.id]);
    expect(open.open_base).toBe('0.00');
  });

  it('an allocation reversed after the FX accounts changed: the result goes back to the account the original result went to (AR and AP)', async () => {
    const b = await books('FX account of the original');
    const newAccount = async (code: string, type: string) =>
      (await t.http.post(ledgerUrl(b.orgId, 'accounts')).set(owner.auth).send({ code, name: `Account ${code}`, type }).expect(201)).body.id as string;
    const inv = await b.invoice();
    const bill = await b.bill();
    // paid at 1.20: a realized gain of 100.00 on the invoice (4300), a realized loss of 100.00 on the bill (5500)
    const received = (await t.http.post(rUrl(b.orgId, 'payments')).set(owner.auth).send({ customerId: b.customer, date: '2026-02-10', amount: '1000.00', currency: 'EUR',
      depositAccountId: b.acc['1100'], method: 'bank_transfer', allocations: [{ invoiceId: inv.id, amount: '1000.00' }] }).expect(201)).body;
    const paid = (await t.http.post(payablesUrl(b.orgId, 'payments')).set(owner.auth).send({ vendorId: b.vendor, paymentDate: '2026-02-10', amount: '1000.00', currency: 'EUR',
      bankAccountId: b.acc['1100'], allocations: [{ billId: bill.id, amount: '1000.00' }] }).expect(201)).body;
    await t.http.patch(ledgerUrl(b.orgId, 'settings')).set(owner.auth).send({ fxGainAccountId: await newAccount('4390', 'revenue'), fxLossAccountId: await newAccount('5590', 'expense') }).expect(200);
    const arReversal = await t.http.post(rUrl(b.orgId, `allocations/${received.allocations[0].id}/reverse`)).set(owner.auth).send({ date: '2026-02-15' }).expect(201);
    const apReversal = await t.http.post(payablesUrl(b.orgId, `allocations/${paid.allocations[0].id}/reverse`)).set(owner.auth).send({ date: '2026-02-15' }).expect(201);
    const fxLines = async (entryId: string) => (await t.db.admin.query(
      `SELECT a.code, l.base_debit::numeric(20, 2)::text AS bd, l.base_credit::numeric(20, 2)::text AS bc
       FROM finance.journal_lines l JOIN finance.accounts a ON a.org_id = l.org_id AND a.id = l.account_id
       WHERE l.org_id = $1 AND l.entry_id = $2 AND a.code NOT IN ('1200', '2100') ORDER BY l.line_no`, [b.orgId, entryId])).rows;
    const arEntry = arReversal.body.allocations.find((a: any) => a.reversesAllocationId === received.allocations[0].id).entryId;
    const apEntry = apReversal.body.allocations.find((a: any) => a.reversesAllocationId === paid.allocations[0].id).journalEntryId;
    expect(await fxLines(arEntry)).toEqual([{ code: '4300', bd: '100.00', bc: '0.00' }]);
    expect(await fxLines(apEntry)).toEqual([{ code: '5500', bd: '0.00', bc: '100.00' }]);
    expect([await b.balance('4300', '2026-02-15'), await b.balance('5500', '2026-02-15')]).toEqual(['0.00', '0.00']);
    // the invoice (bill) open again at 1,100.00, the payment's credit back at 1,200.00: both agings still equal their accounts
    await b.expectAgingIsAr('2026-02-15', '-100.00');
    const ap = (await t.http.get(payablesUrl(b.orgId, 'aging?asOf=2026-02-15')).set(owner.auth).expect(200)).body;
    expect([ap.controlAccountBalance, ap.total, await b.balance('2100', '2026-02-15')]).toEqual(['-100.00', '-100.00', '100.00']);
  });

  it('semantic.v_ar_open and v_ap_open show the base each open item carries, revaluations included', async () => {
    const b = await books('Views carried base');
    const inv = await b.invoice();
    const bill = await b.bill();
    await b.revalue('2026-01-31');
    const claims = { sub: owner.id, role: 'authenticated', org_id: b.orgId };
    const ar = await t.db.as(claims, 'authenticated', `SELECT document_id::text, open_amount::numeric(20, 2)::text AS open, open_amount_base::numeric(20, 2)::text AS base FROM semantic.v_ar_open`);
    expect(ar).toEqual([{ document_id: inv.id, open: '1000.00', base: '1150.00' }]);
    const ap = await t.db.as(claims, 'authenticated', `SELECT bill_id::text, open_amount::numeric(20, 2)::text AS open, open_base_amount::numeric(20, 2)::text AS base FROM semantic.v_ap_open`);
    expect(ap).toEqual([{ bill_id: bill.id, open: '1000.00', base: '1150.00' }]);
    // partly paid at 1.20 since: what is left carries its share at 1.15
    await t.http.post(rUrl(b.orgId, 'payments')).set(owner.auth).send({ customerId: b.customer, date: '2026-02-10', amount: '400.00', currency: 'EUR',
      depositAccountId: b.acc['1100'], method: 'bank_transfer', allocations: [{ invoiceId: inv.id, amount: '400.00' }] }).expect(201);
    expect(await t.db.as(claims, 'authenticated', `SELECT open_amount_base::numeric(20, 2)::text AS base FROM semantic.v_ar_open`)).toEqual([{ base: '690.00' }]);
    expect(await b.balance('1200', '2026-02-10')).toBe('690.00');
  });
});
