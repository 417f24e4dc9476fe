import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { registerUser, type TestUser } from '../support/factories.js';
import { expectOpenAmountsKept, issueInvoice, rUrl } from '../receivables/receivables-support.js';
import { payablesUrl } from '../payables/payables-support.js';
import { fxBooks } from './fx-support.js';

/**
 * FX revaluation of a control account whose open items' changes cancel (base USD; EUR 1.10 on Jan 15, 1.15 on Jan 31,
 * 1.20 on Feb 10). JournalService.revalueOpenItems skipped an account and currency whose items' changes net to 0 and wrote
 * none of its items' rows: each stayed carried at its own rate, and a later settlement realized the whole move since it,
 * so the month's unrealized result per item landed in the next month, partly as realized. Worked by hand, AR:
 *  Jan 15 invoice A EUR 1,000 at 1.10 (1,100.00); payment P EUR 1,000 at 1.10, unallocated (a credit of 1,100.00)
 *  Jan 31 revaluation at 1.15: A +50.00 (unrealized gain), P's credit 1,100.00 -> 1,150.00 (unrealized loss 50.00): the
 *         account nets 0 (nothing on the FX accounts; a pair of AR lines that cancel), each item carries its 1.15 value
 *  Feb 10 invoice C EUR 500 at 1.20 (600.00); P allocated: EUR 500 to A (both carry 575.00: nothing realized) and EUR 500
 *         to C (600.00 settled by the 575.00 P carries: a realized loss of 25.00, the rate's move since Jan 31)
 *  Feb 28 revaluation at 1.20: what is left of A, EUR 500 carried at 575.00 -> 600.00: unrealized gain 25.00
 * By month: January 0 (+50.00 - 50.00, per item in the rows); February realized loss 25.00, unrealized gain 25.00. Over
 * the items' lives: A's open half gains 50.00 (1.10 -> 1.20), P's half used on C loses 50.00 (25.00 in January, 25.00
 * in February), the half settled between A and P nets 0. The old code left A and P at 1.10: February realized a loss of
 * 50.00 and an unrealized gain of 50.00. AP is the mirror (a bill B and a vendor prepayment Q; Q's half used on a bill D
 * of EUR 500 realizes a gain of 25.00, B's open half an unrealized loss of 25.00). The EUR bank account nets to EUR 0.00
 * at base 0.00 (AR payment in, AP payment out): no adjustment of its own, so the cancelling pairs are the whole entry.
 * With autoReverse the Feb 1 reversal takes every item back to 1.10 (the rows' opposites): February realizes 50.00 each
 * way and the Feb 28 revaluation finds the whole move since 1.10.
 * The aging equals the control account on every day.
 */
describe('FX revaluation: the items of a control account whose changes cancel carry their new values', () => {
  let t: TestApp;
  let owner: TestUser;

  beforeAll(async () => {
    t = await createTestApp();
    owner = await registerUser(t, 'owner');
  });
  afterAll(() => t.close());

  for (const autoReverse of [false, true]) {
    it(`AR and AP${autoReverse ? ' (autoReverse)' : ''}: item rows written, the next month realizes only the move since, aging = control account`, async () => {
      const b = await fxBooks(t, owner, `Cancelling items ${autoReverse}`);
      const { orgId, acc, balance, expectAgingIsAr, expectAgingIsAp } = b;
      const names = new Map<string, string>();
      const label = (id: string, name: string) => { names.set(id, name); return id; };
      const items = async () => (await t.db.admin.query(
        `SELECT x.document_id::text AS doc, x.revaluation_date::text AS date, x.rate::numeric(10, 4)::text AS rate, x.base_delta::numeric(20, 2)::text AS delta, a.code AS fx
         FROM finance.fx_revaluation_items x JOIN finance.accounts a ON a.org_id = x.org_id AND a.id = x.fx_account_id WHERE x.org_id = $1 ORDER BY x.seq`, [orgId]))
        .rows.map((r) => ({ ...r, doc: names.get(r.doc) }));
      const fxAccounts = async (asOf: string) => ({
        realizedGain: await balance('4300', asOf), realizedLoss: await balance('5500', asOf), unrealizedGain: await balance('4310', asOf), unrealizedLoss: await balance('5510', asOf) });
      const lines = (entry: any) => entry.lines.map((l: any) => [l.accountCode, l.baseDebit, l.baseCredit]).sort();

      // January 15, at 1.10: A and P on AR, B and Q on AP, the bank account EUR 0.00 at 0.00 after both payments
      const a = label((await b.invoice()).id, 'A');
      const p = label((await b.arPayment({ date: '2026-01-15', amount: '1000.00', rate: '1.10' }).expect(201)).body.id, 'P');
      const bill = label((await b.bill()).id, 'B');
      const q = label((await b.apPayment({ paymentDate: '2026-01-15', amount: '1000.00', rate: '1.10' }).expect(201)).body.id, 'Q');
      await expectAgingIsAr('2026-01-15', '0.00');
      await expectAgingIsAp('2026-01-15', '0.00');

      // January 31, at 1.15: each account nets 0, its items move 50.00 each way
      const jan = (await b.revalue('2026-01-31', autoReverse).expect(201)).body;
      const zero = { currency: 'EUR', balance: '0.00', rate: '1.1500000000', baseBefore: '0.00', baseAfter: '0.00', difference: '0.00' };
      expect(jan.adjustments).toEqual(expect.arrayContaining([{ accountId: acc['1200'], ...zero }, { accountId: acc['2100'], ...zero }]));
      expect(jan.adjustments).toHaveLength(2);
      expect(lines(jan.entry)).toEqual([['1200', '0.00', '50.00'], ['1200', '50.00', '0.00'], ['2100', '0.00', '50.00'], ['2100', '50.00', '0.00']]);
      if (autoReverse) {
        expect(jan.reversal).toMatchObject({ date: '2026-02-01', reversesEntryId: jan.entry.id });
        expect(lines(jan.reversal)).toEqual(lines(jan.entry));
      }
      // the rows name the account a net of 0 names (the loss account), which got 0 of this entry
      const janRows = [
        { doc: 'A', date: '2026-01-31', rate: '1.1500', delta: '50.00', fx: '5510' }, { doc: 'P', date: '2026-01-31', rate: '1.1500', delta: '-50.00', fx: '5510' },
        { doc: 'B', date: '2026-01-31', rate: '1.1500', delta: '50.00', fx: '5510' }, { doc: 'Q', date: '2026-01-31', rate: '1.1500', delta: '-50.00', fx: '5510' }];
      const reversed = (rows: typeof janRows, date: string) => rows.map((r) => ({ ...r, date, rate: '1.1000', delta: r.delta.startsWith('-') ? r.delta.slice(1) : `-${r.delta}` }));
      const sorted = async () => (await items()).sort((x, y) => x.date.localeCompare(y.date) || x.doc!.localeCompare(y.doc!));
      const byDoc = (rows: typeof janRows) => [...rows].sort((x, y) => x.date.localeCompare(y.date) || x.doc.localeCompare(y.doc));
      expect(await sorted()).toEqual(byDoc([...janRows, ...(autoReverse ? reversed(janRows, '2026-02-01') : [])]));
      // revalued again as of the same date: each item already carries the rate
      expect((await b.revalue('2026-01-31', false).expect(201)).body.entry).toBeNull();
      await expectAgingIsAr('2026-01-31', '0.00');
      await expectAgingIsAp('2026-01-31', '0.00');
      const nothing = { realizedGain: '0.00', realizedLoss: '0.00', unrealizedGain: '0.00', unrealizedLoss: '0.00' };
      expect(await fxAccounts('2026-01-31')).toEqual(nothing);

      // February 10, at 1.20: half of each prepayment settles the January document, half a new one of EUR 500
      const c = label((await issueInvoice(t, orgId, owner, { customerId: b.customer, invoiceDate: '2026-02-10',
        lines: [{ description: 'Support', quantity: '1', unitPrice: '500.00', revenueAccountId: acc['4100'] }] })).id, 'C');
      const allocated = (await t.http.post(rUrl(orgId, `payments/${p}/allocations`)).set(owner.auth)
        .send({ date: '2026-02-10', allocations: [{ invoiceId: a, amount: '500.00' }, { invoiceId: c, amount: '500.00' }] }).expect(201)).body;
      // P and A carry 1.15 (without autoReverse): 575.00 each way; C's 600.00 settled by P's other 575.00
      expect(allocated.allocations.map((x: any) => [names.get(x.invoiceId), x.realizedFx])).toEqual([['A', '0.00'], ['C', autoReverse ? '-50.00' : '-25.00']]);
      const draft = await t.http.post(payablesUrl(orgId, 'bills')).set(owner.auth).send({ vendorId: b.vendor, billDate: '2026-02-10', currency: 'EUR',
        lines: [{ accountId: acc['5200'], unitPrice: '500.00' }] }).expect(201);
      const d = label((await t.http.post(payablesUrl(orgId, `bills/${draft.body.id}/submit`)).set(owner.auth).send({}).expect(200)).body.id, 'D');
      const toB = (await t.http.post(payablesUrl(orgId, `payments/${q}/allocations`)).set(owner.auth).send({ billId: bill, amount: '500.00', date: '2026-02-10' }).expect(201)).body;
      const toD = (await t.http.post(payablesUrl(orgId, `payments/${q}/allocations`)).set(owner.auth).send({ billId: d, amount: '500.00', date: '2026-02-10' }).expect(201)).body;
      const half = autoReverse ? '550.00' : '575.00';
      expect(toB.allocations.find((x: any) => x.billId === bill)).toMatchObject({ billBaseAmount: half, paymentBaseAmount: half, fxDifference: '0.00' });
      // a gain: D's 600.00 settled by what Q carries
      expect(toD.allocations.find((x: any) => x.billId === d)).toMatchObject({ billBaseAmount: '600.00', paymentBaseAmount: half, fxDifference: autoReverse ? '-50.00' : '-25.00' });
      await expectAgingIsAr('2026-02-10', half);
      await expectAgingIsAp('2026-02-10', half);

      // February 28, at 1.20: the open halves of A and B
      const feb = (await b.revalue('2026-02-28', autoReverse).expect(201)).body;
      const move = autoReverse ? '50.00' : '25.00';
      expect(lines(feb.entry)).toEqual([['1200', move, '0.00'], ['2100', '0.00', move], ['4310', '0.00', move], ['5510', move, '0.00']]);
      const febRows = [
        { doc: 'A', date: '2026-02-28', rate: '1.2000', delta: move, fx: '4310' }, { doc: 'B', date: '2026-02-28', rate: '1.2000', delta: move, fx: '5510' }];
      expect(await sorted()).toEqual(byDoc([...janRows, ...febRows, ...(autoReverse ? [...reversed(janRows, '2026-02-01'), ...reversed(febRows, '2026-03-01')] : [])]));
      await expectAgingIsAr('2026-02-28', '600.00');
      await expectAgingIsAp('2026-02-28', '600.00');
      if (autoReverse) {
        await expectAgingIsAr('2026-03-01', '550.00');
        await expectAgingIsAp('2026-03-01', '550.00');
      }

      // the P&L by month: January nothing (its per-item results cancel); February only the moves since January 31
      // (autoReverse: since 1.10, the reversal took January's off), realized on the settled halves, unrealized on the open ones
      expect(await fxAccounts('2026-01-31')).toEqual(nothing);
      expect(await fxAccounts('2026-02-28')).toEqual({ realizedGain: `-${move}`, realizedLoss: move, unrealizedGain: `-${move}`, unrealizedLoss: move });
      await expectOpenAmountsKept(t, orgId);
    });
  }

  // in the autoReverse window (allocated on Jan 31, after the revaluation): the allocation itself realizes nothing (A and P
  // both carry 1,150.00), and each item's January result is realized with it, as for any item settled in the window: A's
  // gain of 50.00 and P's loss of 50.00 (realized accounts), nothing left unrealized; the Feb 1 reversal and its
  // compensation cancel on the items. The old code wrote no rows: nothing realized per item, the months' totals alike (0)
  it('AR, in the autoReverse window: the allocation realizes each item\'s January result, the unrealized accounts keep nothing', async () => {
    const b = await fxBooks(t, owner, 'Cancelling items in the window');
    const { orgId, balance, expectAgingIsAr } = b;
    const a = (await b.invoice()).id;
    const p = (await b.arPayment({ date: '2026-01-15', amount: '1000.00', rate: '1.10' }).expect(201)).body.id;
    // the bank's EUR 1,000.00 is revalued as well (a gain of 50.00 on 4310): taken out of the FX accounts asserted below
    const jan = (await b.revalue('2026-01-31', true).expect(201)).body;
    expect(jan.adjustments.map((x: any) => [x.accountId === b.acc['1200'] ? 'AR' : x.accountId === b.acc['1100'] ? 'bank' : x.accountId, x.difference]).sort())
      .toEqual([['AR', '0.00'], ['bank', '50.00']]);
    const allocated = (await t.http.post(rUrl(orgId, `payments/${p}/allocations`)).set(owner.auth)
      .send({ date: '2026-01-31', allocations: [{ invoiceId: a, amount: '1000.00' }] }).expect(201)).body;
    expect(allocated.allocations.map((x: any) => x.realizedFx)).toEqual(['0.00']);
    const { rows } = await t.db.admin.query(`SELECT x.document_id::text AS doc, x.revaluation_date::text AS date, x.base_delta::numeric(20, 2)::text AS delta, e.source_ref AS ref
      FROM finance.fx_revaluation_items x JOIN finance.journal_entries e ON e.org_id = x.org_id AND e.id = x.entry_id WHERE x.org_id = $1 ORDER BY x.seq`, [orgId]);
    const name = (id: string) => (id === a ? 'A' : id === p ? 'P' : id);
    expect(rows.map((r) => [name(r.doc), r.date, r.delta, r.ref]).sort()).toEqual([
      ['A', '2026-01-31', '50.00', null], ['A', '2026-02-01', '-50.00', null], ['A', '2026-02-01', '50.00', 'fx-revaluation:settled-share'],
      ['P', '2026-01-31', '-50.00', null], ['P', '2026-02-01', '-50.00', 'fx-revaluation:settled-share'], ['P', '2026-02-01', '50.00', null]].sort());
    const fx = async (asOf: string) => [await balance('4300', asOf), await balance('5500', asOf), await balance('4310', asOf), await balance('5510', asOf)];
    // January: realized gain 50.00 (A), realized loss 50.00 (P); unrealized only the bank's 50.00 gain, reversed on Feb 1
    expect(await fx('2026-01-31')).toEqual(['-50.00', '50.00', '-50.00', '0.00']);
    expect(await fx('2026-02-28')).toEqual(['-50.00', '50.00', '0.00', '0.00']);
    for (const day of ['2026-01-31', '2026-02-01']) await expectAgingIsAr(day, '0.00');
    await expectOpenAmountsKept(t, orgId);
  });
});
