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
      expect(since.description).toMatch(/^Messages created at or after this time\. An RFC 3339 date-time: .* t and z are taken for T and Z, and a space for the T\. A date-time without an offset, a day alone and an offset without its colon \(\+0100\) are refused\.$/);
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
  });
});
