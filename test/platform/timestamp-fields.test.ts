import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { isTimestamp, normalizeTimestamp } from '../../src/platform/http/calendar-date.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, onEnterprisePlan, registerUser, type TestUser } from '../support/factories.js';

// ISO 8601 forms IsDateString passed that Date.parse cannot read: new Date() of them is an Invalid Date, which a
// service compared (NaN: never in the past) and wrote ("0NaN-NaN-...", a 422 from PostgreSQL's cast)
const UNREADABLE = ['2030-12-31T10Z', '2030-12-31T1000Z', '2030-12-31T10:00:00,5Z', '2030-12-31T10:00:00-00'];
// without an offset JavaScript reads the process's time zone, PostgreSQL the session's: no instant the API can take
const NO_OFFSET = ['2030-12-31T10:00:00', '2030-12-31', '2030-12-31 10:00:00', '2030-12-31t10:00:00'];
// ISO 8601's compact offset, which RFC 3339 (OpenAPI's date-time) does not take
const COMPACT_OFFSET = ['2030-12-31T12:00:00+0200', '2030-12-31T12:00+0200'];
// RFC 3339's other spellings of 2030-12-31T10:00:00Z: t and z in lower case, a space for the T (its section 5.6 note)
const RFC3339_SPELLINGS = ['2030-12-31t10:00:00z', '2030-12-31 10:00:00Z', '2030-12-31 12:00:00.000+02:00', '2030-12-31t10:00Z', '2030-12-31 10:00z'];
// the same instant, 2030-12-31T10:00:00Z, in the forms the API takes (to the minute, Z, an offset, a fraction)
const READABLE = ['2030-12-31T10:00Z', '2030-12-31T10:00:00Z', '2030-12-31T12:00:00+02:00', '2030-12-31T05:30:00.000000-04:30', '2030-12-31T10:00:00.000000000Z'];
const FORMAT = 'must be a date-time YYYY-MM-DDTHH:MM[:SS[.fraction]] followed by Z or an offset ±HH:MM';
// the pattern of the OpenAPI document and the server's check over the edges of every field: they agree, but for the two
// rules the pattern cannot state and the description names (a day its month lacks; the instant, in UTC, outside years
// 1 to 9999). The old pattern took a month 13, a day 45, an offset +99:59 and year 0000, which the server refused.
const BOTH_TAKE = ['0001-01-01T00:00:00Z', '9999-12-31T23:59:59.999Z', '9999-12-31T23:59:59.999999999Z', '2026-01-01T00:00Z', '2026-12-31t23:59:59z',
  '2026-06-15 12:30:45.5+15:59', '2026-06-15T12:30-15:59', '2028-02-29T00:00:00Z', '2000-02-29T00:00:00Z', '2026-01-31T00:00Z', '2026-10-10T09:09:09+09:09',
  '0001-01-01T00:00:00-01:00', '9999-12-31T23:59:59+01:00', '1999-12-31T23:59:59.1Z'];
const BOTH_REFUSE = ['0000-01-01T00:00:00Z', '2026-13-01T00:00Z', '2026-00-10T00:00Z', '2026-13-45T00:00Z', '2026-01-00T00:00Z', '2026-01-32T00:00Z',
  '2026-01-01T24:00Z', '2026-01-01T23:60Z', '2026-01-01T23:59:60Z', '2016-12-31T23:59:60Z', '2026-01-01T00:00:00+16:00', '2026-01-01T00:00:00+99:59',
  '2026-01-01T00:00:00-20:00', '2026-01-01T00:00:00+15:60', '2026-01-01T00:00:00-00', '2026-01-01T00:00:00+0100', '2026-01-01T00:00:00.Z',
  '2026-01-01T00:00:00.1234567890Z', '2026-01-01T00:00:00Z\n', '10000-01-01T00:00:00Z', '+02026-01-01T00:00Z', '2026-1-01T00:00Z', '2026-01-01T00Z',
  '2026-01-01T00:00.5Z', '2026-01-01T00:00:00', '2026-01-01', '2026-01-01TT00:00Z', '２０２６-01-01T00:00Z'];
const ONLY_THE_SERVER_REFUSES = ['2026-02-30T00:00:00Z', '2026-02-29T00:00Z', '1900-02-29T00:00Z', '2026-04-31T00:00Z', '9999-12-31T23:59:59-00:01',
  '9999-12-31T23:59:59-15:59', '0001-01-01T00:00:00+00:01', '0001-01-01T00:00:00+01:00'];

describe('date-time fields (the Timestamp decorator): only what JavaScript and PostgreSQL read as the same instant', () => {
  it('isTimestamp refuses what Date.parse cannot read and what has no offset, takes the forms both read', () => {
    expect(UNREADABLE.map((v) => Number.isNaN(Date.parse(v)))).toEqual(UNREADABLE.map(() => true));
    expect([...UNREADABLE, ...NO_OFFSET, ...COMPACT_OFFSET].filter(isTimestamp)).toEqual([]);
    expect(['2026-02-30T00:00:00Z', '0000-01-01T00:00:00Z', '2026-01-01T00:00:00+16:00', '2026-01-01T24:00:00Z', '2026-01-01T10:00:60Z'].filter(isTimestamp)).toEqual([]);
    expect(READABLE.filter(isTimestamp)).toEqual(READABLE);
    expect(READABLE.map((v) => new Date(v).toISOString())).toEqual(READABLE.map(() => '2030-12-31T10:00:00.000Z'));
  });

  it('takes RFC 3339\'s t, z and space, handed on with T and Z (the form Date.parse and PostgreSQL both read)', () => {
    expect(RFC3339_SPELLINGS.filter(isTimestamp)).toEqual(RFC3339_SPELLINGS);
    expect(RFC3339_SPELLINGS.map(normalizeTimestamp)).toEqual(['2030-12-31T10:00:00Z', '2030-12-31T10:00:00Z', '2030-12-31T12:00:00.000+02:00', '2030-12-31T10:00Z', '2030-12-31T10:00Z']);
    expect(RFC3339_SPELLINGS.map((v) => new Date(normalizeTimestamp(v) as string).toISOString())).toEqual(RFC3339_SPELLINGS.map(() => '2030-12-31T10:00:00.000Z'));
    // anything else is left as it came, for the refusal to name
    expect([...NO_OFFSET, ...COMPACT_OFFSET, 42, null].map(normalizeTimestamp)).toEqual([...NO_OFFSET, ...COMPACT_OFFSET, 42, null]);
  });

  it('refuses an instant that is past year 9999 or before year 1 in UTC once its offset is applied (9999-12-31T23:59:59-15:59 was taken)', () => {
    expect(['9999-12-31T23:59:59-15:59', '9999-12-31T23:59:59.999-00:01', '0001-01-01T00:00:00+00:01', '0001-01-01T15:58+15:59'].filter(isTimestamp)).toEqual([]);
    const edges = ['9999-12-31T23:59:59.999Z', '9999-12-31T23:59:59.9999999Z', '0001-01-01T00:00:00Z', '0001-01-01T00:00:00-15:59', '9999-12-31T23:59:59.999+15:59'];
    expect(edges.filter(isTimestamp)).toEqual(edges);
    expect(edges.map((v) => new Date(normalizeTimestamp(v) as string).toISOString()))
      .toEqual(['9999-12-31T23:59:59.999Z', '9999-12-31T23:59:59.999Z', '0001-01-01T00:00:00.000Z', '0001-01-01T15:59:00.000Z', '9999-12-31T08:00:59.999Z']);
  });

  it('hands the fraction on cut to milliseconds: what Date.parse reads of it (PostgreSQL rounded 23:59:59.9999995 up to the next year)', () => {
    const cut = ['2030-12-31T23:59:59.9999995Z', '2030-12-31t23:59:59.123456789+01:00', '2030-12-31 23:59:59.1239z', '2030-12-31T23:59:59.12Z', '2030-12-31T23:59Z'];
    expect(cut.map(normalizeTimestamp))
      .toEqual(['2030-12-31T23:59:59.999Z', '2030-12-31T23:59:59.123+01:00', '2030-12-31T23:59:59.123Z', '2030-12-31T23:59:59.12Z', '2030-12-31T23:59Z']);
    expect(cut.map((v) => new Date(normalizeTimestamp(v) as string).toISOString())).toEqual(cut.map((v) => new Date(v.replace(/[t ]/, 'T').toUpperCase()).toISOString()));
  });

  describe('over HTTP', () => {
    let t: TestApp;
    let owner: TestUser;
    let orgId: string;

    beforeAll(async () => {
      t = await createTestApp();
      owner = await registerUser(t, 'stamps');
      orgId = await createOrg(t, owner, 'Timestamps Ltd');
      await onEnterprisePlan(t, orgId);
    });
    afterAll(() => t?.close());

    const keyRows = async () => (await t.db.admin.query(`SELECT name, to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS') AS expires
      FROM core.api_keys WHERE org_id = $1 ORDER BY created_at, name`, [orgId])).rows;

    it('POST api-keys refuses expiresAt that Date.parse cannot read, or without an offset: a 400 naming expiresAt and the format, no key written', async () => {
      for (const expiresAt of [...UNREADABLE, ...NO_OFFSET, ...COMPACT_OFFSET]) {
        const res = await t.http.post(`/v1/orgs/${orgId}/api-keys`).set(owner.auth).send({ name: 'x', scopes: ['org:read'], expiresAt });
        expect({ expiresAt, status: res.status, code: res.body.error?.code }).toEqual({ expiresAt, status: 400, code: 'validation_failed' });
        expect(res.body.error.details).toEqual([{ field: 'expiresAt', problems: [expect.stringContaining(`expiresAt ${FORMAT}`)] }]);
      }
      expect(await keyRows()).toEqual([]);
    });

    it('POST api-keys takes expiresAt with an offset, Z or a fraction, stored as the instant written', async () => {
      for (const [i, expiresAt] of READABLE.entries()) {
        const res = await t.http.post(`/v1/orgs/${orgId}/api-keys`).set(owner.auth).send({ name: `k${i}`, scopes: ['org:read'], expiresAt }).expect(201);
        expect(res.body).toMatchObject({ name: `k${i}`, expiresAt: '2030-12-31T10:00:00.000Z' });
      }
      const rows = await keyRows();
      expect(rows.sort((a, b) => a.name.localeCompare(b.name))).toEqual(READABLE.map((_, i) => ({ name: `k${i}`, expires: '2030-12-31T10:00:00' })));
    });

    it('the OpenAPI document says what a date-time field takes: the pattern, and a sentence after its own description', async () => {
      const doc = (await t.http.get('/docs-json').expect(200)).body;
      const since = doc.components.schemas.ReplayFailedDto.properties.since;
      expect(since).toMatchObject({ type: 'string', format: 'date-time' });
      expect(since.description).toMatch(new RegExp('^Messages created at or after this time\\. A date-time: YYYY-MM-DD, T, HH:MM, optionally :SS and then optionally a fraction of '
        + '1 to 9 digits, then Z or an offset ±HH:MM from -15:59 to \\+15:59, .* t and z are taken for T and Z, and a space for the T\\. '
        + 'That is RFC 3339\'s date-time with the seconds optional, .* fraction digits past the third are dropped .* a day its month does not have '
        + '\\(2026-02-30\\), and an instant outside 0001-01-01T00:00:00Z\\.\\.9999-12-31T23:59:59\\.999Z once its offset is applied .* '
        + 'A date-time without an offset, a day alone and an offset without its colon \\(\\+0100\\) are refused\\.$'));
      const pattern = new RegExp(since.pattern);
      expect([...READABLE, ...RFC3339_SPELLINGS].filter((v) => pattern.test(v))).toEqual([...READABLE, ...RFC3339_SPELLINGS]);
      expect([...UNREADABLE, ...NO_OFFSET, ...COMPACT_OFFSET].filter((v) => pattern.test(v))).toEqual([]);
      const from = doc.paths['/v1/orgs/{orgId}/audit-logs'].get.parameters.find((p: { name: string }) => p.name === 'from');
      expect(from.schema).toMatchObject({ format: 'date-time', pattern: since.pattern });
    });

    it('GET audit-logs refuses such a from with a 400 naming from; takes the readable forms', async () => {
      for (const from of [...UNREADABLE, ...NO_OFFSET]) {
        const res = await t.http.get(`/v1/orgs/${orgId}/audit-logs`).query({ from }).set(owner.auth);
        expect({ from, status: res.status, code: res.body.error?.code }).toEqual({ from, status: 400, code: 'validation_failed' });
        expect(res.body.error.details).toEqual([{ field: 'from', problems: [expect.stringContaining(`from ${FORMAT}`)] }]);
      }
      // the keys made above were audited before 2030: none is at or after any of these
      for (const from of READABLE) expect((await t.http.get(`/v1/orgs/${orgId}/audit-logs`).query({ from }).set(owner.auth).expect(200)).body.items).toEqual([]);
      const before = await t.http.get(`/v1/orgs/${orgId}/audit-logs`).query({ from: '2000-01-01T00:00:00+01:00', action: 'api_key.created' }).set(owner.auth).expect(200);
      expect(before.body.items.length).toBe(READABLE.length);
    });

    it('POST api-keys takes RFC 3339\'s t, z and space too: the same instant stored and answered, the audit row\'s after as answered', async () => {
      for (const [i, expiresAt] of RFC3339_SPELLINGS.entries()) {
        const res = await t.http.post(`/v1/orgs/${orgId}/api-keys`).set(owner.auth).send({ name: `rfc${i}`, scopes: ['org:read'], expiresAt }).expect(201);
        expect(res.body).toMatchObject({ name: `rfc${i}`, expiresAt: '2030-12-31T10:00:00.000Z' });
      }
      const rows = (await keyRows()).filter((r) => r.name.startsWith('rfc'));
      expect(rows.sort((a, b) => a.name.localeCompare(b.name))).toEqual(RFC3339_SPELLINGS.map((_, i) => ({ name: `rfc${i}`, expires: '2030-12-31T10:00:00' })));
      const audited = (await t.db.admin.query(`SELECT DISTINCT after->>'expiresAt' AS "expiresAt" FROM core.audit_logs
        WHERE org_id = $1 AND action = 'api_key.created' AND after->>'name' LIKE 'rfc%'`, [orgId])).rows;
      expect(audited).toEqual([{ expiresAt: '2030-12-31T10:00:00.000Z' }]);
      // a query's from (audit-logs) in these spellings reads the same instant: nothing at or after it, everything before
      for (const from of ['2030-12-31t10:00:00z', '2030-12-31 10:00:00Z']) {
        expect((await t.http.get(`/v1/orgs/${orgId}/audit-logs`).query({ from }).set(owner.auth).expect(200)).body.items).toEqual([]);
      }
      const to = await t.http.get(`/v1/orgs/${orgId}/audit-logs`).query({ to: '2030-12-31 10:00:00z', action: 'api_key.created' }).set(owner.auth).expect(200);
      expect(to.body.items.length).toBe(READABLE.length + RFC3339_SPELLINGS.length);
    });

    // last: the rows these write are after 2030-12-31T10:00Z, which the tests above count from

    it('the OpenAPI pattern takes what the server takes, but for a day its month lacks and an instant outside years 1 to 9999 in UTC', async () => {
      const doc = (await t.http.get('/docs-json').expect(200)).body;
      const pattern = new RegExp(doc.components.schemas.CreateApiKeyDto.properties.expiresAt.pattern);
      const answers: { value: string; pattern: boolean; server: number; code?: string }[] = [];
      for (const value of [...BOTH_TAKE, ...BOTH_REFUSE, ...ONLY_THE_SERVER_REFUSES]) {
        const res = await t.http.get(`/v1/orgs/${orgId}/audit-logs`).query({ to: value, limit: 1 }).set(owner.auth);
        answers.push({ value, pattern: pattern.test(value), server: res.status, ...(res.status === 200 ? {} : { code: res.body.error?.code }) });
      }
      const expected = (value: string, pattern: boolean, server: boolean) => ({ value, pattern, server: server ? 200 : 400, ...(server ? {} : { code: 'validation_failed' }) });
      expect(answers).toEqual([...BOTH_TAKE.map((v) => expected(v, true, true)), ...BOTH_REFUSE.map((v) => expected(v, false, false)),
        ...ONLY_THE_SERVER_REFUSES.map((v) => expected(v, true, false))]);
      expect(BOTH_TAKE.filter(isTimestamp)).toEqual(BOTH_TAKE);
      expect([...BOTH_REFUSE, ...ONLY_THE_SERVER_REFUSES].filter(isTimestamp)).toEqual([]);
    });

    it('POST api-keys refuses an expiresAt past 9999-12-31 in UTC (it was stored and answered as +010000-01-01T15:58:59.000Z): a 400 naming expiresAt, no key, nothing audited', async () => {
      const refusals = { '9999-12-31T23:59:59-15:59': '9999-12-31T23:59:59-15:59 is +010000-01-01T15:58:59.000Z in UTC',
        '9999-12-31t23:30-00:31': '9999-12-31T23:30-00:31 is +010000-01-01T00:01:00.000Z in UTC' };
      for (const [expiresAt, why] of Object.entries(refusals)) {
        const res = await t.http.post(`/v1/orgs/${orgId}/api-keys`).set(owner.auth).send({ name: 'far', scopes: ['org:read'], expiresAt });
        expect({ status: res.status, code: res.body.error?.code }).toEqual({ status: 400, code: 'validation_failed' });
        expect(res.body.error.details).toEqual([{ field: 'expiresAt',
          problems: [`expiresAt must be an instant on a day of the calendar, from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999Z: ${why}`] }]);
      }
      // the last instant the API takes, a fraction past milliseconds cut: stored and answered as the same instant
      const last = await t.http.post(`/v1/orgs/${orgId}/api-keys`).set(owner.auth).send({ name: 'last', scopes: ['org:read'], expiresAt: '9999-12-31T23:59:59.9999999Z' }).expect(201);
      expect(last.body.expiresAt).toBe('9999-12-31T23:59:59.999Z');
      const rows = (await t.db.admin.query(`SELECT name, to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US') AS expires
        FROM core.api_keys WHERE org_id = $1 AND name IN ('far', 'last')`, [orgId])).rows;
      expect(rows).toEqual([{ name: 'last', expires: '9999-12-31T23:59:59.999000' }]);
      const audited = (await t.db.admin.query(`SELECT after->>'name' AS name, after->>'expiresAt' AS "expiresAt" FROM core.audit_logs
        WHERE org_id = $1 AND action = 'api_key.created' AND after->>'name' IN ('far', 'last')`, [orgId])).rows;
      expect(audited).toEqual([{ name: 'last', expiresAt: '9999-12-31T23:59:59.999Z' }]);
    });

    it('GET audit-logs reads a fraction past milliseconds as JavaScript does (PostgreSQL read 23:59:59.9999995 as the next year)', async () => {
      await t.db.admin.query(`INSERT INTO core.audit_logs (org_id, occurred_at, actor_id, principal_type, action, entity_type, entity_id)
        VALUES ($1, '2030-12-31T23:59:59.9995Z', 'seed', 'system', 'stamp.edge', 'seed', 'before'), ($1, '2031-01-01T00:00:00Z', 'seed', 'system', 'stamp.edge', 'seed', 'after')`, [orgId]);
      const list = async (q: Record<string, string>) => ((await t.http.get(`/v1/orgs/${orgId}/audit-logs`).query({ ...q, action: 'stamp.edge' }).set(owner.auth).expect(200))
        .body.items as { entityId: string }[]).map((r) => r.entityId);
      // from 23:59:59.999 (as new Date reads it) takes both rows; read as 2031-01-01 it took the second alone
      expect(await list({ from: '2030-12-31T23:59:59.9999995Z' })).toEqual(['after', 'before']);
      expect(await list({ to: '2030-12-31T23:59:59.9999995Z' })).toEqual([]);
      expect(await list({ from: '2030-12-31T23:59:59.9999995Z', to: '2031-01-01T00:00:00.0000001Z' })).toEqual(['before']);
      expect(new Date('2030-12-31T23:59:59.9999995Z').toISOString()).toBe('2030-12-31T23:59:59.999Z');
    });
  });
});
