import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { onPlan, orgWithRoles, type OrgWithRoles } from '../support/factories.js';

/**
 * The organization's branding (display name, colour, logo) is white-label: docs/plans.md and hub.plan_features enable
 * white_label on enterprise and custom only. Writing it (PUT of the key, or a PATCH that includes it) needs the feature;
 * reading and deleting do not, so a downgraded organization keeps what it stored and may clear it.
 */
describe('branding needs white_label', () => {
  let t: TestApp;
  let org: OrgWithRoles;

  const BRANDING = { displayName: 'Acme', primaryColor: '#A0B1C2', logoUrl: 'https://acme.example/logo.png' };
  const STORED = { ...BRANDING, primaryColor: '#a0b1c2' };
  const url = (key = '') => `/v1/orgs/${org.orgId}/settings/org${key ? `/${key}` : ''}`;
  const put = (value: unknown) => t.http.put(url('branding')).set(org.users.admin.auth).send({ value });
  const patch = (values: Record<string, unknown>) => t.http.patch(url()).set(org.users.admin.auth).send({ values });
  /** The organization's stored settings and their audit rows, as the database has them. */
  const stored = async () => ({
    settings: Object.fromEntries((await t.db.admin.query(`SELECT key, value FROM core.settings WHERE org_id = $1 AND scope = 'org'`, [org.orgId])).rows
      .map((r) => [r.key, r.value])),
    audited: (await t.db.admin.query(`SELECT action, entity_id FROM core.audit_logs WHERE org_id = $1 AND entity_type = 'setting' ORDER BY id`, [org.orgId])).rows
      .map((r) => `${r.action} ${r.entity_id}`),
  });
  const notInPlan = (plan: string) => ({
    code: 'billing.feature_not_in_plan', details: { app: 'omnizen', feature: 'white_label', plan, upgradeTo: 'enterprise' },
    message: expect.stringContaining(`the ${plan} plan does not include white-label options; upgrade to enterprise`),
  });

  beforeAll(async () => {
    t = await createTestApp();
    org = await orgWithRoles(t, 'Brand Co');
  });
  afterAll(() => t?.close());

  it('a starter or professional admin cannot write the branding (PUT, or a PATCH that includes it): 402, nothing stored', async () => {
    // the default trial (no subscription row: starter), then a starter and a professional subscription
    for (const plan of [undefined, 'starter', 'professional'] as const) {
      if (plan) await onPlan(t, org.orgId, plan);
      const one = await put(BRANDING);
      expect(one.status).toBe(402);
      expect(one.body.error).toMatchObject(notInPlan(plan ?? 'starter'));
      const many = await patch({ timezone: 'Europe/Berlin', branding: BRANDING });
      expect(many.status).toBe(402);
      expect(many.body.error).toMatchObject(notInPlan(plan ?? 'starter'));
      expect(await stored()).toEqual({ settings: {}, audited: [] });
    }
    // the other settings need no plan
    const other = await patch({ timezone: 'Europe/Berlin' }).expect(200);
    expect(other.body).toMatchObject([{ key: 'timezone', value: 'Europe/Berlin' }]);
    expect(await stored()).toEqual({ settings: { timezone: 'Europe/Berlin' }, audited: ['setting.updated org/timezone'] });
    // a member is refused for the role first, whatever the plan
    expect((await t.http.put(url('branding')).set(org.users.member.auth).send({ value: BRANDING }).expect(403)).body.error.code).toBe('forbidden.role');
    // an invalid branding is still a 400 naming the problem (validation comes first)
    expect((await put({ primaryColor: 'red' }).expect(400)).body.error.code).toBe('settings.invalid');
  });

  it('an enterprise admin writes it (PUT and PATCH): 200, stored and audited', async () => {
    await onPlan(t, org.orgId, 'enterprise');
    expect((await put(BRANDING).expect(200)).body).toMatchObject({ scope: 'org', key: 'branding', value: STORED });
    expect((await stored()).settings.branding).toEqual(STORED);
    const many = await patch({ locale: 'de-de', branding: { ...BRANDING, displayName: 'Acme GmbH' } }).expect(200);
    expect(many.body.map((s: any) => [s.key, s.value])).toEqual([['locale', 'de-DE'], ['branding', { ...STORED, displayName: 'Acme GmbH' }]]);
    expect(await stored()).toEqual({
      settings: { timezone: 'Europe/Berlin', locale: 'de-DE', branding: { ...STORED, displayName: 'Acme GmbH' } },
      audited: ['setting.updated org/timezone', 'setting.updated org/branding', 'setting.updated org/locale', 'setting.updated org/branding'],
    });
  });

  it('after a downgrade the stored branding stays readable and deletable, but cannot be written again (not even unchanged)', async () => {
    const before = await stored();
    const current = before.settings.branding;
    // a read-only enterprise subscription (canceled): a write of any plan feature is refused as read-only
    await onPlan(t, org.orgId, 'enterprise', 'canceled');
    for (const readOnly of [await put(BRANDING), await patch({ timezone: 'Europe/Paris', branding: BRANDING })]) {
      expect(readOnly.status).toBe(402);
      expect(readOnly.body.error).toMatchObject({ code: 'billing.subscription_inactive', details: { app: 'omnizen', plan: 'enterprise', status: 'canceled' } });
    }
    await onPlan(t, org.orgId, 'professional');
    for (const res of [await put(BRANDING), await put(current), await patch({ branding: current }), await patch({ locale: 'fr-FR', branding: current })]) {
      expect(res.status).toBe(402);
      expect(res.body.error).toMatchObject(notInPlan('professional'));
    }
    expect(await stored()).toEqual(before);
    // GET answers what is stored (documented on getSetting and listSettings): the organization still sees what it set
    expect((await t.http.get(url('branding')).set(org.users.viewer.auth).expect(200)).body.value).toEqual(current);
    // the other settings stay writable, and the branding can be removed without the feature
    await t.http.put(url('locale')).set(org.users.admin.auth).send({ value: 'fr-FR' }).expect(200);
    await t.http.delete(url('branding')).set(org.users.admin.auth).expect(204);
    expect(await stored()).toEqual({
      settings: { timezone: 'Europe/Berlin', locale: 'fr-FR' },
      audited: [...before.audited, 'setting.updated org/locale', 'setting.deleted org/branding'],
    });
  });
});
