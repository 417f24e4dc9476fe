import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { AuditService } from '../../src/modules/audit/audit.service.js';
import { DATA_EXPORT_JOB, DataExportService } from '../../src/modules/privacy/data-export.service.js';
import { pauseNext, releaseAll, waitsForLockOrAnswers } from '../auth/lock-order.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, registerUser, type TestUser } from '../support/factories.js';

const MIGRATION = new URL('../../prisma/migrations/20270210870100_data_export_one_at_a_time/migration.sql', import.meta.url);

/**
 * "One export at a time" was a check, then an insert: requests at the same time each found no unfinished export and
 * each queued one (4 at once: 4 exports, 4 jobs, 4 audit entries). A requester's unfinished exports of a kind and
 * organization are unique now (migration 20270210870100): the second insert waits for the first request's transaction,
 * then is refused as the sequential one is (409 privacy.export_in_progress). The interleaving is forced: the first
 * request pauses after its insert and job, before its audit entry, uncommitted.
 */
describe('data exports: one at a time, for requests at the same time too', () => {
  let t: TestApp;
  let owner: TestUser;
  let orgId: string;
  const dir = mkdtempSync(join(tmpdir(), 'omnizen-exports-'));
  type Response = { status: number; body: any };
  const send = (req: PromiseLike<Response>): Promise<Response> => Promise.resolve(req).then((r) => ({ status: r.status, body: r.body }));

  /** The requester's exports of `kind` in `org`, the jobs queued for them, their audit entries. */
  const stored = async (kind: string, org: string, userId: string) => (await t.db.admin.query(
    `SELECT (SELECT array_agg(status ORDER BY created_at) FROM core.data_exports WHERE kind = $1 AND org_id = $2 AND user_id = $3) AS exports,
            (SELECT count(*)::int FROM core.outbox o JOIN core.data_exports d ON d.org_id = o.org_id AND d.id::text = o.payload->>'exportId'
              WHERE o.org_id = $2 AND o.topic = $4 AND d.kind = $1 AND d.user_id = $3) AS jobs,
            (SELECT count(*)::int FROM core.audit_logs WHERE org_id = $2 AND action = 'data_export.requested' AND actor_id = $3) AS audited`,
    [kind, org, userId, DATA_EXPORT_JOB])).rows[0];

  beforeAll(async () => {
    // jobs stay queued in the outbox (nothing drains it here)
    t = await createTestApp({ DATA_EXPORT_DIR: dir, REDIS_URL: '' });
    owner = await registerUser(t, 'owner');
    orgId = await createOrg(t, owner, 'Exported Twice Ltd');
  });
  afterEach(() => {
    releaseAll();
    jest.restoreAllMocks();
  });
  afterAll(async () => {
    await t?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('an organization\'s export asked for twice at once: 202, then 409 privacy.export_in_progress; one export, one job, one audit entry', async () => {
    const paused = pauseNext(t.app.get(AuditService), 'record');
    const first = send(t.http.post(`/v1/orgs/${orgId}/data-export`).set(owner.auth));
    await paused.reached;
    const second = send(t.http.post(`/v1/orgs/${orgId}/data-export`).set(owner.auth));
    expect(await waitsForLockOrAnswers(t.db.admin, second, paused)).toBe('waiting');
    paused.release();

    expect((await first).status).toBe(202);
    expect(await second).toEqual({ status: 409, body: expect.objectContaining({
      error: { code: 'privacy.export_in_progress', message: 'an export of this organization is being prepared: wait for it to finish' } }) });
    expect(await stored('organization', orgId, owner.id)).toEqual({ exports: ['queued'], jobs: 1, audited: 1 });
  });

  it('a person\'s export asked for twice at once: 202, then 409 privacy.export_in_progress; one export, one job, one audit entry', async () => {
    const paused = pauseNext(t.app.get(AuditService), 'recordPrivileged');
    const first = send(t.http.post('/v1/me/data-export').set(owner.auth));
    await paused.reached;
    const second = send(t.http.post('/v1/me/data-export').set(owner.auth));
    expect(await waitsForLockOrAnswers(t.db.admin, second, paused)).toBe('waiting');
    paused.release();

    expect((await first).status).toBe(202);
    expect(await second).toEqual({ status: 409, body: expect.objectContaining({
      error: { code: 'privacy.export_in_progress', message: 'an export of your data is being prepared: wait for it to finish' } }) });
    expect(await stored('person', owner.personalOrgId, owner.id)).toEqual({ exports: ['queued'], jobs: 1, audited: 1 });
  });

  it('the migration keeps one unfinished export per requester (the running one, else the first) and fails the duplicates made before it', async () => {
    const other = await registerUser(t, 'other');
    const org = await createOrg(t, other, 'Duplicates Ltd');
    await t.db.admin.query('DROP INDEX core.data_exports_one_unfinished'); // as before the migration
    const insert = async (kind: string, o: string, status: string, minutesAgo: number) => (await t.db.admin.query(
      `INSERT INTO core.data_exports (kind, org_id, user_id, status, created_at) VALUES ($1, $2, $3, $4, now() - make_interval(mins => $5)) RETURNING id`,
      [kind, o, other.id, status, minutesAgo])).rows[0].id as string;
    const ids = {
      queuedFirst: await insert('organization', org, 'queued', 50),
      running: await insert('organization', org, 'running', 40),
      queuedLater: await insert('organization', org, 'queued', 30),
      failedBefore: await insert('organization', org, 'failed', 20),
      // unfinished, each the only one of its requester's kind and organization: kept
      personal: await insert('person', other.personalOrgId, 'queued', 10),
      onlyQueued: await insert('person', org, 'queued', 5),
    };
    await t.db.admin.query(readFileSync(MIGRATION, 'utf8'));

    const { rows } = await t.db.admin.query(`SELECT id::text, status, error FROM core.data_exports WHERE user_id = $1`, [other.id]);
    const byId = Object.fromEntries(rows.map((r) => [r.id, { status: r.status, error: r.error }]));
    const duplicate = { status: 'failed', error: 'another export of the same data was asked for at the same time; this one was not made' };
    expect(Object.fromEntries(Object.entries(ids).map(([name, id]) => [name, byId[id]]))).toEqual({
      queuedFirst: duplicate, running: { status: 'running', error: null }, queuedLater: duplicate, failedBefore: { status: 'failed', error: null },
      personal: { status: 'queued', error: null }, onlyQueued: { status: 'queued', error: null },
    });
    // and the index holds from then on
    await expect(insert('organization', org, 'queued', 0)).rejects.toMatchObject({ code: '23505', constraint: 'data_exports_one_unfinished' });
  });

  it('a failed export\'s job, run again (a duplicate the migration failed), leaves it failed and writes no archive', async () => {
    const other = await registerUser(t, 'failed');
    const org = await createOrg(t, other, 'Failed Once Ltd');
    const error = 'another export of the same data was asked for at the same time; this one was not made';
    const id = (await t.db.admin.query(`INSERT INTO core.data_exports (kind, org_id, user_id, status, error) VALUES ('organization', $1, $2, 'failed', $3) RETURNING id::text`,
      [org, other.id, error])).rows[0].id as string;
    await t.app.get(DataExportService).run({ id: '0', orgId: org, topic: DATA_EXPORT_JOB, payload: { exportId: id } });
    expect((await t.db.admin.query(`SELECT status, error, started_at, file_name FROM core.data_exports WHERE id = $1`, [id])).rows)
      .toEqual([{ status: 'failed', error, started_at: null, file_name: null }]);
    expect(existsSync(join(dir, `${id}.zip`))).toBe(false);
  });
});
