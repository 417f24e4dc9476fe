import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, onPlan, registerUser, type TestUser } from '../support/factories.js';
import { startBooks } from '../ledger/ledger-support.js';
import { payablesUrl } from './payables-support.js';

// The AP and the AR aging read ?buckets= alike: a value that is not 1 to 10 ascending positive whole numbers of days
// is a 400 with the module's own code (payables.buckets, receivables.buckets) and the same message, whether the
// value is malformed (letters) or well-formed but wrong (descending, zero, too many edges).
describe('payables: aging ?buckets=', () => {
  let t: TestApp;
  let owner: TestUser;
  let orgId: string;
  const arUrl = (p: string) => `/v1/orgs/${orgId}/receivables/${p}`;

  beforeAll(async () => {
    t = await createTestApp();
    owner = await registerUser(t, 'aging-buckets');
    orgId = await createOrg(t, owner, 'Aging Buckets Ltd');
    await onPlan(t, orgId, 'professional');
    await startBooks(t, orgId, owner);
  });
  afterAll(() => t.close());

  const bad = ['abc', '60,30', '0,30', '30,30', '1,2,3,4,5,6,7,8,9,10,11', '15;30'];

  it.each(bad)('buckets=%s: 400 payables.buckets naming the value, the same message as receivables.buckets', async (value) => {
    const ap = await t.http.get(payablesUrl(orgId, `aging?asOf=2026-01-31&buckets=${encodeURIComponent(value)}`)).set(owner.auth);
    const ar = await t.http.get(arUrl(`aging?asOf=2026-01-31&buckets=${encodeURIComponent(value)}`)).set(owner.auth);
    const message = `buckets must be 1 to 10 ascending positive whole numbers of days, e.g. 15,30,60 (got "${value}")`;
    expect([ap.status, ap.body.error]).toEqual([400, { code: 'payables.buckets', message }]);
    expect([ar.status, ar.body.error]).toEqual([400, { code: 'receivables.buckets', message }]);
  });

  it('good edges (spaces after the commas too) give the buckets they name, as in receivables', async () => {
    const ap = (await t.http.get(payablesUrl(orgId, `aging?asOf=2026-01-31&buckets=${encodeURIComponent('15, 30,60')}`)).set(owner.auth).expect(200)).body;
    expect(ap).toMatchObject({ asOf: '2026-01-31', baseCurrency: 'EUR', buckets: ['current', '1-15', '16-30', '31-60', '>60'], rows: [], total: '0.00' });
    const ar = (await t.http.get(arUrl(`aging?asOf=2026-01-31&buckets=${encodeURIComponent('15, 30,60')}`)).set(owner.auth).expect(200)).body;
    expect(ar.bucketLabels).toEqual(['current', '1-15', '16-30', '31-60', '>60']);
  });

  it('the code is documented on getApAging, as receivables.buckets is on getArAging', async () => {
    const doc = (await t.http.get('/docs-json').expect(200)).body;
    const described = (path: string) => doc.paths[path].get.responses['400'].description as string;
    expect(described('/v1/orgs/{orgId}/payables/aging')).toContain('`payables.buckets` (buckets must be 1 to 10 ascending positive whole numbers of days, e.g. 15,30,60)');
    expect(described('/v1/orgs/{orgId}/receivables/aging')).toContain('`receivables.buckets` (buckets must be 1 to 10 ascending positive whole numbers of days, e.g. 15,30,60)');
  });
});
