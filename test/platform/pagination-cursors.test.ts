import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { onEnterprisePlan, orgWithRoles, type OrgWithRoles } from '../support/factories.js';
import { encodeCursor } from '../../src/platform/http/pagination.js';
import { mapDatabaseError } from '../../src/platform/errors/database-errors.js';

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(() => t.close());

// A cursor is client input: a forged one answers 400 pagination.cursor before any SQL runs, never a 500 from a value
// the database refuses (a time zone offset above 15 hours is SQLSTATE 22009) nor a 422 from a value it casts oddly.
describe('forged pagination cursors', () => {
  let org: OrgWithRoles;

  beforeAll(async () => {
    org = await orgWithRoles(t, 'Cursor Co');
    await onEnterprisePlan(t, org.orgId);
  });

  const ID = '00000000-0000-4000-8000-000000000000';
  /** [timestamp, id] positions and { field: value } keysets a client could forge; Date.parse takes every timestamp here. */
  const forgedInstants = ['2020-01-01T00:00:00+23:00', '1', '2020-02-30T00:00:00Z', '2020-01-01T24:00:00Z', '0000-01-01T00:00:00Z'];

  const lists = () => [
    { url: `/v1/orgs/${org.orgId}/invitations`, who: org.users.admin, cursor: (ts: string) => encodeCursor([ts, ID]) },
    { url: `/v1/orgs/${org.orgId}/members`, who: org.users.viewer, cursor: (ts: string) => encodeCursor([ts, ID]) },
    { url: '/v1/me/notifications', who: org.users.viewer, cursor: (ts: string) => encodeCursor([ts, ID]) },
    { url: `/v1/orgs/${org.orgId}/billing/events`, who: org.users.admin, cursor: (ts: string) => encodeCursor({ r: ts, i: ID }) },
    { url: `/v1/orgs/${org.orgId}/payables/bills`, who: org.users.accountant, cursor: (ts: string) => encodeCursor({ c: ts, i: ID }) },
    { url: `/v1/orgs/${org.orgId}/knowledge/documents`, who: org.users.viewer, cursor: (ts: string) => encodeCursor({ c: ts, i: ID }) },
  ];

  it('a timestamp PostgreSQL would refuse, or Date.parse reads loosely, is 400 pagination.cursor on every list', async () => {
    for (const list of lists()) {
      for (const ts of forgedInstants) {
        const res = await t.http.get(`${list.url}?cursor=${list.cursor(ts)}`).set(list.who.auth);
        expect({ url: list.url, ts, status: res.status, body: res.body.error }).toEqual({ url: list.url, ts, status: 400, body: { code: 'pagination.cursor', message: 'cursor is not valid' } });
      }
    }
  });

  it('an invitations cursor whose id is 36 dashes, or a members cursor with a NUL, is 400 pagination.cursor', async () => {
    const dashes = await t.http.get(`/v1/orgs/${org.orgId}/invitations?cursor=${encodeCursor(['2020-01-01T00:00:00.000000Z', '-'.repeat(36)])}`).set(org.users.admin.auth).expect(400);
    expect(dashes.body.error.code).toBe('pagination.cursor');
    const nul = await t.http.get(`/v1/orgs/${org.orgId}/members?cursor=${encodeCursor(['2020-01-01T00:00:00.000000Z', 'a\u0000b'])}`).set(org.users.viewer.auth).expect(400);
    expect(nul.body.error.code).toBe('pagination.cursor');
  });

  it('the cursors the API writes still page (microseconds from the database, milliseconds from Date)', async () => {
    const first = await t.http.get(`/v1/orgs/${org.orgId}/members?limit=2`).set(org.users.viewer.auth).expect(200);
    expect(JSON.parse(Buffer.from(first.body.nextCursor, 'base64url').toString())[0]).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/);
    const rest = await t.http.get(`/v1/orgs/${org.orgId}/members?limit=10&cursor=${first.body.nextCursor}`).set(org.users.viewer.auth).expect(200);
    const ids = [...first.body.items, ...rest.body.items].map((m: { userId: string }) => m.userId).sort();
    const stored = await t.db.admin.query<{ user_id: string }>('SELECT user_id FROM core.memberships WHERE org_id = $1 ORDER BY user_id', [org.orgId]);
    expect(ids).toEqual(stored.rows.map((r) => r.user_id));
    // webhook message cursors are written with Date.toISOString(): the same shape, to the millisecond
    const millis = await t.http.get(`/v1/orgs/${org.orgId}/payables/bills?cursor=${encodeCursor({ c: new Date().toISOString(), i: ID })}`).set(org.users.accountant.auth).expect(200);
    expect(millis.body).toEqual({ items: [] });
  });
});

// The one mapping of database errors, fed errors PostgreSQL really raises.
describe('mapDatabaseError', () => {
  const raised = (sql: string) => t.db.admin.query(sql).then(() => undefined, (err: unknown) => err);
  const mapped = async (sql: string) => {
    const e = mapDatabaseError(await raised(sql));
    return e && { status: e.status, code: e.code, message: e.message };
  };

  it('any data exception (class 22) is 422 invalid, not a 500', async () => {
    expect(await mapped(`SELECT '2020-01-01T00:00:00+23:00'::timestamptz`)).toEqual({ status: 422, code: 'invalid', message: expect.stringMatching(/time zone displacement out of range/) });
    expect(await mapped(`SELECT 1 / 0`)).toEqual({ status: 422, code: 'invalid', message: 'division by zero' });
  });

  it('P0002 raised without a declared code in its HINT is 422 rejected with its message, not an undeclared "<message>.not_found"', async () => {
    expect(await mapped(`DO $$ BEGIN RAISE EXCEPTION 'journal entry 42 does not exist' USING ERRCODE = 'P0002'; END $$`))
      .toEqual({ status: 422, code: 'rejected', message: 'journal entry 42 does not exist' });
    expect(await mapped(`DO $$ BEGIN RAISE EXCEPTION 'journal entry 42 does not exist' USING ERRCODE = 'P0002', HINT = 'ledger.unknown_entry'; END $$`))
      .toMatchObject({ code: 'ledger.unknown_entry' });
  });
});
