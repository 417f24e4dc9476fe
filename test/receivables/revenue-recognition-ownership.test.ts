import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { ManualClock } from '../support/clock.js';
import { onPlan, orgWithRoles } from '../support/factories.js';
import { ledgerUrl } from '../ledger/ledger-support.js';
import { RevenueRecognitionService } from '../../src/modules/receivables/revenue-recognition.service.js';
import { issueInvoice, rUrl, setupReceivables } from './receivables-support.js';

/**
 * Revenue recognition against the ledger: every entry of a run too large for one entry belongs to the run (none is
 * reversed alone); nothing of an invoice is recognized before its date (the first run on or after it catches up); the
 * schedule after a credit note shows what the ledger has (what the credit took back from revenue is no longer recognized).
 * Today is 2026-12-07 (the injected clock): an invoice dated 2026-12-31 is still to come.
 */
describe('receivables: revenue recognition and the ledger', () => {
  let t: TestApp;
  let clock: ManualClock;

  beforeAll(async () => {
    clock = new ManualClock();
    clock.advance(Date.parse('2026-12-07T12:00:00Z') - clock.now());
    t = await createTestApp({}, { clock });
  });
  afterAll(() => t.close());

  /** An organization of its own on professional, EUR books, receivables set up (deferred revenue 2400, revenue 4100). */
  async function books(name: string) {
    const { orgId, users } = await orgWithRoles(t, name);
    await onPlan(t, orgId, 'professional');
    const { acc, customer } = await setupReceivables(t, orgId, users.owner, 'EUR');
    const balance = async (code: string, asOf: string) =>
      (await t.http.get(ledgerUrl(orgId, `accounts/${acc[code]}/balance?asOf=${asOf}`)).set(users.owner.auth).expect(200)).body.baseBalance as string;
    const run = (date: string) => t.http.post(rUrl(orgId, 'revenue-recognition/runs')).set(users.owner.auth).send({ date });
    const schedule = async (invoiceId: string, asOf: string) =>
      (await t.http.get(rUrl(orgId, `invoices/${invoiceId}/revenue-schedule?asOf=${asOf}`)).set(users.owner.auth).expect(200)).body;
    return { orgId, users, acc, customer, balance, run, schedule };
  }
  const recognitions = async (orgId: string) => (await t.db.admin.query(
    `SELECT entry_id::text, count(*)::int AS n, sum(amount)::text AS amount FROM finance.revenue_recognitions WHERE org_id = $1 GROUP BY entry_id ORDER BY n DESC`, [orgId])).rows;

  it('every entry of a run that needs several belongs to the run: none is reversed alone through the ledger', async () => {
    const { orgId, users, acc, customer, balance, run } = await books('Big Run Ltd');
    // 2 × 101 lines of 365.00 for 2026 (1.00 a day): 202 lines, 404 posting lines, two entries of at most 400
    const lines = Array.from({ length: 101 }, (_, k) => ({ description: `Seat ${k + 1}`, quantity: '1', unitPrice: '365.00', revenueAccountId: acc['4100'], serviceStart: '2026-01-01', serviceEnd: '2026-12-31' }));
    for (let n = 0; n < 2; n++) await issueInvoice(t, orgId, users.owner, { customerId: customer, invoiceDate: '2026-01-01', lines });
    const res = await run('2026-01-31');
    expect([res.status, res.body.lines.length]).toEqual([200, 202]);
    const byEntry = await recognitions(orgId);
    // the run records the first entry (200 lines), the second carries the 2 lines left: 31.00 each
    expect(byEntry).toEqual([{ entry_id: res.body.entryId, n: 200, amount: '6200.0000' }, { entry_id: expect.any(String), n: 2, amount: '62.0000' }]);
    const second = byEntry[1].entry_id;
    expect(second).not.toBe(res.body.entryId);
    for (const entryId of [second, res.body.entryId]) {
      const refused = await t.http.post(ledgerUrl(orgId, `journal-entries/${entryId}/reverse`)).set(users.owner.auth).send({});
      expect([refused.status, refused.body.error?.code, refused.body.error?.message]).toEqual([422, 'ledger.entry_of_document',
        `journal entry ${entryId} belongs to the revenue recognition run of 2026-01-31: correct it there, so the document and the ledger stay in step`]);
    }
    // nothing reversed: deferred revenue is what the recognitions left of the 73,730.00 deferred at issue
    const { rows } = await t.db.admin.query(`SELECT count(*)::int AS n FROM finance.journal_entries WHERE org_id = $1 AND reverses_entry_id IS NOT NULL`, [orgId]);
    expect(rows[0].n).toBe(0);
    expect([await balance('2400', '2026-01-31'), await balance('4100', '2026-01-31')]).toEqual(['-67468.00', '-6262.00']);
  });

  it('recognizes nothing of an invoice before its date; the first run on or after it catches up the days before it', async () => {
    const { orgId, users, acc, customer, balance, run, schedule } = await books('Future Invoice Ltd');
    // 3,650.00 for 2026-07-01 to 2027-06-30 (365 days: 10.00 a day), invoiced on 2026-12-31, three weeks from today
    const invoice = await issueInvoice(t, orgId, users.owner, { customerId: customer, invoiceDate: '2026-12-31', lines: [
      { description: 'Support year', quantity: '1', unitPrice: '3650.00', revenueAccountId: acc['4100'], serviceStart: '2026-07-01', serviceEnd: '2027-06-30' }] });
    const early = await run('2026-11-30');
    expect([early.status, early.body]).toEqual([200, expect.objectContaining({ runDate: '2026-11-30', entryId: null, lines: [] })]);
    expect(await recognitions(orgId)).toEqual([]);
    expect([await balance('2400', '2026-11-30'), await balance('4100', '2026-11-30')]).toEqual(['0.00', '0.00']);
    expect((await schedule(invoice.id, '2026-11-30')).lines).toEqual([expect.objectContaining({ netAmount: '3650.00', scheduled: '0.00', recognized: '0.00' })]);
    // the daily job of today (2026-12-07) has nothing of it to recognize: the organization is not listed
    const job = t.app.get(RevenueRecognitionService);
    expect((await job.runDaily()).filter((r) => r.orgId === orgId)).toEqual([]);
    expect(await recognitions(orgId)).toEqual([]);
    // on the invoice's date: Jul 1 to Dec 31, 184 days, 1,840.00 at once
    clock.advance(Date.parse('2026-12-31T12:00:00Z') - clock.now());
    const due = await run('2026-12-31');
    expect([due.status, due.body]).toEqual([200, expect.objectContaining({ postedOn: '2026-12-31', lines: [{ invoiceId: invoice.id, lineNo: 1, amount: '1840.00', recognizedThrough: '2026-12-31' }] })]);
    expect(await recognitions(orgId)).toEqual([{ entry_id: due.body.entryId, n: 1, amount: '1840.0000' }]);
    expect([await balance('2400', '2026-12-31'), await balance('4100', '2026-12-31')]).toEqual(['-1810.00', '-1840.00']);
    expect((await schedule(invoice.id, '2026-12-31')).lines).toEqual([expect.objectContaining({ netAmount: '3650.00', scheduled: '1840.00', recognized: '1840.00', deferred: '1810.00' })]);
  });

  it('the schedule after a credit note is the ledger\'s: what the credit took back from revenue is recognized no longer, deferred never below 0', async () => {
    const { orgId, users, acc, customer, balance, run, schedule } = await books('Credited Schedule Ltd');
    const contract = { quantity: '1', unitPrice: '3650.00', revenueAccountId: acc['4100'], serviceStart: '2026-01-01', serviceEnd: '2026-12-31' };
    const invoice = await issueInvoice(t, orgId, users.owner, { customerId: customer, invoiceDate: '2026-01-01', lines: [
      { description: 'Support 2026', ...contract }, { description: 'Hosting 2026', ...contract }] });
    expect((await run('2026-06-30')).body.lines.map((l: { amount: string }) => l.amount)).toEqual(['1810.00', '1810.00']);
    // Jul 1: line 1 credited whole (1,840.00 still deferred, 1,810.00 from revenue), 0.6 of line 2 (2,190.00: the 1,840.00
    // still deferred, 350.00 from revenue)
    await t.http.post(rUrl(orgId, `invoices/${invoice.id}/credit-notes`)).set(users.owner.auth)
      .send({ date: '2026-07-01', lines: [{ lineNo: 1 }, { lineNo: 2, quantity: '0.6' }] }).expect(201);
    expect([await balance('2400', '2026-12-31'), await balance('4100', '2026-12-31')]).toEqual(['0.00', '-1460.00']);
    expect((await schedule(invoice.id, '2026-12-31')).lines).toEqual([
      expect.objectContaining({ lineNo: 1, netAmount: '0.00', scheduled: '0.00', recognized: '0.00', deferred: '0.00' }),
      expect.objectContaining({ lineNo: 2, netAmount: '1460.00', scheduled: '1460.00', recognized: '1460.00', deferred: '0.00' })]);
    // before the credit note the ledger and the schedule still have the whole lines
    expect([await balance('2400', '2026-06-30'), await balance('4100', '2026-06-30')]).toEqual(['-3680.00', '-3620.00']);
    expect((await schedule(invoice.id, '2026-06-30')).lines).toEqual([
      expect.objectContaining({ lineNo: 1, netAmount: '3650.00', scheduled: '1810.00', recognized: '1810.00', deferred: '1840.00' }),
      expect.objectContaining({ lineNo: 2, netAmount: '3650.00', scheduled: '1810.00', recognized: '1810.00', deferred: '1840.00' })]);
    // nothing is left to recognize, the ledger untouched by later runs
    expect((await run('2026-12-07')).body.lines).toEqual([]);
    expect(await balance('2400', '2026-12-31')).toBe('0.00');
  });
});
