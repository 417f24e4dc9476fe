import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { addMember, createOrg, registerUser, type TestUser, onEnterprisePlan } from '../support/factories.js';

/**
 * The cross-tenant matrix, generic over the OpenAPI document: every operation under
 * /v1/orgs/{orgId} is called
 *  (a) by the owner of organization A with B's id          → 404 or 403, never 2xx, never 500;
 *  (a') by A's owner in A's own organization with B's ids   → never 2xx, never 500 (only routes with id parameters);
 *  (b) anonymously                                         → 401;
 *  (c) by a viewer of B, for every mutating method          → 403 (except VIEWER_MAY);
 * and afterwards no row of B has changed (count and content of every table with an org_id column).
 *
 * Routes added by any module are covered automatically. Path parameters are filled with real ids of
 * B's resources where they exist (known names, else a table named after the parameter), else UUIDs.
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
]);

const INVALID_BODY = { __matrix_unknown_field__: true };

interface Route {
  method: Method;
  path: string;
  params: { name: string; schema?: { format?: string; type?: string; example?: unknown }; example?: unknown }[];
}

describe('cross-tenant matrix (every /v1/orgs/{orgId} route in the OpenAPI document)', () => {
  let t: TestApp;
  let aOwner: TestUser;
  let aOrg: string;
  let bOwner: TestUser;
  let bViewer: TestUser;
  let bMember: TestUser;
  let bOrg: string;
  let routes: Route[];
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
   * A real id of B for `{fooBarId}`: a table with org_id and id columns named foo_bar(s|es), or
   * ending in _foo_bar(s|es) (journal_entries for {entryId}, fiscal_years for {yearId}).
   */
  async function idFromTableNamed(param: string): Promise<string | undefined> {
    const base = param.replace(/Id$/, '').replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase();
    const names = [base, `${base}s`, `${base}es`, base.replace(/y$/, 'ies')];
    const { rows } = await t.db.admin.query(`
      SELECT t.table_schema, t.table_name FROM information_schema.tables t
      WHERE t.table_type = 'BASE TABLE' AND t.table_schema NOT IN ('pg_catalog', 'information_schema')
        AND (t.table_name::text = ANY ($1::text[]) OR t.table_name::text LIKE ANY (SELECT '%\\_' || n FROM unnest($1::text[]) n))
        AND EXISTS (SELECT 1 FROM information_schema.columns c WHERE c.table_schema = t.table_schema AND c.table_name = t.table_name AND c.column_name = 'org_id')
        AND EXISTS (SELECT 1 FROM information_schema.columns c WHERE c.table_schema = t.table_schema AND c.table_name = t.table_name AND c.column_name = 'id')
      ORDER BY (t.table_name::text = ANY ($1::text[])) DESC, t.table_name`, [names]);
    for (const { table_schema: s, table_name: n } of rows) {
      const found = await t.db.admin.query(`SELECT id::text FROM "${s}"."${n}" WHERE org_id::text = $1 LIMIT 1`, [bOrg]);
      if (found.rows[0]) return found.rows[0].id;
    }
    return undefined;
  }

  /** A request body from the examples of an OpenAPI schema (properties without an example are left out). */
  function exampleBody(schema: any, doc: any, depth = 0): unknown {
    if (!schema || depth > 4) return undefined;
    if (schema.$ref) return exampleBody(doc.components?.schemas?.[schema.$ref.split('/').pop()], doc, depth + 1);
    if (schema.example !== undefined) return schema.example;
    if (schema.default !== undefined) return schema.default;
    if (schema.enum) return schema.enum[0];
    if (schema.type === 'array') {
      const item = exampleBody(schema.items, doc, depth + 1);
      return item === undefined ? undefined : [item];
    }
    if (schema.properties) {
      const out: Record<string, unknown> = {};
      for (const [name, prop] of Object.entries<any>(schema.properties)) {
        const value = exampleBody(prop, doc, depth + 1);
        if (value !== undefined) out[name] = value;
      }
      return out;
    }
    return undefined;
  }

  function urlFor(route: Route, orgId: string): string {
    return route.path.replace(/\{(\w+)\}/g, (_, name: string) => {
      if (name === 'orgId') return orgId;
      const param = route.params.find((p) => p.name === name);
      const example = param?.example ?? param?.schema?.example;
      const value = bIds[name] ?? (param?.schema?.type === 'integer' || param?.schema?.type === 'number' ? '1' : example !== undefined && param?.schema?.format !== 'uuid' ? String(example) : randomUUID());
      return encodeURIComponent(value);
    });
  }

  function call(route: Route, url: string, who?: TestUser) {
    let req = t.http[route.method](url);
    if (who) req = req.set(who.auth);
    return MUTATING.has(route.method) ? req.send(INVALID_BODY) : req;
  }

  const label = (r: Route) => `${r.method.toUpperCase()} ${r.path}`;

  beforeAll(async () => {
    t = await createTestApp();
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

    // B's resources of the organizations module (other modules' ids are found by table name below)
    const ws = await t.http.post(`/v1/orgs/${bOrg}/workspaces`).set(bOwner.auth).send({ name: 'B workspace' }).expect(201);
    const inv = await t.http.post(`/v1/orgs/${bOrg}/invitations`).set(bOwner.auth).send({ email: 'invitee.b@example.test', role: 'member' }).expect(201);
    await t.http.put(`/v1/orgs/${bOrg}/settings/org/locale`).set(bOwner.auth).send({ value: 'fr-FR' }).expect(200);
    await t.http.put(`/v1/orgs/${bOrg}/feature-flags/b_flag`).set(bOwner.auth).send({ enabled: true }).expect(200);
    Object.assign(bIds, { userId: bMember.id, workspaceId: ws.body.id, invitationId: inv.body.id, scope: 'org', key: 'locale', flag: 'b_flag' });

    const doc = (await t.http.get('/docs-json').expect(200)).body;

    // Give B some data of every module: B's owner calls each create route that needs no other id
    // with the body of its OpenAPI examples (whatever the outcome). Billing is left out: it calls Stripe.
    for (const [path, item] of Object.entries<any>(doc.paths)) {
      const op = item.post;
      if (!op || !/^\/v1\/orgs\/\{orgId\}\/[^{}]+$/.test(path) || path.includes('/billing/')) continue;
      const body = exampleBody(op.requestBody?.content?.['application/json']?.schema, doc) ?? {};
      await t.http.post(path.replace('{orgId}', bOrg)).set(bOwner.auth).send(body as object);
    }

    routes = [];
    for (const [path, item] of Object.entries<any>(doc.paths)) {
      if (!path.startsWith('/v1/orgs/{orgId}')) continue;
      for (const method of METHODS) {
        const op = item[method];
        if (!op) continue;
        routes.push({ method, path, params: [...(item.parameters ?? []), ...(op.parameters ?? [])].filter((p: any) => p.in === 'path') });
      }
    }
    for (const route of routes) {
      for (const name of route.path.match(/\{(\w+)\}/g)!.map((m) => m.slice(1, -1))) {
        if (name !== 'orgId' && !(name in bIds) && /Id$/.test(name)) {
          const id = await idFromTableNamed(name);
          if (id) bIds[name] = id;
        }
      }
    }
  });
  afterAll(() => t.close());

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
  });

  it('leaves no trace in B: every call below is refused and no row of B changes', async () => {
    const before = await snapshotOf(bOrg);
    const problems: string[] = [];
    const outcome: Record<string, Record<string, number>> = { a: {}, aOwnOrg: {}, b: {}, c: {} };
    const note = (kase: string, status: number) => (outcome[kase][status] = (outcome[kase][status] ?? 0) + 1);

    for (const route of routes) {
      // (a) a member (the owner) of A with B's organization id
      const a = await call(route, urlFor(route, bOrg), aOwner);
      note('a', a.status);
      if (a.status !== 404 && a.status !== 403) problems.push(`(a) ${label(route)} as a member of A on B: ${a.status} ${JSON.stringify(a.body?.error ?? a.body)}`);

      // (a') A's own organization, B's resource ids: never a success, never a crash
      if (route.path.match(/\{(\w+)\}/g)!.some((m) => m !== '{orgId}' && bIds[m.slice(1, -1)] && /Id\}$/.test(m))) {
        const own = await call(route, urlFor(route, aOrg), aOwner);
        note('aOwnOrg', own.status);
        if (own.status < 400 || own.status >= 500) problems.push(`(a') ${label(route)} in A with B's ids: ${own.status} ${JSON.stringify(own.body?.error ?? own.body)}`);
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
  });

  it('the viewer allowlist is real: a viewer of B may leave it', async () => {
    for (const allowed of VIEWER_MAY) expect(routes.map(label)).toContain(allowed);
    await t.http.delete(`/v1/orgs/${bOrg}/members/me`).set(bViewer.auth).expect(204);
    await t.http.get(`/v1/orgs/${bOrg}`).set(bViewer.auth).expect(404);
  });
});
