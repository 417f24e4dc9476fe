import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { createTestApp, type TestApp } from '../support/app.js';
import { advisoryLockWaiters } from '../support/database.js';
import { ManualClock } from '../support/clock.js';
import { createOrg, registerUser, type TestUser, onPlan } from '../support/factories.js';
import { ledgerUrl } from '../ledger/ledger-support.js';
import { RevenueRecognitionService } from '../../src/modules/receivables/revenue-recognition.service.js';
import { issueInvoice, rUrl, setupReceivables } from './receivables-support.js';

/**
 * A support contract of 3,650.00 for 2026 (365 days: 10.00 a day) and a one-off line of 100.00, issued Jan 1.
 * Jan 31: 31 days → 310.00 recognized. Feb 28 (February closed): 59 days → 590.00, so 280.00 more, posted Mar 1.
 * The daily job on 2027-01-05 (clock moved) recognizes the rest, 3,060.00; deferred revenue is then 0.
 */
describe('receivables: revenue recognition', () => {
  let t: TestApp;
  let clock: ManualClock;
  let owner: TestUser;
  let orgId: string;
  let acc: Record<string, string>;
  let customer: string;
  let invoice: any;

  beforeAll(async () => {
    clock = new ManualClock().atMidday(); // today is read by the test and by the API at different moments
    // runs are dated up to the last day of 2026, and never after today: the clock is on Jan 1, 2027 at least
    clock.advance(Math.max(0, Date.parse('2027-01-01T12:00:00Z') - clock.now()));
    t = await createTestApp({}, { clock });
    owner = await registerUser(t, 'owner');
    orgId = await createOrg(t, owner, 'Deferred Ltd');
    await onPlan(t, orgId, 'professional');
    ({ acc, customer } = await setupReceivables(t, orgId, owner));
    invoice = await issueInvoice(t, orgId, owner, { customerId: customer, invoiceDate: '2026-01-01', lines: [
      { description: 'Support contract 2026', quantity: '1', unitPrice: '3650.00', revenueAccountId: acc['4100'], serviceStart: '2026-01-01', serviceEnd: '2026-12-31' },
      { description: 'Set-up', quantity: '1', unitPrice: '100.00', revenueAccountId: acc['4100'] }] });
  });
  afterAll(() => t.close());

  const balance = async (code: string, asOf: string) => (await t.http.get(ledgerUrl(orgId, `accounts/${acc[code]}/balance?asOf=${asOf}`)).set(owner.auth).expect(200)).body.baseBalance;
  const entries = async () => Number((await t.db.admin.query(`SELECT count(*) AS n FROM finance.journal_entries WHERE org_id = $1`, [orgId])).rows[0].n);

  it('defers the service period at issue, recognizes straight-line by days, once per day', async () => {
    expect(await balance('2400', '2026-01-01')).toBe('-3650.00');
    expect(await balance('4100', '2026-01-01')).toBe('-100.00');
    const run = await t.http.post(rUrl(orgId, 'revenue-recognition/runs')).set(owner.auth).send({ date: '2026-01-31' }).expect(200);
    expect(run.body).toMatchObject({ runDate: '2026-01-31', postedOn: '2026-01-31', note: null, replayed: false,
      lines: [{ invoiceId: invoice.id, lineNo: 1, amount: '310.00', recognizedThrough: '2026-01-31' }] });
    const n = await entries();
    const again = await t.http.post(rUrl(orgId, 'revenue-recognition/runs')).set(owner.auth).send({ date: '2026-01-31' }).expect(200);
    expect(again.body).toMatchObject({ replayed: true, entryId: run.body.entryId });
    expect(await entries()).toBe(n);
    expect(await balance('2400', '2026-01-31')).toBe('-3340.00');
    expect(await balance('4100', '2026-01-31')).toBe('-410.00');
    const schedule = await t.http.get(rUrl(orgId, `invoices/${invoice.id}/revenue-schedule?asOf=2026-01-31`)).set(owner.auth).expect(200);
    expect(schedule.body.lines).toEqual([expect.objectContaining({ lineNo: 1, netAmount: '3650.00', scheduled: '310.00', recognized: '310.00', deferred: '3340.00' })]);
    // an invoice with recognized revenue is credited, not voided
    expect((await t.http.post(rUrl(orgId, `invoices/${invoice.id}/void`)).set(owner.auth).send({}).expect(409)).body.error.code).toBe('receivables.invalid_status');
  });

  it('a run dated after today (the clock\'s) is a 422 naming today, nothing written: only what has elapsed is recognized', async () => {
    const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);
    const [today, tomorrow] = [day(clock.now()), day(clock.now() + 86_400_000)];
    const n = await entries();
    const res = await t.http.post(rUrl(orgId, 'revenue-recognition/runs')).set(owner.auth).send({ date: tomorrow }).expect(422);
    expect(res.body.error).toEqual({ code: 'receivables.recognition_date_future', message: `date ${tomorrow} is after today (${today}): revenue is recognized up to today at the latest`, details: { today } });
    expect(await entries()).toBe(n);
    const { rows } = await t.db.admin.query(`SELECT count(*)::int AS n FROM finance.revenue_recognition_runs WHERE org_id = $1 AND run_date > $2::date`, [orgId, today]);
    expect(rows[0].n).toBe(0);
  });

  it('never posts into a closed period: it posts into the first open one and says so', async () => {
    const periods = (await t.http.get(ledgerUrl(orgId, 'fiscal-years')).set(owner.auth).expect(200)).body[0].periods;
    await t.http.post(ledgerUrl(orgId, `periods/${periods[1].id}/close`)).set(owner.auth).send({}).expect(200);
    const run = await t.http.post(rUrl(orgId, 'revenue-recognition/runs')).set(owner.auth).send({ date: '2026-02-28' }).expect(200);
    expect(run.body).toMatchObject({ postedOn: '2026-03-01', lines: [expect.objectContaining({ amount: '280.00', recognizedThrough: '2026-02-28' })] });
    expect(run.body.note).toMatch(/2026-02-01 to 2026-02-28 is closed: posted on 2026-03-01/);
    const entry = (await t.http.get(ledgerUrl(orgId, `journal-entries/${run.body.entryId}`)).set(owner.auth).expect(200)).body;
    expect(entry.date).toBe('2026-03-01');
    expect(await balance('2400', '2026-02-28')).toBe('-3340.00');
  });

  /** An organization of its own (professional, receivables set up) with, unless `withContract` is false, a 3,650.00 support contract for 2026 issued Jan 1. */
  async function contractOrg(prefix: string, name: string, withContract = true) {
    const other = await registerUser(t, prefix);
    const otherOrg = await createOrg(t, other, name);
    await onPlan(t, otherOrg, 'professional');
    const r = await setupReceivables(t, otherOrg, other);
    const contract = withContract ? await issueInvoice(t, otherOrg, other, { customerId: r.customer, invoiceDate: '2026-01-01', lines: [
      { description: 'Support contract 2026', quantity: '1', unitPrice: '3650.00', revenueAccountId: r.acc['4100'], serviceStart: '2026-01-01', serviceEnd: '2026-12-31' }] }) : undefined;
    return { other, otherOrg, r, contract };
  }

  it('two runs of different days at once recognize a line once: the second waits and works from the first', async () => {
    const { other, otherOrg, r, contract } = await contractOrg('race-owner', 'Deferred Race Ltd');
    // postings of the organization wait while a side transaction holds its posting lock: both runs are in flight at once
    const side = new pg.Client({ connectionString: t.db.url });
    await side.connect();
    try {
      await side.query('BEGIN');
      await side.query(`SELECT core.xact_lock(('finance.posting:' || $1))`, [otherOrg]);
      const runs = ['2026-12-31', '2026-12-30'].map((date) => t.http.post(rUrl(otherOrg, 'revenue-recognition/runs')).set(other.auth).send({ date }).then((res) => res));
      await advisoryLockWaiters(t.db.admin, 2);
      await side.query('COMMIT');
      const [full, earlier] = await Promise.all(runs);
      expect([full.status, earlier.status]).toEqual([200, 200]);
      // whichever ran first, the two together recognized the contract once (3,650.00 through Dec 31)
      const amounts = [...full.body.lines, ...earlier.body.lines].map((l: { amount: string }) => Number(l.amount));
      expect(amounts.reduce((a, b) => a + b, 0).toFixed(2)).toBe('3650.00');
    } finally {
      await side.end();
    }
    const deferred = await t.http.get(ledgerUrl(otherOrg, `accounts/${r.acc['2400']}/balance?asOf=2026-12-31`)).set(other.auth).expect(200);
    expect(deferred.body.baseBalance).toBe('0.00');
    const schedule = await t.http.get(rUrl(otherOrg, `invoices/${contract.id}/revenue-schedule?asOf=2026-12-31`)).set(other.auth).expect(200);
    expect(schedule.body.lines[0]).toMatchObject({ recognized: '3650.00', deferred: '0.00' });
    // fully recognized, it is revenue: now a credit note takes it back from revenue
    await t.http.post(rUrl(otherOrg, `invoices/${contract.id}/credit-notes`)).set(other.auth).send({ date: '2026-12-31' }).expect(201);
    const revenue = await t.http.get(ledgerUrl(otherOrg, `accounts/${r.acc['4100']}/balance?asOf=2026-12-31`)).set(other.auth).expect(200);
    expect(revenue.body.baseBalance).toBe('0.00');
  });

  it('a credit note takes what is still deferred back from deferred revenue and the rest from revenue; recognition spreads only what is left', async () => {
    const { other, otherOrg, r, contract } = await contractOrg('credit-owner', 'Credited Contract Ltd');
    const bal = async (code: string, asOf = '2026-12-31') => (await t.http.get(ledgerUrl(otherOrg, `accounts/${r.acc[code]}/balance?asOf=${asOf}`)).set(other.auth).expect(200)).body.baseBalance;
    const run = (date: string) => t.http.post(rUrl(otherOrg, 'revenue-recognition/runs')).set(other.auth).send({ date }).expect(200);
    await run('2026-01-31'); // 310.00 recognized, 3,340.00 still deferred
    // half the contract is cancelled on Feb 1: 1,825.00, all of it still deferred
    const half = await t.http.post(rUrl(otherOrg, `invoices/${contract.id}/credit-notes`)).set(other.auth).send({ date: '2026-02-01', lines: [{ lineNo: 1, quantity: '0.5' }] }).expect(201);
    const entry = (await t.http.get(ledgerUrl(otherOrg, `journal-entries/${half.body.entryId}`)).set(other.auth).expect(200)).body;
    expect(entry.lines.filter((l: any) => l.accountId === r.acc['2400']).map((l: any) => l.debit)).toEqual(['1825.00']);
    expect(entry.lines.filter((l: any) => l.accountId === r.acc['4100'])).toEqual([]);
    expect([await bal('2400', '2026-02-01'), await bal('4100', '2026-02-01')]).toEqual(['-1515.00', '-310.00']);
    // the year's runs recognize what is left, 1,825.00 in all: deferred revenue ends at zero
    const end = await run('2026-12-31');
    expect(end.body.lines).toEqual([expect.objectContaining({ amount: '1515.00' })]);
    expect([await bal('2400'), await bal('4100')]).toEqual(['0.00', '-1825.00']);
    // the other half, credited once all is recognized, comes out of revenue
    await t.http.post(rUrl(otherOrg, `invoices/${contract.id}/credit-notes`)).set(other.auth).send({ date: '2026-12-31' }).expect(201);
    expect([await bal('2400'), await bal('4100'), await bal('1200')]).toEqual(['0.00', '0.00', '0.00']);
    expect((await run('2026-12-30')).body.lines).toEqual([]);
  });

  it('in another currency, a third credited mid-period: deferred revenue\'s base still ends at exactly zero', async () => {
    const { other, otherOrg, r } = await contractOrg('fx-credit-owner', 'Credited FX Ltd', false);
    await t.http.post(ledgerUrl(otherOrg, 'fx-rates/import')).set(other.auth).send({ rates: [{ currency: 'EUR', date: '2026-01-01', rate: '1.0937' }] }).expect(201);
    const contract = await issueInvoice(t, otherOrg, other, { customerId: r.customer, invoiceDate: '2026-01-01', currency: 'EUR', lines: [
      { description: 'Licence 2026', quantity: '3', unitPrice: '333.37', revenueAccountId: r.acc['4100'], serviceStart: '2026-01-01', serviceEnd: '2026-12-31' }] });
    const bal = async (code: string) => (await t.http.get(ledgerUrl(otherOrg, `accounts/${r.acc[code]}/balance?asOf=2026-12-31`)).set(other.auth).expect(200)).body;
    await t.http.post(rUrl(otherOrg, 'revenue-recognition/runs')).set(other.auth).send({ date: '2026-04-17' }).expect(200);
    await t.http.post(rUrl(otherOrg, `invoices/${contract.id}/credit-notes`)).set(other.auth).send({ date: '2026-04-18', lines: [{ lineNo: 1, quantity: '1' }] }).expect(201);
    await t.http.post(rUrl(otherOrg, 'revenue-recognition/runs')).set(other.auth).send({ date: '2026-09-09' }).expect(200);
    await t.http.post(rUrl(otherOrg, 'revenue-recognition/runs')).set(other.auth).send({ date: '2026-12-31' }).expect(200);
    const deferred = await bal('2400');
    expect([deferred.baseBalance, deferred.currencies.map((c: { balance: string }) => c.balance)]).toEqual(['0.00', ['0.00']]);
    // revenue is the two thirds left, 666.74 EUR
    expect((await bal('4100')).currencies.find((c: { currency: string }) => c.currency === 'EUR').balance).toBe('-666.74');
  });

  it('the daily job (injectable clock) recognizes the rest for every organization, idempotently', async () => {
    await t.http.post(ledgerUrl(orgId, 'fiscal-years')).set(owner.auth).send({ startDate: '2027-01-01' }).expect(201);
    clock.advance(Date.parse('2027-01-05T03:00:00Z') - clock.now());
    const job = t.app.get(RevenueRecognitionService);
    expect(await job.runDaily()).toEqual([{ orgId, outcome: 'posted 1 line(s) on 2027-01-05' }]);
    expect(await balance('2400', '2027-01-05')).toBe('0.00');
    expect(await balance('4100', '2027-01-05')).toBe('-3750.00');
    // the same day again is a replay; tomorrow nothing is left, and no organization is listed
    const n = await entries();
    expect(await job.runDaily()).toEqual([{ orgId, outcome: 'replayed' }]);
    expect(await entries()).toBe(n);
    clock.advance(86_400_000);
    expect(await job.runDaily()).toEqual([]);
    const schedule = await t.http.get(rUrl(orgId, `invoices/${invoice.id}/revenue-schedule?asOf=2027-01-05`)).set(owner.auth).expect(200);
    expect(schedule.body.lines[0]).toMatchObject({ scheduled: '3650.00', recognized: '3650.00', deferred: '0.00' });
  });
});
