import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { OpenAPIObject } from '@nestjs/swagger';
import jwt from 'jsonwebtoken';
import { API_KEY_SCOPE_NAMES } from '../../src/platform/auth/api-key-scopes.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { tableContents } from '../support/database.js';
import { testKeys } from '../integrations/keys.js';
import { addMember, createOrg, onEnterprisePlan, onPlan, registerUser, type TestUser } from '../support/factories.js';

/**
 * The cross-cutting error codes, proven on every operation that declares them. Each of these codes is answered by one
 * mechanism on many routes, before the handler runs; the OpenAPI document (`x-error-codes`, most of them derived from
 * how the route is declared) says where. For every operation of `GET /docs-json` that declares one, the sweep sends
 * the request that mechanism must refuse and asserts the status, `error.code` and details:
 *  - `workspace.invalid`        X-Workspace-Id that is not a UUID (tenant.ts, before the transaction);
 *  - `workspace.not_found`      X-Workspace-Id of another organization's workspace, or of none (begin_request);
 *  - `auth.csrf_rejected`       a write authenticated by the access cookie (AUTH_COOKIES=true) from a foreign origin,
 *                               or with no Origin/Referer (CookieCsrfGuard);
 *  - `api_keys.route_closed`    an API key of the organization on a route that declares no key scope (the auth guard
 *                               outside /v1/orgs/{orgId}, the tenant check inside);
 *  - `api_keys.scope_missing`   an API key that holds every scope but the route's (details.scope names it);
 *  - `billing.feature_not_in_plan`  on a starter organization: a key made on enterprise (api_access, on every operation
 *                               open to keys), and the owner on a route whose plan feature starter lacks;
 *  - `forbidden.role`           a member whose role the route leaves out (`x-omnizen-roles`; @RequireRole, tenant.ts);
 *  - `auth.user_required`, `privacy.user_required`  a service-role key on a route that acts for a signed-in person
 *                               (@UserRoute / @UserPreflightRoute in tenant.ts, or the service of a route that checks
 *                               it itself, after the body is validated: those get a valid body);
 *  - `pagination.cursor`        a ?cursor= that no page of the route ever handed out.
 * A route the mechanism stopped applying to answers something else and fails the sweep; nothing a refused request
 * would write is written (after each sweep, every table of the database, count and content, is as the setup left it).
 * The test app's contract check fails the file on a code an operation does not declare.
 */

const METHODS = ['get', 'post', 'put', 'patch', 'delete'] as const;
type Method = (typeof METHODS)[number];
const SWEPT = ['workspace.invalid', 'workspace.not_found', 'auth.csrf_rejected', 'api_keys.route_closed', 'api_keys.scope_missing', 'billing.feature_not_in_plan',
  'forbidden.role', 'auth.user_required', 'privacy.user_required', 'pagination.cursor'] as const;
type Code = (typeof SWEPT)[number];

interface Operation {
  method: Method;
  path: string;
  label: string;
  codes: Set<string>;
  roles?: string[];
  keyScope?: string;
  billing?: { app: string; feature?: string; consumes?: boolean };
  body: boolean;
}

/**
 * Operations open to keys by their scope whose @RequireRole leaves out the key's role (`service`): a key is refused
 * there by the role (403 forbidden.role, checked before the plan), so the keyed 402 their document lists cannot happen.
 * None: a route only a person uses is closed to keys instead (@ClosedToApiKeys: 403 api_keys.route_closed, swept
 * like every closed route; the expense claims' create, update, submit and void). The document's x-omnizen-roles leaves
 * `service` out on every operation, so it cannot tell such a route apart: one would answer forbidden.role where the
 * sweep expects the keyed 402 and fail it, until closed to keys or listed here.
 */
const KEYS_REFUSED_BY_ROLE = new Set<string>([]);

const APP_ORIGIN = 'https://app.example.test';
/** The roles a member can hold, least first: the sweep of forbidden.role sends the first one a route leaves out. */
const MEMBER_ROLES = ['viewer', 'member', 'accountant', 'admin', 'owner'] as const;
/**
 * Routes that check for a person in their service, after the body is validated: a body that passes validation, so the
 * check is what answers (every other route gets `{}`).
 */
const VALID_BODIES: Record<string, unknown> = {
  'POST /v1/auth/identities': { token: 'not-a-real-identity-token-at-all' },
  'POST /v1/auth/verify-email': { token: 'not-a-real-verification-token' },
  'POST /v1/auth/email-change': { newEmail: 'sweep.new@example.com', password: 'not the password' },
  'POST /v1/orgs/{orgId}/agents/{agentId}/triggers': { kind: 'event', eventType: 'bill.submitted', prompt: 'Review this bill.' },
};
/** Operations whose plan feature the request decides (no route requirement): what a request needing it sends. */
const BRANDING = { displayName: 'Sweep', primaryColor: '#112233', logoUrl: 'https://sweep.example/logo.png' };
const BODY_GATED: Record<string, { params?: Record<string, string>; body: unknown }> = {
  'PUT /v1/orgs/{orgId}/settings/{scope}/{key}': { params: { key: 'branding' }, body: { value: BRANDING } },
  'PATCH /v1/orgs/{orgId}/settings/{scope}': { body: { values: { timezone: 'Europe/Berlin', branding: BRANDING } } },
};
/** Runs `work` over `items`, `size` at a time. */
async function inChunks<T>(items: T[], size: number, work: (item: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += size) await Promise.all(items.slice(i, i + size).map(work));
}

describe('the cross-cutting error codes on every operation that declares them (OpenAPI-driven)', () => {
  let t: TestApp;
  let ops: Operation[];
  let owner: TestUser;
  let orgId: string;
  /** a starter organization whose API key was made while it was on enterprise */
  let starterOrg: string;
  let starterKey: string;
  /** API keys of orgId: each holds every scope but one (`lacking[scope]`) */
  const lacking: Record<string, string> = {};
  let accessCookie: string;
  let foreignWorkspace: string;
  let starterHas: Map<string, boolean>;
  /** members of orgId, one per role */
  const byRole: Partial<Record<(typeof MEMBER_ROLES)[number], TestUser>> = {};
  /** a Supabase service-role key: acts for any organization, for no person */
  let serviceAuth: Record<string, string>;
  /** existing parents of orgId, for the routes that look their parent up before they read the cursor */
  const parents: Record<string, string> = {};
  /** the database after the setup: every sweep leaves it so (no refused request writes, and nothing else runs) */
  let baseline: Record<string, string>;

  /** Every base table of the database: row count and content (the refused requests must leave all of them as they were). */
  const snapshot = () => tableContents(t.db.admin);

  function url(op: Operation, org: string, params: Record<string, string> = {}): string {
    const VALID: Record<string, string> = { orgId: org, scope: 'org', key: 'timezone', flag: 'beta.reports', versionNo: '1', slug: 'acme', ...params };
    return op.path.replace(/\{(\w+)\}/g, (_, name: string) => VALID[name] ?? randomUUID());
  }

  function send(op: Operation, org: string, headers: Record<string, string>, query?: Record<string, string>, params?: Record<string, string>, body?: unknown) {
    const req = t.http[op.method](url(op, org, params)).set(headers).query(query ?? {});
    return op.body ? req.send((body ?? VALID_BODIES[op.label] ?? {}) as object) : req;
  }

  /** One request per (operation, code): its outcome against the expected status, code and details. */
  interface Case {
    op: Operation; org: string; headers: Record<string, string>; status: number; code: string; details?: Record<string, unknown>; message?: RegExp;
    query?: Record<string, string>; params?: Record<string, string>; body?: unknown;
  }

  async function sweep(cases: Case[]): Promise<string[]> {
    const failures: string[] = [];
    await inChunks(cases, 8, async (c) => {
      const res = await send(c.op, c.org, c.headers, c.query, c.params, c.body);
      const error = res.body?.error;
      const ok = res.status === c.status && error?.code === c.code
        && (!c.details || expect.objectContaining(c.details).asymmetricMatch(error.details))
        && (!c.message || c.message.test(error.message));
      if (!ok) failures.push(`${c.op.label} (${c.code}): ${res.status} ${JSON.stringify(error ?? res.body).slice(0, 240)}`);
    });
    const after = await snapshot();
    const changed = Object.keys(after).filter((k) => after[k] !== baseline[k]);
    if (changed.length) failures.push(`tables written by refused requests: ${changed.join(', ')}`);
    return failures.sort();
  }

  const declaring = (code: Code) => ops.filter((o) => o.codes.has(code));

  beforeAll(async () => {
    // some 900 requests from one user and thirteen keys: the request limiter is not what this file tests
    // secrets: a webhook endpoint seals its signing secret (the cursor sweep pages its messages)
    t = await createTestApp({ RATE_LIMITS_ENABLED: 'false', AUTH_COOKIES: 'true', CORS_ORIGINS: APP_ORIGIN, SECRETS_KEYS: testKeys('sweep').env });
    const doc: OpenAPIObject = (await t.http.get('/docs-json').expect(200)).body;
    ops = [];
    for (const [path, item] of Object.entries<any>(doc.paths)) {
      for (const method of METHODS) {
        const op = item[method];
        if (!op) continue;
        ops.push({
          method, path, label: `${method.toUpperCase()} ${path}`,
          codes: new Set((op['x-error-codes'] ?? []).map((c: { code: string }) => c.code)), roles: op['x-omnizen-roles'],
          keyScope: op['x-omnizen-api-key-scope'], billing: op['x-omnizen-billing'],
          // a JSON body where the operation takes JSON (an upload refuses one 415 before its checks: it gets none)
          body: Boolean(op.requestBody?.content?.['application/json']),
        });
      }
    }

    owner = await registerUser(t, 'sweep-owner');
    orgId = await createOrg(t, owner, 'Sweep Ltd');
    await onEnterprisePlan(t, orgId);
    byRole.owner = owner;
    for (const role of MEMBER_ROLES.filter((r) => r !== 'owner')) {
      byRole[role] = await registerUser(t, `sweep-${role}`);
      await addMember(t, orgId, byRole[role]!, role);
    }
    const serviceKey = jwt.sign({ role: 'service_role', service: 'error-code-sweep' }, t.config.auth.supabaseJwtSecret, { algorithm: 'HS256', expiresIn: 3600 });
    serviceAuth = { Authorization: `Bearer ${serviceKey}` };
    for (const scope of API_KEY_SCOPE_NAMES) {
      const key = await t.http.post(`/v1/orgs/${orgId}/api-keys`).set(owner.auth)
        .send({ name: `all but ${scope}`, scopes: API_KEY_SCOPE_NAMES.filter((s) => s !== scope) }).expect(201);
      lacking[scope] = key.body.secret;
    }
    starterOrg = await createOrg(t, owner, 'Sweep Starter Ltd');
    await onEnterprisePlan(t, starterOrg);
    starterKey = (await t.http.post(`/v1/orgs/${starterOrg}/api-keys`).set(owner.auth).send({ name: 'made on enterprise', scopes: API_KEY_SCOPE_NAMES }).expect(201)).body.secret;
    await onPlan(t, starterOrg, 'starter');
    const { rows } = await t.db.admin.query(`SELECT feature, enabled FROM hub.plan_features WHERE app_id = 'omnizen' AND plan_code = 'starter'`);
    starterHas = new Map(rows.map((r) => [r.feature, r.enabled !== false]));

    parents.endpointId = (await t.http.post(`/v1/orgs/${orgId}/webhooks/endpoints`).set(owner.auth).send({ url: 'https://hooks.example.com/sweep' }).expect(201)).body.id;
    parents.agentId = (await t.http.post(`/v1/orgs/${orgId}/agents`).set(owner.auth).send({ name: 'Sweep', type: 'assistant', modelId: 'gpt-4o', maxSteps: 1, tools: [] }).expect(201)).body.id;

    const other = await createOrg(t, owner, 'Other Ltd');
    await onEnterprisePlan(t, other);
    foreignWorkspace = (await t.http.post(`/v1/orgs/${other}/workspaces`).set(owner.auth).send({ name: 'Not yours' }).expect(201)).body.id;

    // the access cookie as the browser gets it: a JSON login from the app's origin
    const login = await t.http.post('/v1/auth/login').set('Origin', APP_ORIGIN).send({ email: owner.email, password: 'correct horse battery' }).expect(200);
    const cookie = ((login.headers['set-cookie'] as unknown as string[] | undefined) ?? []).find((c) => c.startsWith('omnizen_access='));
    accessCookie = cookie!.split(';')[0];
    baseline = await snapshot();
  });
  afterAll(() => t?.close());

  it('reads the operations and the codes they declare from the document', () => {
    expect(ops.length).toBeGreaterThan(200);
    const counts = Object.fromEntries(SWEPT.map((code) => [code, declaring(code).length]));
    console.info(`error-code sweep: ${ops.length} operations; declaring ${JSON.stringify(counts)}`);
    expect(counts['workspace.invalid']).toBeGreaterThan(200);
    expect(counts['workspace.not_found']).toBeGreaterThan(200);
    expect(counts['auth.csrf_rejected']).toBeGreaterThan(100);
    expect(counts['api_keys.route_closed']).toBeGreaterThan(100);
    expect(counts['api_keys.scope_missing']).toBeGreaterThan(100);
    expect(counts['billing.feature_not_in_plan']).toBeGreaterThan(100);
    expect(counts['forbidden.role']).toBeGreaterThan(100);
    expect(counts['auth.user_required']).toBeGreaterThan(30);
    expect(counts['privacy.user_required']).toBeGreaterThan(2);
    expect(counts['pagination.cursor']).toBeGreaterThan(15);
    // the access cookie alone authenticates (so a write it carried would act if the CSRF guard let it through)
    expect(accessCookie).toMatch(/^omnizen_access=./);
  });

  it('workspace.invalid: an X-Workspace-Id that is not a UUID is a 400 on every tenant operation', async () => {
    const cases = declaring('workspace.invalid').map((op): Case => ({
      op, org: orgId, headers: { ...owner.auth, 'X-Workspace-Id': 'not-a-uuid' }, status: 400, code: 'workspace.invalid',
    }));
    expect(await sweep(cases)).toEqual([]);
  });

  it('workspace.not_found: another organization\'s workspace, or none, is a 404 on every tenant operation', async () => {
    const cases = declaring('workspace.not_found').map((op, i): Case => ({
      op, org: orgId, headers: { ...owner.auth, 'X-Workspace-Id': i % 2 ? foreignWorkspace : randomUUID() }, status: 404, code: 'workspace.not_found',
    }));
    expect(await sweep(cases)).toEqual([]);
  });

  it('auth.csrf_rejected: a write authenticated by the cookie, from a foreign origin or none, is a 403 on every write', async () => {
    const origins: Record<string, string>[] = [{ Origin: 'https://evil.example' }, { Referer: 'https://evil.example/page' }, {}];
    const cases = declaring('auth.csrf_rejected').map((op, i): Case => ({
      op, org: orgId, headers: { Cookie: accessCookie, ...origins[i % origins.length] }, status: 403, code: 'auth.csrf_rejected',
    }));
    expect(await sweep(cases)).toEqual([]);
  });

  it('api_keys.route_closed: an API key of the organization is a 403 on every operation closed to keys', async () => {
    const cases = declaring('api_keys.route_closed').map((op): Case => ({
      op, org: orgId, headers: { Authorization: `Bearer ${lacking['org:read']}` }, status: 403, code: 'api_keys.route_closed',
    }));
    expect(await sweep(cases)).toEqual([]);
  });

  it('api_keys.scope_missing: a key with every scope but the route\'s is a 403 naming it on every operation open to keys', async () => {
    const cases = declaring('api_keys.scope_missing').map((op): Case => ({
      op, org: orgId, headers: { Authorization: `Bearer ${lacking[op.keyScope!]}` }, status: 403, code: 'api_keys.scope_missing',
      details: { scope: op.keyScope },
    }));
    expect(await sweep(cases)).toEqual([]);
  });

  it('billing.feature_not_in_plan: a key without api_access in the plan, and a person on a route whose feature the plan lacks, are a 402', async () => {
    const keyed = declaring('billing.feature_not_in_plan').filter((op) => op.keyScope).map((op): Case => (KEYS_REFUSED_BY_ROLE.has(op.label)
      ? { op, org: starterOrg, headers: { Authorization: `Bearer ${starterKey}` }, status: 403, code: 'forbidden.role', message: /you are service$/ }
      : {
        op, org: starterOrg, headers: { Authorization: `Bearer ${starterKey}` }, status: 402, code: 'billing.feature_not_in_plan',
        details: { feature: 'api_access', plan: 'starter', upgradeTo: 'enterprise' }, message: /^API keys need a plan with API access/,
      }));
    const gated = declaring('billing.feature_not_in_plan').filter((op) => op.billing?.feature && !op.billing.consumes && !starterHas.get(op.billing.feature))
      .map((op): Case => ({
        op, org: starterOrg, headers: owner.auth, status: 402, code: 'billing.feature_not_in_plan',
        details: { feature: op.billing!.feature, plan: 'starter' },
      }));
    // the settings routes have no route requirement: the key written decides (branding is white_label)
    const byKey = declaring('billing.feature_not_in_plan').filter((op) => !op.keyScope && !op.billing && BODY_GATED[op.label])
      .map((op): Case => ({
        op, org: starterOrg, headers: owner.auth, status: 402, code: 'billing.feature_not_in_plan', ...BODY_GATED[op.label],
        details: { feature: 'white_label', plan: 'starter', upgradeTo: 'enterprise' },
      }));
    // every declaring operation is swept one way or the other; the key-refused ones by their feature
    const produced = new Set([...keyed, ...gated, ...byKey].filter((c) => c.code === 'billing.feature_not_in_plan').map((c) => c.op.label));
    expect(declaring('billing.feature_not_in_plan').filter((op) => !produced.has(op.label)).map((op) => op.label)).toEqual([]);
    expect(gated.map((c) => c.op.label)).toEqual(expect.arrayContaining([...KEYS_REFUSED_BY_ROLE]));
    expect(await sweep([...keyed, ...gated, ...byKey])).toEqual([]);
  });

  it('forbidden.role: a member whose role the route leaves out is a 403 naming the roles on every operation that requires one', async () => {
    // the cancel of an agent run decides in its service (the starter of the run may cancel it): proven in test/agents
    const byService = declaring('forbidden.role').filter((op) => !op.roles).map((op) => op.label);
    expect(byService).toEqual(['POST /v1/orgs/{orgId}/agents/{agentId}/runs/{runId}/cancel']);
    // every route that requires a role declares the refusal (derived from x-omnizen-roles)
    expect(ops.filter((op) => op.roles && !op.codes.has('forbidden.role')).map((op) => op.label)).toEqual([]);
    const refusedOf = (op: Operation) => MEMBER_ROLES.find((r) => !op.roles!.includes(r));
    // a route open to every role refuses none: it would require no role
    expect(declaring('forbidden.role').filter((op) => op.roles && !refusedOf(op)).map((op) => op.label)).toEqual([]);
    const cases = declaring('forbidden.role').filter((op) => op.roles).map((op): Case => ({
      op, org: orgId, headers: byRole[refusedOf(op)!]!.auth, status: 403, code: 'forbidden.role',
      message: new RegExp(`^this action needs the role ${op.roles!.join(' or ')}; you are ${refusedOf(op)}$`),
    }));
    expect(await sweep(cases)).toEqual([]);
  });

  it('auth.user_required and privacy.user_required: a service key is a 403 on every operation that acts for a signed-in person', async () => {
    const cases = (['auth.user_required', 'privacy.user_required'] as const).flatMap((code) => declaring(code).map((op): Case => ({
      op, org: orgId, headers: serviceAuth, status: 403, code, message: /service key|only a user/,
    })));
    expect(await sweep(cases)).toEqual([]);
  });

  it('a service key on the person-only routes that require owner or admin is refused by the role: they declare no user_required', async () => {
    // the API keys and the organization export check for a person in their service too, but a service key never gets
    // there (@RequireRole leaves out `service`), and an API key is refused as on every route closed to keys
    const roleFirst: Record<string, string> = {
      'POST /v1/orgs/{orgId}/api-keys': 'owner or admin', 'GET /v1/orgs/{orgId}/api-keys': 'owner or admin',
      'POST /v1/orgs/{orgId}/api-keys/{keyId}/revoke': 'owner or admin', 'POST /v1/orgs/{orgId}/data-export': 'owner',
    };
    const cases = ops.filter((op) => roleFirst[op.label]).map((op): Case => ({
      op, org: orgId, headers: serviceAuth, status: 403, code: 'forbidden.role', message: new RegExp(`^this action needs the role ${roleFirst[op.label]}; you are service$`),
    }));
    const declaresUserRequired = (op: Operation) => op.codes.has('api_keys.user_required') || op.codes.has('privacy.user_required');
    expect(Object.fromEntries(cases.map((c) => [c.op.label, declaresUserRequired(c.op)])))
      .toEqual(Object.fromEntries(Object.keys(roleFirst).map((label) => [label, false])));
    expect(await sweep(cases)).toEqual([]);
  });

  it('pagination.cursor: a cursor no page handed out is a 400 on every paginated operation', async () => {
    // the day range a daily count needs besides the cursor
    const needs: Record<string, Record<string, string>> = { 'GET /v1/orgs/{orgId}/analytics/events/daily': { from: '2026-01-01', to: '2026-01-31' } };
    // an account exists only in started books (a chart and fiscal years): its ledger pages are proven in test/ledger
    const cases = declaring('pagination.cursor').filter((op) => op.label !== 'GET /v1/orgs/{orgId}/ledger/accounts/{accountId}/ledger').map((op): Case => ({
      op, org: orgId, headers: owner.auth, status: 400, code: 'pagination.cursor', query: { ...needs[op.label], cursor: 'bm90LWEtY3Vyc29y' }, params: parents,
    }));
    expect(await sweep(cases)).toEqual([]);
  });
});
