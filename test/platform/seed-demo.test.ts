import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { DEMO_ORG, DEMO_PASSWORD, DEMO_USERS, seedDemo, type DemoAccounts, type DemoApi, type DemoBilling } from '../../scripts/seed-demo.js';
import { OutboxRelay } from '../../src/platform/queue/outbox-relay.service.js';
import { createTestApp, type TestApp } from '../support/app.js';

/** npm run seed:demo, driven through the test app: twice gives the same data, every row written through the API. */
describe('seed:demo', () => {
  let t: TestApp;
  let api: DemoApi;
  let billing: DemoBilling;
  let accounts: DemoAccounts;
  beforeAll(async () => {
    t = await createTestApp({ REDIS_URL: '', STRIPE_WEBHOOK_SECRET: 'whsec_seed_demo_test' });
    billing = { webhookSecret: 'whsec_seed_demo_test', drain: () => t.app.get(OutboxRelay).drain() };
    accounts = { markEmailVerified: (email) => t.db.admin.query(`UPDATE core.user_identities SET email_verified_at = now() WHERE provider = 'password' AND email = $1`, [email]) };
    api = async (method, url, body, token, headers = {}) => {
      const req = method === 'GET' ? t.http.get(url) : t.http.post(url).set(headers).send(JSON.stringify(body ?? {})).set('content-type', 'application/json');
      const res = await (token ? req.set('authorization', `Bearer ${token}`) : req);
      return { status: res.status, body: res.body };
    };
  });
  afterAll(() => t.close());

  const snapshot = async () => {
    const q = async (sql: string) => (await t.db.admin.query(sql)).rows;
    return {
      users: await q(`SELECT email FROM core."User" WHERE email LIKE '%@demo.omnizen.local' ORDER BY email`),
      orgs: await q(`SELECT name FROM core.organizations WHERE name = '${DEMO_ORG}'`),
      members: await q(`SELECT u.email, m.role FROM core.memberships m JOIN core."User" u ON u.id = m.user_id JOIN core.organizations o ON o.id = m.org_id WHERE o.name = '${DEMO_ORG}' ORDER BY u.email`),
      entries: await q(`SELECT e.entry_date::text AS date, e.memo, e.idempotency_key FROM finance.journal_entries e JOIN core.organizations o ON o.id = e.org_id WHERE o.name = '${DEMO_ORG}' ORDER BY e.idempotency_key`),
      lines: await q(`SELECT l.currency, sum(l.base_debit)::text AS debit, sum(l.base_credit)::text AS credit FROM finance.journal_lines l JOIN core.organizations o ON o.id = l.org_id WHERE o.name = '${DEMO_ORG}' GROUP BY l.currency ORDER BY l.currency`),
      plan: await q(`SELECT s."appId", s.plan, s.status FROM hub."Subscription" s JOIN core.organizations o ON o.id::text = s."organizationId" WHERE o.name = '${DEMO_ORG}'`),
      postingAudits: await q(`SELECT count(*)::int AS n FROM core.audit_logs a JOIN core.organizations o ON o.id = a.org_id WHERE o.name = '${DEMO_ORG}' AND a.entity_type = 'journal_entry'`),
    };
  };

  it('creates members of every role and months of entries in two currencies, and a second run changes nothing', async () => {
    const first = await seedDemo(api, billing, accounts);
    const after1 = await snapshot();
    expect(after1.members.map((m: { role: string }) => m.role).sort()).toEqual(['accountant', 'admin', 'member', 'owner', 'viewer']);
    expect(after1.entries).toHaveLength(1 + 4 * 6);
    expect(after1.lines.map((l: { currency: string }) => l.currency)).toEqual(['EUR', 'USD']);
    expect(after1.postingAudits[0].n).toBe(after1.entries.length);
    expect(after1.plan).toEqual([{ appId: 'omnizen', plan: 'enterprise', status: 'active' }]);

    const second = await seedDemo(api, billing, accounts);
    expect(second).toEqual(first);
    expect(await snapshot()).toEqual(after1);

    // the printed logins work, and the books balance
    const login = await t.http.post('/v1/auth/login').send({ email: DEMO_USERS[4].email, password: DEMO_PASSWORD }).expect(200);
    const tb = await t.http.get(`/v1/orgs/${first.orgId}/ledger/reports/trial-balance`).set('authorization', `Bearer ${login.body.accessToken}`).expect(200);
    expect(tb.body.balanced).toBe(true);
  });
});
