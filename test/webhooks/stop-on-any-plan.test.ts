import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { addMember, createOrg, onPlan, registerUser, type TestUser } from '../support/factories.js';
import { testKeys } from '../integrations/keys.js';

/**
 * Events are signed and sent to every enabled endpoint whatever the plan (fan-out and delivery check only that the
 * endpoint is enabled and its organization not deleted): a customer whose subscription lapsed (read-only) or who
 * downgraded must be able to stop them, by deleting the endpoint or by a change that only disables it (review r1).
 * Every other change stays refused, and nothing it would write is written.
 */
describe('webhooks: deliveries can be stopped on any plan', () => {
  let t: TestApp;
  let owner: TestUser;
  let orgId: string;
  const url = (path = '') => `/v1/orgs/${orgId}/webhooks/endpoints${path}`;
  const endpointRow = async (id: string) =>
    (await t.db.admin.query('SELECT url, description, enabled, disabled_reason FROM core.webhook_endpoints WHERE org_id = $1 AND id = $2', [orgId, id])).rows[0];
  const audits = async (id: string) =>
    (await t.db.admin.query('SELECT action, before, after FROM core.audit_logs WHERE org_id = $1 AND entity_id = $2 ORDER BY id', [orgId, id])).rows;
  const create = async (name: string) =>
    (await t.http.post(url()).set(owner.auth).send({ url: `https://hooks.example.com/${name}`, description: name }).expect(201)).body.id as string;

  beforeAll(async () => {
    t = await createTestApp({ SECRETS_KEYS: testKeys('stop').env, REDIS_URL: '' });
    owner = await registerUser(t, 'stop-owner');
    orgId = await createOrg(t, owner, 'Lapsing Ltd');
    await onPlan(t, orgId, 'professional');
  });
  afterAll(() => t?.close());

  it('a canceled subscription: DELETE and a PATCH that only disables pass; any other change is 402 and writes nothing', async () => {
    const [kept, deleted] = [await create('kept'), await create('deleted')];
    await onPlan(t, orgId, 'professional', 'canceled');

    // a change beyond disabling is a write like any other: refused, the endpoint unchanged, nothing audited
    for (const body of [{ url: 'https://hooks.example.com/elsewhere' }, { enabled: true }, { enabled: false, description: 'also this' }, {}]) {
      const res = await t.http.patch(url(`/${kept}`)).set(owner.auth).send(body);
      expect([JSON.stringify(body), res.status, res.body.error?.code, res.body.error?.details?.status])
        .toEqual([JSON.stringify(body), 402, 'billing.subscription_inactive', 'canceled']);
    }
    expect(await endpointRow(kept)).toEqual({ url: 'https://hooks.example.com/kept', description: 'kept', enabled: true, disabled_reason: null });
    expect((await audits(kept)).map((a) => a.action)).toEqual(['webhooks.endpoint_created']);
    // the other writes stay refused too
    await t.http.post(url(`/${kept}/rotate-secret`)).set(owner.auth).send({}).expect(402);

    const disabled = await t.http.patch(url(`/${kept}`)).set(owner.auth).send({ enabled: false }).expect(200);
    expect(disabled.body).toMatchObject({ id: kept, enabled: false, disabledReason: null, url: 'https://hooks.example.com/kept' });
    expect(await endpointRow(kept)).toEqual({ url: 'https://hooks.example.com/kept', description: 'kept', enabled: false, disabled_reason: null });
    expect((await audits(kept)).slice(1)).toEqual([
      { action: 'webhooks.endpoint_updated', before: expect.objectContaining({ enabled: true }), after: expect.objectContaining({ enabled: false }) },
    ]);
    // turning it back on is not stopping: refused
    const again = await t.http.patch(url(`/${kept}`)).set(owner.auth).send({ enabled: true }).expect(402);
    expect(again.body.error.code).toBe('billing.subscription_inactive');
    expect((await endpointRow(kept)).enabled).toBe(false);

    await t.http.delete(url(`/${deleted}`)).set(owner.auth).expect(204);
    expect(await endpointRow(deleted)).toBeUndefined();
    expect((await audits(deleted)).map((a) => [a.action, a.before?.url ?? null])).toEqual([
      ['webhooks.endpoint_created', null], ['webhooks.endpoint_deleted', 'https://hooks.example.com/deleted'],
    ]);
    // the roles still apply: stopping is an admin's
    const member = await registerUser(t, 'stop-member');
    await addMember(t, orgId, member, 'member');
    const refused = await t.http.delete(url(`/${kept}`)).set(member.auth).expect(403);
    expect(refused.body.error.code).toBe('forbidden.role');
    expect(await endpointRow(kept)).toBeDefined();
  });

  it('a plan without webhooks (a downgrade): the endpoint can be disabled and deleted, not changed', async () => {
    await onPlan(t, orgId, 'professional');
    const id = await create('downgraded');
    await onPlan(t, orgId, 'starter');
    const changed = await t.http.patch(url(`/${id}`)).set(owner.auth).send({ description: 'renamed' }).expect(402);
    expect(changed.body.error).toMatchObject({ code: 'billing.feature_not_in_plan', details: { feature: 'webhooks', plan: 'starter' } });
    await t.http.patch(url(`/${id}`)).set(owner.auth).send({ enabled: false }).expect(200);
    expect(await endpointRow(id)).toEqual({ url: 'https://hooks.example.com/downgraded', description: 'downgraded', enabled: false, disabled_reason: null });
    await t.http.delete(url(`/${id}`)).set(owner.auth).expect(204);
    expect(await endpointRow(id)).toBeUndefined();
  });

  it('the document says so: no 402 on the delete, and the update\'s 402 leaves out the change that only disables', async () => {
    const doc = (await t.http.get('/docs-json').expect(200)).body;
    const item = doc.paths['/v1/orgs/{orgId}/webhooks/endpoints/{endpointId}'];
    expect(item.delete.responses['402']).toBeUndefined();
    expect(item.delete['x-omnizen-billing']).toBeUndefined();
    expect(item.delete['x-error-codes'].map((c: { code: string }) => c.code)).not.toContain('billing.subscription_inactive');
    expect(item.patch['x-omnizen-billing']).toMatchObject({ app: 'omnizen', feature: 'webhooks' });
    expect(item.patch.responses['402'].description).toContain(
      'The plan requirement does not apply to a change that only disables the endpoint (the body exactly {"enabled": false}): that is open on any plan');
  });
});
