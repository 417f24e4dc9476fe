import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { registerUser, type TestUser } from '../support/factories.js';
import { expectOpenAmountsKept, rUrl } from '../receivables/receivables-support.js';
import { payablesUrl } from '../payables/payables-support.js';
import { fxBooks } from './fx-support.js';

/**
 * An allocation reversed after another allocation of the same revalued invoice (base USD; an invoice of EUR 1,000.00 on
 * Jan 15 at 1.10, revalued as of Jan 31 at 1.1234, no autoReverse): the reversal gives the share back at what it took off
 * (nothing of the allocation stays realized), the invoice carries its open amount at the last revaluation's rate, and
 * AR equals the aging.
 *  1. Allocation A (EUR 9.69), a revaluation (Feb 28, 1.20: a gain), allocation B (EUR 741.16), a revaluation (Mar 31,
 *     1.054: a loss), A reversed: each revaluation's part of A's share is valued at what was open on its date (B had
 *     not settled the invoice on Feb 28), so the invoice's rows on the unrealized gain (4310) and loss (5510) accounts are
 *     what revaluing it without A writes: 100.00 and -37.79. Valued at what is open at the reversal, the Feb 28 part was
 *     0.75 and the Mar 31 part -1.42: a cent on each account that is not the invoice's.
 *     The same of a bill (AP: its rows on 5510 and 4310, the realized loss B's only).
 *  2. Allocations A and B, then the revaluation (Feb 28, 1.20), A reversed: the part is the revaluation's step at what
 *     was open then and now alike.
 */
describe('FX: an allocation reversed after another settlement of the revalued invoice', () => {
  let t: TestApp;
  let owner: TestUser;

  beforeAll(async () => {
    t = await createTestApp();
    owner = await registerUser(t, 'owner');
  });
  afterAll(() => t.close());

  async function books(name: string) {
    const b = await fxBooks(t, owner, name, { rates: { '2026-01-15': '1.10', '2026-01-31': '1.1234', '2026-02-28': '1.20', '2026-03-31': '1.054' } });
    const balance = async (code: string, asOf: string) => Number(await b.balance(code, asOf));
    const fxAccounts = async (asOf: string) => ({ 4300: await balance('4300', asOf), 5500: await balance('5500', asOf), 4310: await balance('4310', asOf), 5510: await balance('5510', asOf) });
    /** an invoice's (or a bill's) revaluation rows per unrealized FX account; an invoice's allocations' bases in order */
    const invoiceRows = async (invoiceId: string) => (await t.db.admin.query(`SELECT a.code, sum(x.base_delta)::numeric(20, 2)::text AS booked FROM finance.fx_revaluation_items x
      JOIN finance.accounts a ON a.org_id = x.org_id AND a.id = x.fx_account_id WHERE x.org_id = $1 AND x.document_id = $2 GROUP BY a.code ORDER BY a.code`, [b.orgId, invoiceId])).rows;
    const allocations = async (invoiceId: string) => (await t.db.admin.query(`SELECT allocation_date::text AS date, amount::numeric(20, 2)::text AS amount,
      invoice_base::numeric(20, 2)::text AS invoice_base, source_base::numeric(20, 2)::text AS source_base FROM finance.receivable_allocations
      WHERE org_id = $1 AND invoice_id = $2 ORDER BY seq`, [b.orgId, invoiceId])).rows;
    const reverse = (allocationId: string, date: string) => t.http.post(rUrl(b.orgId, `allocations/${allocationId}/reverse`)).set(owner.auth).send({ date }).expect(201);
    return { ...b, fxAccounts, invoiceRows, allocations, reverse };
  }

  it('allocation A, a revaluation, allocation B, a revaluation, A reversed: each revaluation\'s part of A\'s share at what was open on its date, on its own account; nothing of A realized', async () => {
    const b = await books('Reversal after a later allocation');
    const inv = await b.invoice();
    // Jan 31 at 1.1234: EUR 1,000.00 carried at 1,123.40 (+23.40)
    await b.revalue('2026-01-31').expect(201);
    // A: EUR 9.69 at 1.15 (11.14) takes 1,123.40 - 1,112.51 (EUR 990.31 at 1.1234) = 10.89: 0.25 realized
    const a = (await b.arPayment({ date: '2026-02-02', amount: '9.69', rate: '1.15', allocations: [{ invoiceId: inv.id, amount: '9.69' }] }).expect(201)).body;
    expect(a.allocations[0].realizedFx).toBe('0.25');
    // Feb 28 at 1.20: EUR 990.31 carried at 1,188.37 (+75.86 on 4310), the bank's EUR 9.69 at 11.63 (+0.49)
    await b.revalue('2026-02-28').expect(201);
    // B: EUR 741.16 at 1.21 (896.80) takes 1,188.37 - 298.98 (EUR 249.15 at 1.20) = 889.39: 7.41 realized
    const bb = (await b.arPayment({ date: '2026-03-03', amount: '741.16', rate: '1.21', allocations: [{ invoiceId: inv.id, amount: '741.16' }] }).expect(201)).body;
    expect(bb.allocations[0].realizedFx).toBe('7.41');
    // Mar 31 at 1.054: EUR 249.15 carried at 262.60 (-36.38 on 5510), the bank's EUR 750.85 at 791.40 (-117.03)
    await b.revalue('2026-03-31').expect(201);

    const reversed = (await b.reverse(a.allocations[0].id, '2026-04-02')).body;
    // A's share comes back at EUR 258.84 less 249.15 at 1.054 = 10.22: the 10.89 it took off, the Feb 28 part (EUR
    // 1,000.00 and 990.31 open with and without it then: 1,200.00 - 1,188.37 less 1,123.40 - 1,112.51) 0.74 and the
    // Mar 31 part (EUR 258.84 and 249.15: 10.22 less 310.61 - 298.98) -1.41; its 0.25 reversed, the credit back at 11.14
    expect(reversed.allocations.map((x: { amount: string; realizedFx: string }) => [x.amount, x.realizedFx])).toEqual([['9.69', '0.25'], ['-9.69', '-0.25']]);
    expect(await b.allocations(inv.id)).toEqual([
      { date: '2026-02-02', amount: '9.69', invoice_base: '10.89', source_base: '11.14' },
      { date: '2026-03-03', amount: '741.16', invoice_base: '889.39', source_base: '896.80' },
      { date: '2026-04-02', amount: '-9.69', invoice_base: '-10.89', source_base: '-11.14' }]);
    // the invoice's rows, as revaluing it without A writes them: 23.40 + 75.86 + 0.74 = 100.00 on 4310 (EUR 1,000.00 from
    // 1.10 to 1.20), -36.38 - 1.41 = -37.79 on 5510 (EUR 258.84 from 1.20 to 1.054)
    expect(await b.invoiceRows(inv.id)).toEqual([{ code: '4310', booked: '100.00' }, { code: '5510', booked: '-37.79' }]);
    // realized: B's 7.41 only; unrealized: the invoice's and the bank's (0.49 gain, 117.03 loss)
    expect(await b.fxAccounts('2026-04-02')).toEqual({ 4300: -7.41, 5500: 0, 4310: -100.49, 5510: 154.82 });
    // AR: the invoice EUR 258.84 at 1.054 (272.82) less A's credit EUR 9.69 at 1.15 (11.14)
    await b.expectAgingIsAr('2026-04-02', '261.68');
    expect((await t.http.get(rUrl(b.orgId, `invoices/${inv.id}`)).set(owner.auth).expect(200)).body).toMatchObject({ status: 'partially_paid', openAmount: '258.84' });
    await expectOpenAmountsKept(t, b.orgId);
  });

  it('AP, the same of a bill: its rows as revaluing it without A writes them (100.00 on 5510, -37.79 on 4310), B\'s 7.41 loss realized only', async () => {
    const b = await books('AP reversal after a later allocation');
    const bill = await b.bill();
    const pay = async (paymentDate: string, amount: string, rate: string) =>
      (await b.apPayment({ paymentDate, amount, rate, allocations: [{ billId: bill.id, amount }] }).expect(201)).body;
    await b.revalue('2026-01-31').expect(201);
    const a = await pay('2026-02-02', '9.69', '1.15');
    await b.revalue('2026-02-28').expect(201);
    const bb = await pay('2026-03-03', '741.16', '1.21');
    await b.revalue('2026-03-31').expect(201);
    expect([a.allocations[0].fxDifference, bb.allocations[0].fxDifference]).toEqual(['0.25', '7.41']);
    await t.http.post(payablesUrl(b.orgId, `allocations/${a.allocations[0].id}/reverse`)).set(owner.auth).send({ date: '2026-04-02' }).expect(201);
    const after = (await t.http.get(payablesUrl(b.orgId, `payments/${a.id}`)).set(owner.auth).expect(200)).body;
    expect(after.allocations.map((x: { amount: string; billBaseAmount: string; fxDifference: string }) => [x.amount, x.billBaseAmount, x.fxDifference]))
      .toEqual([['9.69', '10.89', '0.25'], ['-9.69', '-10.89', '-0.25']]);
    expect(await b.invoiceRows(bill.id)).toEqual([{ code: '4310', booked: '-37.79' }, { code: '5510', booked: '100.00' }]);
    expect([await b.balance('4300', '2026-04-02'), await b.balance('5500', '2026-04-02')]).toEqual(['0.00', '7.41']);
    const ap = (await t.http.get(payablesUrl(b.orgId, `bills/${bill.id}`)).set(owner.auth).expect(200)).body;
    expect(ap).toMatchObject({ openAmount: '258.84' });
    // AP: the bill EUR 258.84 at 1.054 (272.82) less A's credit EUR 9.69 at 1.15 (11.14)
    await b.expectAgingIsAp('2026-04-02', '261.68');
  });

  it('allocations A and B, a revaluation, A reversed: the revaluation\'s part of A\'s share on the unrealized account, nothing of A realized', async () => {
    const b = await books('Reversal after an earlier allocation');
    const inv = await b.invoice();
    await b.revalue('2026-01-31').expect(201);
    // A takes 1,123.40 - 1,011.00 (EUR 899.95 at 1.1234) = 112.40 (2.66 realized), B then 1,011.00 - 898.61 (EUR 799.90) = 112.39 (2.67)
    const a = (await b.arPayment({ date: '2026-02-02', amount: '100.05', rate: '1.15', allocations: [{ invoiceId: inv.id, amount: '100.05' }] }).expect(201)).body;
    const bb = (await b.arPayment({ date: '2026-02-03', amount: '100.05', rate: '1.15', allocations: [{ invoiceId: inv.id, amount: '100.05' }] }).expect(201)).body;
    expect([a.allocations[0].realizedFx, bb.allocations[0].realizedFx]).toEqual(['2.66', '2.67']);
    // Feb 28 at 1.20: EUR 799.90 carried at 959.88 (+61.27), the bank's EUR 200.10 at 240.12 (+10.00)
    await b.revalue('2026-02-28').expect(201);

    const reversed = (await b.reverse(a.allocations[0].id, '2026-03-05')).body;
    // A's share comes back at 1,079.94 - 959.88 = 120.06: the 112.40 it took off and the revaluation's part, 7.66
    expect(reversed.allocations.map((x: { amount: string; realizedFx: string }) => [x.amount, x.realizedFx])).toEqual([['100.05', '2.66'], ['-100.05', '-2.66']]);
    expect(await b.allocations(inv.id)).toEqual([
      { date: '2026-02-02', amount: '100.05', invoice_base: '112.40', source_base: '115.06' },
      { date: '2026-02-03', amount: '100.05', invoice_base: '112.39', source_base: '115.06' },
      { date: '2026-03-05', amount: '-100.05', invoice_base: '-112.40', source_base: '-115.06' }]);
    // 23.40 + 61.27 + 7.66 (B took 112.39 of the invoice with A settled: the cent it would have taken more without A is its own)
    expect(await b.invoiceRows(inv.id)).toEqual([{ code: '4310', booked: '92.33' }]);
    expect(await b.fxAccounts('2026-03-05')).toEqual({ 4300: -2.67, 5500: 0, 4310: -102.33, 5510: 0 });
    // AR: the invoice EUR 899.95 at 1.20 (1,079.94) less A's credit EUR 100.05 at 1.15 (115.06)
    await b.expectAgingIsAr('2026-03-05', '964.88');
    expect((await t.http.get(rUrl(b.orgId, `invoices/${inv.id}`)).set(owner.auth).expect(200)).body).toMatchObject({ status: 'partially_paid', openAmount: '899.95' });
    await expectOpenAmountsKept(t, b.orgId);
  });
});
