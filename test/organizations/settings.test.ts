import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { onEnterprisePlan, orgWithRoles, type OrgWithRoles } from '../support/factories.js';
import { checkSetting } from '../../src/modules/organizations/settings.registry.js';

describe('settings and feature flags', () => {
  let t: TestApp;
  let a: OrgWithRoles;
  let b: typeof a;

  beforeAll(async () => {
    t = await createTestApp();
    a = await orgWithRoles(t, 'A');
    // branding is white-label (enterprise and custom); test/organizations/white-label.test.ts has the other plans
    await onEnterprisePlan(t, a.orgId);
    b = await orgWithRoles(t, 'B');
  });
  afterAll(() => t.close());

  const setting = (org: string, scope: string, key = '') => `/v1/orgs/${org}/settings/${scope}${key ? `/${key}` : ''}`;

  it('stores the known organization settings in their shapes, normalized; members read; audited', async () => {
    const put = (key: string, value: unknown) => t.http.put(setting(a.orgId, 'org', key)).set(a.users.admin.auth).send({ value });
    expect((await put('locale', 'de-de').expect(200)).body).toMatchObject({ scope: 'org', key: 'locale', value: 'de-DE' });
    await put('timezone', 'Europe/Berlin').expect(200);
    await put('base_currency', 'EUR').expect(200);
    await put('fiscal_year_start_month', 4).expect(200);
    await put('branding', { displayName: 'Acme', primaryColor: '#A0B1C2', logoUrl: 'https://acme.example/logo.png' }).expect(200);
    const list = await t.http.get(setting(a.orgId, 'org')).set(a.users.viewer.auth).expect(200);
    expect(Object.fromEntries(list.body.map((s: any) => [s.key, s.value]))).toEqual({
      base_currency: 'EUR', branding: { displayName: 'Acme', primaryColor: '#a0b1c2', logoUrl: 'https://acme.example/logo.png' },
      fiscal_year_start_month: 4, locale: 'de-DE', timezone: 'Europe/Berlin',
    });
    const one = await t.http.get(setting(a.orgId, 'org', 'timezone')).set(a.users.member.auth).expect(200);
    expect(one.body.value).toBe('Europe/Berlin');
    await put('timezone', 'America/New_York').expect(200);
    const audit = (await t.db.admin.query(`SELECT before->'value' AS before, after->'value' AS after FROM core.audit_logs WHERE org_id = $1 AND entity_id = 'org/timezone' ORDER BY id`, [a.orgId])).rows;
    expect(audit).toEqual([{ before: null, after: 'Europe/Berlin' }, { before: 'Europe/Berlin', after: 'America/New_York' }]);
  });

  it.each([
    ['locale', 'en_US'], ['locale', 42], ['timezone', 'Mars/Olympus'], ['timezone', '+01:00'], ['base_currency', 'eur'],
    ['base_currency', 'XYZ'], ['fiscal_year_start_month', 13], ['fiscal_year_start_month', 1.5], ['fiscal_year_start_month', '4'],
    ['branding', { primaryColor: 'red' }], ['branding', { logoUrl: 'http://insecure.example/x.png' }], ['branding', { font: 'Comic Sans' }], ['branding', 'blue'],
  ])('rejects org setting %s = %j with 400 naming it', async (key, value) => {
    const res = await t.http.put(setting(a.orgId, 'org', key)).set(a.users.admin.auth).send({ value }).expect(400);
    expect(res.body.error.code).toBe('settings.invalid');
    expect(res.body.error.message).toContain(key);
  });

  it('rejects unknown organization keys, naming each, and writes nothing when one value is bad', async () => {
    const one = await t.http.put(setting(a.orgId, 'org', 'colour')).set(a.users.admin.auth).send({ value: 'red' }).expect(400);
    expect(one.body.error.message).toMatch(/unknown organization setting colour/);
    const many = await t.http.patch(setting(b.orgId, 'org')).set(b.users.admin.auth)
      .send({ values: { timezone: 'Europe/Paris', colour: 'red', size: 3 } }).expect(400);
    expect(many.body.error.details.map((d: any) => d.field)).toEqual(['colour', 'size']);
    expect((await t.db.admin.query('SELECT count(*)::int AS n FROM core.settings WHERE org_id = $1', [b.orgId])).rows[0].n).toBe(0);
    const ok = await t.http.patch(setting(b.orgId, 'org')).set(b.users.admin.auth).send({ values: { timezone: 'Europe/Paris', base_currency: 'CHF' } }).expect(200);
    expect(ok.body.map((s: any) => s.key).sort()).toEqual(['base_currency', 'timezone']);
    await t.http.put(setting(a.orgId, 'org', 'locale')).set(a.users.admin.auth).send({}).expect(400);
    await t.http.put(setting(a.orgId, 'org', 'locale')).set(a.users.admin.auth).send({ value: null }).expect(400);
  });

  it('knows only its own keys: constructor, __proto__, toString, hasOwnProperty are refused, nothing stored', async () => {
    const org = b.orgId;
    const count = async () => (await t.db.admin.query('SELECT count(*)::int AS n FROM core.settings WHERE org_id = $1 AND scope = $2', [org, 'org'])).rows[0].n;
    const before = await count();
    const put = (key: string, value: unknown) => t.http.put(setting(org, 'org', key)).set(b.users.admin.auth).send({ value });
    // Object.prototype's `constructor` was found as a setting: any value up to the body limit was stored unchecked
    for (const value of [{ ok: true, value: { anything: 'x'.repeat(50_000) } }, { ok: true }, 'plain']) {
      const res = await put('constructor', value).expect(400);
      expect(res.body.error).toMatchObject({ code: 'settings.invalid', details: [{ field: 'constructor', problems: [expect.stringMatching(/^unknown organization setting constructor \(known: locale, timezone/)] }] });
    }
    // in a batch the key reaches the service (the validation pipe keeps free-form JSON as sent) and is refused there: nothing stored
    await t.http.patch(setting(org, 'org')).set(b.users.admin.auth).send({ values: { constructor: { ok: true, value: 1 } } }).expect(400);
    // the other Object.prototype names are not valid keys at all
    for (const key of ['__proto__', 'toString', 'hasOwnProperty']) {
      const res = await put(key, { ok: true, value: 'x' }).expect(400);
      expect(res.body.error.code).toBe('settings.invalid_key');
      expect(res.body.error.message).toContain(key);
    }
    const proto = await t.http.put(setting(org, 'org', 'branding')).set(b.users.admin.auth).set('content-type', 'application/json')
      .send('{"value":{"displayName":"Acme","__proto__":{"x":1}}}');
    expect(proto.status).toBe(400);
    expect(proto.body.error.code).toBe('bad_request.json'); // the body parser refuses a __proto__ key
    expect(await count()).toBe(before);
    expect((await t.db.admin.query(`SELECT count(*)::int AS n FROM core.settings WHERE org_id = $1 AND key IN ('constructor', 'branding')`, [org])).rows[0].n).toBe(0);
  });

  it('checks setting keys and branding fields against the registries\' own entries only (not Object.prototype\'s)', () => {
    // the validation pipe keeps free-form keys named like Object.prototype's members (only __proto__ is refused): the registry decides
    for (const key of ['constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf']) {
      expect(checkSetting('org', key, { ok: true, value: { anything: 'x'.repeat(50_000) } })).toEqual({ ok: false, problem: `unknown organization setting ${key} (known: locale, timezone, base_currency, fiscal_year_start_month, branding)` });
    }
    for (const field of ['constructor', '__proto__', 'toString', 'hasOwnProperty']) {
      const value = JSON.parse(`{"displayName": "Acme", ${JSON.stringify(field)}: "x"}`);
      expect(checkSetting('org', 'branding', value)).toEqual({ ok: false, problem: `unknown field ${field} (known: displayName, primaryColor, logoUrl)` });
    }
    expect(checkSetting('org', 'branding', { displayName: 'Acme' })).toEqual({ ok: true, value: { displayName: 'Acme' } });
  });

  it('keeps app-level settings per app code: any JSON up to 16 KB, lowercase keys and scopes', async () => {
    const value = { columns: ['date', 'amount'], pageSize: 50, nested: { ok: true } };
    await t.http.put(setting(a.orgId, 'app_securevault', 'ui.table')).set(a.users.owner.auth).send({ value }).expect(200);
    const read = await t.http.get(setting(a.orgId, 'app_securevault', 'ui.table')).set(a.users.viewer.auth).expect(200);
    expect(read.body.value).toEqual(value);
    expect((await t.http.get(setting(a.orgId, 'app_securevault')).set(a.users.viewer.auth).expect(200)).body).toHaveLength(1);
    expect((await t.http.get(setting(a.orgId, 'other_app')).set(a.users.viewer.auth).expect(200)).body).toEqual([]);
    const big = await t.http.put(setting(a.orgId, 'app_securevault', 'blob')).set(a.users.owner.auth).send({ value: 'x'.repeat(17 * 1024) }).expect(400);
    expect(big.body.error.message).toMatch(/16384/);
    await t.http.put(setting(a.orgId, 'app_securevault', 'CamelKey')).set(a.users.owner.auth).send({ value: 1 }).expect(400);
    await t.http.put(setting(a.orgId, 'App-Vault', 'key')).set(a.users.owner.auth).send({ value: 1 }).expect(400);
    await t.http.delete(setting(a.orgId, 'app_securevault', 'ui.table')).set(a.users.owner.auth).expect(204);
    await t.http.get(setting(a.orgId, 'app_securevault', 'ui.table')).set(a.users.owner.auth).expect(404);
    await t.http.delete(setting(a.orgId, 'app_securevault', 'ui.table')).set(a.users.owner.auth).expect(404);
  });

  it('refuses a null value in a batch (400 settings.invalid naming the key), writing none of the batch and auditing nothing', async () => {
    const res = await t.http.patch(setting(a.orgId, 'myapp')).set(a.users.admin.auth).send({ values: { fine: 1, k: null } }).expect(400);
    expect(res.body.error).toEqual({
      code: 'settings.invalid', message: 'k: must not be null: delete the setting to remove it',
      details: [{ field: 'k', problems: ['must not be null: delete the setting to remove it'] }],
    });
    const org = await t.http.patch(setting(a.orgId, 'org')).set(a.users.admin.auth).send({ values: { locale: null } }).expect(400);
    expect(org.body.error).toMatchObject({ code: 'settings.invalid', details: [{ field: 'locale', problems: [expect.any(String)] }] });
    expect((await t.db.admin.query(`SELECT key FROM core.settings WHERE org_id = $1 AND scope = 'myapp'`, [a.orgId])).rows).toEqual([]);
    expect((await t.db.admin.query(`SELECT count(*)::int AS n FROM core.audit_logs WHERE org_id = $1 AND entity_id LIKE 'myapp/%'`, [a.orgId])).rows[0].n).toBe(0);
  });

  it('sets, lists and deletes feature flags (admins), audited', async () => {
    const flags = `/v1/orgs/${a.orgId}/feature-flags`;
    expect((await t.http.put(`${flags}/ledger.multi_currency`).set(a.users.admin.auth).send({ enabled: true }).expect(200)).body)
      .toMatchObject({ flag: 'ledger.multi_currency', enabled: true });
    await t.http.put(`${flags}/ledger.multi_currency`).set(a.users.admin.auth).send({ enabled: false }).expect(200);
    const list = await t.http.get(flags).set(a.users.viewer.auth).expect(200);
    expect(list.body).toEqual([expect.objectContaining({ flag: 'ledger.multi_currency', enabled: false })]);
    await t.http.put(`${flags}/ledger.multi_currency`).set(a.users.admin.auth).send({ enabled: 'yes' }).expect(400);
    await t.http.put(`${flags}/Bad-Flag`).set(a.users.admin.auth).send({ enabled: true }).expect(400);
    await t.http.delete(`${flags}/ledger.multi_currency`).set(a.users.admin.auth).expect(204);
    await t.http.delete(`${flags}/ledger.multi_currency`).set(a.users.admin.auth).expect(404);
    const { rows } = await t.db.admin.query(`SELECT action FROM core.audit_logs WHERE org_id = $1 AND entity_type = 'feature_flag' ORDER BY id`, [a.orgId]);
    expect(rows.map((r) => r.action)).toEqual(['feature_flag.set', 'feature_flag.set', 'feature_flag.deleted']);
  });

  it('forbids non-admins to write settings or flags (403)', async () => {
    for (const who of [a.users.accountant, a.users.member, a.users.viewer]) {
      await t.http.put(setting(a.orgId, 'org', 'locale')).set(who.auth).send({ value: 'fr-FR' }).expect(403);
      await t.http.patch(setting(a.orgId, 'org')).set(who.auth).send({ values: { locale: 'fr-FR' } }).expect(403);
      await t.http.delete(setting(a.orgId, 'org', 'locale')).set(who.auth).expect(403);
      await t.http.put(`/v1/orgs/${a.orgId}/feature-flags/x`).set(who.auth).send({ enabled: true }).expect(403);
      await t.http.delete(`/v1/orgs/${a.orgId}/feature-flags/x`).set(who.auth).expect(403);
    }
    expect((await t.db.admin.query(`SELECT value FROM core.settings WHERE org_id = $1 AND key = 'locale'`, [a.orgId])).rows[0].value).toBe('de-DE');
  });

  it('hides another organization: a member of A gets 404 on B for read, update and delete; anonymous 401', async () => {
    await t.http.put(setting(b.orgId, 'org', 'locale')).set(b.users.owner.auth).send({ value: 'it-IT' }).expect(200);
    await t.http.put(`/v1/orgs/${b.orgId}/feature-flags/beta`).set(b.users.owner.auth).send({ enabled: true }).expect(200);
    await t.http.get(setting(b.orgId, 'org')).set(a.users.owner.auth).expect(404);
    await t.http.get(setting(b.orgId, 'org', 'locale')).set(a.users.owner.auth).expect(404);
    await t.http.put(setting(b.orgId, 'org', 'locale')).set(a.users.owner.auth).send({ value: 'en-GB' }).expect(404);
    await t.http.delete(setting(b.orgId, 'org', 'locale')).set(a.users.owner.auth).expect(404);
    await t.http.get(`/v1/orgs/${b.orgId}/feature-flags`).set(a.users.owner.auth).expect(404);
    await t.http.put(`/v1/orgs/${b.orgId}/feature-flags/beta`).set(a.users.owner.auth).send({ enabled: false }).expect(404);
    await t.http.delete(`/v1/orgs/${b.orgId}/feature-flags/beta`).set(a.users.owner.auth).expect(404);
    await t.http.get(setting(b.orgId, 'org')).expect(401);
    await t.http.get(`/v1/orgs/${b.orgId}/feature-flags`).expect(401);
    expect((await t.db.admin.query(`SELECT value FROM core.settings WHERE org_id = $1 AND key = 'locale'`, [b.orgId])).rows[0].value).toBe('it-IT');
    expect((await t.db.admin.query(`SELECT enabled FROM core.feature_flags WHERE org_id = $1`, [b.orgId])).rows).toEqual([{ enabled: true }]);
  });
});
