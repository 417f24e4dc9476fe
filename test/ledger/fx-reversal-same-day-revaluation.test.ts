import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { registerUser, type TestUser } from '../support/factories.js';
import { expectOpenAmountsKept, rUrl } from '../receivables/receivables-support.js';
import { payablesUrl } from '../payables/payables-support.js';
import { fxBooks } from './fx-support.js';

/**
 * An allocation reversed after a revaluation dated on the allocation's own day (review r7): the usual month end posts
 * the payment of the last day, then that day's revaluation, which never saw the share. Base USD; an invoice (a bill) of
 * EUR 1,000.00 on Jan 15 at 1.10, revalued as of Jan 31 at 1.1234; A: EUR 9.69 dated Feb 28 at 1.15, posted before the
 * Feb 28 revaluation (1.20); A reversed on Mar 5. The Feb 28 revaluation's part of A's share (0.74) is a change since
 * the allocation: written as the invoice's row on the unrealized account, not realized at the reversal. Counted as
 * before A (it is dated A's day), the reversal realized 0.49 instead of taking A's 0.25 back, 4300 kept -0.74 and the
 * invoice's rows on 4310 were 99.26, not the 100.00 revaluing it without A writes (EUR 1,000.00 from 1.10 to 1.20).
 * A revaluation of that day posted before A stays before it (its part realized by A, given back).
 * Likewise a settlement dated a revaluation's day and posted after it (B) is not what that revaluation valued: the
 * revaluation's part of A's share is valued at what was open before B (else a cent of B's rounding lands on the wrong
 * unrealized account: the invoice's rows 100.01 / -37.80).
 */
describe('FX: an allocation reversed after a revaluation of its own day', () => {
  let t: TestApp;
  let owner: TestUser;

  beforeAll(async () => {
    t = await createTestApp();
    owner = await registerUser(t, 'owner');
  });
  afterAll(() => t.close());

  async function books(name: string) {
    const b = await fxBooks(t, owner, name, { rates: { '2026-01-15': '1.10', '2026-01-31': '1.1234', '2026-02-28': '1.20', '2026-03-31': '1.054' } });
    const fxAccounts = async (asOf: string) => ({
      4300: await b.balance('4300', asOf), 5500: await b.balance('5500', asOf), 4310: await b.balance('4310', asOf), 5510: await b.balance('5510', asOf) });
    /** a document's revaluation rows per unrealized FX account */
    const rowsOf = async (documentId: string) => (await t.db.admin.query(`SELECT a.code, sum(x.base_delta)::numeric(20, 2)::text AS booked FROM finance.fx_revaluation_items x
      JOIN finance.accounts a ON a.org_id = x.org_id AND a.id = x.fx_account_id WHERE x.org_id = $1 AND x.document_id = $2 GROUP BY a.code ORDER BY a.code`, [b.orgId, documentId])).rows;
    return { ...b, fxAccounts, rowsOf };
  }

  it('AR: A dated Feb 28 posted before the Feb 28 revaluation, reversed: the revaluation\'s part on the invoice\'s 4310 row, A\'s 0.25 taken back, nothing realized', async () => {
    const b = await books('AR same-day revaluation after A');
    const inv = await b.invoice();
    await b.revalue('2026-01-31').expect(201);
    // A: EUR 9.69 at 1.15 (11.14) takes 1,123.40 - 1,112.51 (EUR 990.31 at 1.1234) = 10.89: 0.25 realized
    const a = (await b.arPayment({ date: '2026-02-28', amount: '9.69', rate: '1.15', allocations: [{ invoiceId: inv.id, amount: '9.69' }] }).expect(201)).body;
    expect(a.allocations[0].realizedFx).toBe('0.25');
    // Feb 28 at 1.20, posted after A: EUR 990.31 carried at 1,188.37 (+75.86 on 4310)
    await b.revalue('2026-02-28').expect(201);
    expect(await b.rowsOf(inv.id)).toEqual([{ code: '4310', booked: '99.26' }]);

    const reversed = (await t.http.post(rUrl(b.orgId, `allocations/${a.allocations[0].id}/reverse`)).set(owner.auth).send({ date: '2026-03-05' }).expect(201)).body;
    // the share comes back at 1,200.00 - 1,188.37 = 11.63: the 10.89 A took off and the Feb 28 part, 0.74; A's 0.25 reversed
    expect(reversed.allocations.map((x: { amount: string; realizedFx: string }) => [x.amount, x.realizedFx])).toEqual([['9.69', '0.25'], ['-9.69', '-0.25']]);
    const allocations = (await t.db.admin.query(`SELECT allocation_date::text AS date, amount::numeric(20, 2)::text AS amount, invoice_base::numeric(20, 2)::text AS invoice_base,
      source_base::numeric(20, 2)::text AS source_base, posting_seq IS NOT NULL AS ordered FROM finance.receivable_allocations WHERE org_id = $1 AND invoice_id = $2 ORDER BY seq`, [b.orgId, inv.id])).rows;
    expect(allocations).toEqual([
      { date: '2026-02-28', amount: '9.69', invoice_base: '10.89', source_base: '11.14', ordered: true },
      { date: '2026-03-05', amount: '-9.69', invoice_base: '-10.89', source_base: '-11.14', ordered: true }]);
    // the invoice's rows as revaluing it without A writes them: 23.40 + 75.86 + 0.74 (EUR 1,000.00 from 1.10 to 1.20)
    expect(await b.rowsOf(inv.id)).toEqual([{ code: '4310', booked: '100.00' }]);
    // nothing realized; unrealized: the invoice's 100.00 and the bank's EUR 9.69 (11.14 to 11.63 at 1.20: 0.49)
    expect(await b.fxAccounts('2026-03-05')).toEqual({ 4300: '0.00', 5500: '0.00', 4310: '-100.49', 5510: '0.00' });
    // AR: the invoice EUR 1,000.00 at 1.20 (1,200.00) less A's credit EUR 9.69 at 1.15 (11.14)
    await b.expectAgingIsAr('2026-03-05', '1188.86');
    expect((await t.http.get(rUrl(b.orgId, `invoices/${inv.id}`)).set(owner.auth).expect(200)).body).toMatchObject({ status: 'issued', openAmount: '1000.00' });
    await expectOpenAmountsKept(t, b.orgId);
  });

  it('AR: A dated Feb 28 posted after the Feb 28 revaluation, reversed: that revaluation is before A (nothing of it given back), nothing realized', async () => {
    const b = await books('AR same-day revaluation before A');
    const inv = await b.invoice();
    await b.revalue('2026-01-31').expect(201);
    await b.revalue('2026-02-28').expect(201);
    // A at 1.15 takes EUR 9.69 of 1,200.00 at 1.20: 11.63; 0.49 realized (a loss)
    const a = (await b.arPayment({ date: '2026-02-28', amount: '9.69', rate: '1.15', allocations: [{ invoiceId: inv.id, amount: '9.69' }] }).expect(201)).body;
    expect(a.allocations[0].realizedFx).toBe('-0.49');
    const reversed = (await t.http.post(rUrl(b.orgId, `allocations/${a.allocations[0].id}/reverse`)).set(owner.auth).send({ date: '2026-03-05' }).expect(201)).body;
    expect(reversed.allocations.map((x: { amount: string; realizedFx: string }) => [x.amount, x.realizedFx])).toEqual([['9.69', '-0.49'], ['-9.69', '0.49']]);
    expect(await b.rowsOf(inv.id)).toEqual([{ code: '4310', booked: '100.00' }]);
    expect(await b.fxAccounts('2026-03-05')).toEqual({ 4300: '0.00', 5500: '0.00', 4310: '-100.00', 5510: '0.00' });
    await b.expectAgingIsAr('2026-03-05', '1188.86');
    await expectOpenAmountsKept(t, b.orgId);
  });

  it('AR: A, a revaluation, B dated that revaluation\'s day posted after it, a revaluation, A reversed: the Feb 28 part at what was open before B (100.00 / -37.79, not 100.01 / -37.80)', async () => {
    const b = await books('AR same-day settlement after the revaluation');
    const inv = await b.invoice();
    await b.revalue('2026-01-31').expect(201);
    const a = (await b.arPayment({ date: '2026-02-02', amount: '9.69', rate: '1.15', allocations: [{ invoiceId: inv.id, amount: '9.69' }] }).expect(201)).body;
    // Feb 28 at 1.20: EUR 990.31 carried at 1,188.37 (+75.86 on 4310), before B
    await b.revalue('2026-02-28').expect(201);
    // B dated Feb 28, posted after that revaluation: EUR 741.16 at 1.21 (896.80) takes 1,188.37 - 298.98 = 889.39 (7.41 realized)
    const bb = (await b.arPayment({ date: '2026-02-28', amount: '741.16', rate: '1.21', allocations: [{ invoiceId: inv.id, amount: '741.16' }] }).expect(201)).body;
    expect(bb.allocations[0].realizedFx).toBe('7.41');
    await b.revalue('2026-03-31').expect(201);
    const reversed = (await t.http.post(rUrl(b.orgId, `allocations/${a.allocations[0].id}/reverse`)).set(owner.auth).send({ date: '2026-04-02' }).expect(201)).body;
    expect(reversed.allocations.map((x: { amount: string; realizedFx: string }) => [x.amount, x.realizedFx])).toEqual([['9.69', '0.25'], ['-9.69', '-0.25']]);
    // the Feb 28 row valued EUR 1,000.00 and 990.31 open with and without A (B came after it): 0.74, as revaluing without A writes
    expect(await b.rowsOf(inv.id)).toEqual([{ code: '4310', booked: '100.00' }, { code: '5510', booked: '-37.79' }]);
    expect(await b.fxAccounts('2026-04-02')).toEqual({ 4300: '-7.41', 5500: '0.00', 4310: '-100.49', 5510: '154.82' });
    await b.expectAgingIsAr('2026-04-02', '261.68');
    await expectOpenAmountsKept(t, b.orgId);
  });

  it('AP, a bill: B dated the Feb 28 revaluation\'s day posted after it, A reversed: the bill\'s rows 100.00 on 5510, -37.79 on 4310', async () => {
    const b = await books('AP same-day settlement after the revaluation');
    const bill = await b.bill();
    const pay = async (paymentDate: string, amount: string, rate: string) =>
      (await b.apPayment({ paymentDate, amount, rate, allocations: [{ billId: bill.id, amount }] }).expect(201)).body;
    await b.revalue('2026-01-31').expect(201);
    const a = await pay('2026-02-02', '9.69', '1.15');
    await b.revalue('2026-02-28').expect(201);
    const bb = await pay('2026-02-28', '741.16', '1.21');
    expect(bb.allocations[0].fxDifference).toBe('7.41');
    await b.revalue('2026-03-31').expect(201);
    await t.http.post(payablesUrl(b.orgId, `allocations/${a.allocations[0].id}/reverse`)).set(owner.auth).send({ date: '2026-04-02' }).expect(201);
    const after = (await t.http.get(payablesUrl(b.orgId, `payments/${a.id}`)).set(owner.auth).expect(200)).body;
    expect(after.allocations.map((x: { amount: string; fxDifference: string }) => [x.amount, x.fxDifference])).toEqual([['9.69', '0.25'], ['-9.69', '-0.25']]);
    expect(await b.rowsOf(bill.id)).toEqual([{ code: '4310', booked: '-37.79' }, { code: '5510', booked: '100.00' }]);
    expect(await b.fxAccounts('2026-04-02')).toEqual({ 4300: '0.00', 5500: '7.41', 4310: '-154.82', 5510: '100.49' });
    await b.expectAgingIsAp('2026-04-02', '261.68');
  });

  it('AP, the same of a bill: A posted before the Feb 28 revaluation of its day, reversed: the bill\'s 5510 row 100.00, A\'s 0.25 taken back', async () => {
    const b = await books('AP same-day revaluation after A');
    const bill = await b.bill();
    await b.revalue('2026-01-31').expect(201);
    const a = (await b.apPayment({ paymentDate: '2026-02-28', amount: '9.69', rate: '1.15', allocations: [{ billId: bill.id, amount: '9.69' }] }).expect(201)).body;
    expect(a.allocations[0].fxDifference).toBe('0.25');
    await b.revalue('2026-02-28').expect(201);
    await t.http.post(payablesUrl(b.orgId, `allocations/${a.allocations[0].id}/reverse`)).set(owner.auth).send({ date: '2026-03-05' }).expect(201);
    const after = (await t.http.get(payablesUrl(b.orgId, `payments/${a.id}`)).set(owner.auth).expect(200)).body;
    expect(after.allocations.map((x: { amount: string; billBaseAmount: string; fxDifference: string }) => [x.amount, x.billBaseAmount, x.fxDifference]))
      .toEqual([['9.69', '10.89', '0.25'], ['-9.69', '-10.89', '-0.25']]);
    const ordered = (await t.db.admin.query(`SELECT count(*)::int AS n FROM finance.bill_allocations WHERE org_id = $1 AND bill_id = $2 AND posting_seq IS NOT NULL`, [b.orgId, bill.id])).rows[0].n;
    expect(ordered).toBe(2);
    expect(await b.rowsOf(bill.id)).toEqual([{ code: '5510', booked: '100.00' }]);
    expect(await b.fxAccounts('2026-03-05')).toEqual({ 4300: '0.00', 5500: '0.00', 4310: '0.00', 5510: '100.49' });
    // AP: the bill EUR 1,000.00 at 1.20 (1,200.00) less A's credit EUR 9.69 at 1.15 (11.14)
    await b.expectAgingIsAp('2026-03-05', '1188.86');
    expect((await t.http.get(payablesUrl(b.orgId, `bills/${bill.id}`)).set(owner.auth).expect(200)).body).toMatchObject({ openAmount: '1000.00' });
  });
});
