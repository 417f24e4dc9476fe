import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { registerUser, type TestUser } from '../support/factories.js';
import { expectOpenAmountsKept, rUrl } from '../receivables/receivables-support.js';
import { payablesUrl } from '../payables/payables-support.js';
import { ledgerUrl } from './ledger-support.js';
import { fxBooks } from './fx-support.js';

/**
 * The review of the realization of settled shares inside autoReverse windows (base USD, EUR 1,000.00 documents dated
 * Jan 5 at 1.10, two revaluations with autoReverse, both reversed on Feb 1):
 *  - (a) the reversals of one date net to 0: revalued Jan 10 at 1.12 (+20.00), EUR 500.00 settled Jan 15 at 1.12,
 *    revalued Jan 20 at 1.08 (-20.00 on the 500.00 left), the rest settled Jan 25 at 1.08. Everything is settled at
 *    what it carried: no result at all, in either month (the second settlement's share is realized although the
 *    date's reversals net to 0);
 *  - (b) the reversals of the date net to the opposite of the share's own revaluation: 1.10 -> 1.12 -> 1.00, EUR 900.00
 *    settled at 1.12, the last 100.00 at 1.00: 8.00 realized in January, split by the shares' results on each unrealized
 *    account (a gain of 18.00 realized by the first; by the second 2.00 gained on 4310 and 12.00 lost on 5510), nothing
 *    unrealized left on the settled invoice;
 *  - the unrealized FX accounts changed in the settings between the revaluation and the settlement: the compensation
 *    and the realization use the account the revaluation (and its reversal) posted to, not the settings' new one; so
 *    does a credit note taking the credited share's revaluation off, and a void in the window (what it takes off on its
 *    date, and the compensation of the reversal dated after it: AR and AP);
 *  - a void after (or in the window of) several revaluations: each unrealized FX account they moved the item on is
 *    brought back by its own amount (a gain then a loss; two gains on accounts changed in between), AR and AP;
 *  - unrealized FX accounts of another type (an equity reserve) changed back to the standard ones: a void after the
 *    revaluation, and one in its window, take the revaluation off the reserve, AR and AP.
 * Each asserts the months' realized and unrealized results and the control account equal to the aging at the month ends.
 */
describe('FX revaluation windows: the realized share classified by its own result, on the reversal\'s account', () => {
  let t: TestApp;
  let owner: TestUser;

  beforeAll(async () => {
    t = await createTestApp();
    owner = await registerUser(t, 'owner');
  });
  afterAll(() => t.close());

  async function books(name: string, rates: Record<string, string>) {
    const b = await fxBooks(t, owner, name, { rates, documentDate: '2026-01-05' });
    const { orgId } = b;
    const balance = async (code: string, asOf: string) => Number(await b.balance(code, asOf));
    /** January's and February's own FX results (a gain positive): realized (4300, 5500) and unrealized (4310, 5510, and `more`) */
    const split = async (more: string[] = []) => {
      const result = async (asOf: string) => ({
        realized: -(await balance('4300', asOf)) - (await balance('5500', asOf)),
        unrealized: -(await balance('4310', asOf)) - (await balance('5510', asOf)) - (await Promise.all(more.map((c) => balance(c, asOf)))).reduce((s, b) => s + b, 0),
      });
      const [jan, feb] = [await result('2026-01-31'), await result('2026-02-28')];
      return {
        january: { realized: jan.realized.toFixed(2), unrealized: jan.unrealized.toFixed(2) },
        february: { realized: (feb.realized - jan.realized).toFixed(2), unrealized: (feb.unrealized - jan.unrealized).toFixed(2) },
      };
    };
    const revalue = (date: string, autoReverse = true) => b.revalue(date, autoReverse).expect(201);
    const arPay = async (invoiceId: string, date: string, amount: string, rate: string) =>
      (await b.arPayment({ date, amount, rate, allocations: [{ invoiceId, amount }] }).expect(201)).body;
    const apPay = async (billId: string, date: string, amount: string, rate: string) =>
      (await b.apPayment({ paymentDate: date, amount, rate, allocations: [{ billId, amount }] }).expect(201)).body;
    /** the lines of an entry: account code, base debit and credit */
    const lines = async (entryId: string) => (await t.db.admin.query(`SELECT a.code, l.base_debit::numeric(20, 2)::text AS debit, l.base_credit::numeric(20, 2)::text AS credit
      FROM finance.journal_lines l JOIN finance.accounts a ON a.org_id = l.org_id AND a.id = l.account_id WHERE l.org_id = $1 AND l.entry_id = $2 ORDER BY l.line_no`, [orgId, entryId])).rows;
    /** the entries settlePendingReversals posted, in order */
    const marked = async () => (await t.db.admin.query(`SELECT e.id, e.entry_date::text AS date, e.source_ref AS ref
      FROM finance.journal_entries e WHERE e.org_id = $1 AND e.source_ref IN ('fx-revaluation:settled-share', 'fx-revaluation:realized-share') ORDER BY e.seq`, [orgId])).rows;
    const auditAfter = async (action: string) => (await t.db.admin.query(`SELECT after FROM core.audit_logs WHERE org_id = $1 AND action = $2 ORDER BY id`, [orgId, action])).rows.map((r) => r.after);
    return { ...b, balance, split, revalue, arPay, apPay, lines, marked, auditAfter };
  }

  const netZero = { '2026-01-05': '1.10', '2026-01-10': '1.12', '2026-01-20': '1.08' };
  const opposite = { '2026-01-05': '1.10', '2026-01-10': '1.12', '2026-01-20': '1.00' };

  it('AR (a): the reversals of Feb 1 net to 0: the second payment\'s share is still realized, on the loss pair; no result is left in either month', async () => {
    const b = await books('AR window, reversals netting to 0', netZero);
    const inv = await b.invoice();
    await b.revalue('2026-01-10');
    expect((await b.arPay(inv.id, '2026-01-15', '500.00', '1.12')).allocations[0].realizedFx).toBe('0.00');
    await b.revalue('2026-01-20');
    expect((await b.arPay(inv.id, '2026-01-25', '500.00', '1.08')).allocations[0].realizedFx).toBe('0.00');
    // received 560.00 + 540.00 for 1,100.00: nothing realized, nothing unrealized on a settled invoice (the unrealized
    // -20.00 is the bank's EUR 500.00 revalued on Jan 20 from 1.12 to 1.08, reversed on Feb 1)
    expect(await b.split()).toEqual({ january: { realized: '0.00', unrealized: '-20.00' }, february: { realized: '0.00', unrealized: '20.00' } });
    await b.expectAgingIsAr('2026-01-31', '0.00');
    await b.expectAgingIsAr('2026-02-01', '0.00');
    await b.expectAgingIsAr('2026-02-28', '0.00');
    // the second share carried the 10.00 gain of its half of the first revaluation on 4310 and the 20.00 loss of the
    // second on 5510 (a loss of 10.00 net): each compensated on its account, and realized off it on Jan 25 to the
    // realized account of its kind
    const entries = await b.marked();
    expect(entries.map((e) => [e.date, e.ref])).toEqual([
      ['2026-02-01', 'fx-revaluation:settled-share'], ['2026-01-15', 'fx-revaluation:realized-share'],
      ['2026-02-01', 'fx-revaluation:settled-share'], ['2026-01-25', 'fx-revaluation:realized-share']]);
    expect(await b.lines(entries[2].id)).toEqual([{ code: '1200', debit: '10.00', credit: '0.00' }, { code: '4310', debit: '0.00', credit: '10.00' },
      { code: '1200', debit: '0.00', credit: '20.00' }, { code: '5510', debit: '20.00', credit: '0.00' }]);
    expect(await b.lines(entries[3].id)).toEqual([{ code: '4310', debit: '10.00', credit: '0.00' }, { code: '4300', debit: '0.00', credit: '10.00' },
      { code: '5500', debit: '20.00', credit: '0.00' }, { code: '5510', debit: '0.00', credit: '20.00' }]);
    const [, second] = await b.auditAfter('receivables.payment_received');
    expect([second.compensationEntryIds, second.realizationEntryIds]).toEqual([[entries[2].id], [entries[3].id]]);
    await expectOpenAmountsKept(t, b.orgId);
  });

  it('AR (b): the reversals of Feb 1 net to a gain, the share lost 10.00 (2.00 gained on 4310, 12.00 lost on 5510): each realized (not "unrealized again"), January realizes 8.00 and keeps nothing unrealized', async () => {
    const b = await books('AR window, reversals opposite to the share', opposite);
    const inv = await b.invoice();
    await b.revalue('2026-01-10');
    await b.arPay(inv.id, '2026-01-15', '900.00', '1.12');
    await b.revalue('2026-01-20');
    await b.arPay(inv.id, '2026-01-25', '100.00', '1.00');
    // received 1,008.00 + 100.00 for 1,100.00 (the unrealized -108.00: the bank's EUR 900.00 revalued on Jan 20 from 1.12 to 1.00)
    expect(await b.split()).toEqual({ january: { realized: '8.00', unrealized: '-108.00' }, february: { realized: '0.00', unrealized: '108.00' } });
    // the first share's gain (18.00) and the second's part of it (2.00) on the realized gain account, the second's loss
    // (12.00, on 5510) on the realized loss account
    expect([await b.balance('4300', '2026-01-31'), await b.balance('5500', '2026-01-31')]).toEqual([-20, 12]);
    await b.expectAgingIsAr('2026-01-31', '0.00');
    await b.expectAgingIsAr('2026-02-01', '0.00');
    const entries = await b.marked();
    expect(await b.lines(entries[2].id)).toEqual([{ code: '1200', debit: '2.00', credit: '0.00' }, { code: '4310', debit: '0.00', credit: '2.00' },
      { code: '1200', debit: '0.00', credit: '12.00' }, { code: '5510', debit: '12.00', credit: '0.00' }]);
    expect(await b.lines(entries[3].id)).toEqual([{ code: '4310', debit: '2.00', credit: '0.00' }, { code: '4300', debit: '0.00', credit: '2.00' },
      { code: '5500', debit: '12.00', credit: '0.00' }, { code: '5510', debit: '0.00', credit: '12.00' }]);
    await expectOpenAmountsKept(t, b.orgId);
  });

  it('AP (a) and (b): the mirror: no result left on a bill settled at what it carried; the opposite case realizes each account\'s loss and gain', async () => {
    const a = await books('AP window, reversals netting to 0', netZero);
    const bill = await a.bill();
    await a.revalue('2026-01-10');
    expect((await a.apPay(bill.id, '2026-01-15', '500.00', '1.12')).allocations.map((x: any) => x.fxDifference)).toEqual(['0.00']);
    await a.revalue('2026-01-20');
    expect((await a.apPay(bill.id, '2026-01-25', '500.00', '1.08')).allocations.map((x: any) => x.fxDifference)).toEqual(['0.00']);
    // the unrealized 20.00: the bank's EUR -500.00 revalued on Jan 20 from 1.12 to 1.08, reversed on Feb 1
    expect(await a.split()).toEqual({ january: { realized: '0.00', unrealized: '20.00' }, february: { realized: '0.00', unrealized: '-20.00' } });
    await a.expectAgingIsAp('2026-01-31', '0.00');
    await a.expectAgingIsAp('2026-02-01', '0.00');
    const entries = await a.marked();
    // the second share's result on AP: a loss of 10.00 on 5510 and a gain of 20.00 on 4310, each compensated on its
    // unrealized account and realized off it
    expect(await a.lines(entries[2].id)).toEqual([{ code: '2100', debit: '0.00', credit: '10.00' }, { code: '5510', debit: '10.00', credit: '0.00' },
      { code: '2100', debit: '20.00', credit: '0.00' }, { code: '4310', debit: '0.00', credit: '20.00' }]);
    expect(await a.lines(entries[3].id)).toEqual([{ code: '5500', debit: '10.00', credit: '0.00' }, { code: '5510', debit: '0.00', credit: '10.00' },
      { code: '4310', debit: '20.00', credit: '0.00' }, { code: '4300', debit: '0.00', credit: '20.00' }]);
    const [, second] = await a.auditAfter('payables.payment_created');
    expect([second.compensationEntryIds, second.realizationEntryIds]).toEqual([[entries[2].id], [entries[3].id]]);

    const b = await books('AP window, reversals opposite to the share', opposite);
    const other = await b.bill();
    await b.revalue('2026-01-10');
    await b.apPay(other.id, '2026-01-15', '900.00', '1.12');
    await b.revalue('2026-01-20');
    await b.apPay(other.id, '2026-01-25', '100.00', '1.00');
    // paid 1,008.00 + 100.00 for 1,100.00 booked: a loss of 8.00, 18.00 lost by the first share, 10.00 gained by the
    // second (2.00 lost on 5510, 12.00 gained on 4310)
    expect(await b.split()).toEqual({ january: { realized: '-8.00', unrealized: '108.00' }, february: { realized: '0.00', unrealized: '-108.00' } });
    expect([await b.balance('5500', '2026-01-31'), await b.balance('4300', '2026-01-31')]).toEqual([20, -12]);
    await b.expectAgingIsAp('2026-01-31', '0.00');
    await b.expectAgingIsAp('2026-02-01', '0.00');
  });

  it('the unrealized FX accounts changed after the revaluation: the compensation and the realization use the accounts the revaluation posted to', async () => {
    const b = await books('Unrealized accounts changed in the window', { '2026-01-15': '1.10', '2026-01-31': '1.15' });
    const inv = await b.invoice('2026-01-15');
    const bill = await b.bill('2026-01-15');
    await b.revalue('2026-01-31');
    // new unrealized accounts from now on
    const add = async (code: string, type: string, parent: string) =>
      (b.acc[code] = (await t.http.post(ledgerUrl(b.orgId, 'accounts')).set(owner.auth).send({ code, name: `Unrealized FX ${code}`, type, parentId: b.acc[parent] }).expect(201)).body.id);
    await add('4320', 'revenue', '4000');
    await add('5520', 'expense', '5000');
    await t.http.patch(ledgerUrl(b.orgId, 'settings')).set(owner.auth).send({ fxUnrealizedGainAccountId: b.acc['4320'], fxUnrealizedLossAccountId: b.acc['5520'] }).expect(200);
    await b.arPay(inv.id, '2026-01-31', '1000.00', '1.20');
    await b.apPay(bill.id, '2026-01-31', '1000.00', '1.20');
    // AR: 100.00 realized gain; AP: 100.00 realized loss; nothing left on any unrealized account in either month
    expect(await b.split(['4320', '5520'])).toEqual({ january: { realized: '0.00', unrealized: '0.00' }, february: { realized: '0.00', unrealized: '0.00' } });
    expect([await b.balance('4300', '2026-01-31'), await b.balance('5500', '2026-01-31')]).toEqual([-100, 100]);
    for (const asOf of ['2026-01-31', '2026-02-28']) {
      expect({ asOf, unrealized: await Promise.all(['4310', '5510', '4320', '5520'].map((c) => b.balance(c, asOf))) }).toEqual({ asOf, unrealized: [0, 0, 0, 0] });
    }
    await b.expectAgingIsAr('2026-01-31', '0.00');
    await b.expectAgingIsAr('2026-02-01', '0.00');
    await b.expectAgingIsAp('2026-01-31', '0.00');
    await b.expectAgingIsAp('2026-02-01', '0.00');
    await expectOpenAmountsKept(t, b.orgId);
  });

  it('the unrealized FX accounts changed after the revaluation: an invoice and a bill voided in the window are taken off, and their reversals compensated, on the accounts the revaluation posted to', async () => {
    const b = await books('Unrealized accounts changed before a void in the window', { '2026-01-15': '1.10', '2026-01-31': '1.15' });
    const inv = await b.invoice('2026-01-15');
    const bill = await b.bill('2026-01-15');
    await b.revalue('2026-01-31');
    for (const [code, type, parent] of [['4320', 'revenue', '4000'], ['5520', 'expense', '5000']]) {
      b.acc[code] = (await t.http.post(ledgerUrl(b.orgId, 'accounts')).set(owner.auth).send({ code, name: `Unrealized FX ${code}`, type, parentId: b.acc[parent] }).expect(201)).body.id;
    }
    await t.http.patch(ledgerUrl(b.orgId, 'settings')).set(owner.auth).send({ fxUnrealizedGainAccountId: b.acc['4320'], fxUnrealizedLossAccountId: b.acc['5520'] }).expect(200);
    await t.http.post(rUrl(b.orgId, `invoices/${inv.id}/void`)).set(owner.auth).send({ date: '2026-01-31' }).expect(200);
    await t.http.post(payablesUrl(b.orgId, `bills/${bill.id}/void`)).set(owner.auth).send({ date: '2026-01-31' }).expect(200);
    // the void takes the item's 50.00 off on Jan 31, and puts back on Feb 1 what the reversal takes off it then: both on
    // the account the revaluation (and its reversal) used, 4310 for the invoice's gain, 5510 for the bill's loss
    const [arVoid] = await b.auditAfter('receivables.invoice_voided');
    const [apVoid] = await b.auditAfter('payables.bill_voided');
    expect([arVoid.compensationEntryIds?.length, apVoid.compensationEntryIds?.length]).toEqual([1, 1]);
    expect({ takenOff: await b.lines(arVoid.revaluationEntryId), compensated: await b.lines(arVoid.compensationEntryIds[0]) }).toEqual({
      takenOff: [{ code: '1200', debit: '0.00', credit: '50.00' }, { code: '4310', debit: '50.00', credit: '0.00' }],
      compensated: [{ code: '1200', debit: '50.00', credit: '0.00' }, { code: '4310', debit: '0.00', credit: '50.00' }] });
    expect({ takenOff: await b.lines(apVoid.revaluationEntryId), compensated: await b.lines(apVoid.compensationEntryIds[0]) }).toEqual({
      takenOff: [{ code: '2100', debit: '50.00', credit: '0.00' }, { code: '5510', debit: '0.00', credit: '50.00' }],
      compensated: [{ code: '2100', debit: '0.00', credit: '50.00' }, { code: '5510', debit: '50.00', credit: '0.00' }] });
    // no result left anywhere in either month; the settings' new accounts never moved
    expect(await b.split(['4320', '5520'])).toEqual({ january: { realized: '0.00', unrealized: '0.00' }, february: { realized: '0.00', unrealized: '0.00' } });
    for (const asOf of ['2026-01-31', '2026-02-01', '2026-02-28']) {
      expect({ asOf, unrealized: await Promise.all(['4310', '5510', '4320', '5520'].map((c) => b.balance(c, asOf))) }).toEqual({ asOf, unrealized: [0, 0, 0, 0] });
      await b.expectAgingIsAr(asOf, '0.00');
      await b.expectAgingIsAp(asOf, '0.00');
    }
    await expectOpenAmountsKept(t, b.orgId);
  });

  /**
   * The voids of an invoice and a bill revalued several times (r3's review): each unrealized FX account a revaluation (or
   * a reversal, a compensation) moved the item on is brought back by its own amount, not the item's net off one account.
   * `dates`: the days every FX account (4310, 5510, 4320, 5520) is 0 and AR and AP equal their agings (0.00).
   */
  async function voidBoth(b: Awaited<ReturnType<typeof books>>, invoiceId: string, billId: string, date: string, dates: string[]) {
    await t.http.post(rUrl(b.orgId, `invoices/${invoiceId}/void`)).set(owner.auth).send({ date }).expect(200);
    await t.http.post(payablesUrl(b.orgId, `bills/${billId}/void`)).set(owner.auth).send({ date }).expect(200);
    for (const asOf of dates) {
      expect({ asOf, fx: await Promise.all(['4310', '5510', '4320', '5520'].map((c) => (b.acc[c] ? b.balance(c, asOf) : 0))), sales: await b.balance('4100', asOf) })
        .toEqual({ asOf, fx: [0, 0, 0, 0], sales: 0 });
      await b.expectAgingIsAr(asOf, '0.00');
      await b.expectAgingIsAp(asOf, '0.00');
    }
    await expectOpenAmountsKept(t, b.orgId);
    const [arVoid] = await b.auditAfter('receivables.invoice_voided');
    const [apVoid] = await b.auditAfter('payables.bill_voided');
    return { arVoid, apVoid };
  }
  const addFxAccounts = async (b: Awaited<ReturnType<typeof books>>) => {
    for (const [code, type, parent] of [['4320', 'revenue', '4000'], ['5520', 'expense', '5000']]) {
      b.acc[code] = (await t.http.post(ledgerUrl(b.orgId, 'accounts')).set(owner.auth).send({ code, name: `Unrealized FX ${code}`, type, parentId: b.acc[parent] }).expect(201)).body.id;
    }
    await t.http.patch(ledgerUrl(b.orgId, 'settings')).set(owner.auth).send({ fxUnrealizedGainAccountId: b.acc['4320'], fxUnrealizedLossAccountId: b.acc['5520'] }).expect(200);
  };

  it('a void after several revaluations takes each unrealized FX account\'s own amount off: a gain then a loss; two gains on accounts changed in between (AR and AP)', async () => {
    // (a) 1.10 -> 1.15 (Jan 31: AR +50.00 on 4310, AP +50.00 on 5510) -> 1.12 (Feb 28: AR -30.00 on 5510, AP -30.00 on 4310)
    const a = await books('Void after a gain and a loss', { '2026-01-15': '1.10', '2026-01-31': '1.15', '2026-02-28': '1.12' });
    const [inv, bill] = [await a.invoice('2026-01-15'), await a.bill('2026-01-15')];
    await a.revalue('2026-01-31', false);
    await a.revalue('2026-02-28', false);
    const voided = await voidBoth(a, inv.id, bill.id, '2026-03-05', ['2026-03-05', '2026-03-31']);
    // AR carried +20.00: 50.00 off the gain account, 30.00 off the loss account (not the net 20.00 off the gain account)
    expect(await a.lines(voided.arVoid.revaluationEntryId)).toEqual([
      { code: '1200', debit: '0.00', credit: '50.00' }, { code: '4310', debit: '50.00', credit: '0.00' },
      { code: '1200', debit: '30.00', credit: '0.00' }, { code: '5510', debit: '0.00', credit: '30.00' }]);
    expect(await a.lines(voided.apVoid.revaluationEntryId)).toEqual([
      { code: '2100', debit: '50.00', credit: '0.00' }, { code: '5510', debit: '0.00', credit: '50.00' },
      { code: '2100', debit: '0.00', credit: '30.00' }, { code: '4310', debit: '30.00', credit: '0.00' }]);

    // (b) 1.10 -> 1.15 (Jan 31: AR +50.00 on 4310, AP +50.00 on 5510), the settings then name 4320 and 5520, -> 1.20
    // (Feb 28: AR +50.00 on 4320, AP +50.00 on 5520): each void takes 50.00 off each account (not 100.00 off the new one)
    const b = await books('Void after two gains on changed accounts', { '2026-01-15': '1.10', '2026-01-31': '1.15', '2026-02-28': '1.20' });
    const [inv2, bill2] = [await b.invoice('2026-01-15'), await b.bill('2026-01-15')];
    await b.revalue('2026-01-31', false);
    await addFxAccounts(b);
    await b.revalue('2026-02-28', false);
    const again = await voidBoth(b, inv2.id, bill2.id, '2026-03-05', ['2026-03-05', '2026-03-31']);
    expect(await b.lines(again.arVoid.revaluationEntryId)).toEqual([
      { code: '1200', debit: '0.00', credit: '50.00' }, { code: '4310', debit: '50.00', credit: '0.00' },
      { code: '1200', debit: '0.00', credit: '50.00' }, { code: '4320', debit: '50.00', credit: '0.00' }]);
  });

  it('a void in the window of several revaluations: each account\'s own amount is taken off on the void\'s date, and put back on the reversals\' date on each account they move (AR and AP)', async () => {
    // Jan 20 at 1.15 (AR +50.00 on 4310, AP +50.00 on 5510) and Jan 31 at 1.12 (AR -30.00 on 5510, AP -30.00 on 4310),
    // both reversed on Feb 1; voided Jan 31
    const a = await books('Void in the window of a gain and a loss', { '2026-01-15': '1.10', '2026-01-20': '1.15', '2026-01-31': '1.12' });
    const [inv, bill] = [await a.invoice('2026-01-15'), await a.bill('2026-01-15')];
    await a.revalue('2026-01-20');
    await a.revalue('2026-01-31');
    const voided = await voidBoth(a, inv.id, bill.id, '2026-01-31', ['2026-01-31', '2026-02-01', '2026-02-28']);
    // Feb 1: the reversals take -50.00 (4310) and +30.00 (5510) off the invoice, which carries nothing: each put back on its account
    expect(voided.arVoid.compensationEntryIds).toHaveLength(1);
    expect(await a.lines(voided.arVoid.compensationEntryIds[0])).toEqual([
      { code: '1200', debit: '50.00', credit: '0.00' }, { code: '4310', debit: '0.00', credit: '50.00' },
      { code: '1200', debit: '0.00', credit: '30.00' }, { code: '5510', debit: '30.00', credit: '0.00' }]);
    expect(await a.split()).toEqual({ january: { realized: '0.00', unrealized: '0.00' }, february: { realized: '0.00', unrealized: '0.00' } });

    // Jan 20 at 1.15 (AR +50.00 on 4310, AP +50.00 on 5510), the settings then name 4320 and 5520, Jan 31 at 1.20 (AR
    // +50.00 on 4320, AP +50.00 on 5520), both reversed on Feb 1; voided Jan 31: two take-offs of the same 50.00 each
    const b = await books('Void in the window of two gains on changed accounts', { '2026-01-15': '1.10', '2026-01-20': '1.15', '2026-01-31': '1.20' });
    const [inv2, bill2] = [await b.invoice('2026-01-15'), await b.bill('2026-01-15')];
    await b.revalue('2026-01-20');
    await addFxAccounts(b);
    await b.revalue('2026-01-31');
    const again = await voidBoth(b, inv2.id, bill2.id, '2026-01-31', ['2026-01-31', '2026-02-01', '2026-02-28']);
    expect(await b.lines(again.apVoid.compensationEntryIds[0])).toEqual([
      { code: '2100', debit: '0.00', credit: '50.00' }, { code: '5510', debit: '50.00', credit: '0.00' },
      { code: '2100', debit: '0.00', credit: '50.00' }, { code: '5520', debit: '50.00', credit: '0.00' }]);
    expect(await b.split(['4320', '5520'])).toEqual({ january: { realized: '0.00', unrealized: '0.00' }, february: { realized: '0.00', unrealized: '0.00' } });
  });

  it('the unrealized FX accounts changed after the revaluation: a credit note takes the credited share\'s revaluation off the account the revaluation posted to', async () => {
    const b = await books('Unrealized accounts changed before a credit note', { '2026-01-15': '1.10', '2026-01-31': '1.15' });
    const inv = await b.invoice('2026-01-15');
    await b.revalue('2026-01-31', false);
    const gain = (await t.http.post(ledgerUrl(b.orgId, 'accounts')).set(owner.auth).send({ code: '4320', name: 'Unrealized FX 4320', type: 'revenue', parentId: b.acc['4000'] }).expect(201)).body.id;
    await t.http.patch(ledgerUrl(b.orgId, 'settings')).set(owner.auth).send({ fxUnrealizedGainAccountId: gain }).expect(200);
    const cn = (await t.http.post(rUrl(b.orgId, `invoices/${inv.id}/credit-notes`)).set(owner.auth).send({ date: '2026-02-05' }).expect(201)).body;
    // revenue back at the invoice's rate (1,100.00), AR off at what it carries (1,150.00), the 50.00 off the account the revaluation credited
    expect(await b.lines(cn.entryId)).toEqual(expect.arrayContaining([{ code: '1200', debit: '0.00', credit: '1150.00' }, { code: '4310', debit: '50.00', credit: '0.00' }]));
    expect([await b.balance('4310', '2026-02-28'), Number((await t.http.get(ledgerUrl(b.orgId, `accounts/${gain}/balance?asOf=2026-02-28`)).set(owner.auth).expect(200)).body.baseBalance)])
      .toEqual([0, 0]);
    await b.expectAgingIsAr('2026-02-05', '0.00');
    await expectOpenAmountsKept(t, b.orgId);
  });

  /**
   * Settings written before PATCH /ledger/settings refused an FX account that is no revenue or expense account
   * (ledger.fx_account_type) may name one (r5's review: an equity "FX reserve"): the revaluation's FX line is found by
   * the entry's pair structure (control line, FX line), not by the account's type, so a void after a settings change
   * takes the item's revaluation off the reserve, not off the settings' new account.
   */
  it('unrealized FX accounts of another type (an equity reserve), then the standard ones: a void after the revaluation, and one in its window, take the revaluation off the reserve (AR and AP)', async () => {
    const withReserve = async (name: string) => {
      const b = await books(name, { '2026-01-05': '1.10', '2026-01-31': '1.15' });
      b.acc['3400'] = (await t.http.post(ledgerUrl(b.orgId, 'accounts')).set(owner.auth).send({ code: '3400', name: 'FX reserve', type: 'equity', parentId: b.acc['3000'] }).expect(201)).body.id;
      // the API refuses it now: written as such older settings are
      await t.db.admin.query('UPDATE finance.settings SET fx_unrealized_gain_account_id = $2, fx_unrealized_loss_account_id = $2 WHERE org_id = $1', [b.orgId, b.acc['3400']]);
      return { b, inv: await b.invoice(), bill: await b.bill() };
    };
    const standard = (b: Awaited<ReturnType<typeof books>>) =>
      t.http.patch(ledgerUrl(b.orgId, 'settings')).set(owner.auth).send({ fxUnrealizedGainAccountId: b.acc['4310'], fxUnrealizedLossAccountId: b.acc['5510'] }).expect(200);
    const fxAccounts = (b: Awaited<ReturnType<typeof books>>, asOf: string) => Promise.all(['3400', '4310', '5510'].map((c) => b.balance(c, asOf)));

    // voided after the revaluation (Jan 31: AR +50.00, AP +50.00, both on 3400), the settings naming 4310 and 5510 by then
    const after = await withReserve('Equity FX reserve, void after');
    await after.b.revalue('2026-01-31', false);
    await standard(after.b);
    await t.http.post(rUrl(after.b.orgId, `invoices/${after.inv.id}/void`)).set(owner.auth).send({ date: '2026-02-05' }).expect(200);
    await t.http.post(payablesUrl(after.b.orgId, `bills/${after.bill.id}/void`)).set(owner.auth).send({ date: '2026-02-05' }).expect(200);
    const [arVoid] = await after.b.auditAfter('receivables.invoice_voided');
    const [apVoid] = await after.b.auditAfter('payables.bill_voided');
    expect({ ar: await after.b.lines(arVoid.revaluationEntryId), ap: await after.b.lines(apVoid.revaluationEntryId) }).toEqual({
      ar: [{ code: '1200', debit: '0.00', credit: '50.00' }, { code: '3400', debit: '50.00', credit: '0.00' }],
      ap: [{ code: '2100', debit: '50.00', credit: '0.00' }, { code: '3400', debit: '0.00', credit: '50.00' }] });
    for (const asOf of ['2026-02-05', '2026-02-28']) {
      expect({ asOf, fx: await fxAccounts(after.b, asOf) }).toEqual({ asOf, fx: [0, 0, 0] });
      await after.b.expectAgingIsAr(asOf, '0.00');
      await after.b.expectAgingIsAp(asOf, '0.00');
    }
    await expectOpenAmountsKept(t, after.b.orgId);

    // voided in the window (autoReverse: reversed Feb 1): taken off 3400 on Jan 31, and the reversals' take-off put back there on Feb 1
    const inWindow = await withReserve('Equity FX reserve, void in the window');
    await inWindow.b.revalue('2026-01-31');
    await standard(inWindow.b);
    await t.http.post(rUrl(inWindow.b.orgId, `invoices/${inWindow.inv.id}/void`)).set(owner.auth).send({ date: '2026-01-31' }).expect(200);
    await t.http.post(payablesUrl(inWindow.b.orgId, `bills/${inWindow.bill.id}/void`)).set(owner.auth).send({ date: '2026-01-31' }).expect(200);
    const [arWindow] = await inWindow.b.auditAfter('receivables.invoice_voided');
    const [apWindow] = await inWindow.b.auditAfter('payables.bill_voided');
    expect({ takenOff: await inWindow.b.lines(arWindow.revaluationEntryId), compensated: await inWindow.b.lines(arWindow.compensationEntryIds[0]) }).toEqual({
      takenOff: [{ code: '1200', debit: '0.00', credit: '50.00' }, { code: '3400', debit: '50.00', credit: '0.00' }],
      compensated: [{ code: '1200', debit: '50.00', credit: '0.00' }, { code: '3400', debit: '0.00', credit: '50.00' }] });
    expect({ takenOff: await inWindow.b.lines(apWindow.revaluationEntryId), compensated: await inWindow.b.lines(apWindow.compensationEntryIds[0]) }).toEqual({
      takenOff: [{ code: '2100', debit: '50.00', credit: '0.00' }, { code: '3400', debit: '0.00', credit: '50.00' }],
      compensated: [{ code: '2100', debit: '0.00', credit: '50.00' }, { code: '3400', debit: '50.00', credit: '0.00' }] });
    for (const asOf of ['2026-01-31', '2026-02-01', '2026-02-28']) {
      expect({ asOf, fx: await fxAccounts(inWindow.b, asOf) }).toEqual({ asOf, fx: [0, 0, 0] });
      await inWindow.b.expectAgingIsAr(asOf, '0.00');
      await inWindow.b.expectAgingIsAp(asOf, '0.00');
    }
    await expectOpenAmountsKept(t, inWindow.b.orgId);
  });
});
