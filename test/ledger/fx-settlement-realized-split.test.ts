import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { registerUser, type TestUser } from '../support/factories.js';
import { expectOpenAmountsKept, issueInvoice, rUrl } from '../receivables/receivables-support.js';
import { ledgerUrl } from './ledger-support.js';
import { fxBooks } from './fx-support.js';

const FX_ACCOUNT_MIGRATION = new URL('../../prisma/migrations/20270210250100_fx_revaluation_items_fx_account/migration.sql', import.meta.url);

/**
 * The realized / unrealized split of FX results when a revalued item is settled or credited (base USD; EUR 1.10 on
 * Jan 15, 1.15 on Jan 31, 1.20 on Feb 10; an invoice or bill of EUR 1,000.00 on Jan 15 at 1.10, revalued as of Jan 31 at
 * 1.15: 50.00 unrealized). The worked example: paid on Jan 31 at 1.20 inside the autoReverse window (reversal Feb 1),
 * the whole 100.00 is realized in January and no unrealized result is left on the settled item in January or February:
 * the settled share's unrealized 50.00 moves to the realized account on the settlement's date (an entry marked
 * fx-revaluation:realized-share), the Feb 1 compensation puts the reversal's 50.00 back on the unrealized account.
 *  - AR and AP, paid in full; AR half paid, then the allocation reversed (the share's result goes back to unrealized);
 *  - a credit note cancels the item at what it carries: the credited share's revaluation is taken off the unrealized
 *    account, nothing is realized (full, partial, and inside the window);
 *  - a settlement whose compensation falls in a closed period says so (422 ledger.period_closed);
 *  - the settlements' audit rows list the compensation and the realization entries, each on its own;
 *  - an item revalued onto both unrealized FX accounts (a gain, then a loss; or accounts changed in the settings): a
 *    share settled or credited takes each account's share of what the item carries there (rounded to sum to the share's,
 *    the last share all that is left), AR and AP;
 *  - each revaluation row keeps its own unrealized FX account (one compensation holding two invoices' equal amounts on
 *    two accounts; the migration's backfill tells it from the entry alike), and a credit note writes what it took off each account, so the last credit takes exactly the rest,
 *    also when the item's revaluations net to 0 over the two accounts.
 */
describe('FX revaluation: the realized and unrealized split of settled and credited items', () => {
  let t: TestApp;
  let owner: TestUser;

  beforeAll(async () => {
    t = await createTestApp();
    owner = await registerUser(t, 'owner');
  });
  afterAll(() => t.close());

  async function books(name: string, rates?: Record<string, string>) {
    const b = await fxBooks(t, owner, name, { rates });
    const { orgId } = b;
    const balance = async (code: string, asOf: string) => Number(await b.balance(code, asOf));
    /**
     * The FX results per month (a gain positive, a loss negative): realized (4300 gain, 5500 loss) and unrealized (4310
     * gain, 5510 loss), January's and February's own.
     */
    const split = async () => {
      const result = async (asOf: string) => ({
        realizedGain: -(await balance('4300', asOf)), realizedLoss: -(await balance('5500', asOf)),
        unrealizedGain: -(await balance('4310', asOf)), unrealizedLoss: -(await balance('5510', asOf)),
      });
      const [jan, feb] = [await result('2026-01-31'), await result('2026-02-28')];
      const month = (r: typeof jan, before?: typeof jan) => {
        const of = (k: keyof typeof jan) => r[k] - (before?.[k] ?? 0);
        return { realized: (of('realizedGain') + of('realizedLoss')).toFixed(2), unrealized: (of('unrealizedGain') + of('unrealizedLoss')).toFixed(2) };
      };
      return { january: month(jan), february: month(feb, jan) };
    };
    /** the entries settlePendingReversals posted, in order: date, mark and amount */
    const marked = async () => (await t.db.admin.query(`SELECT e.id, e.entry_date::text AS date, e.source_ref AS ref, e.total_base::numeric(20, 2)::text AS amount
      FROM finance.journal_entries e WHERE e.org_id = $1 AND e.source_ref LIKE 'fx-revaluation:%' ORDER BY e.seq`, [orgId])).rows;
    const auditAfter = async (action: string) => (await t.db.admin.query(`SELECT after FROM core.audit_logs WHERE org_id = $1 AND action = $2 ORDER BY id`, [orgId, action])).rows.map((r) => r.after);
    const footprint = async () => (await t.db.admin.query(`SELECT
      (SELECT count(*) FROM finance.journal_entries WHERE org_id = $1)::int AS entries, (SELECT count(*) FROM finance.fx_revaluation_items WHERE org_id = $1)::int AS items,
      (SELECT count(*) FROM finance.customer_payments WHERE org_id = $1)::int AS payments, (SELECT count(*) FROM finance.bill_payments WHERE org_id = $1)::int AS bill_payments,
      (SELECT count(*) FROM core.audit_logs WHERE org_id = $1)::int AS audit`, [orgId])).rows[0];
    /** the lines of an entry in order: account code, base debit and credit */
    const lines = async (entryId: string) => (await t.db.admin.query(`SELECT a.code, l.base_debit::numeric(20, 2)::text AS debit, l.base_credit::numeric(20, 2)::text AS credit
      FROM finance.journal_lines l JOIN finance.accounts a ON a.org_id = l.org_id AND a.id = l.account_id WHERE l.org_id = $1 AND l.entry_id = $2 ORDER BY l.line_no`, [orgId, entryId])).rows;
    /** the realized (4300, 5500) and unrealized (4310, 5510, and `more`) FX accounts' balances as of a day */
    const fxAccounts = async (asOf: string, more: string[] = []) => {
      const out: Record<string, number> = {};
      for (const code of ['4300', '5500', '4310', '5510', ...more]) out[code] = await balance(code, asOf);
      return out;
    };
    return { ...b, balance, split, marked, auditAfter, footprint, lines, fxAccounts };
  }

  it('AR, the worked example: paid on Jan 31 at 1.20 inside the window: January realizes 100.00 and keeps no unrealized result, February nets 0; the audit row lists the entries', async () => {
    const b = await books('AR paid at 1.20 in the window');
    const inv = await b.invoice();
    await b.revalue('2026-01-31', true).expect(201);
    const paid = await b.arPayment({ date: '2026-01-31', amount: '1000.00', rate: '1.20', allocations: [{ invoiceId: inv.id, amount: '1000.00' }] });
    // the payment realizes what it settles against what the invoice carries (1,150.00): 50.00; the revaluation's 50.00 is realized with it
    expect([paid.status, paid.body.allocations?.[0]?.realizedFx]).toEqual([201, '50.00']);
    expect(await b.split()).toEqual({ january: { realized: '100.00', unrealized: '0.00' }, february: { realized: '0.00', unrealized: '0.00' } });
    // the accounts themselves: all of January's result on the realized gain account, the unrealized gain account at 0 on both month ends
    expect([await b.balance('4300', '2026-01-31'), await b.balance('4310', '2026-01-31'), await b.balance('4310', '2026-02-28'), await b.balance('5510', '2026-02-28')])
      .toEqual([-100, 0, 0, 0]);
    await b.expectAgingIsAr('2026-01-31', '0.00');
    await b.expectAgingIsAr('2026-02-01', '0.00');
    // the realization dated with the payment, the compensation with the reversal
    const entries = await b.marked();
    expect(entries.map(({ id: _id, ...e }) => e)).toEqual([
      { date: '2026-02-01', ref: 'fx-revaluation:settled-share', amount: '50.00' }, { date: '2026-01-31', ref: 'fx-revaluation:realized-share', amount: '50.00' }]);
    const [audit] = await b.auditAfter('receivables.payment_received');
    expect([audit.compensationEntryIds, audit.realizationEntryIds]).toEqual([[entries[0].id], [entries[1].id]]);
    // the realization belongs to the settlement: not reversed on its own
    const alone = await t.http.post(ledgerUrl(b.orgId, `journal-entries/${entries[1].id}/reverse`)).set(owner.auth).send({});
    expect([alone.status, alone.body.error?.code]).toEqual([422, 'ledger.entry_of_document']);
    await expectOpenAmountsKept(t, b.orgId);
  });

  it('AR: half paid in the window at 1.20, then the allocation reversed: the half realizes its 25.00 of revaluation, which goes back to unrealized with the reversal', async () => {
    const b = await books('AR half paid in the window, reversed');
    const inv = await b.invoice();
    await b.revalue('2026-01-31', true).expect(201);
    const paid = (await b.arPayment({ date: '2026-01-31', amount: '500.00', rate: '1.20', allocations: [{ invoiceId: inv.id, amount: '500.00' }] }).expect(201)).body;
    expect(paid.allocations[0].realizedFx).toBe('25.00');
    // January: the paid half realized (1.20 - 1.10) x 500 = 50.00, the open half unrealized (1.15 - 1.10) x 500 = 25.00;
    // February: the open half's revaluation reversed (-25.00)
    expect(await b.split()).toEqual({ january: { realized: '50.00', unrealized: '25.00' }, february: { realized: '0.00', unrealized: '-25.00' } });
    await b.expectAgingIsAr('2026-01-31', '575.00');
    await b.expectAgingIsAr('2026-02-01', '550.00');
    const reversed = await t.http.post(rUrl(b.orgId, `allocations/${paid.allocations[0].id}/reverse`)).set(owner.auth).send({ date: '2026-01-31' });
    expect(reversed.status).toBe(201);
    // all open again: January as revalued (50.00 unrealized, nothing realized), February its reversal; the customer credit
    // (EUR 500.00 received at 1.20) is not revalued by then
    expect(await b.split()).toEqual({ january: { realized: '0.00', unrealized: '50.00' }, february: { realized: '0.00', unrealized: '-50.00' } });
    // and on the accounts the revaluation used: the unrealized gain account only
    expect([await b.balance('4310', '2026-01-31'), await b.balance('4310', '2026-02-28'), await b.balance('5510', '2026-02-28'), await b.balance('4300', '2026-02-28')])
      .toEqual([-50, 0, 0, 0]);
    await b.expectAgingIsAr('2026-01-31', '550.00');
    await b.expectAgingIsAr('2026-02-01', '500.00');
    const [audit] = await b.auditAfter('receivables.allocation_reversed');
    const entries = await b.marked();
    // the payment's compensation and realization, then the reversal's
    expect(entries.map((e) => [e.date, e.ref])).toEqual([
      ['2026-02-01', 'fx-revaluation:settled-share'], ['2026-01-31', 'fx-revaluation:realized-share'],
      ['2026-02-01', 'fx-revaluation:settled-share'], ['2026-01-31', 'fx-revaluation:realized-share']]);
    expect([audit.compensationEntryIds, audit.realizationEntryIds]).toEqual([[entries[2].id], [entries[3].id]]);
    await expectOpenAmountsKept(t, b.orgId);
  });

  it('AP, the worked example: a bill paid on Jan 31 at 1.20 inside the window: January realizes the 100.00 loss and keeps no unrealized loss; February nets 0', async () => {
    const b = await books('AP paid at 1.20 in the window');
    const bill = await b.bill();
    await b.revalue('2026-01-31', true).expect(201);
    const paid = await b.apPayment({ paymentDate: '2026-01-31', amount: '1000.00', rate: '1.20', allocations: [{ billId: bill.id, amount: '1000.00' }] });
    expect([paid.status, paid.body.allocations?.map((a: any) => a.fxDifference)]).toEqual([201, ['50.00']]);
    expect(await b.split()).toEqual({ january: { realized: '-100.00', unrealized: '0.00' }, february: { realized: '0.00', unrealized: '0.00' } });
    expect([await b.balance('5500', '2026-01-31'), await b.balance('5510', '2026-01-31'), await b.balance('5510', '2026-02-28'), await b.balance('4310', '2026-02-28')])
      .toEqual([100, 0, 0, 0]);
    await b.expectAgingIsAp('2026-01-31', '0.00');
    await b.expectAgingIsAp('2026-02-01', '0.00');
    const entries = await b.marked();
    expect(entries.map((e) => [e.date, e.ref, e.amount])).toEqual([
      ['2026-02-01', 'fx-revaluation:settled-share', '50.00'], ['2026-01-31', 'fx-revaluation:realized-share', '50.00']]);
    const [audit] = await b.auditAfter('payables.payment_created');
    expect([audit.compensationEntryIds, audit.realizationEntryIds]).toEqual([[entries[0].id], [entries[1].id]]);
  });

  it('a credit note cancels a revalued invoice at what it carries: the revaluation comes off the unrealized account, nothing is realized (full, partial, in the window)', async () => {
    const b = await books('Credit notes of revalued invoices');
    const full = await b.invoice();
    const partial = await b.invoice();
    await b.revalue('2026-01-31').expect(201);
    expect(await b.split()).toEqual({ january: { realized: '0.00', unrealized: '100.00' }, february: { realized: '0.00', unrealized: '0.00' } });
    const cn = await t.http.post(rUrl(b.orgId, `invoices/${full.id}/credit-notes`)).set(owner.auth).send({ date: '2026-02-05' });
    expect(cn.status).toBe(201);
    // the credit note's entry: revenue back at the invoice's rate (1,100.00), AR off at what it carries (1,150.00), the 50.00 off the unrealized gain
    const { rows: lines } = await t.db.admin.query(`SELECT a.code, l.base_debit::numeric(20, 2)::text AS debit, l.base_credit::numeric(20, 2)::text AS credit
      FROM finance.journal_lines l JOIN finance.accounts a ON a.org_id = l.org_id AND a.id = l.account_id WHERE l.org_id = $1 AND l.entry_id = $2 ORDER BY a.code`, [b.orgId, cn.body.entryId]);
    expect(lines).toEqual([{ code: '1200', debit: '0.00', credit: '1150.00' }, { code: '4100', debit: '1100.00', credit: '0.00' }, { code: '4310', debit: '50.00', credit: '0.00' }]);
    // a partial credit note (EUR 400.00 of 1,000.00) takes the credited share's revaluation off: 400 x 0.05 = 20.00
    await t.http.post(rUrl(b.orgId, `invoices/${partial.id}/credit-notes`)).set(owner.auth).send({ date: '2026-02-05', lines: [{ lineNo: 1, quantity: '0.4' }] }).expect(201);
    // what is still open (EUR 600.00) keeps its 30.00 unrealized; no realized result at all
    expect(await b.split()).toEqual({ january: { realized: '0.00', unrealized: '100.00' }, february: { realized: '0.00', unrealized: '-70.00' } });
    expect([await b.balance('4300', '2026-02-28'), await b.balance('5500', '2026-02-28'), await b.balance('4310', '2026-02-28')]).toEqual([0, 0, -30]);
    await b.expectAgingIsAr('2026-02-05', '690.00');
    await expectOpenAmountsKept(t, b.orgId);

    // inside the autoReverse window: credited in full on Jan 31, no result in either month; the compensation is audited
    const w = await books('Credit note in the window');
    const inv = await w.invoice();
    await w.revalue('2026-01-31', true).expect(201);
    await t.http.post(rUrl(w.orgId, `invoices/${inv.id}/credit-notes`)).set(owner.auth).send({ date: '2026-01-31' }).expect(201);
    expect(await w.split()).toEqual({ january: { realized: '0.00', unrealized: '0.00' }, february: { realized: '0.00', unrealized: '0.00' } });
    await w.expectAgingIsAr('2026-01-31', '0.00');
    await w.expectAgingIsAr('2026-02-01', '0.00');
    const entries = await w.marked();
    expect(entries.map((e) => [e.date, e.ref])).toEqual([['2026-02-01', 'fx-revaluation:settled-share']]);
    const [audit] = await w.auditAfter('receivables.credit_note_issued');
    expect(audit.compensationEntryIds).toEqual([entries[0].id]);
  });

  it('the settled share realized without realized FX accounts (only the unrealized ones set) is 422 fx_accounts_missing, the subledger\'s code; nothing is written', async () => {
    const b = await books('Realized share without realized accounts');
    const inv = await b.invoice();
    const bill = await b.bill();
    // the settings an organization started with the empty chart reaches through the API when it sets only the unrealized accounts
    await t.db.admin.query(`UPDATE finance.settings SET fx_gain_account_id = NULL, fx_loss_account_id = NULL WHERE org_id = $1`, [b.orgId]);
    await b.revalue('2026-01-31', true).expect(201);
    const before = await b.footprint();
    // paid at the rate it carries: no realized result of its own, only the revaluation's to realize
    const ar = await b.arPayment({ date: '2026-01-31', amount: '1000.00', rate: '1.15', allocations: [{ invoiceId: inv.id, amount: '1000.00' }] });
    expect([ar.status, ar.body.error?.code]).toEqual([422, 'receivables.fx_accounts_missing']);
    expect(ar.body.error.message).toContain('fxGainAccountId');
    const ap = await b.apPayment({ paymentDate: '2026-01-31', amount: '1000.00', rate: '1.15', allocations: [{ billId: bill.id, amount: '1000.00' }] });
    expect([ap.status, ap.body.error?.code]).toEqual([422, 'ledger.fx_accounts_missing']);
    expect(await b.footprint()).toEqual(before);
  });

  it('a settlement in the window whose compensation falls in a closed period is 422 ledger.period_closed saying so; nothing is written', async () => {
    const b = await books('Compensation in a closed period');
    const inv = await b.invoice();
    const bill = await b.bill();
    await b.revalue('2026-01-31', true).expect(201);
    const year = (await t.http.get(ledgerUrl(b.orgId, 'fiscal-years')).set(owner.auth).expect(200)).body.find((y: any) => y.startDate === '2026-01-01');
    const february = year.periods.find((p: any) => p.startDate === '2026-02-01');
    await t.http.post(ledgerUrl(b.orgId, `periods/${february.id}/close`)).set(owner.auth).expect(200);
    const before = await b.footprint();
    const ar = await b.arPayment({ date: '2026-01-31', amount: '1000.00', rate: '1.20', allocations: [{ invoiceId: inv.id, amount: '1000.00' }] });
    expect([ar.status, ar.body.error?.code, ar.body.error?.details]).toEqual([422, 'ledger.period_closed', { compensationDate: '2026-02-01' }]);
    expect(ar.body.error.message).toContain('compensation of the FX revaluation reversal dated 2026-02-01 falls in a closed period');
    const ap = await b.apPayment({ paymentDate: '2026-01-31', amount: '1000.00', rate: '1.20', allocations: [{ billId: bill.id, amount: '1000.00' }] });
    expect([ap.status, ap.body.error?.code, ap.body.error?.details]).toEqual([422, 'ledger.period_closed', { compensationDate: '2026-02-01' }]);
    expect(ap.body.error.message).toContain('compensation of the FX revaluation reversal dated 2026-02-01');
    expect(await b.footprint()).toEqual(before);
    await b.expectAgingIsAr('2026-01-31', '1150.00');
    await b.expectAgingIsAp('2026-01-31', '1150.00');
  });
  /**
   * An item revalued onto both unrealized FX accounts before it is settled (r7's review): revalued Jan 20 at 1.15 (AR
   * +50.00 on the gain account 4310, AP +50.00 on the loss account 5510) and Jan 31 at 1.12 (AR -30.00 on 5510, AP -30.00
   * on 4310), both with autoReverse (reversed Feb 1). A share settled in the window takes its part of each account's
   * amount off that account (compensated on Feb 1, realized on the settlement's date to the realized account of its
   * kind), not its net off one of them: at the month end the unrealized accounts hold only what is still open, and
   * nothing once the item is settled.
   */
  const bothWays = { '2026-01-15': '1.10', '2026-01-20': '1.15', '2026-01-31': '1.12', '2026-02-10': '1.13' };

  it('AR: EUR 400.00 of an invoice revalued onto 4310 and 5510 paid in the window: each account gives its share (20.00 and 12.00); the rest paid after the reversal leaves both at 0', async () => {
    const b = await books('AR share of two unrealized accounts', bothWays);
    const inv = await b.invoice();
    await b.revalue('2026-01-20', true).expect(201);
    await b.revalue('2026-01-31', true).expect(201);
    const paid = await b.arPayment({ date: '2026-01-31', amount: '400.00', rate: '1.12', allocations: [{ invoiceId: inv.id, amount: '400.00' }] });
    expect([paid.status, paid.body.allocations?.[0]?.realizedFx]).toEqual([201, '0.00']);
    // the share carried +20.00 on 4310 and -12.00 on 5510 (400 x 0.05, 400 x -0.03): put back on Feb 1 on each account
    // (what the reversals took off it), realized on Jan 31 to 4300 and 5500
    const [compensation, realization] = await b.marked();
    expect(await b.lines(compensation.id)).toEqual([
      { code: '1200', debit: '20.00', credit: '0.00' }, { code: '4310', debit: '0.00', credit: '20.00' },
      { code: '1200', debit: '0.00', credit: '12.00' }, { code: '5510', debit: '12.00', credit: '0.00' }]);
    expect(await b.lines(realization.id)).toEqual([
      { code: '4310', debit: '20.00', credit: '0.00' }, { code: '4300', debit: '0.00', credit: '20.00' },
      { code: '5500', debit: '12.00', credit: '0.00' }, { code: '5510', debit: '0.00', credit: '12.00' }]);
    // January's month end: the open EUR 600.00 carries 30.00 on 4310 and -18.00 on 5510, nothing else is left there
    expect(await b.fxAccounts('2026-01-31')).toEqual({ 4300: -20, 5500: 12, 4310: -30, 5510: 18 });
    await b.expectAgingIsAr('2026-01-31', '672.00');
    await b.expectAgingIsAr('2026-02-01', '660.00');
    // the rest paid at 1.13 after the reversal: 18.00 realized against its 660.00; the unrealized accounts keep nothing
    await b.arPayment({ date: '2026-02-10', amount: '600.00', rate: '1.13', allocations: [{ invoiceId: inv.id, amount: '600.00' }] }).expect(201);
    expect(await b.fxAccounts('2026-02-28')).toEqual({ 4300: -38, 5500: 12, 4310: 0, 5510: 0 });
    // received 448.00 + 678.00 for 1,100.00: 26.00 realized in all
    expect(await b.split()).toEqual({ january: { realized: '8.00', unrealized: '12.00' }, february: { realized: '18.00', unrealized: '-12.00' } });
    await b.expectAgingIsAr('2026-02-28', '0.00');
    await expectOpenAmountsKept(t, b.orgId);

    // shares that do not divide evenly: EUR 333.33 (16.6665 and -9.9999 of the accounts' amounts, rounded to 16.67 and
    // -10.00, which sum to the share's 6.67), then the last 666.67, both in the window: the last takes what each account
    // has left (33.33 and -20.00), so each account's whole amount is realized and neither keeps a cent
    const r = await books('AR uneven shares of two unrealized accounts', bothWays);
    const other = await r.invoice();
    await r.revalue('2026-01-20', true).expect(201);
    await r.revalue('2026-01-31', true).expect(201);
    for (const amount of ['333.33', '666.67']) {
      await r.arPayment({ date: '2026-01-31', amount, rate: '1.12', allocations: [{ invoiceId: other.id, amount }] }).expect(201);
    }
    const [first, , last] = await r.marked();
    expect(await r.lines(first.id)).toEqual([
      { code: '1200', debit: '16.67', credit: '0.00' }, { code: '4310', debit: '0.00', credit: '16.67' },
      { code: '1200', debit: '0.00', credit: '10.00' }, { code: '5510', debit: '10.00', credit: '0.00' }]);
    expect(await r.lines(last.id)).toEqual([
      { code: '1200', debit: '33.33', credit: '0.00' }, { code: '4310', debit: '0.00', credit: '33.33' },
      { code: '1200', debit: '0.00', credit: '20.00' }, { code: '5510', debit: '20.00', credit: '0.00' }]);
    for (const asOf of ['2026-01-31', '2026-02-01']) {
      expect({ asOf, fx: await r.fxAccounts(asOf) }).toEqual({ asOf, fx: { 4300: -50, 5500: 30, 4310: 0, 5510: 0 } });
      await r.expectAgingIsAr(asOf, '0.00');
    }
  });

  it('AP: a bill revalued onto 5510 and 4310 paid in full in the window: each account\'s own amount is compensated and realized; neither keeps anything at the month end', async () => {
    const b = await books('AP settled off two unrealized accounts', bothWays);
    const bill = await b.bill();
    await b.revalue('2026-01-20', true).expect(201);
    await b.revalue('2026-01-31', true).expect(201);
    const paid = await b.apPayment({ paymentDate: '2026-01-31', amount: '1000.00', rate: '1.12', allocations: [{ billId: bill.id, amount: '1000.00' }] });
    expect([paid.status, paid.body.allocations?.map((a: any) => a.fxDifference)]).toEqual([201, ['0.00']]);
    const [compensation, realization] = await b.marked();
    // the last share takes all each account holds of the bill: 50.00 of loss on 5510, 30.00 of gain on 4310
    expect(await b.lines(compensation.id)).toEqual([
      { code: '2100', debit: '0.00', credit: '50.00' }, { code: '5510', debit: '50.00', credit: '0.00' },
      { code: '2100', debit: '30.00', credit: '0.00' }, { code: '4310', debit: '0.00', credit: '30.00' }]);
    expect(await b.lines(realization.id)).toEqual([
      { code: '5500', debit: '50.00', credit: '0.00' }, { code: '5510', debit: '0.00', credit: '50.00' },
      { code: '4310', debit: '30.00', credit: '0.00' }, { code: '4300', debit: '0.00', credit: '30.00' }]);
    // paid 1,120.00 for 1,100.00 booked: a loss of 20.00, realized in January; no unrealized amount left on either account
    for (const asOf of ['2026-01-31', '2026-02-01', '2026-02-28']) {
      expect({ asOf, fx: await b.fxAccounts(asOf) }).toEqual({ asOf, fx: { 4300: -30, 5500: 50, 4310: 0, 5510: 0 } });
      await b.expectAgingIsAp(asOf, '0.00');
    }
  });

  it('credit notes of an invoice revalued onto 4310 then 5510 take each account\'s share off it (the last one all that is left); in the window, off the accounts of changed settings', async () => {
    // 1.10 -> 1.15 (Jan 31: +50.00 on 4310) -> 1.12 (Feb 28: -30.00 on 5510), no autoReverse; credited EUR 400.00, then the rest
    const b = await books('Credit notes off two unrealized accounts', { '2026-01-15': '1.10', '2026-01-31': '1.15', '2026-02-28': '1.12' });
    const inv = await b.invoice();
    await b.revalue('2026-01-31').expect(201);
    await b.revalue('2026-02-28').expect(201);
    const first = (await t.http.post(rUrl(b.orgId, `invoices/${inv.id}/credit-notes`)).set(owner.auth).send({ date: '2026-03-05', lines: [{ lineNo: 1, quantity: '0.4' }] }).expect(201)).body;
    const rest = (await t.http.post(rUrl(b.orgId, `invoices/${inv.id}/credit-notes`)).set(owner.auth).send({ date: '2026-03-06', lines: [{ lineNo: 1, quantity: '0.6' }] }).expect(201)).body;
    // revenue back at the invoice's rate, AR off at what the share carries (at 1.12), each account's share off it
    expect(await b.lines(first.entryId)).toEqual(expect.arrayContaining([{ code: '1200', debit: '0.00', credit: '448.00' },
      { code: '4310', debit: '20.00', credit: '0.00' }, { code: '5510', debit: '0.00', credit: '12.00' }]));
    expect(await b.lines(rest.entryId)).toEqual(expect.arrayContaining([{ code: '1200', debit: '0.00', credit: '672.00' },
      { code: '4310', debit: '30.00', credit: '0.00' }, { code: '5510', debit: '0.00', credit: '18.00' }]));
    expect(await b.fxAccounts('2026-03-31')).toEqual({ 4300: 0, 5500: 0, 4310: 0, 5510: 0 });
    await b.expectAgingIsAr('2026-03-31', '0.00');
    await expectOpenAmountsKept(t, b.orgId);

    // Jan 20 at 1.15 (+50.00 on 4310), the settings then name 4320 and 5520, Jan 31 at 1.20 (+50.00 on 4320), both
    // reversed Feb 1; credited in full on Jan 31: 50.00 off each account, and the reversals' take-off put back on each
    const w = await books('Credit note in the window off changed accounts', { '2026-01-15': '1.10', '2026-01-20': '1.15', '2026-01-31': '1.20' });
    const other = await w.invoice();
    await w.revalue('2026-01-20', true).expect(201);
    for (const [code, type, parent] of [['4320', 'revenue', '4000'], ['5520', 'expense', '5000']]) {
      w.acc[code] = (await t.http.post(ledgerUrl(w.orgId, 'accounts')).set(owner.auth).send({ code, name: `Unrealized FX ${code}`, type, parentId: w.acc[parent] }).expect(201)).body.id;
    }
    await t.http.patch(ledgerUrl(w.orgId, 'settings')).set(owner.auth).send({ fxUnrealizedGainAccountId: w.acc['4320'], fxUnrealizedLossAccountId: w.acc['5520'] }).expect(200);
    await w.revalue('2026-01-31', true).expect(201);
    const cn = (await t.http.post(rUrl(w.orgId, `invoices/${other.id}/credit-notes`)).set(owner.auth).send({ date: '2026-01-31' }).expect(201)).body;
    expect(await w.lines(cn.entryId)).toEqual(expect.arrayContaining([{ code: '1200', debit: '0.00', credit: '1200.00' },
      { code: '4310', debit: '50.00', credit: '0.00' }, { code: '4320', debit: '50.00', credit: '0.00' }]));
    const [compensation] = await w.marked();
    expect(await w.lines(compensation.id)).toEqual([
      { code: '1200', debit: '50.00', credit: '0.00' }, { code: '4310', debit: '0.00', credit: '50.00' },
      { code: '1200', debit: '50.00', credit: '0.00' }, { code: '4320', debit: '0.00', credit: '50.00' }]);
    for (const asOf of ['2026-01-31', '2026-02-01', '2026-02-28']) {
      expect({ asOf, fx: await w.fxAccounts(asOf, ['4320', '5520']) }).toEqual({ asOf, fx: { 4300: 0, 5500: 0, 4310: 0, 5510: 0, 4320: 0, 5520: 0 } });
      await w.expectAgingIsAr(asOf, '0.00');
    }
    await expectOpenAmountsKept(t, w.orgId);
  });

  it('one payment of two invoices in the window whose compensations are equal amounts on different accounts: each invoice\'s row keeps its own account, so crediting the rests leaves every unrealized account at 0', async () => {
    // A (EUR 1,000.00 at 1.10) revalued Jan 20 at 1.16 onto 4310, the settings then name 4320 and 5520, B (EUR 2,000.00,
    // Jan 21) revalued Jan 31 at 1.19 onto 4320 (and A onto 4320), both reversed Feb 1
    const b = await books('Equal compensations of two invoices', { '2026-01-15': '1.10', '2026-01-20': '1.16', '2026-01-31': '1.19' });
    const a = await b.invoice();
    await b.revalue('2026-01-20', true).expect(201);
    for (const [code, type, parent] of [['4320', 'revenue', '4000'], ['5520', 'expense', '5000']]) {
      b.acc[code] = (await t.http.post(ledgerUrl(b.orgId, 'accounts')).set(owner.auth).send({ code, name: `Unrealized FX ${code}`, type, parentId: b.acc[parent] }).expect(201)).body.id;
    }
    await t.http.patch(ledgerUrl(b.orgId, 'settings')).set(owner.auth).send({ fxUnrealizedGainAccountId: b.acc['4320'], fxUnrealizedLossAccountId: b.acc['5520'] }).expect(200);
    const other = await issueInvoice(t, b.orgId, owner, { customerId: b.customer, invoiceDate: '2026-01-21', lines: [{ description: 'Licence', quantity: '1', unitPrice: '2000.00', revenueAccountId: b.acc['4100'] }] });
    await b.revalue('2026-01-31', true).expect(201);
    // one payment of half of each: one compensation holding A's 30.00 on 4310 (and 15.00 on 4320) and B's 30.00 on 4320
    await b.arPayment({ date: '2026-01-31', amount: '1500.00', rate: '1.19', allocations: [{ invoiceId: a.id, amount: '500.00' }, { invoiceId: other.id, amount: '1000.00' }] }).expect(201);
    // the migration's backfill (20270210250100, of this organization's rows) tells each row's account from its entry as
    // the writer stored it, the compensation's equal amounts by their order; the credit notes below read the backfilled rows
    const stored = async () => (await t.db.admin.query(`SELECT id, fx_account_id FROM finance.fx_revaluation_items WHERE org_id = $1 ORDER BY seq`, [b.orgId])).rows;
    const written = await stored();
    const migration = readFileSync(FX_ACCOUNT_MIGRATION, 'utf8');
    const backfill = migration.slice(migration.indexOf('ALTER TABLE finance.fx_revaluation_items DISABLE TRIGGER')).replace('FROM found f WHERE', `FROM found f WHERE f.org_id = '${b.orgId}' AND`);
    expect(backfill).toContain(`f.org_id = '${b.orgId}'`);
    // rows as they were before 20270210250100 (no account), which 20270210290100's check leaves to older rows alone
    await t.db.admin.query(`ALTER TABLE finance.fx_revaluation_items DROP CONSTRAINT fx_revaluation_items_fx_account_required;
      ALTER TABLE finance.fx_revaluation_items DISABLE TRIGGER fx_revaluation_items_immutable;
      UPDATE finance.fx_revaluation_items SET fx_account_id = NULL WHERE org_id = '${b.orgId}'; ${backfill}
      ALTER TABLE finance.fx_revaluation_items ADD CONSTRAINT fx_revaluation_items_fx_account_required CHECK (fx_account_id IS NOT NULL) NOT VALID`);
    expect(await stored()).toEqual(written);
    for (const id of [a.id, other.id]) {
      await t.http.post(rUrl(b.orgId, `invoices/${id}/credit-notes`)).set(owner.auth).send({ date: '2026-01-31', lines: [{ lineNo: 1, quantity: '0.5' }] }).expect(201);
    }
    // every row names the account its pair moved
    const { rows: unnamed } = await t.db.admin.query(`SELECT count(*)::int AS n FROM finance.fx_revaluation_items WHERE org_id = $1 AND fx_account_id IS NULL`, [b.orgId]);
    expect(unnamed).toEqual([{ n: 0 }]);
    for (const asOf of ['2026-01-31', '2026-02-01', '2026-02-28']) {
      expect({ asOf, unrealized: await b.fxAccounts(asOf, ['4320', '5520']) }).toEqual({ asOf, unrealized: { 4300: -75, 5500: 0, 4310: 0, 5510: 0, 4320: 0, 5520: 0 } });
      await b.expectAgingIsAr(asOf, '0.00');
    }
    await expectOpenAmountsKept(t, b.orgId);
  });

  it('credit notes of uneven shares of an invoice revalued onto 4310 then 5510 write what they took off each account: the last takes exactly what is left there', async () => {
    // 1.10 -> 1.16 (Jan 31: +60.00 on 4310) -> 1.11 (Feb 28: -50.00 on 5510), no autoReverse; a third credited, then the rest
    const b = await books('Uneven credit notes off two unrealized accounts', { '2026-01-15': '1.10', '2026-01-31': '1.16', '2026-02-28': '1.11' });
    const inv = await b.invoice();
    await b.revalue('2026-01-31').expect(201);
    await b.revalue('2026-02-28').expect(201);
    const first = (await t.http.post(rUrl(b.orgId, `invoices/${inv.id}/credit-notes`)).set(owner.auth).send({ date: '2026-03-05', lines: [{ lineNo: 1, quantity: '0.3333' }] }).expect(201)).body;
    const rest = (await t.http.post(rUrl(b.orgId, `invoices/${inv.id}/credit-notes`)).set(owner.auth).send({ date: '2026-03-06', lines: [{ lineNo: 1, quantity: '0.6667' }] }).expect(201)).body;
    // EUR 333.30: 20.00 of 4310's 60.00 and 16.67 of 5510's 50.00; the rest: 40.00 and 33.33, each account's own rest
    expect(await b.lines(first.entryId)).toEqual(expect.arrayContaining([{ code: '4310', debit: '20.00', credit: '0.00' }, { code: '5510', debit: '0.00', credit: '16.67' }]));
    expect(await b.lines(rest.entryId)).toEqual(expect.arrayContaining([{ code: '4310', debit: '40.00', credit: '0.00' }, { code: '5510', debit: '0.00', credit: '33.33' }]));
    // each credit note's row per account, linked to its entry
    const { rows } = await t.db.admin.query(`SELECT x.entry_id::text AS "entryId", a.code, x.base_delta::numeric(20, 2)::text AS delta FROM finance.fx_revaluation_items x
      JOIN finance.accounts a ON a.org_id = x.org_id AND a.id = x.fx_account_id WHERE x.org_id = $1 AND x.entry_id = any($2::uuid[]) ORDER BY x.seq`, [b.orgId, [first.entryId, rest.entryId]]);
    expect(rows).toEqual([{ entryId: first.entryId, code: '4310', delta: '-20.00' }, { entryId: first.entryId, code: '5510', delta: '16.67' },
      { entryId: rest.entryId, code: '4310', delta: '-40.00' }, { entryId: rest.entryId, code: '5510', delta: '33.33' }]);
    expect(await b.fxAccounts('2026-03-31')).toEqual({ 4300: 0, 5500: 0, 4310: 0, 5510: 0 });
    await b.expectAgingIsAr('2026-03-05', '740.04');
    await b.expectAgingIsAr('2026-03-31', '0.00');
    await expectOpenAmountsKept(t, b.orgId);
  });

  it('credit notes of an invoice whose revaluations net to 0 over 4310 and 5510 still take each account\'s share off it', async () => {
    // 1.10 -> 1.15 (Jan 31: +50.00 on 4310) -> 1.10 (Feb 28: -50.00 on 5510), no autoReverse; credited half, then the rest
    const b = await books('Credit notes of net-zero revaluations', { '2026-01-15': '1.10', '2026-01-31': '1.15', '2026-02-28': '1.10' });
    const inv = await b.invoice();
    await b.revalue('2026-01-31').expect(201);
    await b.revalue('2026-02-28').expect(201);
    const first = (await t.http.post(rUrl(b.orgId, `invoices/${inv.id}/credit-notes`)).set(owner.auth).send({ date: '2026-03-05', lines: [{ lineNo: 1, quantity: '0.5' }] }).expect(201)).body;
    const rest = (await t.http.post(rUrl(b.orgId, `invoices/${inv.id}/credit-notes`)).set(owner.auth).send({ date: '2026-03-06' }).expect(201)).body;
    for (const entryId of [first.entryId, rest.entryId]) {
      expect(await b.lines(entryId)).toEqual(expect.arrayContaining([{ code: '1200', debit: '0.00', credit: '550.00' },
        { code: '4310', debit: '25.00', credit: '0.00' }, { code: '5510', debit: '0.00', credit: '25.00' }]));
    }
    expect(await b.fxAccounts('2026-03-31')).toEqual({ 4300: 0, 5500: 0, 4310: 0, 5510: 0 });
    await b.expectAgingIsAr('2026-03-05', '550.00');
    await b.expectAgingIsAr('2026-03-31', '0.00');
    await expectOpenAmountsKept(t, b.orgId);
  });


  /**
   * An allocation reversed after FX revaluation rows it did not go through (r9's follow-up): the share comes back carrying
   * what the invoice carries now, and what those rows changed of it is written as the invoice's rows on the accounts
   * they moved (restoreShare), not into the realized result: what the invoice's rows leave on each account is what the
   * account holds of it, so a later void or credit note takes each account's own amount.
   */
  it('an allocation paid in the window and reversed after the revaluation\'s reversal gives the share back on the unrealized account as rows: a void then leaves AR equal to the aging and no FX result', async () => {
    const b = await books('Window allocation reversed after the reversal');
    const inv = await b.invoice();
    await b.revalue('2026-01-31', true).expect(201);
    const paid = (await b.arPayment({ date: '2026-01-31', amount: '300.00', rate: '1.20', allocations: [{ invoiceId: inv.id, amount: '300.00' }] }).expect(201)).body;
    const reversed = await t.http.post(rUrl(b.orgId, `allocations/${paid.allocations[0].id}/reverse`)).set(owner.auth).send({ date: '2026-02-05' });
    expect(reversed.status).toBe(201);
    // the share went out at 1.15 (345.00) and comes back at 1.10 (330.00): its part of the Feb 1 reversal (-15.00 on 4310)
    // is a row of the invoice, and what the payment's compensation realized of it goes back to 4310
    const rows = async () => (await t.db.admin.query(`SELECT x.revaluation_date::text AS date, a.code, x.base_delta::numeric(20, 2)::text AS delta FROM finance.fx_revaluation_items x
      JOIN finance.accounts a ON a.org_id = x.org_id AND a.id = x.fx_account_id WHERE x.org_id = $1 AND x.document_id = $2 ORDER BY x.seq`, [b.orgId, inv.id])).rows;
    expect(await rows()).toEqual([{ date: '2026-01-31', code: '4310', delta: '50.00' }, { date: '2026-02-01', code: '4310', delta: '-50.00' },
      { date: '2026-02-01', code: '4310', delta: '15.00' }, { date: '2026-02-05', code: '4310', delta: '-15.00' }]);
    const { rows: [allocation] } = await t.db.admin.query(`SELECT invoice_base::numeric(20, 2)::text AS base FROM finance.receivable_allocations WHERE org_id = $1 AND reverses_allocation_id = $2`,
      [b.orgId, paid.allocations[0].id]);
    expect(allocation).toEqual({ base: '-345.00' });
    expect(await b.fxAccounts('2026-02-05')).toEqual({ 4300: 0, 5500: 0, 4310: 0, 5510: 0 });
    // the invoice EUR 1,000.00 at 1.10 and the customer credit EUR 300.00 at 1.20
    await b.expectAgingIsAr('2026-02-05', '740.00');
    const [audit] = await b.auditAfter('receivables.allocation_reversed');
    expect([audit.compensationEntryIds?.length, audit.realizationEntryIds?.length]).toEqual([1, 1]);
    await t.http.post(rUrl(b.orgId, `invoices/${inv.id}/void`)).set(owner.auth).send({ date: '2026-02-06' }).expect(200);
    expect(await b.fxAccounts('2026-02-28')).toEqual({ 4300: 0, 5500: 0, 4310: 0, 5510: 0 });
    await b.expectAgingIsAr('2026-02-28', '-360.00');
    await expectOpenAmountsKept(t, b.orgId);
  });

  it('an allocation reversed after a revaluation of the rest of the invoice: the share comes back on the unrealized account (not out of the realized result), so crediting the invoice leaves no FX result', async () => {
    const b = await books('Allocation reversed after a revaluation');
    const inv = await b.invoice();
    await b.revalue('2026-01-31').expect(201);
    const paid = (await b.arPayment({ date: '2026-02-05', amount: '300.00', rate: '1.20', allocations: [{ invoiceId: inv.id, amount: '300.00' }] }).expect(201)).body;
    expect(paid.allocations[0].realizedFx).toBe('15.00');
    // EUR 700.00 open revalued at 1.20: +35.00 on 4310
    await b.revalue('2026-02-28').expect(201);
    await t.http.post(rUrl(b.orgId, `allocations/${paid.allocations[0].id}/reverse`)).set(owner.auth).send({ date: '2026-03-05' }).expect(201);
    // all EUR 1,000.00 open at 1.20: 100.00 unrealized on 4310 (the share's 15.00 of the Feb 28 step put there), the 15.00 realized given back
    expect(await b.fxAccounts('2026-03-05')).toEqual({ 4300: 0, 5500: 0, 4310: -100, 5510: 0 });
    await b.expectAgingIsAr('2026-03-05', '840.00');
    const cn = (await t.http.post(rUrl(b.orgId, `invoices/${inv.id}/credit-notes`)).set(owner.auth).send({ date: '2026-03-06' }).expect(201)).body;
    expect(await b.lines(cn.entryId)).toEqual(expect.arrayContaining([{ code: '1200', debit: '0.00', credit: '1200.00' }, { code: '4310', debit: '100.00', credit: '0.00' }]));
    expect(await b.fxAccounts('2026-03-31')).toEqual({ 4300: 0, 5500: 0, 4310: 0, 5510: 0 });
    await b.expectAgingIsAr('2026-03-31', '-360.00');
    await expectOpenAmountsKept(t, b.orgId);
  });

  it('an allocation reversed after a revaluation of the invoice and of the payment\'s credit: each share comes back on the unrealized account its own rows name, nothing is realized', async () => {
    const b = await books('Allocation reversed after a revaluation of both sides');
    const inv = await b.invoice();
    // EUR 600.00 at 1.10, 300.00 of it allocated: the rest stays customer credit
    const paid = (await b.arPayment({ date: '2026-01-20', amount: '600.00', rate: '1.10', allocations: [{ invoiceId: inv.id, amount: '300.00' }] }).expect(201)).body;
    // at 1.15: the invoice's open 700.00 +35.00, the credit's 300.00 -15.00 (AR's net on 4310: the rows name it) and the
    // bank's EUR 600.00 +30.00
    await b.revalue('2026-01-31').expect(201);
    const reversed = (await t.http.post(rUrl(b.orgId, `allocations/${paid.allocations[0].id}/reverse`)).set(owner.auth).send({ date: '2026-02-05' }).expect(201)).body;
    expect(reversed.allocations.map((a: { realizedFx: string }) => a.realizedFx)).toEqual(['0.00', '0.00']);
    // all EUR 1,000.00 of the invoice and all 600.00 of the credit at 1.15 (50.00 of gain, 30.00 of loss) and the bank's
    // 30.00, unrealized; the rows of each on 4310 are what it carries there: the invoice's share +15.00, the credit's -15.00
    expect(await b.fxAccounts('2026-02-05')).toEqual({ 4300: 0, 5500: 0, 4310: -50, 5510: 0 });
    await b.expectAgingIsAr('2026-02-05', '460.00');
    const { rows } = await t.db.admin.query(`SELECT x.document_id = $2 AS invoice, a.code, sum(x.base_delta)::numeric(20, 2)::text AS booked FROM finance.fx_revaluation_items x
      JOIN finance.accounts a ON a.org_id = x.org_id AND a.id = x.fx_account_id WHERE x.org_id = $1 GROUP BY 1, 2 ORDER BY 1, 2`, [b.orgId, inv.id]);
    expect(rows).toEqual([{ invoice: false, code: '4310', booked: '-30.00' }, { invoice: true, code: '4310', booked: '50.00' }]);
    await expectOpenAmountsKept(t, b.orgId);
  });

  it('an allocation reversed in the window of a later revaluation (its reversal posted ahead): the share\'s part goes to the unrealized account and off it with the reversal, nothing realized, no residue', async () => {
    const b = await books('Allocation reversed in a later revaluation\'s window');
    const inv = await b.invoice();
    // EUR 333.33 of it paid at the invoice's rate (366.66 both sides: no result)
    const paid = (await b.arPayment({ date: '2026-01-20', amount: '333.33', rate: '1.10', allocations: [{ invoiceId: inv.id, amount: '333.33' }] }).expect(201)).body;
    expect(paid.allocations[0].realizedFx).toBe('0.00');
    // at 1.15, reversed on Feb 1: the invoice's open 666.67 +33.33 and the bank's EUR 333.33 +16.67, both on 4310
    await b.revalue('2026-01-31', true).expect(201);
    const reversed = (await t.http.post(rUrl(b.orgId, `allocations/${paid.allocations[0].id}/reverse`)).set(owner.auth).send({ date: '2026-01-31' }).expect(201)).body;
    expect(reversed.allocations.map((a: { realizedFx: string }) => a.realizedFx)).toEqual(['0.00', '0.00']);
    // the share's 16.67 of the revaluation (333.33 x 0.05) on 4310 with it, and off it on Feb 1 with the revaluation's reversal
    const { rows } = await t.db.admin.query(`SELECT x.revaluation_date::text AS date, a.code, x.base_delta::numeric(20, 2)::text AS delta FROM finance.fx_revaluation_items x
      JOIN finance.accounts a ON a.org_id = x.org_id AND a.id = x.fx_account_id WHERE x.org_id = $1 AND x.document_id = $2 ORDER BY x.revaluation_date, x.seq`, [b.orgId, inv.id]);
    expect(rows).toEqual([{ date: '2026-01-31', code: '4310', delta: '33.33' }, { date: '2026-01-31', code: '4310', delta: '16.67' },
      { date: '2026-02-01', code: '4310', delta: '-33.33' }, { date: '2026-02-01', code: '4310', delta: '-16.67' }]);
    // January: all EUR 1,000.00 of the invoice at 1.15 and the bank: 66.67 unrealized; February: back to the invoice's own 1.10
    expect([await b.fxAccounts('2026-01-31'), await b.fxAccounts('2026-02-28')]).toEqual([{ 4300: 0, 5500: 0, 4310: -66.67, 5510: 0 }, { 4300: 0, 5500: 0, 4310: 0, 5510: 0 }]);
    // the invoice at 1,150.00 then 1,100.00, the customer credit EUR 333.33 at 1.10 (366.66)
    await b.expectAgingIsAr('2026-01-31', '783.34');
    await b.expectAgingIsAr('2026-02-28', '733.34');
    await expectOpenAmountsKept(t, b.orgId);
  });

  it('an allocation reversed on the date of a revaluation whose reversal is posted ahead, after an earlier one kept: each revaluation\'s part of the share is its own rounded step, no cent realized (r6)', async () => {
    const b = await books('Allocation reversed with a pending revaluation, rounded steps', { '2026-01-15': '1.10', '2026-01-31': '1.1234', '2026-02-28': '1.20' });
    const inv = await b.invoice();
    // EUR 100.05 at 1.10: 110.05 taken off the invoice (EUR 899.95 left at 989.95), 110.06 into the bank
    const paid = (await b.arPayment({ date: '2026-01-20', amount: '100.05', rate: '1.10', allocations: [{ invoiceId: inv.id, amount: '100.05' }] }).expect(201)).body;
    await b.revalue('2026-01-31').expect(201);
    await b.revalue('2026-02-28', true).expect(201);
    await t.http.post(rUrl(b.orgId, `allocations/${paid.allocations[0].id}/reverse`)).set(owner.auth).send({ date: '2026-02-28' }).expect(201);
    // the share's parts, rounded values of EUR 1,000.00 less EUR 899.95: 2.35 (Jan 31) and 7.66 (Feb 28, off again on Mar 1)
    const { rows } = await t.db.admin.query(`SELECT x.revaluation_date::text AS date, a.code, x.base_delta::numeric(20, 2)::text AS delta FROM finance.fx_revaluation_items x
      JOIN finance.accounts a ON a.org_id = x.org_id AND a.id = x.fx_account_id WHERE x.org_id = $1 AND x.document_id = $2 ORDER BY x.revaluation_date, x.seq`, [b.orgId, inv.id]);
    expect(rows).toEqual([{ date: '2026-01-31', code: '4310', delta: '21.05' }, { date: '2026-02-28', code: '4310', delta: '68.94' },
      { date: '2026-02-28', code: '4310', delta: '2.35' }, { date: '2026-02-28', code: '4310', delta: '7.66' },
      { date: '2026-03-01', code: '4310', delta: '-68.94' }, { date: '2026-03-01', code: '4310', delta: '-7.66' }]);
    // all unrealized: the invoice EUR 1,000.00 and the bank's EUR 100.05 at 1.20, then at 1.1234 (23.40 and 2.34)
    expect([await b.fxAccounts('2026-02-28'), await b.fxAccounts('2026-03-01')]).toEqual([{ 4300: 0, 5500: 0, 4310: -110, 5510: 0 }, { 4300: 0, 5500: 0, 4310: -25.74, 5510: 0 }]);
    await b.expectAgingIsAr('2026-02-28', '1089.94');
    await b.expectAgingIsAr('2026-03-01', '1013.34');
    await expectOpenAmountsKept(t, b.orgId);
  });

  it('a revaluation row written without its unrealized FX account is refused, older rows without one are kept (NOT VALID); the account\'s foreign key has its index', async () => {
    const b = await books('Rows name their account');
    const inv = await b.invoice();
    await b.revalue('2026-01-31').expect(201);
    const { rows: [row] } = await t.db.admin.query(`SELECT entry_id, fx_account_id FROM finance.fx_revaluation_items WHERE org_id = $1`, [b.orgId]);
    expect(row.fx_account_id).toBe(b.acc['4310']);
    const insert = (fxAccountId: string | null) => t.db.admin.query(`INSERT INTO finance.fx_revaluation_items
      (org_id, entry_id, revaluation_date, subledger, document_id, rate, base_delta, fx_account_id, created_by) VALUES ($1, $2, '2026-01-31', 'receivables', $3, 1.15, 0.01, $4, 'test')`,
    [b.orgId, row.entry_id, inv.id, fxAccountId]);
    await expect(insert(null)).rejects.toMatchObject({ code: '23514', constraint: 'fx_revaluation_items_fx_account_required' });
    await insert(b.acc['4310']);
    const { rows: check } = await t.db.admin.query(`SELECT convalidated FROM pg_constraint WHERE conrelid = 'finance.fx_revaluation_items'::regclass AND conname = 'fx_revaluation_items_fx_account_required'`);
    expect(check).toEqual([{ convalidated: false }]);
    // an index leading with the foreign key's columns (org_id, fx_account_id): deleting an account does not scan the rows
    const { rows: indexes } = await t.db.admin.query(`SELECT i.indexrelid::regclass::text AS name FROM pg_index i
      WHERE i.indrelid = 'finance.fx_revaluation_items'::regclass AND i.indkey[0] = (SELECT attnum FROM pg_attribute WHERE attrelid = i.indrelid AND attname = 'org_id')
        AND i.indkey[1] = (SELECT attnum FROM pg_attribute WHERE attrelid = i.indrelid AND attname = 'fx_account_id')`);
    expect(indexes).toEqual([{ name: 'finance.fx_revaluation_items_fx_account_idx' }]);
  });
});
