import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { createTestApp, type TestApp } from '../support/app.js';
import { addMember, createOrg, registerUser, verifyEmailOf, type TestUser } from '../support/factories.js';

describe('organizations', () => {
  let t: TestApp;
  let ada: TestUser;
  let bob: TestUser;

  beforeAll(async () => {
    t = await createTestApp();
    ada = await registerUser(t, 'ada');
    bob = await registerUser(t, 'bob');
  });
  afterAll(() => t.close());

  it('gives every new user a personal organization they own', async () => {
    const res = await t.http.get('/v1/orgs').set(ada.auth).expect(200);
    expect(res.body).toEqual([expect.objectContaining({ id: ada.personalOrgId, accountType: 'personal', role: 'owner' })]);
  });

  it('creates a business organization whose creator is the owner, and audits it', async () => {
    const orgId = await createOrg(t, ada, 'Ada Trading');
    const list = await t.http.get('/v1/orgs').set(ada.auth).expect(200);
    expect(list.body.map((o: any) => o.id)).toContain(orgId);
    const org = await t.http.get(`/v1/orgs/${orgId}`).set(ada.auth).expect(200);
    expect(org.body).toMatchObject({ name: 'Ada Trading', accountType: 'business', role: 'owner' });
    const audit = await t.http.get(`/v1/orgs/${orgId}/audit-logs`).set(ada.auth).expect(200);
    expect(audit.body.items).toEqual([expect.objectContaining({ action: 'organization.created', actorId: ada.id, principalType: 'user' })]);
  });

  it('clears the domain with null, keeps fields left out, and refuses null where a field is not nullable', async () => {
    const orgId = await createOrg(t, ada, 'Domain Ltd');
    await t.http.patch(`/v1/orgs/${orgId}`).set(ada.auth).send({ domain: 'domain.example' }).expect(200);
    const kept = await t.http.patch(`/v1/orgs/${orgId}`).set(ada.auth).send({ name: 'Domain GmbH' }).expect(200);
    expect(kept.body).toMatchObject({ name: 'Domain GmbH', domain: 'domain.example' });
    const cleared = await t.http.patch(`/v1/orgs/${orgId}`).set(ada.auth).send({ domain: null }).expect(200);
    expect(cleared.body).toMatchObject({ name: 'Domain GmbH', domain: null });
    const refused = await t.http.patch(`/v1/orgs/${orgId}`).set(ada.auth).send({ name: null }).expect(400);
    expect(refused.body.error).toMatchObject({ code: 'validation_failed', details: [{ field: 'name', problems: [expect.stringMatching(/name must not be null/)] }] });
    const nul = await t.http.patch(`/v1/orgs/${orgId}`).set(ada.auth).send({ name: 'Evil\u0000Corp' }).expect(400);
    expect(nul.body.error.details).toEqual([{ field: 'name', problems: [expect.stringMatching(/NUL/)] }]);
    const { rows } = await t.db.admin.query('SELECT name, domain FROM core.organizations WHERE id = $1', [orgId]);
    expect(rows[0]).toEqual({ name: 'Domain GmbH', domain: null });
  });

  it('hides another organization from a non-member: 404 on read, update and delete', async () => {
    const orgId = await createOrg(t, ada, 'Private');
    await t.http.get(`/v1/orgs/${orgId}`).set(bob.auth).expect(404);
    await t.http.patch(`/v1/orgs/${orgId}`).set(bob.auth).send({ name: 'Hacked' }).expect(404);
    await t.http.delete(`/v1/orgs/${orgId}`).set(bob.auth).expect(404);
    const { rows } = await t.db.admin.query('SELECT name FROM core.organizations WHERE id = $1', [orgId]);
    expect(rows[0].name).toBe('Private');
  });

  it('lets admins update but not viewers, and only owners delete', async () => {
    const orgId = await createOrg(t, ada, 'Roles Inc');
    await addMember(t, orgId, bob, 'viewer');
    const denied = await t.http.patch(`/v1/orgs/${orgId}`).set(bob.auth).send({ name: 'Nope' }).expect(403);
    expect(denied.body.error.code).toBe('forbidden.role');
    await t.db.admin.query(`UPDATE core.memberships SET role = 'admin' WHERE org_id = $1 AND user_id = $2`, [orgId, bob.id]);
    const ok = await t.http.patch(`/v1/orgs/${orgId}`).set(bob.auth).send({ name: 'Renamed' }).expect(200);
    expect(ok.body.name).toBe('Renamed');
    await t.http.delete(`/v1/orgs/${orgId}`).set(bob.auth).expect(403);
    await t.http.delete(`/v1/orgs/${orgId}`).set(ada.auth).expect(204);
    await t.http.get(`/v1/orgs/${orgId}`).set(ada.auth).expect(404);
  });

  it('rejects unknown fields and names invalid ones', async () => {
    const res = await t.http.post('/v1/orgs').set(ada.auth).send({ name: '', color: 'red' }).expect(400);
    expect(res.body.error.code).toBe('validation_failed');
    expect(res.body.error.message).toMatch(/color should not exist/);
    expect(res.body.error.details.map((d: any) => d.field).sort()).toEqual(['color', 'name']);
    expect(res.body.requestId).toEqual(expect.any(String));
  });

  it('trims the name on create and rename, and refuses one of only whitespace with a 400 naming it', async () => {
    await verifyEmailOf(t, ada); // creating an organization needs a verified address
    const created = await t.http.post('/v1/orgs').set(ada.auth).send({ name: '  Padded  ' }).expect(201);
    expect(created.body.name).toBe('Padded');
    const orgId = created.body.id;
    const renamed = await t.http.patch(`/v1/orgs/${orgId}`).set(ada.auth).send({ name: '\tRepadded \n' }).expect(200);
    expect(renamed.body.name).toBe('Repadded');
    const orgsBefore = (await t.db.admin.query('SELECT count(*)::int AS n FROM core.organizations')).rows[0].n;
    const blank = await t.http.post('/v1/orgs').set(ada.auth).send({ name: '   ' }).expect(400);
    expect(blank.body.error).toMatchObject({ code: 'validation_failed', details: [{ field: 'name', problems: [expect.stringMatching(/name must be longer than or equal to 1 characters/)] }] });
    const tabs = await t.http.patch(`/v1/orgs/${orgId}`).set(ada.auth).send({ name: ' \t ' }).expect(400);
    expect(tabs.body.error).toMatchObject({ code: 'validation_failed', details: [{ field: 'name', problems: [expect.stringMatching(/name must be longer than or equal to 1 characters/)] }] });
    expect((await t.db.admin.query('SELECT count(*)::int AS n FROM core.organizations')).rows[0].n).toBe(orgsBefore);
    const { rows } = await t.db.admin.query('SELECT name FROM core.organizations WHERE id = $1', [orgId]);
    expect(rows).toEqual([{ name: 'Repadded' }]);
    const audit = await t.db.admin.query(`SELECT action, after->>'name' AS name FROM core.audit_logs WHERE org_id = $1 ORDER BY id`, [orgId]);
    expect(audit.rows).toEqual([{ action: 'organization.created', name: 'Padded' }, { action: 'organization.updated', name: 'Repadded' }]);
  });

  it('answers 401 to anonymous callers', async () => {
    const res = await t.http.get('/v1/orgs').expect(401);
    expect(res.body.error.code).toBe('auth.unauthorized');
    expect(res.headers['x-request-id']).toBe(res.body.requestId);
  });

  it('never deletes a personal organization', async () => {
    const res = await t.http.delete(`/v1/orgs/${ada.personalOrgId}`).set(ada.auth).expect(403);
    expect(res.body.error).toMatchObject({ code: 'organization.personal', message: 'a personal organization cannot be deleted' });
    // nothing changed: the organization is not soft-deleted, its owner is still a member, and no deletion is audited
    const { rows } = await t.db.admin.query(
      `SELECT o.deleted_at, (SELECT count(*)::int FROM core.memberships m WHERE m.org_id = o.id) AS members,
              (SELECT count(*)::int FROM core.audit_logs a WHERE a.org_id = o.id AND a.action = 'organization.deleted') AS audited
       FROM core.organizations o WHERE o.id = $1`, [ada.personalOrgId]);
    expect(rows).toEqual([{ deleted_at: null, members: 1, audited: 0 }]);
  });

  it('the runs a deletion before 20270210330200 left running are cancelled by that migration, audited once, their reservations released and no event owed; a live organization\'s run is left', async () => {
    const q = (text: string, params: unknown[] = []) => t.db.admin.query(text, params);
    const gone = await createOrg(t, ada, 'Left Running Ltd');
    const live = await createOrg(t, ada, 'Still Running Ltd');
    const agentOf = async (orgId: string) => (await q(`INSERT INTO ai.agents (org_id, name, type, model_id, created_by)
      VALUES ($1, 'Runner', 'assistant', 'gpt-4o-mini', $2) RETURNING id`, [orgId, ada.id])).rows[0].id as string;
    const [goneAgent, liveAgent] = [await agentOf(gone), await agentOf(live)];
    const budget = (await q(`INSERT INTO ai.budgets (org_id, cost_limit) VALUES ($1, 10) RETURNING id`, [gone])).rows[0].id as string;
    // deleted as before the fix; its runs as that left them: one running with a call in flight (and its reservation), one
    // a person cancelled mid-call whose event its execution still owed
    await t.http.delete(`/v1/orgs/${gone}`).set(ada.auth).expect(204);
    const call = '6d1c0b7e-0000-4000-8000-000000000001';
    const run = async (orgId: string, agentId: string, extra: string, values: unknown[] = []) => (await q(`INSERT INTO ai.runs (org_id, agent_id, model_id, started_by, input, started_at,
        status, stop_reason, error_class, error_message, finished_at, lease_until, call_in_flight_until, call_in_flight_id)
      VALUES ($1, $2, 'gpt-4o-mini', $3, '{"messages":[]}', now() - interval '2 days', ${extra}) RETURNING id`, [orgId, agentId, ada.id, ...values])).rows[0].id as string;
    const running = await run(gone, goneAgent, `'running', NULL, NULL, NULL, NULL, now() + interval '1 hour', now() + interval '1 hour', $4::uuid`, [call]);
    const owing = await run(gone, goneAgent, `'cancelled', 'cancelled', 'cancelled', 'cancelled by a person', now() - interval '1 day', NULL, now() + interval '1 hour', NULL`);
    const liveRun = await run(live, liveAgent, `'running', NULL, NULL, NULL, NULL, now() + interval '1 hour', NULL, NULL`);
    // one month for both rows (two statements could fall on either side of the first of a month)
    const period = (await q(`SELECT date_trunc('month', now())::date::text AS period`)).rows[0].period as string;
    await q(`INSERT INTO ai.budget_usage (org_id, budget_id, period, reserved_cost, reserved_tokens) VALUES ($1, $2, $3::date, 0.5, 1000)`, [gone, budget, period]);
    await q(`INSERT INTO ai.budget_reservations (org_id, call_id, budget_id, period, cost, tokens, expires_at)
      VALUES ($1, $2, $3, $4::date, 0.5, 1000, now() + interval '1 hour')`, [gone, call, budget, period]);

    const migrate = async () => { await q(readFileSync(new URL('../../prisma/migrations/20270210330200_runs_of_deleted_organizations_cancelled/migration.sql', import.meta.url), 'utf8')); };
    await migrate();
    await migrate(); // applied again: nothing more
    const runs = await q(`SELECT id, status, error_message, lease_until, call_in_flight_until FROM ai.runs WHERE id = ANY($1::uuid[])
      ORDER BY array_position($1::uuid[], id)`, [[running, owing, liveRun]]);
    expect(runs.rows.map((r) => ({ ...r, lease_until: r.lease_until === null ? null : 'set' }))).toEqual([
      { id: running, status: 'cancelled', error_message: 'cancelled: its organization was deleted', lease_until: null, call_in_flight_until: null },
      { id: owing, status: 'cancelled', error_message: 'cancelled by a person', lease_until: null, call_in_flight_until: null },
      { id: liveRun, status: 'running', error_message: null, lease_until: 'set', call_in_flight_until: null },
    ]);
    const usage = await q(`SELECT reserved_cost::text, reserved_tokens::int, spent_cost::text,
      (SELECT count(*)::int FROM ai.budget_reservations r WHERE r.org_id = u.org_id) AS reservations FROM ai.budget_usage u WHERE budget_id = $1`, [budget]);
    expect(usage.rows).toEqual([{ reserved_cost: '0.00000000', reserved_tokens: 0, spent_cost: '0.00000000', reservations: 0 }]);
    const audits = await q(`SELECT entity_id, actor_id, principal_type, before, after FROM core.audit_logs WHERE entity_type = 'ai_run' AND entity_id = ANY($1::text[])`,
      [[running, owing, liveRun]]);
    expect(audits.rows).toEqual([{
      entity_id: running, actor_id: 'migration:20270210330200', principal_type: 'system', before: { status: 'running' },
      after: {
        status: 'cancelled', errorClass: 'cancelled', stopReason: 'cancelled', cost: '0.00000000', steps: 0, reason: 'organization_deleted',
        usage: { inputTokens: 0, outputTokens: 0, cachedInputTokens: 0, cacheWriteTokens: 0 },
      },
    }]);
    // no run event in the deleted organization, now (none emitted) or later (none owed)
    const events = await q(`SELECT count(*)::int AS n FROM core.outbox WHERE org_id = $1 AND payload->>'type' LIKE 'agent.run.%'`, [gone]);
    expect(events.rows).toEqual([{ n: 0 }]);
  });
});
