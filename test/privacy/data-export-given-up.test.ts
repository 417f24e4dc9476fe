import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { dataExportRepository as repo } from '../../src/modules/privacy/data-export.repository.js';
import { DATA_EXPORT_JOB } from '../../src/modules/privacy/data-export.service.js';
import { DEFAULT_JOB_MAX_ATTEMPTS } from '../../src/platform/queue/jobs.js';
import { OutboxRelay } from '../../src/platform/queue/outbox-relay.service.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, registerUser, type TestUser } from '../support/factories.js';

const sqlError = (code: string, message: string) => Object.assign(new Error(message), { code, severity: 'ERROR' });

/**
 * A statement, lock or idle-in-transaction timeout counted as a failure that may pass: a large organization's export
 * timed out at every try, queued again and rerun for its job's 168 tries (about 6.5 days), and once its job was dead it
 * stayed queued for ever, every new request refused (409 privacy.export_in_progress). A timeout now fails the export at
 * once; a failure that may pass on the job's last try fails it too; and an export whose job was given up otherwise (dead,
 * none left to run) no longer refuses a new request: it is failed then.
 */
describe('data exports whose job cannot succeed', () => {
  let t: TestApp;
  let owner: TestUser;
  const dir = mkdtempSync(join(tmpdir(), 'omnizen-exports-given-up-'));

  beforeAll(async () => {
    t = await createTestApp({ DATA_EXPORT_DIR: dir, REDIS_URL: '' });
    owner = await registerUser(t, 'givenupowner');
  });
  afterEach(() => {
    jest.restoreAllMocks();
  });
  afterAll(async () => {
    await t?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const request = async (orgId: string) => (await t.http.post(`/v1/orgs/${orgId}/data-export`).set(owner.auth).expect(202)).body.id as string;
  const exportRow = async (id: string) => (await t.db.admin.query(`SELECT status, error FROM core.data_exports WHERE id = $1`, [id])).rows[0];
  const jobRows = async (id: string) => (await t.db.admin.query(
    `SELECT tries, processed_at IS NOT NULL AS processed, dead_at IS NOT NULL AS dead FROM core.outbox WHERE topic = $1 AND payload->>'exportId' = $2 ORDER BY id`,
    [DATA_EXPORT_JOB, id])).rows;

  it.each([
    ['57014', 'canceling statement due to statement timeout'],
    ['55P03', 'canceling statement due to lock timeout'],
    ['25P03', 'terminating connection due to idle-in-transaction timeout'],
  ])('a timeout (%s) fails the export at its first try, not retried; a new export can be asked for', async (code, message) => {
    const orgId = await createOrg(t, owner, `Timeout ${code}`);
    const id = await request(orgId);
    jest.spyOn(repo, 'stream').mockRejectedValue(sqlError(code, message));

    await t.app.get(OutboxRelay).drain();
    expect(await exportRow(id)).toEqual({ status: 'failed', error: message });
    // the job ended (done: the export's failure is recorded), not left to retry
    expect(await jobRows(id)).toEqual([{ tries: 1, processed: true, dead: false }]);
    expect(readdirSync(dir).filter((f) => f.startsWith(id))).toEqual([]);
    const shown = (await t.http.get(`/v1/orgs/${orgId}/data-exports/${id}`).set(owner.auth).expect(200)).body;
    expect(shown).toMatchObject({ id, status: 'failed', downloadUrl: null, error: 'the export failed; ask for a new one' });

    jest.restoreAllMocks();
    const again = await request(orgId);
    expect(again).not.toBe(id);
    expect(await exportRow(again)).toEqual({ status: 'queued', error: null });
  });

  it('a failure that may pass on its job\'s last try fails the export (its job done, not dead); a new export can be asked for', async () => {
    const orgId = await createOrg(t, owner, 'Last Try Ltd');
    const id = await request(orgId);
    jest.spyOn(repo, 'stream').mockRejectedValue(sqlError('08006', 'connection failure during the export (simulated)'));
    // its job's tries all but spent
    await t.db.admin.query(`UPDATE core.outbox SET tries = $3 - 1 WHERE topic = $1 AND payload->>'exportId' = $2`, [DATA_EXPORT_JOB, id, DEFAULT_JOB_MAX_ATTEMPTS]);

    await t.app.get(OutboxRelay).drain();
    expect(await exportRow(id)).toEqual({ status: 'failed', error: 'connection failure during the export (simulated)' });
    expect(await jobRows(id)).toEqual([{ tries: DEFAULT_JOB_MAX_ATTEMPTS, processed: true, dead: false }]);

    jest.restoreAllMocks();
    const again = await request(orgId);
    expect(await exportRow(again)).toEqual({ status: 'queued', error: null });
  });

  it('one try earlier, the same failure queues it again (its job retried)', async () => {
    const orgId = await createOrg(t, owner, 'Not Last Ltd');
    const id = await request(orgId);
    jest.spyOn(repo, 'stream').mockRejectedValue(sqlError('08006', 'connection failure during the export (simulated)'));
    await t.db.admin.query(`UPDATE core.outbox SET tries = $3 - 2 WHERE topic = $1 AND payload->>'exportId' = $2`, [DATA_EXPORT_JOB, id, DEFAULT_JOB_MAX_ATTEMPTS]);

    await t.app.get(OutboxRelay).drain();
    expect(await exportRow(id)).toEqual({ status: 'queued', error: null });
    expect(await jobRows(id)).toEqual([{ tries: DEFAULT_JOB_MAX_ATTEMPTS - 1, processed: false, dead: false }]);
    expect((await t.http.post(`/v1/orgs/${orgId}/data-export`).set(owner.auth).expect(409)).body.error.code).toBe('privacy.export_in_progress');
  });

  it('an export whose job is dead (its last try ended the process) is failed when a new one is asked for, organization\'s and person\'s', async () => {
    const orgId = await createOrg(t, owner, 'Dead Job Ltd');
    const orgExport = await request(orgId);
    const personal = (await t.http.post('/v1/me/data-export').set(owner.auth).expect(202)).body.id as string;
    // the relay claimed them past their last try, that try's outcome never recorded: dead, the exports left running
    for (const id of [orgExport, personal]) {
      await t.db.admin.query(`UPDATE core.data_exports SET status = 'running' WHERE id = $1`, [id]);
      await t.db.admin.query(`UPDATE core.outbox SET tries = $3 WHERE topic = $1 AND payload->>'exportId' = $2`, [DATA_EXPORT_JOB, id, DEFAULT_JOB_MAX_ATTEMPTS]);
    }
    await t.app.get(OutboxRelay).drain();
    for (const id of [orgExport, personal]) {
      expect(await jobRows(id)).toEqual([{ tries: DEFAULT_JOB_MAX_ATTEMPTS, processed: true, dead: true }]);
      expect(await exportRow(id)).toEqual({ status: 'running', error: null });
    }

    const again = await request(orgId);
    expect(await exportRow(orgExport)).toEqual({ status: 'failed', error: 'its job was given up after its last try' });
    expect(await exportRow(again)).toEqual({ status: 'queued', error: null });
    const shown = (await t.http.get(`/v1/orgs/${orgId}/data-exports/${orgExport}`).set(owner.auth).expect(200)).body;
    expect(shown).toMatchObject({ status: 'failed', error: 'the export failed; ask for a new one' });

    const personalAgain = (await t.http.post('/v1/me/data-export').set(owner.auth).expect(202)).body.id as string;
    expect(await exportRow(personal)).toEqual({ status: 'failed', error: 'its job was given up after its last try' });
    expect(await exportRow(personalAgain)).toEqual({ status: 'queued', error: null });
    // a second request while the new one is unfinished (its job still to run) is refused as before
    expect((await t.http.post('/v1/me/data-export').set(owner.auth).expect(409)).body.error.code).toBe('privacy.export_in_progress');
    expect((await t.http.post(`/v1/orgs/${orgId}/data-export`).set(owner.auth).expect(409)).body.error.code).toBe('privacy.export_in_progress');
  });
});
