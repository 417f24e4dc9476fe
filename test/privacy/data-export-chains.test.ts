import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { dataExportRepository as repo } from '../../src/modules/privacy/data-export.repository.js';
import { DATA_EXPORT_JOB, DataExportService, EXPORTS_AT_ONCE } from '../../src/modules/privacy/data-export.service.js';
import { DEFAULT_JOB_MAX_ATTEMPTS, type Job } from '../../src/platform/queue/jobs.js';
import { OutboxRelay } from '../../src/platform/queue/outbox-relay.service.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, registerUser, type TestUser } from '../support/factories.js';

/**
 * An export's chain of jobs: one without a turn records itself done and writes its next in one transaction, so a retry
 * of the same job (its done not recorded: Bull runs it again) starts no second chain writing the same export alongside
 * the first; a run that lost to another never fails a ready export nor deletes its archive; the chain stops once the
 * export is no longer unfinished; and an export whose dead job row was purged (RETENTION_OUTBOX_DAYS) no longer refuses
 * every new request.
 */
describe('data export job chains', () => {
  let t: TestApp;
  let owner: TestUser;
  let svc: DataExportService;
  const dir = mkdtempSync(join(tmpdir(), 'omnizen-exports-chains-'));

  beforeAll(async () => {
    t = await createTestApp({ DATA_EXPORT_DIR: dir, REDIS_URL: '' });
    owner = await registerUser(t, 'chainsowner');
    svc = t.app.get(DataExportService);
  }, 120_000);
  afterEach(() => {
    jest.restoreAllMocks();
    turns().held = 0;
  });
  afterAll(async () => {
    await t?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** The process's export turns: every one held, as by exports writing. */
  const turns = () => (svc as unknown as { turns: { held: number } }).turns;
  const request = async (orgId: string) => (await t.http.post(`/v1/orgs/${orgId}/data-export`).set(owner.auth).expect(202)).body.id as string;
  const jobRows = async (id: string) => (await t.db.admin.query(
    `SELECT id::text, payload, processed_at IS NOT NULL AS processed, dead_at IS NOT NULL AS dead FROM core.outbox WHERE topic = $1 AND payload->>'exportId' = $2 ORDER BY id`,
    [DATA_EXPORT_JOB, id])).rows as { id: string; payload: Record<string, unknown>; processed: boolean; dead: boolean }[];
  const exportRow = async (id: string) => (await t.db.admin.query(`SELECT status, error, file_name FROM core.data_exports WHERE id = $1`, [id])).rows[0];
  const asJob = (row: { id: string; payload: Record<string, unknown> }, orgId: string): Job => ({ id: row.id, orgId, topic: DATA_EXPORT_JOB, payload: row.payload });

  it('an export whose dead job row was purged by the retention job is failed when a new one is asked for (not 409 for good)', async () => {
    const orgId = await createOrg(t, owner, 'Purged Dead Ltd');
    const id = await request(orgId);
    await t.db.admin.query(`UPDATE core.data_exports SET status = 'running' WHERE id = $1`, [id]);
    await t.db.admin.query(`UPDATE core.outbox SET tries = $3 WHERE topic = $1 AND payload->>'exportId' = $2`, [DATA_EXPORT_JOB, id, DEFAULT_JOB_MAX_ATTEMPTS]);
    await t.app.get(OutboxRelay).drain();
    expect((await jobRows(id)).map((j) => ({ processed: j.processed, dead: j.dead }))).toEqual([{ processed: true, dead: true }]);
    // the retention's purge of done jobs (erasure.repository purgeProcessedJobs), RETENTION_OUTBOX_DAYS later
    await t.db.admin.query(`UPDATE core.outbox SET processed_at = now() - interval '15 days' WHERE topic = $1 AND payload->>'exportId' = $2`, [DATA_EXPORT_JOB, id]);
    await t.db.admin.query(`DELETE FROM core.outbox WHERE processed_at < now() - interval '14 days' AND topic = $1 AND payload->>'exportId' = $2`, [DATA_EXPORT_JOB, id]);
    expect(await jobRows(id)).toEqual([]);

    const again = await t.http.post(`/v1/orgs/${orgId}/data-export`).set(owner.auth);
    expect(again.status).toBe(202);
    expect(again.body).toMatchObject({ status: 'queued', kind: 'organization' });
    expect(await exportRow(id)).toEqual({ status: 'failed', error: 'its job was given up after its last try', file_name: null });
    expect(await exportRow(again.body.id)).toEqual({ status: 'queued', error: null, file_name: null });
    // the new one has its job: a further request is refused while it is unfinished
    expect((await t.http.post(`/v1/orgs/${orgId}/data-export`).set(owner.auth).expect(409)).body.error.code).toBe('privacy.export_in_progress');
  });

  it('a job without a turn run twice (its done not recorded, retried) writes one next job; the retry runs nothing even with a turn free', async () => {
    const orgId = await createOrg(t, owner, 'Two Chains Ltd');
    const id = await request(orgId);
    const [first] = await jobRows(id);
    turns().held = EXPORTS_AT_ONCE;
    await svc.run(asJob(first, orgId));
    await svc.run(asJob(first, orgId));
    turns().held = 0;
    const rows = await jobRows(id);
    expect(rows.map((j) => ({ waits: j.payload.waits ?? null, processed: j.processed, dead: j.dead }))).toEqual([
      { waits: null, processed: true, dead: false },
      { waits: 1, processed: false, dead: false },
    ]);
    // the same job once more, a turn free now: already done, it starts no run of the export beside its next job's
    const start = jest.spyOn(repo, 'start');
    await svc.run(asJob(first, orgId));
    expect(start).not.toHaveBeenCalled();
    expect(await exportRow(id)).toEqual({ status: 'queued', error: null, file_name: null });
    expect((await jobRows(id)).filter((j) => !j.processed)).toHaveLength(1);

    // the chain's next job runs the export once
    await svc.run(asJob(rows[1], orgId));
    expect(start).toHaveBeenCalledTimes(1);
    expect(await exportRow(id)).toEqual({ status: 'ready', error: null, file_name: `${id}.zip` });
  });

  it('a run that fails after another run of the same export made it ready leaves it ready, its archive kept', async () => {
    const orgId = await createOrg(t, owner, 'Lost Race Ltd');
    const id = await request(orgId);
    const [first] = await jobRows(id);
    const archive = join(dir, `${id}.zip`);
    // while this run reads, another of the same export finishes: the row ready, its archive written
    jest.spyOn(repo, 'stream').mockImplementation(async () => {
      writeFileSync(archive, 'the other run\'s archive');
      await t.db.admin.query(`UPDATE core.data_exports SET status = 'ready', progress = 100, file_name = $2, size_bytes = 23, completed_at = now(),
        expires_at = now() + interval '1 hour' WHERE id = $1`, [id, `${id}.zip`]);
      throw new Error('this run\'s read failed (simulated)');
    });
    await svc.run(asJob(first, orgId));
    expect(await exportRow(id)).toEqual({ status: 'ready', error: null, file_name: `${id}.zip` });
    expect(existsSync(archive)).toBe(true);
  });

  it('a job without a turn whose export is no longer unfinished (expired meanwhile) writes no next job', async () => {
    const orgId = await createOrg(t, owner, 'Chain Ends Ltd');
    const id = await request(orgId);
    const [first] = await jobRows(id);
    await t.db.admin.query(`UPDATE core.data_exports SET status = 'expired' WHERE id = $1`, [id]);
    turns().held = EXPORTS_AT_ONCE;
    await svc.run(asJob(first, orgId));
    expect((await jobRows(id)).map((j) => ({ waits: j.payload.waits ?? null, processed: j.processed, dead: j.dead })))
      .toEqual([{ waits: null, processed: true, dead: false }]);
    expect(await exportRow(id)).toEqual({ status: 'expired', error: null, file_name: null });
  });
});
