/**
 * @jest-environment ./test/support/time-zone-environment.mjs
 * @jest-environment-options {"timeZone": "America/St_Johns"}
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type pg from 'pg';
import jwt from 'jsonwebtoken';
import { createTestApp, type TestApp } from '../support/app.js';
import { ManualClock } from '../support/clock.js';
import { openTenantTransaction } from '../support/database.js';
import { createOrg, onPlan, registerUser, uniqueEmail, type TestUser } from '../support/factories.js';
import { agentsUrl, semanticUrl } from '../agents/agents-support.js';
import { ledgerUrl, startBooks } from '../ledger/ledger-support.js';
import { rUrl, issueInvoice } from '../receivables/receivables-support.js';
import { createVendor, payablesUrl } from '../payables/payables-support.js';
import { BillingExpiryJob } from '../../src/modules/billing/billing-expiry.job.js';

const DAY_MS = 86_400_000;
const isoDay = (ms: number) => new Date(ms).toISOString().slice(0, 10);

/**
 * The same answers whatever the API process's time zone and the database's TimeZone setting (review r4). The process
 * runs in St. John's (UTC-03:30, -02:30 in summer: the environment above), the database's sessions in Auckland
 * (UTC+13 in its summer, +12 in its winter: createTestApp's databaseTimeZone). The API's days are UTC days.
 */
describe('time zones: the API process in St. John\'s, the database in Auckland', () => {
  let t: TestApp;
  let owner: TestUser;
  let orgId: string;
  const clock = new ManualClock();

  beforeAll(async () => {
    t = await createTestApp({ REDIS_URL: undefined }, { clock, databaseTimeZone: 'Pacific/Auckland' });
    owner = await registerUser(t, 'tz-owner');
    orgId = await createOrg(t, owner, 'Two Zones Ltd');
    await onPlan(t, orgId, 'professional');
  });
  afterAll(() => t.close());

  it('runs in St. John\'s time over a database in Auckland time', async () => {
    expect(new Date('2026-03-01T00:00:00Z').getTimezoneOffset()).toBe(210);
    expect((await t.db.admin.query('SHOW TimeZone')).rows).toEqual([{ TimeZone: 'Pacific/Auckland' }]);
  });

  it('a budget shows what was spent in the current UTC month (a Date parameter goes out in UTC, not as local time)', async () => {
    const budget = (await t.http.post(`/v1/orgs/${orgId}/ai/budgets`).set(owner.auth).send({ costLimit: '1.0000' }).expect(201)).body;
    // the test's month and the API's are read at different moments: from 12:00 UTC of the day, never across a month's end
    const real = clock.now();
    const month = isoDay(clock.atMidday().now()).slice(0, 7);
    // this month's usage: the API asks for it as the first of the month at UTC midnight, 20:30 the day before here
    await t.db.admin.query(`INSERT INTO ai.budget_usage (org_id, budget_id, period, spent_cost, spent_tokens) VALUES ($1, $2, $3::date, 0.25, 1000)`,
      [orgId, budget.id, `${month}-01`]);
    const shown = { id: budget.id, period: month, spentCost: '0.25000000', spentTokens: 1000, costLeft: '0.75000000' };
    const listed = await t.http.get(`/v1/orgs/${orgId}/ai/budgets`).set(owner.auth).expect(200);
    expect(listed.body).toEqual([expect.objectContaining(shown)]);
    const one = await t.http.get(`/v1/orgs/${orgId}/ai/budgets/${budget.id}`).set(owner.auth).expect(200);
    expect(one.body).toMatchObject(shown);
    await t.http.delete(`/v1/orgs/${orgId}/ai/budgets/${budget.id}`).set(owner.auth).expect(204);
    clock.advance(real - clock.now());
  });

  it('the AI usage report selects exactly the UTC days asked, not the database\'s days', async () => {
    const agent = (await t.http.post(agentsUrl(orgId)).set(owner.auth).send({ name: 'Zoned', type: 'assistant', modelId: 'gpt-4o' }).expect(201)).body;
    // 2026-01-10 in UTC; in Auckland (UTC+13) it runs from 2026-01-09T11:00Z to 2026-01-10T11:00Z
    const runs = [['2026-01-09T12:00:00Z', '0.1'], ['2026-01-10T01:00:00Z', '0.2'], ['2026-01-10T12:00:00Z', '0.4'], ['2026-01-11T01:00:00Z', '0.8']];
    for (const [at, cost] of runs) {
      await t.db.admin.query(`INSERT INTO ai.runs (org_id, agent_id, model_id, status, input, input_tokens, cost, started_at, finished_at)
        VALUES ($1, $2, 'gpt-4o', 'succeeded', '[]', 10, $3, $4, $4)`, [orgId, agent.id, cost, at]);
    }
    const res = await t.http.get(`/v1/orgs/${orgId}/ai/usage?from=2026-01-10&to=2026-01-10`).set(owner.auth).expect(200);
    expect(res.body).toMatchObject({ from: '2026-01-10', to: '2026-01-10', runs: 2, cost: '0.60000000' });
    expect(res.body.rows).toEqual([expect.objectContaining({ day: '2026-01-10', agentId: agent.id, modelId: 'gpt-4o', runs: 2, cost: '0.60000000' })]);
    const two = await t.http.get(`/v1/orgs/${orgId}/ai/usage?from=2026-01-09&to=2026-01-10`).set(owner.auth).expect(200);
    expect(two.body.rows.map((r: { day: string; runs: number }) => [r.day, r.runs])).toEqual([['2026-01-09', 1], ['2026-01-10', 2]]);
  });

  it('semantic.v_ar_open and v_ap_open are as of the UTC day, whatever the session\'s TimeZone', async () => {
    const today = Date.now();
    const [m20, m10, m1, p1] = [isoDay(today - 20 * DAY_MS), isoDay(today - 10 * DAY_MS), isoDay(today - DAY_MS), isoDay(today + DAY_MS)];
    const booksOrg = await createOrg(t, owner, 'Open Today Ltd');
    await onPlan(t, booksOrg, 'professional');
    const acc = await startBooks(t, booksOrg, owner, 'USD', `${m20.slice(0, 7)}-01`);
    const deferred = await t.http.post(ledgerUrl(booksOrg, 'accounts')).set(owner.auth).send({ code: '2400', name: 'Deferred revenue', type: 'liability', parentId: acc['2000'] }).expect(201);
    await t.http.put(rUrl(booksOrg, 'settings')).set(owner.auth).send({ arAccountId: acc['1200'], deferredRevenueAccountId: deferred.body.id }).expect(200);
    const customer = (await t.http.post(rUrl(booksOrg, 'customers')).set(owner.auth).send({ name: 'Due Yesterday Ltd' }).expect(201)).body.id as string;
    const line = [{ description: 'Consulting', quantity: '1', unitPrice: '100.00', revenueAccountId: acc['4100'] }];
    const overdue = await issueInvoice(t, booksOrg, owner, { customerId: customer, invoiceDate: m10, dueDate: m1, lines: line });
    const dueTomorrow = await issueInvoice(t, booksOrg, owner, { customerId: customer, invoiceDate: p1, dueDate: p1, lines: line });
    await t.http.put(payablesUrl(booksOrg, 'settings')).set(owner.auth).send({ apAccountId: acc['2100'], approvalRules: [{ above: '0', approvals: 0, roles: ['owner'] }] }).expect(200);
    const vendor = await createVendor(t, booksOrg, owner, { name: 'Due Yesterday Supplies', defaultCurrency: 'USD' });
    const bill = async (billDate: string, dueDate: string) => {
      const draft = (await t.http.post(payablesUrl(booksOrg, 'bills')).set(owner.auth)
        .send({ vendorId: vendor, billDate, dueDate, currency: 'USD', lines: [{ accountId: acc['5200'], unitPrice: '50.00' }] }).expect(201)).body;
      return (await t.http.post(payablesUrl(booksOrg, `bills/${draft.id}/submit`)).set(owner.auth).send({}).expect(200)).body;
    };
    const overdueBill = await bill(m10, m1);
    const billDueTomorrow = await bill(p1, p1);

    // today is the UTC day: the documents dated tomorrow are not open yet, those due yesterday are one day past due. The
    // view reads its day from PostgreSQL's now() when it is queried, not when the dates above were made: past a UTC
    // midnight in between, the documents of tomorrow are due today and the others two days past due
    const openAsOf = (day: string) => {
      const rows = (overdueId: string, tomorrowId: string) => [[overdueId, m1, (Date.parse(day) - Date.parse(m1)) / DAY_MS, '1-30'],
        ...(p1 <= day ? [[tomorrowId, p1, 0, 'current']] : [])];
      return { ar: rows(overdue.id, dueTomorrow.id), ap: rows(overdueBill.id, billDueTomorrow.id) };
    };
    expect(openAsOf(isoDay(today))).toEqual({ ar: [[overdue.id, m1, 1, '1-30']], ap: [[overdueBill.id, m1, 1, '1-30']] });
    const utcDay = async (c: pg.Client | pg.Pool) => (await c.query(`SELECT (now() AT TIME ZONE 'UTC')::date::text AS day`)).rows[0].day as string;
    const arSql = 'SELECT document_id, due_date::text, days_past_due, bucket FROM semantic.v_ar_open ORDER BY document_date';
    const apSql = 'SELECT bill_id, due_date::text, days_past_due, bucket FROM semantic.v_ap_open ORDER BY bill_date';
    // in sessions 26 hours apart (UTC-12 and UTC+14): at any hour one of them is on another day than UTC
    const clients: pg.Client[] = [];
    try {
      for (const zone of ['Etc/GMT+12', 'Etc/GMT-14']) {
        const { c } = await openTenantTransaction(t.db.apiUrl, { sub: owner.id, org_id: booksOrg }, clients);
        await c.query(`SELECT set_config('TimeZone', $1, true)`, [zone]);
        const rows = async (text: string) => (await c.query({ text, rowMode: 'array' })).rows;
        // now() is the transaction's start: the day the view reads
        expect({ zone, ar: await rows(arSql), ap: await rows(apSql) }).toEqual({ zone, ...openAsOf(await utcDay(c)) });
        await c.query('ROLLBACK');
      }
    } finally {
      for (const c of clients) await c.end();
    }
    // and through the semantic query route (the API's sessions: Auckland)
    for (const [sql, part] of [[arSql, 'ar'], [apSql, 'ap']] as const) {
      const before = await utcDay(t.db.admin);
      const res = await t.http.post(semanticUrl(booksOrg)).set(owner.auth).send({ sql }).expect(200);
      // the route's transaction is on the day before the call or the one after it (the same but past a midnight)
      expect([openAsOf(before)[part], openAsOf(await utcDay(t.db.admin))[part]]).toContainEqual(res.body.rows);
    }
  });

  it('a user\'s createdAt and updatedAt (timestamp columns, UTC) are written in UTC, not in the database\'s time', async () => {
    const ageOf = async (id: string) => (await t.db.admin.query(`SELECT extract(epoch FROM now() - ("createdAt" AT TIME ZONE 'utc'))::int AS created,
      extract(epoch FROM now() - ("updatedAt" AT TIME ZONE 'utc'))::int AS updated FROM core."User" WHERE id = $1`, [id])).rows[0];
    const user = await registerUser(t, 'tz-registered');
    const registered = await ageOf(user.id);
    // written a moment ago (Auckland's wall time taken as UTC would be 12 or 13 hours ahead)
    expect(registered.created).toBeGreaterThanOrEqual(0);
    expect(registered.created).toBeLessThan(600);
    expect(registered.updated).toBe(registered.created);

    // the profile sync of a sign-in (token exchange) rewrites updatedAt
    const token = (name: string) => jwt.sign({ sub: 'tz-hub-user', email, name }, t.config.auth.nextAuthSecret!, { algorithm: 'HS256', expiresIn: 600 });
    const email = uniqueEmail('tz-hub');
    const first = await t.http.post('/v1/auth/exchange').send({ token: token('Zoned Ada') }).expect(200);
    await t.db.admin.query(`UPDATE core."User" SET "updatedAt" = "updatedAt" - interval '1 day' WHERE id = $1`, [first.body.user.id]);
    const second = await t.http.post('/v1/auth/exchange').send({ token: token('Zoned Ada King') }).expect(200);
    expect(second.body.user).toMatchObject({ id: first.body.user.id, name: 'Zoned Ada King' });
    const synced = await ageOf(first.body.user.id);
    expect(synced.updated).toBeGreaterThanOrEqual(0);
    expect(synced.updated).toBeLessThan(600);
  });

  it('a trial ends trialDays × 24 hours after its start, as the entitlements say, across the database zone\'s daylight-saving change', async () => {
    const job = t.app.get(BillingExpiryJob);
    const defaultOrg = await createOrg(t, owner, 'Default Trial Across DST');
    const localOrg = await createOrg(t, owner, 'Local Trial Across DST');
    // started 2026-03-25T00:00Z; Auckland's clocks went back an hour on 2026-04-05 (UTC+13 → +12)
    const start = '2026-03-25T00:00:00.000Z';
    const end = new Date(Date.parse(start) + 14 * DAY_MS);
    await t.db.admin.query('UPDATE core.organizations SET created_at = $2 WHERE id = $1', [defaultOrg, start]);
    await t.db.admin.query(`INSERT INTO hub."Subscription" (id, "userId", "appId", plan, status, "organizationId", "stripeSubscriptionId", "createdAt", "updatedAt")
      VALUES ('sub-tz-local-trial', NULL, 'omnizen', 'professional', 'trialing', $1, NULL, $2::timestamptz AT TIME ZONE 'UTC', $2::timestamptz AT TIME ZONE 'UTC')`, [localOrg, start]);
    try {
      clock.advance(end.getTime() - 2 * DAY_MS - clock.now()); // two days before the end
      for (const org of [defaultOrg, localOrg]) {
        const ent = await t.http.get(`/v1/orgs/${org}/entitlements?app=omnizen`).set(owner.auth).expect(200);
        expect(ent.body).toMatchObject({ status: 'trialing', trialEndsAt: end.toISOString() });
      }
      // the notices carry the same end
      const announced = await job.noticeEndingTrials();
      expect(announced.map((a) => [a.orgId, a.subscriptionId, a.trialEndsAt.toISOString()]).sort()).toEqual([
        [defaultOrg, null, end.toISOString()], [localOrg, 'sub-tz-local-trial', end.toISOString()],
      ].sort());
      const { rows: notices } = await t.db.admin.query(`SELECT org_id, trial_ends_at FROM hub.trial_notices WHERE org_id = any($1) ORDER BY org_id`, [[defaultOrg, localOrg]]);
      expect(notices).toEqual([defaultOrg, localOrg].sort().map((org) => ({ org_id: org, trial_ends_at: end })));

      // half an hour after the end the local trial is over: read-only by the entitlements, and ended by the job
      clock.advance(end.getTime() + 30 * 60_000 - clock.now());
      const ent = await t.http.get(`/v1/orgs/${localOrg}/entitlements?app=omnizen`).set(owner.auth).expect(200);
      expect(ent.body).toMatchObject({ status: 'trialing', access: 'read_only' });
      expect(await job.expire()).toEqual(['sub-tz-local-trial']);
      const { rows: [ended] } = await t.db.admin.query(`SELECT status FROM hub."Subscription" WHERE id = 'sub-tz-local-trial'`);
      expect(ended).toEqual({ status: 'canceled' });
    } finally {
      clock.advance(Date.now() - clock.now());
    }
  });
});
