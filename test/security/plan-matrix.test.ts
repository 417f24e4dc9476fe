import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, onPlan, registerUser, type TestUser } from '../support/factories.js';
import { ledgerUrl, startBooks } from '../ledger/ledger-support.js';

/**
 * The plan matrix, generic over the OpenAPI document: every write operation of the OmniZen app's modules
 * (APP_PREFIXES) is called
 *  (a) by the owner of an organization whose subscription is read-only (canceled) → 402 billing.subscription_inactive;
 *  (b) by the owner of a starter organization → 402 billing.feature_not_in_plan exactly when the route's
 *      feature is off for starter in hub.plan_features (the plan table as data), naming the feature's
 *      cheapest plan; otherwise the gate lets it through (whatever the handler then answers, never 402);
 * and every read stays open to the read-only organization. Nothing a refused call would write is written.
 * A write route added to these modules without a billing requirement fails the first test.
 */

const APP_PREFIXES = ['/v1/orgs/{orgId}/ledger', '/v1/orgs/{orgId}/receivables', '/v1/orgs/{orgId}/payables', '/v1/orgs/{orgId}/webhooks', '/v1/orgs/{orgId}/agents', '/v1/orgs/{orgId}/ai', '/v1/orgs/{orgId}/semantic', '/v1/orgs/{orgId}/knowledge'];
const METHODS = ['get', 'post', 'put', 'patch', 'delete'] as const;
/**
 * The organization's settings: organization administration, not an app module (no route requirement: a lapsed
 * organization still sets its time zone), but one key is an app feature: branding is white_label (enterprise, custom),
 * checked by the handler for the key written.
 */
const SETTINGS_PREFIX = '/v1/orgs/{orgId}/settings';
type Method = (typeof METHODS)[number];

/** POSTs that only compute and write nothing: open like reads (@DoesNotWrite). */
const COMPUTES_ONLY = new Set(['POST /v1/orgs/{orgId}/ledger/tax-codes/{taxCodeId}/calculate', 'POST /v1/orgs/{orgId}/semantic/query', 'POST /v1/orgs/{orgId}/knowledge/search']);
/**
 * Writes that only ever stop something (@OnlyStops without a condition): open on any plan, so a lapsed customer can stop
 * deliveries (test/webhooks/stop-on-any-plan.test.ts). A PATCH that only disables an endpoint is open too, decided by its
 * body: the empty body sent here is a change like any other, refused.
 */
const STOPS_ONLY = new Set(['DELETE /v1/orgs/{orgId}/webhooks/endpoints/{endpointId}']);
const openOnAnyPlan = (r: Route) => COMPUTES_ONLY.has(label(r)) || STOPS_ONLY.has(label(r));

interface Route {
  method: Method;
  path: string;
  billing?: { app: string; feature?: string };
  /** takes a JSON body (an upload takes multipart and refuses a JSON one 415 before the gate: it is sent none) */
  json: boolean;
}
const label = (r: Route) => `${r.method.toUpperCase()} ${r.path}`;

describe('plan matrix (every write of the OmniZen app modules, against the plan table)', () => {
  let t: TestApp;
  let owner: TestUser;
  let readOnlyOrg: string;
  let starterOrg: string;
  let routes: Route[];
  let doc: any;

  const urlFor = (r: Route, orgId: string) => r.path.replace(/\{(\w+)\}/g, (_, name: string) => (name === 'orgId' ? orgId : randomUUID()));
  const call = (r: Route, orgId: string) => {
    const req = t.http[r.method](urlFor(r, orgId)).set(owner.auth);
    return r.method === 'get' || !r.json ? req : req.send({});
  };
  async function rowsOf(orgId: string): Promise<string> {
    const { rows } = await t.db.admin.query(
      `SELECT (SELECT count(*) FROM core.audit_logs WHERE org_id = $1) || '/' || (SELECT count(*) FROM finance.journal_entries WHERE org_id = $1)
         || '/' || (SELECT count(*) FROM finance.fx_rates WHERE org_id = $1) || '/' || (SELECT count(*) FROM finance.accounts WHERE org_id = $1) AS v`, [orgId]);
    return rows[0].v;
  }

  beforeAll(async () => {
    t = await createTestApp();
    owner = await registerUser(t, 'plan-owner');
    readOnlyOrg = await createOrg(t, owner, 'Lapsed Ltd');
    await startBooks(t, readOnlyOrg, owner);
    await onPlan(t, readOnlyOrg, 'professional', 'canceled');
    starterOrg = await createOrg(t, owner, 'Starter Ltd');
    await startBooks(t, starterOrg, owner);
    await onPlan(t, starterOrg, 'starter');
    doc = (await t.http.get('/docs-json').expect(200)).body;
    routes = [];
    for (const [path, item] of Object.entries<any>(doc.paths)) {
      if (!APP_PREFIXES.some((p) => path.startsWith(p))) continue;
      for (const method of METHODS) {
        if (item[method]) routes.push({ method, path, billing: item[method]['x-omnizen-billing'], json: !item[method].requestBody || Boolean(item[method].requestBody.content?.['application/json']) });
      }
    }
  });
  afterAll(() => t?.close());

  it('finds the routes, and every write route carries a billing requirement of the omnizen app', () => {
    const writes = routes.filter((r) => r.method !== 'get' && !openOnAnyPlan(r));
    expect(writes.length).toBeGreaterThan(15);
    expect(writes.filter((r) => r.billing?.app !== 'omnizen').map(label)).toEqual([]);
    expect(routes.filter((r) => STOPS_ONLY.has(label(r)) && r.billing).map(label)).toEqual([]);
    expect(routes.filter((r) => r.method === 'get' && r.billing).map(label)).toEqual([]);
    // the feature-gated ones, as the plan table of docs/billing.md says
    expect(writes.filter((r) => r.billing?.feature).map((r) => `${label(r)} ${r.billing!.feature}`).sort()).toEqual([
      'POST /v1/orgs/{orgId}/agents ai_agents',
      'POST /v1/orgs/{orgId}/agents/{agentId}/triggers ai_automation',
      'PATCH /v1/orgs/{orgId}/webhooks/endpoints/{endpointId} webhooks',
      'POST /v1/orgs/{orgId}/ledger/fx-rates full_accounting',
      'POST /v1/orgs/{orgId}/ledger/fx-rates/import full_accounting',
      'POST /v1/orgs/{orgId}/ledger/fx-revaluations full_accounting',
      ...['DELETE /invoices/{invoiceId}', 'POST /allocations/{receivableAllocationId}/reverse', 'POST /customers', 'POST /customers/{customerId}/archive', 'POST /invoices',
        'POST /invoices/{invoiceId}/credit-notes', 'POST /invoices/{invoiceId}/issue', 'POST /invoices/{invoiceId}/void', 'POST /payments',
        'POST /payments/{customerPaymentId}/allocations', 'POST /payments/{customerPaymentId}/refunds', 'PUT /customers/{customerId}', 'PUT /invoices/{invoiceId}', 'PUT /settings',
      ].map((r) => `${r.replace(' /', ' /v1/orgs/{orgId}/receivables/')} basic_invoicing`),
      'POST /v1/orgs/{orgId}/receivables/revenue-recognition/runs full_accounting',
      // payables, approvals and expense claims (issue 15)
      'PATCH /v1/orgs/{orgId}/payables/bills/{billId} full_accounting',
      'PATCH /v1/orgs/{orgId}/payables/expense-claims/{claimId} full_accounting',
      'PATCH /v1/orgs/{orgId}/payables/vendors/{vendorId} full_accounting',
      'POST /v1/orgs/{orgId}/payables/allocations/{allocationId}/reverse full_accounting',
      'POST /v1/orgs/{orgId}/payables/bills full_accounting',
      'POST /v1/orgs/{orgId}/payables/bills/{billId}/approve full_accounting',
      'POST /v1/orgs/{orgId}/payables/bills/{billId}/comments full_accounting',
      'POST /v1/orgs/{orgId}/payables/bills/{billId}/reject full_accounting',
      'POST /v1/orgs/{orgId}/payables/bills/{billId}/submit full_accounting',
      'POST /v1/orgs/{orgId}/payables/bills/{billId}/void full_accounting',
      'POST /v1/orgs/{orgId}/payables/expense-claims full_accounting',
      'POST /v1/orgs/{orgId}/payables/expense-claims/{claimId}/approve full_accounting',
      'POST /v1/orgs/{orgId}/payables/expense-claims/{claimId}/comments full_accounting',
      'POST /v1/orgs/{orgId}/payables/expense-claims/{claimId}/reject full_accounting',
      'POST /v1/orgs/{orgId}/payables/expense-claims/{claimId}/submit full_accounting',
      'POST /v1/orgs/{orgId}/payables/expense-claims/{claimId}/void full_accounting',
      'POST /v1/orgs/{orgId}/payables/payments full_accounting',
      'POST /v1/orgs/{orgId}/payables/payments/{paymentId}/allocations full_accounting',
      'POST /v1/orgs/{orgId}/payables/payments/{paymentId}/refunds full_accounting',
      'POST /v1/orgs/{orgId}/payables/vendors full_accounting',
      'POST /v1/orgs/{orgId}/payables/vendors/{vendorId}/archive full_accounting',
      'PUT /v1/orgs/{orgId}/payables/settings full_accounting',
      'POST /v1/orgs/{orgId}/webhooks/endpoints webhooks',
      'POST /v1/orgs/{orgId}/webhooks/endpoints/{endpointId}/messages/{messageId}/replay webhooks',
      'POST /v1/orgs/{orgId}/webhooks/endpoints/{endpointId}/ping webhooks',
      'POST /v1/orgs/{orgId}/webhooks/endpoints/{endpointId}/replay-failed webhooks',
      'POST /v1/orgs/{orgId}/webhooks/endpoints/{endpointId}/rotate-secret webhooks',
    ].sort());
  });

  it('a read-only subscription: every write answers 402 subscription_inactive and changes nothing; reads stay open', async () => {
    const before = await rowsOf(readOnlyOrg);
    const wrong: string[] = [];
    for (const r of routes) {
      const res = await call(r, readOnlyOrg);
      if (r.method === 'get' || openOnAnyPlan(r)) {
        if (res.status === 402 || res.status >= 500) wrong.push(`${label(r)} → ${res.status} ${res.body?.error?.code}`);
      } else if (res.status !== 402 || res.body.error.code !== 'billing.subscription_inactive' || res.body.error.details?.status !== 'canceled') {
        wrong.push(`${label(r)} → ${res.status} ${res.body?.error?.code}`);
      }
    }
    expect(wrong).toEqual([]);
    expect(await rowsOf(readOnlyOrg)).toBe(before);
    // the books stay readable and exportable
    const tb = await t.http.get(ledgerUrl(readOnlyOrg, 'reports/trial-balance')).set(owner.auth).set('Accept', 'text/csv').expect(200);
    expect(tb.text.split('\n')[0]).toContain('code');
  });

  it('a starter organization: exactly the routes whose feature starter lacks answer 402 naming it and the cheapest plan', async () => {
    const { rows } = await t.db.admin.query(
      `SELECT feature, enabled FROM hub.plan_features WHERE app_id = 'omnizen' AND plan_code = 'starter'`);
    const starterHas = new Map(rows.map((r) => [r.feature, r.enabled !== false]));
    const before = await rowsOf(starterOrg);
    const wrong: string[] = [];
    for (const r of routes.filter((x) => x.method !== 'get')) {
      const res = await call(r, starterOrg);
      const feature = r.billing?.feature;
      if (feature && !starterHas.get(feature)) {
        const e = res.body?.error;
        if (res.status !== 402 || e?.code !== 'billing.feature_not_in_plan' || e.details?.feature !== feature || e.details?.upgradeTo !== 'professional'
          || !e.message.includes('upgrade to professional')) wrong.push(`${label(r)} → ${res.status} ${e?.code} ${e?.details?.upgradeTo}`);
      } else if (res.status === 402 || res.status >= 500) {
        wrong.push(`${label(r)} → ${res.status} ${res.body?.error?.code}`);
      }
    }
    expect(wrong).toEqual([]);
    // nothing the gate refused was written (an allowed write, e.g. an empty settings patch, may leave its audit row)
    expect((await rowsOf(starterOrg)).split('/').slice(1)).toEqual(before.split('/').slice(1));
  });

  it('a starter organization posts in its base currency; a foreign-currency entry is full accounting', async () => {
    const accounts = (await t.http.get(ledgerUrl(starterOrg, 'accounts')).set(owner.auth).expect(200)).body;
    const id = (code: string) => accounts.find((a: any) => a.code === code).id;
    const entry = (currency?: string) => ({
      date: '2026-03-02', memo: 'cash sale',
      lines: [{ accountId: id('1100'), debit: '10.00', currency }, { accountId: id('4100'), credit: '10.00', currency }],
    });
    const foreign = await t.http.post(ledgerUrl(starterOrg, 'journal-entries')).set(owner.auth).send({ ...entry('USD'), lines: entry('USD').lines.map((l) => ({ ...l, rate: '0.9' })) });
    expect(foreign.status).toBe(402);
    expect(foreign.body.error).toMatchObject({
      code: 'billing.feature_not_in_plan', details: { feature: 'full_accounting', plan: 'starter', upgradeTo: 'professional' },
    });
    const { rows: none } = await t.db.admin.query(`SELECT count(*)::int AS n FROM finance.journal_entries WHERE org_id = $1`, [starterOrg]);
    expect(none[0].n).toBe(0);
    const base = await t.http.post(ledgerUrl(starterOrg, 'journal-entries')).set(owner.auth).send(entry('EUR')).expect(201);
    expect(base.body.lines.map((l: any) => l.currency)).toEqual(['EUR', 'EUR']);
    await onPlan(t, starterOrg, 'professional');
    const upgraded = await t.http.post(ledgerUrl(starterOrg, 'journal-entries')).set(owner.auth)
      .send({ ...entry('USD'), lines: entry('USD').lines.map((l) => ({ ...l, rate: '0.9' })) }).expect(201);
    expect(upgraded.body.lines.map((l: any) => l.currency)).toEqual(['USD', 'USD']);
  });

  it('the settings routes: no route requirement, but writing the branding needs white_label (PUT and PATCH), documented', async () => {
    const settings = Object.entries<any>(doc.paths).filter(([path]) => path.startsWith(SETTINGS_PREFIX))
      .flatMap(([path, item]) => METHODS.filter((m) => item[m]).map((method) => ({ method, path, op: item[method] })));
    expect(settings.map((r) => `${r.method.toUpperCase()} ${r.path}`).sort()).toEqual([
      'DELETE /v1/orgs/{orgId}/settings/{scope}/{key}', 'GET /v1/orgs/{orgId}/settings/{scope}', 'GET /v1/orgs/{orgId}/settings/{scope}/{key}',
      'PATCH /v1/orgs/{orgId}/settings/{scope}', 'PUT /v1/orgs/{orgId}/settings/{scope}/{key}',
    ]);
    expect(settings.filter((r) => r.op['x-omnizen-billing']).map((r) => r.op.operationId)).toEqual([]);
    const planCodes = (op: any) => (op['x-error-codes'] ?? []).filter((c: any) => c.status === 402).map((c: any) => c.code).sort();
    expect(Object.fromEntries(settings.map((r) => [r.op.operationId, planCodes(r.op)]))).toEqual({
      listSettings: [], getSetting: [], deleteSetting: [],
      setSetting: ['billing.feature_not_in_plan', 'billing.subscription_inactive'], setSettings: ['billing.feature_not_in_plan', 'billing.subscription_inactive'],
    });
    for (const r of settings.filter((x) => x.method === 'put' || x.method === 'patch')) expect(r.op.description).toContain('white_label');
    for (const r of settings.filter((x) => x.method === 'get')) expect(r.op.description).toMatch(/branding .*no longer includes white-label/);

    const url = (orgId: string, key = '') => `${SETTINGS_PREFIX.replace('{orgId}', orgId)}/org${key ? `/${key}` : ''}`;
    const branding = { displayName: 'Starter Ltd', primaryColor: '#112233' };
    const brandingRows = async (orgId: string) =>
      (await t.db.admin.query(`SELECT count(*)::int AS n FROM core.settings WHERE org_id = $1 AND key = 'branding'`, [orgId])).rows[0].n;
    // starter (again: the test above upgraded it): the branding, alone or in a PATCH, is refused naming the feature and
    // its cheapest plan; the rest goes through
    await onPlan(t, starterOrg, 'starter');
    for (const res of [await t.http.put(url(starterOrg, 'branding')).set(owner.auth).send({ value: branding }),
      await t.http.patch(url(starterOrg)).set(owner.auth).send({ values: { locale: 'en-GB', branding } })]) {
      expect(res.status).toBe(402);
      expect(res.body.error).toMatchObject({ code: 'billing.feature_not_in_plan', details: { feature: 'white_label', plan: 'starter', upgradeTo: 'enterprise' } });
    }
    await t.http.put(url(starterOrg, 'timezone')).set(owner.auth).send({ value: 'Europe/Berlin' }).expect(200);
    // read-only: the branding is a plan feature (refused as read-only); the organization's other settings are not
    const readOnly = await t.http.put(url(readOnlyOrg, 'branding')).set(owner.auth).send({ value: branding });
    expect(readOnly.status).toBe(402);
    expect(readOnly.body.error.code).toBe('billing.subscription_inactive');
    await t.http.put(url(readOnlyOrg, 'timezone')).set(owner.auth).send({ value: 'Europe/Berlin' }).expect(200);
    expect([await brandingRows(starterOrg), await brandingRows(readOnlyOrg)]).toEqual([0, 0]);
  });
});
