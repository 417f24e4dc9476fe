import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { ManualClock } from '../support/clock.js';
import { onPlan, orgWithRoles } from '../support/factories.js';
import { today } from '../../src/platform/clock/clock.js';
import { addDays } from '../../src/platform/http/calendar-date.js';
import { ledgerUrl, startBooks } from './ledger-support.js';

const DAY = 86_400_000;

/**
 * Accountant's review, issue 3: the balance sheet without asOf is as of today, but its document said "default:
 * everything posted" (its query inherited the trial balance's asOf), and today was the wall clock's, not the clock the
 * other "today" defaults read (the aging, a payment's date). Now its asOf is documented as today (UTC), with the trial
 * balance's default (everything posted, later-dated entries included) named beside it, and today is the injectable
 * clock's UTC day. The clock is 40 days ahead of the wall clock here, so the two todays differ.
 */
describe('balance sheet without asOf: today (the clock\'s UTC day), documented; the trial balance: everything posted', () => {
  let t: TestApp;
  const clock = new ManualClock().atMidday();
  clock.advance(40 * DAY);
  beforeAll(async () => {
    t = await createTestApp({}, { clock });
  });
  afterAll(() => t.close());

  it('documents both defaults in the OpenAPI document', async () => {
    const doc = (await t.http.get('/docs-json').expect(200)).body;
    const asOfOf = (path: string) => doc.paths[`/v1/orgs/{orgId}/ledger/reports/${path}`].get.parameters.find((p: { name: string }) => p.name === 'asOf');
    expect(asOfOf('balance-sheet')).toMatchObject({ required: false, description: expect.stringContaining('default: today, the current UTC day') });
    expect(asOfOf('balance-sheet').description).toContain('the trial balance and an account\'s balance without asOf count everything posted');
    expect(asOfOf('balance-sheet').description).not.toContain('default: everything posted');
    expect(asOfOf('trial-balance').description).toContain('default: everything posted, entries dated after today included');
    expect(doc.paths['/v1/orgs/{orgId}/ledger/reports/balance-sheet'].get.description).toContain('Without asOf the balance sheet is as of today (the current UTC day');
  });

  it('the balance sheet is as of the clock\'s today, leaving later entries out; the trial balance and an account balance count them', async () => {
    const day = today(clock);
    const year = Number(day.slice(0, 4));
    const { orgId, users } = await orgWithRoles(t, 'Today Ltd');
    await onPlan(t, orgId, 'professional');
    const owner = users.owner;
    const url = (path: string) => ledgerUrl(orgId, path);
    const a = await startBooks(t, orgId, owner, 'EUR', `${year - 1}-01-01`);
    for (const y of [year, year + 1]) await t.http.post(url('fiscal-years')).set(owner.auth).send({ startDate: `${y}-01-01` }).expect(201);
    const post = (date: string, amount: string, credit: string) => t.http.post(url('journal-entries')).set(owner.auth)
      .send({ date, lines: [{ accountId: a['1100'], debit: amount }, { accountId: a[credit], credit: amount }] }).expect(201);
    await post(`${year - 1}-01-01`, '1000.00', '3100');
    // before the clock's today (and after the wall clock's), and after it
    await post(addDays(day, -20), '200.00', '4100');
    await post(addDays(day, 10), '400.00', '4100');

    const bs = await t.http.get(url('reports/balance-sheet')).set(users.viewer.auth).expect(200);
    expect({ asOf: bs.body.asOf, totalAssets: bs.body.totalAssets, currentEarnings: bs.body.currentEarnings, balanced: bs.body.balanced })
      .toEqual({ asOf: day, totalAssets: '1200.00', currentEarnings: '200.00', balanced: true });
    const csv = await t.http.get(url('reports/balance-sheet?format=csv')).set(users.viewer.auth).expect(200);
    expect(csv.headers['content-disposition']).toContain(`balance-sheet-${day}.csv`);
    const tb = await t.http.get(url('reports/trial-balance')).set(users.viewer.auth).expect(200);
    expect({ asOf: tb.body.asOf, totalDebit: tb.body.totalDebit }).toEqual({ asOf: null, totalDebit: '1600.00' });
    const cash = await t.http.get(url(`accounts/${a['1100']}/balance`)).set(users.viewer.auth).expect(200);
    expect({ asOf: cash.body.asOf, baseBalance: cash.body.baseBalance }).toEqual({ asOf: null, baseBalance: '1600.00' });
  });
});
