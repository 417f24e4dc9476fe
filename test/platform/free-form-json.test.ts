import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Test } from 'supertest';
import { plainToInstance } from 'class-transformer';
import type { ValidatorOptions } from 'class-validator';
import { passesFastCheck, validationPipe } from '../../src/platform/http/validation.js';
import { AnalyticsBatchDto } from '../../src/modules/analytics/analytics.dto.js';
import { SettingValueDto, SettingValuesDto } from '../../src/modules/organizations/setting.dto.js';
import { SetIntegrationSecretDto } from '../../src/modules/integrations/integration.dto.js';
import { SECRET_BOX, type SecretBox } from '../../src/modules/integrations/secret-box.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, onEnterprisePlan, registerUser, type TestUser } from '../support/factories.js';
import { testKeys } from '../integrations/keys.js';

// Free-form JSON (analytics properties, setting values, integration credentials) lost every key named like a member of
// Object.prototype on its way through the validation pipe (class-transformer skips them, Nest deleted `constructor` and
// `prototype`): `{"properties":{"constructor":"x","toString":"y"}}` was stored as `{}` with a 2xx. Such keys are now
// kept exactly, nested and in arrays too; `__proto__` is refused with a 400 naming where it is; on a DTO itself such a
// key is refused as any unknown property is.

/** Object.prototype's own names (constructor, toString, valueOf, hasOwnProperty, __defineGetter__...), but __proto__, and `prototype`. */
const MEMBER_KEYS = [...Object.getOwnPropertyNames(Object.prototype).filter((k) => k !== '__proto__'), 'prototype'];
/** An object with every such key, one nested under `a`, and an array of such objects under `list`. */
const tricky = (tag: string): Record<string, unknown> => ({
  ...Object.fromEntries(MEMBER_KEYS.map((k) => [k, `${tag}:${k}`])),
  a: { constructor: 1, toString: { valueOf: [2] } },
  list: [{ hasOwnProperty: 3, prototype: { constructor: { name: 'x' } } }, { isPrototypeOf: null, toLocaleString: true }],
});

// as the pipe passes them (Nest's ValidationPipe sets forbidUnknownValues: false)
const OPTIONS: ValidatorOptions = { forbidUnknownValues: false, whitelist: true, forbidNonWhitelisted: true, validationError: { target: false } };

describe('free-form JSON keeps keys named like Object.prototype members', () => {
  let t: TestApp;
  let owner: TestUser;
  let orgId: string;

  beforeAll(async () => {
    t = await createTestApp({ SECRETS_KEYS: testKeys('k1').env, SECRETS_ACTIVE_KEY: 'k1' });
    owner = await registerUser(t, 'freeform');
    orgId = await createOrg(t, owner, 'Free Form Ltd');
    await onEnterprisePlan(t, orgId);
  });
  afterAll(() => t.close());

  const json = (req: Test, body: unknown) => req.set(owner.auth).set('content-type', 'application/json').send(JSON.stringify(body));
  const storedEvents = async () => (await t.db.admin.query(
    `SELECT name, properties FROM core.analytics_events WHERE org_id = $1 AND source = 'client' ORDER BY name`, [orgId])).rows;
  const storedSettings = async (scope: string) => (await t.db.admin.query(
    'SELECT key, value FROM core.settings WHERE org_id = $1 AND scope = $2 ORDER BY key', [orgId, scope])).rows;

  it('takes the fast validation path for some of these DTOs and class-validator for another: the rule below holds on both', () => {
    expect(passesFastCheck(plainToInstance(SettingValuesDto, { values: { a: 1 } }), OPTIONS)).toBe(true);
    expect(passesFastCheck(plainToInstance(AnalyticsBatchDto, { events: [{ name: 'x' }] }), OPTIONS)).toBe(true);
    expect(passesFastCheck(plainToInstance(SetIntegrationSecretDto, { credentials: { a: 'b' } }), OPTIONS)).toBe(true);
    expect(passesFastCheck(plainToInstance(SettingValueDto, { value: { a: 1 } }), OPTIONS)).toBe(false); // @IsDefined: class-validator
  });

  it('stores analytics properties (an array of events) exactly as sent, nested keys and arrays of objects included', async () => {
    const properties = tricky('event');
    const res = await json(t.http.post(`/v1/orgs/${orgId}/analytics/events`), { events: [{ name: 'ff.one', properties }, { name: 'ff.two', properties: { constructor: 'x', toString: 'y' } }] });
    expect({ status: res.status, body: res.body }).toEqual({ status: 200, body: { accepted: 2, rejected: [] } });
    expect(await storedEvents()).toEqual([{ name: 'ff.one', properties }, { name: 'ff.two', properties: { constructor: 'x', toString: 'y' } }]);
  });

  it('refuses such a key on an event itself by index, as any unknown field, storing the others', async () => {
    const res = await json(t.http.post(`/v1/orgs/${orgId}/analytics/events`), { events: [{ name: 'ff.three', constructor: 'x' }, { name: 'ff.four', toString: 1 }, { name: 'ff.five' }] });
    expect({ status: res.status, body: res.body }).toEqual({ status: 200, body: { accepted: 1, rejected: [
      { index: 0, problems: ['property constructor should not exist'] }, { index: 1, problems: ['property toString should not exist'] },
    ] } });
    expect((await storedEvents()).map((e) => e.name)).toEqual(['ff.five', 'ff.one', 'ff.two']);
  });

  it('stores an app setting value (any JSON: object, array of objects) exactly as sent, through class-validator', async () => {
    const value = tricky('setting');
    const put = await json(t.http.put(`/v1/orgs/${orgId}/settings/app_ff/ui.state`), { value });
    expect({ status: put.status, body: put.body }).toMatchObject({ status: 200, body: { scope: 'app_ff', key: 'ui.state', value } });
    const list = [{ constructor: 1 }, [{ toString: 2 }], 'plain'];
    await json(t.http.put(`/v1/orgs/${orgId}/settings/app_ff/ui.list`), { value: list }).expect(200);
    expect(await storedSettings('app_ff')).toEqual([{ key: 'ui.list', value: list }, { key: 'ui.state', value }]);
    const read = await t.http.get(`/v1/orgs/${orgId}/settings/app_ff/ui.state`).set(owner.auth).expect(200);
    expect(read.body.value).toEqual(value);
  });

  it('stores a batch of settings whose keys and values are named like Object.prototype members, exactly', async () => {
    const values = { constructor: { toString: 'a' }, valueof: 1, nested: { a: { constructor: 1 }, list: [{ hasOwnProperty: 2 }] } };
    const res = await json(t.http.patch(`/v1/orgs/${orgId}/settings/app_batch`), { values });
    expect(res.status).toBe(200);
    expect(res.body.map((s: { key: string; value: unknown }) => [s.key, s.value])).toEqual(Object.entries(values));
    expect(await storedSettings('app_batch')).toEqual(Object.entries(values).sort(([a], [b]) => a.localeCompare(b)).map(([key, value]) => ({ key, value })));
  });

  it('seals integration credentials with every key, and names such a key where the type does not take it', async () => {
    const box = t.app.get<SecretBox>(SECRET_BOX);
    const sealed = async (id: string) => {
      const { rows: [row] } = await t.db.admin.query('SELECT secret, user_id FROM public.integration_secrets WHERE integration_id = $1', [id]);
      return row ? box.open(row.secret, { integrationId: id, userId: row.user_id }) : undefined;
    };
    const { body: google } = await json(t.http.post('/v1/me/integrations'), { integrationType: 'google' }).expect(201);
    const credentials = { token: 't-1', constructor: 'c-2', toString: 's-3', valueOf: 'v-4', hasOwnProperty: 'h-5' };
    const put = await json(t.http.put(`/v1/me/integrations/${google.id}/secret`), { credentials });
    expect({ status: put.status, body: put.body }).toMatchObject({ status: 200, body: { id: google.id, hasSecret: true } });
    expect(await sealed(google.id)).toEqual(credentials);

    const { body: icloud } = await json(t.http.post('/v1/me/integrations'), { integrationType: 'icloud' }).expect(201);
    const bad = await json(t.http.put(`/v1/me/integrations/${icloud.id}/secret`), { credentials: { username: 'u@example.com', password: 'pw-1234', toString: 'x' } });
    expect({ status: bad.status, error: bad.body.error }).toEqual({ status: 400, error: {
      code: 'integration.secret_invalid', message: 'credentials for icloud take only username, password; not toString' } });
    expect(await sealed(icloud.id)).toBeUndefined();
  });

  it('refuses such a key on a body DTO or in a query as any unknown field, naming it, writing nothing', async () => {
    for (const key of ['constructor', 'toString', 'hasOwnProperty']) {
      const res = await t.http.put(`/v1/orgs/${orgId}/settings/app_dto/k`).set(owner.auth).set('content-type', 'application/json').send(`{"value":1,"${key}":2}`);
      expect({ status: res.status, body: res.body }).toEqual({ status: 400, body: {
        error: { code: 'validation_failed', message: `property ${key} should not exist`, details: [{ field: key, problems: [`property ${key} should not exist`] }] },
        requestId: expect.any(String) } });
    }
    expect(await storedSettings('app_dto')).toEqual([]);
    const query = await t.http.get(`/v1/orgs/${orgId}/analytics/events/daily?from=2026-01-01&to=2026-01-02&valueOf=1`).set(owner.auth);
    expect({ status: query.status, details: query.body.error?.details }).toEqual({ status: 400, details: [{ field: 'valueOf', problems: ['property valueOf should not exist'] }] });
  });

  it('refuses __proto__ anywhere with a 400: the JSON body parser first, the pipe naming the place for any other input', async () => {
    const before = await storedEvents();
    const body = await t.http.post(`/v1/orgs/${orgId}/analytics/events`).set(owner.auth).set('content-type', 'application/json')
      .send('{"events":[{"name":"ff.proto","properties":{"a":{"__proto__":{"polluted":1}}}}]}');
    expect({ status: body.status, code: body.body.error.code }).toEqual({ status: 400, code: 'bad_request.json' });
    expect(await storedEvents()).toEqual(before);

    // a query string keeps __proto__ as an own key (Nest used to delete it silently)
    const query = await t.http.get(`/v1/orgs/${orgId}/analytics/events/daily?from=2026-01-01&to=2026-01-02&__proto__=1`).set(owner.auth);
    expect({ status: query.status, details: query.body.error?.details }).toEqual({ status: 400, details: [
      { field: '__proto__', problems: ['__proto__ is not accepted: no key may be named __proto__'] }] });

    // JSON.parse makes __proto__ an own property: nested, in an array, the pipe names it and changes no prototype
    const parsed = JSON.parse('{"events":[{"name":"ff.proto","properties":{"list":[{"__proto__":{"polluted":1}}]}}]}');
    const refused = await validationPipe().transform(parsed, { type: 'body', metatype: AnalyticsBatchDto }).then(() => undefined, (err: { getResponse(): unknown }) => err.getResponse());
    expect(refused).toEqual({ code: 'validation_failed', message: expect.any(String), details: [
      { field: 'events[0].properties.list[0].__proto__', problems: ['events[0].properties.list[0].__proto__ is not accepted: no key may be named __proto__'] }] });
    expect(({} as { polluted?: unknown }).polluted).toBeUndefined();
    expect(Object.getPrototypeOf(parsed.events[0].properties.list[0])).toBe(Object.prototype);
  });

  it('keeps what it keeps as own data properties of plain objects (the prototype untouched)', async () => {
    const dto = await validationPipe().transform(JSON.parse('{"events":[{"name":"x","properties":{"constructor":{"prototype":1},"a":[{"toString":2}]}}]}'),
      { type: 'body', metatype: AnalyticsBatchDto }) as AnalyticsBatchDto;
    const properties = (dto.events[0] as { properties: Record<string, any> }).properties;
    expect(Object.getPrototypeOf(properties)).toBe(Object.prototype);
    expect(Object.getOwnPropertyDescriptor(properties, 'constructor')).toEqual({ value: { prototype: 1 }, writable: true, enumerable: true, configurable: true });
    expect(Object.getPrototypeOf(properties.a[0])).toBe(Object.prototype);
    expect(JSON.stringify(dto)).toBe('{"events":[{"name":"x","properties":{"constructor":{"prototype":1},"a":[{"toString":2}]}}]}');
  });
});
