import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { registerUser, type TestUser } from '../support/factories.js';
import { expectOpenAmountsKept, rUrl } from '../receivables/receivables-support.js';
import { payablesUrl } from '../payables/payables-support.js';
import { fxBooks } from './fx-support.js';

/**
 * A refund of a payment's credit dated on an FX revaluation's day, posted after it or before it, then the reversal of an
 * allocation of that payment made before (migration 20270210750100: refunds draw posting_seq as allocations do).
 * Base USD; a EUR payment P of 1,000.00 on Jan 15 at 1.10, all credit; revalued Jan 31 at 1.1234; A: EUR 9.69 of it
 * allocated on Feb 2 to an invoice (a bill) of EUR 1,000.00; revalued Feb 28 at 1.20; B: EUR 741.16 of P's credit
 * refunded on Feb 28 at 1.21; revalued Mar 31 at 1.054; A reversed on Apr 2. A second invoice (bill) of EUR 1,000.00
 * keeps the control account's EUR from netting to nothing (a revaluation writes no rows for a net change of 0).
 * B posted after the Feb 28 revaluation: that revaluation valued P's credit with B (EUR 990.31 open, 1,000.00 with A),
 * so its part of A's share is 0.74 (1,200.00 - 1,188.37 less 1,123.40 - 1,112.51), and P's rows are what revaluing
 * it without A writes: 100.00 (EUR 1,000.00 from 1.10 to 1.20, on the account of that revaluation) and 37.79 (EUR 258.84
 * from 1.20 to 1.054, on the other). Counting B as before it (by its date: the old code), the part was valued at EUR
 * 249.15 open (0.75) and a cent landed on the wrong unrealized account: P's rows 100.01 / 37.80, the unrealized gain
 * and loss accounts each a cent off (the FX result in all, the aging and the control account unchanged).
 * B posted before the Feb 28 revaluation: that revaluation valued P without B (EUR 249.15 open), so does the reversal.
 * An accountant's check: the trial balance's FX accounts, the aging equal to the control account, P's rows per account.
 */
describe('FX: a refund dated a revaluation\'s day, then an allocation of its payment reversed', () => {
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
    /** whether a refund was posted before the revaluation rows of its day: its posting_seq against theirs */
    const refundOrder = async (table: 'customer_refunds' | 'bill_payment_refunds') => (await t.db.admin.query(`SELECT r.refund_date::text AS date, r.posting_seq IS NOT NULL AS ordered,
      r.posting_seq < (SELECT min(x.seq) FROM finance.fx_revaluation_items x WHERE x.org_id = r.org_id AND x.revaluation_date = r.refund_date) AS "beforeRevaluation"
      FROM finance.${table} r WHERE r.org_id = $1`, [b.orgId])).rows;
    return { ...b, fxAccounts, rowsOf, refundOrder };
  }

  it('AR: B posted after the Feb 28 revaluation: the reversal values its part of A\'s share with B open (P\'s rows 4310 -100.00 / 5510 37.79)', async () => {
    const b = await books('AR refund after the same-day revaluation');
    const inv = await b.invoice();
    await b.invoice();
    const p = (await b.arPayment({ date: '2026-01-15', amount: '1000.00', rate: '1.10' }).expect(201)).body;
    await b.revalue('2026-01-31').expect(201);
    const a = (await t.http.post(rUrl(b.orgId, `payments/${p.id}/allocations`)).set(owner.auth)
      .send({ date: '2026-02-02', allocations: [{ invoiceId: inv.id, amount: '9.69' }] }).expect(201)).body;
    // both sides carried at 1.1234: A takes 10.89 off each, nothing realized
    expect(a.allocations.map((x: { amount: string; realizedFx: string }) => [x.amount, x.realizedFx])).toEqual([['9.69', '0.00']]);
    await b.revalue('2026-02-28').expect(201);
    // B at 1.21 (896.80) takes 1,188.37 - 298.98 (EUR 249.15 at 1.20) = 889.39 of P's credit: 7.41 realized (a loss)
    const refunded = (await t.http.post(rUrl(b.orgId, `payments/${p.id}/refunds`)).set(owner.auth).send({ date: '2026-02-28', amount: '741.16', rate: '1.21' }).expect(201)).body;
    expect(refunded.refunds[0]).toMatchObject({ date: '2026-02-28', amount: '741.16', realizedFx: '-7.41' });
    expect(await b.refundOrder('customer_refunds')).toEqual([{ date: '2026-02-28', ordered: true, beforeRevaluation: false }]);
    await b.revalue('2026-03-31').expect(201);

    const reversed = (await t.http.post(rUrl(b.orgId, `allocations/${a.allocations[0].id}/reverse`)).set(owner.auth).send({ date: '2026-04-02' }).expect(201)).body;
    expect(reversed.allocations.map((x: { amount: string; realizedFx: string }) => [x.amount, x.realizedFx])).toEqual([['9.69', '0.00'], ['-9.69', '0.00']]);
    expect(reversed).toMatchObject({ unallocated: '258.84' });
    // P's rows as revaluing it without A writes them: -23.40 - 75.86 - 0.74 (EUR 1,000.00 from 1.10 to 1.20), then
    // EUR 258.84 from 1.20 to 1.054: 36.38 + 1.41 (not -100.01 / 37.80)
    // (each revaluation's rows are on the account of AR's net change: 4310 up to Feb 28, 5510 on Mar 31)
    // the invoice's: EUR 1,000.00 from 1.10 to 1.20 (100.00), then to 1.054 (-146.00)
    // unrealized: the rows (the two invoices' 200.00 / -292.00, P's) and the bank's EUR (+23.40 +76.60 on 4310; EUR 258.84
    // after B from 303.20 to 272.82, -30.38 on 5510); realized: B's 7.41. Not 4310 -199.99 / 5510 284.58 (the old code)
    expect({ p: await b.rowsOf(p.id), invoice: await b.rowsOf(inv.id), fx: await b.fxAccounts('2026-04-02') }).toEqual({
      p: [{ code: '4310', booked: '-100.00' }, { code: '5510', booked: '37.79' }],
      invoice: [{ code: '4310', booked: '100.00' }, { code: '5510', booked: '-146.00' }],
      fx: { 4300: '0.00', 5500: '7.41', 4310: '-200.00', 5510: '284.59' } });
    // AR: the invoices EUR 2,000.00 at 1.054 (2,108.00) less P's credit EUR 258.84 at 1.054 (272.82)
    await b.expectAgingIsAr('2026-04-02', '1835.18');
    await expectOpenAmountsKept(t, b.orgId);
  });

  it('AR: B posted before the Feb 28 revaluation: that revaluation valued P without B, and so does the reversal', async () => {
    const b = await books('AR refund before the same-day revaluation');
    const inv = await b.invoice();
    await b.invoice();
    const p = (await b.arPayment({ date: '2026-01-15', amount: '1000.00', rate: '1.10' }).expect(201)).body;
    await b.revalue('2026-01-31').expect(201);
    const a = (await t.http.post(rUrl(b.orgId, `payments/${p.id}/allocations`)).set(owner.auth)
      .send({ date: '2026-02-02', allocations: [{ invoiceId: inv.id, amount: '9.69' }] }).expect(201)).body;
    // B at 1.21 (896.80) takes 1,112.51 - 279.90 (EUR 249.15 at 1.1234) = 832.61: 64.19 realized (a loss)
    const refunded = (await t.http.post(rUrl(b.orgId, `payments/${p.id}/refunds`)).set(owner.auth).send({ date: '2026-02-28', amount: '741.16', rate: '1.21' }).expect(201)).body;
    expect(refunded.refunds[0]).toMatchObject({ realizedFx: '-64.19' });
    await b.revalue('2026-02-28').expect(201);
    expect(await b.refundOrder('customer_refunds')).toEqual([{ date: '2026-02-28', ordered: true, beforeRevaluation: true }]);
    await b.revalue('2026-03-31').expect(201);
    await t.http.post(rUrl(b.orgId, `allocations/${a.allocations[0].id}/reverse`)).set(owner.auth).send({ date: '2026-04-02' }).expect(201);
    // P's Feb 28 row revalued EUR 249.15 (279.90 to 298.98: -19.08); A's part of it valued at that (0.75), the Mar 31 one
    // 1.42 (A's share comes back at 10.22, A took 10.89: -0.67 in all, B's rounding in between)
    expect(await b.rowsOf(p.id)).toEqual([{ code: '4310', booked: '-43.23' }, { code: '5510', booked: '37.80' }]);
    // the bank's EUR: +23.40, then EUR 258.84 after B from 226.60 to 310.61 (+84.01) on 4310, to 272.82 (-37.79) on 5510;
    // B realized 64.19. The FX result in all is the other order's: a loss of 92.00
    expect(await b.fxAccounts('2026-04-02')).toEqual({ 4300: '0.00', 5500: '64.19', 4310: '-264.18', 5510: '291.99' });
    await b.expectAgingIsAr('2026-04-02', '1835.18');
    await expectOpenAmountsKept(t, b.orgId);
  });

  it('AP: B posted after the Feb 28 revaluation: P\'s rows 5510 -100.00 / 4310 37.79, as revaluing it without A writes', async () => {
    const b = await books('AP refund after the same-day revaluation');
    const bill = await b.bill();
    await b.bill();
    const p = (await b.apPayment({ paymentDate: '2026-01-15', amount: '1000.00', rate: '1.10' }).expect(201)).body;
    await b.revalue('2026-01-31').expect(201);
    const a = (await t.http.post(payablesUrl(b.orgId, `payments/${p.id}/allocations`)).set(owner.auth)
      .send({ billId: bill.id, amount: '9.69', date: '2026-02-02' }).expect(201)).body;
    await b.revalue('2026-02-28').expect(201);
    const refunded = (await t.http.post(payablesUrl(b.orgId, `payments/${p.id}/refunds`)).set(owner.auth).send({ date: '2026-02-28', amount: '741.16', rate: '1.21' }).expect(201)).body;
    // B at 1.21 (896.80) takes 889.39 of P's credit carried at 1.20: 7.41 (a gain)
    expect(refunded.refunds[0]).toMatchObject({ date: '2026-02-28', amount: '741.16', paymentBaseAmount: '889.39' });
    expect(await b.refundOrder('bill_payment_refunds')).toEqual([{ date: '2026-02-28', ordered: true, beforeRevaluation: false }]);
    await b.revalue('2026-03-31').expect(201);
    await t.http.post(payablesUrl(b.orgId, `allocations/${a.allocations[0].id}/reverse`)).set(owner.auth).send({ date: '2026-04-02' }).expect(201);
    const after = (await t.http.get(payablesUrl(b.orgId, `payments/${p.id}`)).set(owner.auth).expect(200)).body;
    expect(after.allocations.map((x: { amount: string; fxDifference: string }) => [x.amount, x.fxDifference])).toEqual([['9.69', '0.00'], ['-9.69', '0.00']]);
    // (AP's net change: a loss up to Feb 28, 5510; a gain on Mar 31, 4310) not 5510 -100.01 / 4310 37.80, the accounts 199.99 / -284.58 (the old code)
    // the bank's EUR -1,000.00: -23.40 -76.60 on 5510, then EUR -258.84 after B from -303.20 to -272.82 (+30.38 on 4310); B's 7.41 gain
    expect({ p: await b.rowsOf(p.id), bill: await b.rowsOf(bill.id), fx: await b.fxAccounts('2026-04-02') }).toEqual({
      p: [{ code: '4310', booked: '37.79' }, { code: '5510', booked: '-100.00' }],
      bill: [{ code: '4310', booked: '-146.00' }, { code: '5510', booked: '100.00' }],
      fx: { 4300: '-7.41', 5500: '0.00', 4310: '-284.59', 5510: '200.00' } });
    await b.expectAgingIsAp('2026-04-02', '1835.18');
  });
});
