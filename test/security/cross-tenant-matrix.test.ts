import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { testKeys } from '../integrations/keys.js';
import { addMember, createOrg, registerUser, type TestUser, onEnterprisePlan } from '../support/factories.js';
import { startOpenAiDouble, type OpenAiDouble } from '../support/doubles/openai-double.js';

/**
 * The cross-tenant matrix, generic over the OpenAPI document: every operation under
 * /v1/orgs/{orgId} is called
 *  (a) by the owner of organization A with B's id          → 404 or 403, never 2xx, never 500;
 *  (a') by A's owner in A's own organization with B's ids   → 403/404, or 409/422 from the database, never 2xx,
 *       never a validation 400, never 500 (routes with B's ids in the path, or in a valid body built from the
 *       operation's examples with every `...Id` property set to B's id of that name);
 *  (b) anonymously                                         → 401;
 *  (c) by a viewer of B, for every mutating method          → 403 (except VIEWER_MAY);
 * and afterwards no row of A or B has changed (count and content of every table with an org_id column).
 *
 * Routes added by any module are covered automatically. Path parameters are filled with real ids of B's
 * resources, seeded through the API (a failed seeding call fails the run); a path parameter with no seeded
 * resource fails the first test, so a module adding routes adds its resources to the seeding too.
 *
 * The body sent to (a) and (c) is invalid on purpose ({ unknown field }): NestJS runs guards, then
 * interceptors, then pipes, and the TenantTransactionInterceptor decides membership (404) and
 * @RequireRole (403) before the ValidationPipe sees the body. A 404/403 with an invalid body
 * shows the organization and role checks run before validation.
 */

const METHODS = ['get', 'post', 'put', 'patch', 'delete'] as const;
type Method = (typeof METHODS)[number];
const MUTATING = new Set<Method>(['post', 'put', 'patch', 'delete']);

/**
 * Operations with a mutating method that a viewer may call: leaving an organization, and
 * computations sent as POST that write nothing (B's snapshot below still proves nothing changed).
 */
const VIEWER_MAY = new Set([
  'DELETE /v1/orgs/{orgId}/members/me',
  'POST /v1/orgs/{orgId}/ledger/tax-codes/{taxCodeId}/calculate',
  // usage events: what any member (a viewer too) did in the app; they change no business data
  'POST /v1/orgs/{orgId}/analytics/events',
  // every member may run an agent (its tools read only what the runner may) and query the semantic views
  'POST /v1/orgs/{orgId}/agents/{agentId}/runs',
  'POST /v1/orgs/{orgId}/semantic/query',
  'POST /v1/orgs/{orgId}/knowledge/search',
]);

const INVALID_BODY = { __matrix_unknown_field__: true };

interface Route {
  method: Method;
  path: string;
  params: { name: string; schema?: { format?: string; type?: string; example?: unknown }; example?: unknown }[];
  /** takes a JSON body (an upload takes multipart and refuses a JSON one 415 before its checks: it is sent none) */
  json: boolean;
}

describe('cross-tenant matrix (every /v1/orgs/{orgId} route in the OpenAPI document)', () => {
  let t: TestApp;
  let llm: OpenAiDouble;
  let aOwner: TestUser;
  let aOrg: string;
  let bOwner: TestUser;
  let bViewer: TestUser;
  let bMember: TestUser;
  let bOrg: string;
  let routes: Route[];
  let docRef: any;
  /** parameter name → a real id in B */
  const bIds: Record<string, string> = {};

  async function snapshotOf(orgId: string): Promise<Record<string, string>> {
    const { rows: tables } = await t.db.admin.query(`
      SELECT c.table_schema, c.table_name FROM information_schema.columns c
      JOIN information_schema.tables tb ON tb.table_schema = c.table_schema AND tb.table_name = c.table_name AND tb.table_type = 'BASE TABLE'
      WHERE c.column_name = 'org_id' AND c.table_schema NOT IN ('pg_catalog', 'information_schema')
      ORDER BY 1, 2`);
    const snapshot: Record<string, string> = {};
    for (const { table_schema: s, table_name: n } of tables) {
      const { rows } = await t.db.admin.query(
        `SELECT count(*)::text || ':' || coalesce(md5(string_agg(x::text, '|' ORDER BY x::text)), '') AS v FROM "${s}"."${n}" x WHERE x.org_id::text = $1`, [orgId]);
      snapshot[`${s}.${n}`] = rows[0].v;
    }
    return snapshot;
  }

  /**
   * A request body from the examples of an OpenAPI schema (properties without an example are left out);
   * `idFor` supplies the value of an `...Id` property (B's id of that name) whether or not it has an example.
   */
  function exampleBody(schema: any, doc: any, idFor: (name: string) => string | undefined = () => undefined, depth = 0): unknown {
    if (!schema || depth > 6) return undefined; // deep enough for an array of objects in a body (bill lines)
    if (schema.$ref) return exampleBody(doc.components?.schemas?.[schema.$ref.split('/').pop()], doc, idFor, depth + 1);
    if (schema.example !== undefined) return schema.example;
    if (schema.default !== undefined) return schema.default;
    if (schema.enum) return schema.enum[0];
    if (schema.type === 'array') {
      const item = exampleBody(schema.items, doc, idFor, depth + 1);
      return item === undefined ? undefined : [item, item];
    }
    if (schema.properties) {
      const out: Record<string, unknown> = {};
      for (const [name, prop] of Object.entries<any>(schema.properties)) {
        const value = (/Id$/.test(name) ? idFor(name) : undefined) ?? exampleBody(prop, doc, idFor, depth + 1);
        if (value !== undefined) out[name] = value;
      }
      return out;
    }
    return undefined;
  }

  /** Starts the books and creates one resource of every ledger kind; answers their ids by path parameter name. */
  async function seedLedger(orgId: string, owner: TestUser): Promise<Record<string, string>> {
    const url = (path: string) => `/v1/orgs/${orgId}/ledger/${path}`;
    await t.http.post(url('books')).set(owner.auth).send({ baseCurrency: 'EUR', fiscalYearStart: '2026-01-01' }).expect(201);
    const chart = (await t.http.get(url('accounts')).set(owner.auth).expect(200)).body as { id: string; code: string }[];
    const code = (c: string) => chart.find((a) => a.code === c)!.id;
    const account = await t.http.post(url('accounts')).set(owner.auth).send({ code: '1110', name: 'Petty cash', type: 'asset', parentId: code('1000') }).expect(201);
    const taxCode = await t.http.post(url('tax-codes')).set(owner.auth)
      .send({ code: 'VAT20', name: 'VAT 20 %', rate: '20', salesAccountId: code('2200'), purchaseAccountId: code('1300') }).expect(201);
    await t.http.post(url('fx-rates')).set(owner.auth).send({ currency: 'USD', date: '2026-01-31', rate: '0.92' }).expect(201);
    const entry = await t.http.post(url('journal-entries')).set(owner.auth).send({
      date: '2026-01-15', memo: 'seed', lines: [{ accountId: account.body.id, debit: '10.00' }, { accountId: code('4100'), credit: '10.00' }],
    }).expect(201);
    const year = await t.http.post(url('fiscal-years')).set(owner.auth).send({ startDate: '2027-01-01' }).expect(201);
    return { accountId: account.body.id, taxCodeId: taxCode.body.id, entryId: entry.body.id, yearId: year.body.id, periodId: year.body.periods[0].id };
  }

  /** An agent with a finished run, a budget and a trigger (runs answered by the OpenAI-compatible double); their ids by path parameter name. */
  async function seedAgents(orgId: string, owner: TestUser): Promise<Record<string, string>> {
    const agent = await t.http.post(`/v1/orgs/${orgId}/agents`).set(owner.auth)
      .send({ name: 'Seeded agent', type: 'assistant', modelId: 'gpt-4o-mini', tools: ['query_semantic'] }).expect(201);
    const run = await t.http.post(`/v1/orgs/${orgId}/agents/${agent.body.id}/runs`).set(owner.auth).send({ messages: [{ role: 'user', content: 'hello' }] }).expect(200);
    if (run.body.status !== 'succeeded') throw new Error(`the seeded run ${run.body.status}: ${run.body.errorMessage}`);
    const budget = await t.http.post(`/v1/orgs/${orgId}/ai/budgets`).set(owner.auth).send({ agentId: agent.body.id, costLimit: '10.00' }).expect(201);
    const trigger = await t.http.post(`/v1/orgs/${orgId}/agents/${agent.body.id}/triggers`).set(owner.auth)
      .send({ kind: 'event', eventType: 'bill.submitted', prompt: 'Review the bill.' }).expect(201);
    return { agentId: agent.body.id, runId: run.body.id, budgetId: budget.body.id, triggerId: trigger.body.id };
  }

  /**
   * Payables of B through the API: a vendor, a bill posted at submission (under the approval threshold), a payment
   * allocated to part of it, and a draft expense claim; answers their ids by path parameter name.
   */
  async function seedPayables(orgId: string, owner: TestUser): Promise<Record<string, string>> {
    const url = (path: string) => `/v1/orgs/${orgId}/payables/${path}`;
    const chart = (await t.http.get(`/v1/orgs/${orgId}/ledger/accounts`).set(owner.auth).expect(200)).body as { id: string; code: string }[];
    const code = (c: string) => chart.find((a) => a.code === c)!.id;
    const vendor = await t.http.post(url('vendors')).set(owner.auth).send({ name: 'B Supplies', email: 'ap@b.example' }).expect(201);
    const bill = await t.http.post(url('bills')).set(owner.auth).send({ vendorId: vendor.body.id, billDate: '2026-01-10', lines: [{ accountId: code('5200'), unitPrice: '100.00' }] }).expect(201);
    await t.http.post(url(`bills/${bill.body.id}/submit`)).set(owner.auth).expect(200);
    const payment = await t.http.post(url('payments')).set(owner.auth).send({
      vendorId: vendor.body.id, paymentDate: '2026-01-20', amount: '40.00', bankAccountId: code('1100'), allocations: [{ billId: bill.body.id, amount: '40.00' }],
    }).expect(201);
    const claim = await t.http.post(url('expense-claims')).set(owner.auth).send({
      claimDate: '2026-01-12', currency: 'EUR', lines: [{ accountId: code('5200'), amount: '12.00', currency: 'EUR', date: '2026-01-11' }],
    }).expect(201);
    return { vendorId: vendor.body.id, billId: bill.body.id, paymentId: payment.body.id, allocationId: payment.body.allocations[0].id, claimId: claim.body.id };
  }

  /** A webhook endpoint of B and a message of it (a ping; nothing delivers it here: the worker does not run in tests). */
  async function seedWebhooks(orgId: string, owner: TestUser): Promise<Record<string, string>> {
    const url = (path: string) => `/v1/orgs/${orgId}/webhooks/endpoints${path}`;
    const endpoint = await t.http.post(url('')).set(owner.auth).send({ url: 'https://hooks.example.com/b', eventTypes: ['journal_entry.posted'] }).expect(201);
    const ping = await t.http.post(url(`/${endpoint.body.id}/ping`)).set(owner.auth).expect(202);
    return { endpointId: endpoint.body.id, messageId: ping.body.id };
  }

  /** Receivables settings, a customer, an issued invoice and a payment allocated to it; their ids by path parameter name. */
  async function seedReceivables(orgId: string, owner: TestUser): Promise<Record<string, string>> {
    const url = (path: string) => `/v1/orgs/${orgId}/receivables/${path}`;
    const chart = (await t.http.get(`/v1/orgs/${orgId}/ledger/accounts`).set(owner.auth).expect(200)).body as { id: string; code: string }[];
    const code = (c: string) => chart.find((a) => a.code === c)!.id;
    await t.http.put(url('settings')).set(owner.auth).send({ arAccountId: code('1200') }).expect(200);
    const customer = await t.http.post(url('customers')).set(owner.auth).send({ name: 'B customer', email: 'b.customer@example.test' }).expect(201);
    const draft = await t.http.post(url('invoices')).set(owner.auth).send({
      customerId: customer.body.id, invoiceDate: '2026-01-20', lines: [{ description: 'seed', quantity: '1', unitPrice: '50.00', revenueAccountId: code('4100') }],
    }).expect(201);
    await t.http.post(url(`invoices/${draft.body.id}/issue`)).set(owner.auth).send({}).expect(200);
    const payment = await t.http.post(url('payments')).set(owner.auth).send({
      customerId: customer.body.id, date: '2026-01-25', amount: '20.00', depositAccountId: code('1100'), method: 'bank_transfer',
      allocations: [{ invoiceId: draft.body.id, amount: '10.00' }],
    }).expect(201);
    return { customerId: customer.body.id, invoiceId: draft.body.id, customerPaymentId: payment.body.id, receivableAllocationId: payment.body.allocations[0].id };
  }

  /** A collection readable by every role and a note document in it (version 1); answers their ids by path parameter name. */
  async function seedKnowledge(orgId: string, owner: TestUser): Promise<Record<string, string>> {
    const url = (path: string) => `/v1/orgs/${orgId}/knowledge/${path}`;
    const collection = await t.http.post(url('collections')).set(owner.auth).send({ name: 'Handbook', readRoles: ['member', 'viewer'] }).expect(201);
    const document = await t.http.post(url('documents')).set(owner.auth)
      .send({ collectionId: collection.body.id, title: 'Travel', text: 'Travel is reimbursed within 30 days.' }).expect(201);
    return { collectionId: collection.body.id, documentId: document.body.id, versionNo: '1' };
  }

  /** A valid body for `route` (its OpenAPI examples), with every `...Id` property set to B's id of that name. */
  function validBodyWithBIds(route: Route): unknown {
    if (label(route) === 'POST /v1/orgs/{orgId}/ledger/journal-entries') {
      // the line examples show both sides; a valid line has one
      return { date: '2026-01-20', lines: [{ accountId: bIds.accountId, debit: '5.00' }, { accountId: bIds.accountId, credit: '5.00' }] };
    }
    const op = docRef.paths[route.path][route.method];
    return exampleBody(op.requestBody?.content?.['application/json']?.schema, docRef, (name) => bIds[name]) ?? {};
  }

  function urlFor(route: Route, orgId: string): string {
    return route.path.replace(/\{(\w+)\}/g, (_, name: string) => {
      if (name === 'orgId') return orgId;
      if (bIds[name] === undefined) throw new Error(`no resource of B was seeded for {${name}} of ${label(route)}`);
      return encodeURIComponent(bIds[name]);
    });
  }

  function call(route: Route, url: string, who?: TestUser, body: unknown = INVALID_BODY) {
    let req = t.http[route.method](url);
    if (who) req = req.set(who.auth);
    return MUTATING.has(route.method) && route.json ? req.send(body as object) : req;
  }

  /** An API key of the organization (keys: enterprise plan, set above). */
  async function seedApiKeys(orgId: string, owner: TestUser): Promise<Record<string, string>> {
    const key = await t.http.post(`/v1/orgs/${orgId}/api-keys`).set(owner.auth).send({ name: 'B key', scopes: ['ledger:read'] }).expect(201);
    return { keyId: key.body.id };
  }

  /** A few usage events, so B's analytics tables have rows the matrix can see unchanged. */
  async function seedAnalytics(orgId: string, owner: TestUser): Promise<void> {
    const res = await t.http.post(`/v1/orgs/${orgId}/analytics/events`).set(owner.auth)
      .send({ events: [{ name: 'b.opened', properties: { n: 1 } }, { name: 'b.saved', anonymousId: 'b-visitor' }] }).expect(200);
    expect(res.body.accepted).toBe(2);
  }

  /** Whether the call in A's own organization carries one of B's ids (in the path, or in a valid body). */
  const carriesBIds = (route: Route, body: unknown) =>
    route.path.match(/\{(\w+)\}/g)!.some((m) => m !== '{orgId}' && /Id\}$/.test(m))
    // (a number such as the version number "1" is no id of B's: it appears in any body)
    || (MUTATING.has(route.method) && Object.values(bIds).some((id) => !/^\d+$/.test(id) && JSON.stringify(body).includes(id)));

  const label = (r: Route) => `${r.method.toUpperCase()} ${r.path}`;

  beforeAll(async () => {
    llm = await startOpenAiDouble();
    // webhook signing secrets are sealed; agent runs are answered by the OpenAI-compatible double
    t = await createTestApp({ SECRETS_KEYS: testKeys('k1').env, AI_BASE_URL: llm.url, AI_API_KEY: 'sk-test-matrix-0000' });
    aOwner = await registerUser(t, 'a-owner');
    aOrg = await createOrg(t, aOwner, 'Org A');
    bOwner = await registerUser(t, 'b-owner');
    bOrg = await createOrg(t, bOwner, 'Org B');
    bViewer = await registerUser(t, 'b-viewer');
    bMember = await registerUser(t, 'b-member');
    await addMember(t, bOrg, bViewer, 'viewer');
    await addMember(t, bOrg, bMember, 'member');
    await onEnterprisePlan(t, aOrg);
    await onEnterprisePlan(t, bOrg);

    // B's resources, one of every kind, seeded through the API; a seeding call that fails fails the test
    const ws = await t.http.post(`/v1/orgs/${bOrg}/workspaces`).set(bOwner.auth).send({ name: 'B workspace' }).expect(201);
    const inv = await t.http.post(`/v1/orgs/${bOrg}/invitations`).set(bOwner.auth).send({ email: 'invitee.b@example.test', role: 'member' }).expect(201);
    await t.http.put(`/v1/orgs/${bOrg}/settings/org/locale`).set(bOwner.auth).send({ value: 'fr-FR' }).expect(200);
    await t.http.put(`/v1/orgs/${bOrg}/feature-flags/b_flag`).set(bOwner.auth).send({ enabled: true }).expect(200);
    Object.assign(bIds, { userId: bMember.id, workspaceId: ws.body.id, invitationId: inv.body.id, scope: 'org', key: 'locale', flag: 'b_flag' });
    Object.assign(bIds, await seedLedger(bOrg, bOwner));
    Object.assign(bIds, await seedPayables(bOrg, bOwner));
    Object.assign(bIds, await seedApiKeys(bOrg, bOwner));
    await seedAnalytics(bOrg, bOwner);
    Object.assign(bIds, await seedWebhooks(bOrg, bOwner));
    Object.assign(bIds, await seedReceivables(bOrg, bOwner));
    Object.assign(bIds, await seedKnowledge(bOrg, bOwner));
    // an export of B (queued: the relay does not run here)
    bIds.exportId = (await t.http.post(`/v1/orgs/${bOrg}/data-export`).set(bOwner.auth).send({}).expect(202)).body.id;
    await seedLedger(aOrg, aOwner); // A's books are started too, so (a') meets A's ledger, not "books not started"
    Object.assign(bIds, await seedAgents(bOrg, bOwner));

    const doc = (await t.http.get('/docs-json').expect(200)).body;
    docRef = doc;
    routes = [];
    for (const [path, item] of Object.entries<any>(doc.paths)) {
      if (!path.startsWith('/v1/orgs/{orgId}')) continue;
      for (const method of METHODS) {
        const op = item[method];
        if (!op) continue;
        routes.push({
          method, path, params: [...(item.parameters ?? []), ...(op.parameters ?? [])].filter((p: any) => p.in === 'path'),
          json: !op.requestBody || Boolean(op.requestBody.content?.['application/json']),
        });
      }
    }
  });
  afterAll(async () => {
    await t.close();
    await llm?.close();
  });

  it('finds the org-scoped routes of every module in the OpenAPI document', () => {
    const paths = new Set(routes.map((r) => r.path));
    for (const p of ['/v1/orgs/{orgId}', '/v1/orgs/{orgId}/members/{userId}', '/v1/orgs/{orgId}/invitations/{invitationId}',
      '/v1/orgs/{orgId}/workspaces/{workspaceId}', '/v1/orgs/{orgId}/settings/{scope}/{key}', '/v1/orgs/{orgId}/feature-flags/{flag}',
      '/v1/orgs/{orgId}/audit-logs']) {
      expect(paths).toContain(p);
    }
    // every operation declares its path parameters, so the matrix (and clients) can fill them
    const undeclared = routes.flatMap((r) => r.path.match(/\{(\w+)\}/g)!.map((m) => m.slice(1, -1))
      .filter((name) => !r.params.some((p) => p.name === name)).map((name) => `${label(r)}: {${name}}`));
    expect(undeclared).toEqual([]);
    // every path parameter is filled with a real resource of B (seeded above), never a made-up id
    const unseeded = [...new Set(routes.flatMap((r) => r.path.match(/\{(\w+)\}/g)!.map((m) => m.slice(1, -1))))]
      .filter((name) => name !== 'orgId' && bIds[name] === undefined);
    expect(unseeded).toEqual([]);
  });

  it('leaves no trace in B: every call below is refused and no row of B changes', async () => {
    const before = await snapshotOf(bOrg);
    const beforeA = await snapshotOf(aOrg);
    const problems: string[] = [];
    const outcome: Record<string, Record<string, number>> = { a: {}, aOwnOrg: {}, b: {}, c: {} };
    const note = (kase: string, status: number) => (outcome[kase][status] = (outcome[kase][status] ?? 0) + 1);

    for (const route of routes) {
      // (a) a member (the owner) of A with B's organization id
      const a = await call(route, urlFor(route, bOrg), aOwner);
      note('a', a.status);
      if (a.status !== 404 && a.status !== 403) problems.push(`(a) ${label(route)} as a member of A on B: ${a.status} ${JSON.stringify(a.body?.error ?? a.body)}`);

      // (a') A's own organization, B's resource ids in the path or in a valid body: refused by isolation
      // (404/403, or the database's 409/422 for a reference into B), never by validation, never a success
      const body = validBodyWithBIds(route);
      if (carriesBIds(route, body)) {
        const own = await call(route, urlFor(route, aOrg), aOwner, body);
        note('aOwnOrg', own.status);
        if (![403, 404, 409, 422].includes(own.status)) problems.push(`(a') ${label(route)} in A with B's ids: ${own.status} ${JSON.stringify(own.body?.error ?? own.body)}`);
      }

      // (b) anonymous
      const anon = await call(route, urlFor(route, bOrg));
      note('b', anon.status);
      if (anon.status !== 401) problems.push(`(b) ${label(route)} anonymous: ${anon.status}`);

      // (c) a viewer of B may not mutate
      if (MUTATING.has(route.method) && !VIEWER_MAY.has(label(route))) {
        const viewer = await call(route, urlFor(route, bOrg), bViewer);
        note('c', viewer.status);
        if (viewer.status !== 403) problems.push(`(c) ${label(route)} as a viewer of B: ${viewer.status} ${JSON.stringify(viewer.body?.error ?? viewer.body)}`);
      }
    }

    // printed so a run shows what was covered
    console.info(`cross-tenant matrix: ${routes.length} operations; statuses ${JSON.stringify(outcome)}; B ids used for ${Object.keys(bIds).join(', ')}`);
    expect(problems).toEqual([]);
    expect(await snapshotOf(bOrg)).toEqual(before);
    expect(await snapshotOf(aOrg)).toEqual(beforeA);
  });

  it('the viewer allowlist is real: a viewer of B may leave it', async () => {
    for (const allowed of VIEWER_MAY) expect(routes.map(label)).toContain(allowed);
    await t.http.delete(`/v1/orgs/${bOrg}/members/me`).set(bViewer.auth).expect(204);
    await t.http.get(`/v1/orgs/${bOrg}`).set(bViewer.auth).expect(404);
  });
});
