import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { createTestApp, type TestApp } from '../support/app.js';
import { until } from '../support/throwaway-servers.js';
import { onPlan, orgWithRoles, type OrgWithRoles } from '../support/factories.js';

/**
 * The organization's branding (display name, colour, logo) is white-label: docs/plans.md and hub.plan_features enable
 * white_label on enterprise and custom only. Changing it (PUT of the key, or a PATCH that includes it) needs the
 * feature; reading, sending it back as stored, leaving fields out and deleting do not, so a downgraded organization
 * keeps what it stored, may clear it, and saves its other settings from a form that sends the branding back.
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

  it('after a downgrade the stored branding stays readable, deletable and can be sent back as stored, but not changed', async () => {
    const before = await stored();
    const current = before.settings.branding;
    // a read-only enterprise subscription (canceled): a write of any plan feature is refused as read-only
    await onPlan(t, org.orgId, 'enterprise', 'canceled');
    for (const readOnly of [await put(BRANDING), await patch({ timezone: 'Europe/Paris', branding: BRANDING })]) {
      expect(readOnly.status).toBe(402);
      expect(readOnly.body.error).toMatchObject({ code: 'billing.subscription_inactive', details: { app: 'omnizen', plan: 'enterprise', status: 'canceled' } });
    }
    await onPlan(t, org.orgId, 'professional');
    // a change is refused whole: another value of a field (PUT or PATCH, with another setting or alone)
    for (const res of [await put(BRANDING), await patch({ locale: 'fr-FR', branding: { ...current, primaryColor: '#000000' } }), await patch({ branding: BRANDING })]) {
      expect(res.status).toBe(402);
      expect(res.body.error).toMatchObject(notInPlan('professional'));
    }
    expect(await stored()).toEqual(before);
    // sent back as stored (a form that sends every setting, the colour as typed), it needs no plan: the other setting is
    // written, the branding stays as it was, both audited
    const same = await patch({ locale: 'fr-FR', branding: { ...current, primaryColor: current.primaryColor.toUpperCase() } }).expect(200);
    expect(same.body.map((s: any) => [s.key, s.value])).toEqual([['locale', 'fr-FR'], ['branding', current]]);
    expect((await put(current).expect(200)).body).toMatchObject({ key: 'branding', value: current });
    expect(await stored()).toEqual({
      settings: { ...before.settings, locale: 'fr-FR' },
      audited: [...before.audited, 'setting.updated org/locale', 'setting.updated org/branding', 'setting.updated org/branding'],
    });
    // GET answers what is stored (documented on getSetting and listSettings): the organization still sees what it set
    expect((await t.http.get(url('branding')).set(org.users.viewer.auth).expect(200)).body.value).toEqual(current);
    // leaving fields out clears them, as deleting does: open; setting one of them again is a change
    await put({ displayName: current.displayName }).expect(200);
    expect((await put({ displayName: current.displayName, logoUrl: current.logoUrl }).expect(402)).body.error).toMatchObject(notInPlan('professional'));
    expect((await stored()).settings.branding).toEqual({ displayName: current.displayName });
    // the branding can be removed without the feature
    const cleared = await stored();
    await t.http.delete(url('branding')).set(org.users.admin.auth).expect(204);
    expect(await stored()).toEqual({
      settings: { timezone: 'Europe/Berlin', locale: 'fr-FR' },
      audited: [...cleared.audited, 'setting.deleted org/branding'],
    });
  });

  it('sent back as it was while a change of it is in flight: compared with what that change commits, so refused (402)', async () => {
    const other = await orgWithRoles(t, 'Brand Race Co');
    await onPlan(t, other.orgId, 'enterprise');
    const otherUrl = `/v1/orgs/${other.orgId}/settings/org`;
    await t.http.put(`${otherUrl}/branding`).set(other.users.admin.auth).send({ value: { displayName: 'Old' } }).expect(200);
    await onPlan(t, other.orgId, 'professional');
    // a change made while the plan still had the feature, not yet committed (its row locked)
    const changer = new pg.Client({ connectionString: t.db.url });
    await changer.connect();
    try {
      await changer.query('BEGIN');
      await changer.query(`UPDATE core.settings SET value = '{"displayName": "New"}' WHERE org_id = $1 AND scope = 'org' AND key = 'branding'`, [other.orgId]);
      const { rows: [{ pid }] } = await changer.query('SELECT pg_backend_pid() AS pid');
      const sendingBack = t.http.patch(otherUrl).set(other.users.admin.auth).send({ values: { locale: 'fr-FR', branding: { displayName: 'Old' } } }).then((r) => r);
      await until('the PATCH waits for the change in flight', async () => (await t.db.admin.query(
        `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND $1::int = ANY(pg_blocking_pids(pid))`, [pid])).rows[0].n > 0);
      await changer.query('COMMIT');
      const res = await sendingBack;
      expect([res.status, res.body.error]).toEqual([402, expect.objectContaining(notInPlan('professional'))]);
    } finally {
      await changer.end();
    }
    const { rows } = await t.db.admin.query(`SELECT key, value FROM core.settings WHERE org_id = $1 ORDER BY key`, [other.orgId]);
    expect(rows).toEqual([{ key: 'branding', value: { displayName: 'New' } }]);
  });
});
