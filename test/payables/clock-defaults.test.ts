import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { ManualClock } from '../support/clock.js';
import { onPlan, orgWithRoles, type RoleUsers } from '../support/factories.js';
import { startBooks } from '../ledger/ledger-support.js';
import { payablesUrl } from './payables-support.js';

/**
 * The days payables fills in when a request leaves them out (the AP aging's asOf, a refund's date) come from the
 * application's clock, as receivables' do: a test or a replay that moves the clock moves them (they came from the
 * system clock).
 */
describe('payables: defaults from the application clock', () => {
  const clock = new ManualClock().atMidday(); // the test's day and the server's are read at two moments
  let t: TestApp;
  let orgId: string;
  let users: RoleUsers;

  beforeAll(async () => {
    t = await createTestApp({}, { clock });
    ({ orgId, users } = await orgWithRoles(t, 'Clocked Ltd'));
    await onPlan(t, orgId, 'professional');
    await startBooks(t, orgId, users.owner);
  });
  afterAll(() => t.close());

  it('ages as of the clock\'s day when no asOf is given', async () => {
    clock.advance(40 * 86_400_000);
    const day = new Date(clock.now()).toISOString().slice(0, 10);
    expect(day).not.toBe(new Date().toISOString().slice(0, 10));
    const aging = await t.http.get(payablesUrl(orgId, 'aging')).set(users.accountant.auth).expect(200);
    expect(aging.body).toMatchObject({ asOf: day, rows: [], total: '0.00' });
  });
});
