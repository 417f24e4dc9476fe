import { mkdtempSync, rmSync } from 'node:fs';
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
 * An export's failure was not audited (review, LOW): its request and its completion were (data_export.requested,
 * .completed), but an export failed by its job (an error, a timeout, a failure that may pass on the job's last try) or
 * by the request that found its job given up left no entry. Each failure is now audited once, as the system's, in the
 * export's organization, with its reason (as stored on the row), in the transaction that fails it.
 */
describe('data exports: a failure is audited once, with its reason', () => {
  let t: TestApp;
  let owner: TestUser;
  const dir = mkdtempSync(join(tmpdir(), 'omnizen-exports-failure-audit-'));

  beforeAll(async () => {
    t = await createTestApp({ DATA_EXPORT_DIR: dir, REDIS_URL: '' });
    owner = await registerUser(t, 'failauditowner');
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
  /** every audit entry of the export but its request */
  const audits = async (id: string) => (await t.db.admin.query(
    `SELECT org_id, action, actor_id, principal_type, after, request_id IS NOT NULL AS has_request FROM core.audit_logs
     WHERE entity_type = 'data_export' AND entity_id = $1 AND action <> 'data_export.requested' ORDER BY id`, [id])).rows;
  const failed = (orgId: string, kind: string, reason: string, hasRequest = false) => ({
    org_id: orgId, action: 'data_export.failed', actor_id: null, principal_type: 'system', after: { kind, reason }, has_request: hasRequest,
  });

  it('a job\'s error: audited once with it; the next drain and a new request add none', async () => {
    const orgId = await createOrg(t, owner, 'Error Ltd');
    const id = await request(orgId);
    jest.spyOn(repo, 'stream').mockRejectedValue(new Error('disk full (simulated)'));
    await t.app.get(OutboxRelay).drain();
    expect(await exportRow(id)).toEqual({ status: 'failed', error: 'disk full (simulated)' });
    expect(await audits(id)).toEqual([failed(orgId, 'organization', 'disk full (simulated)')]);

    jest.restoreAllMocks();
    await t.app.get(OutboxRelay).drain();
    const again = await request(orgId);
    await t.app.get(OutboxRelay).drain();
    expect(await audits(id)).toEqual([failed(orgId, 'organization', 'disk full (simulated)')]);
    expect((await audits(again)).map((a) => a.action)).toEqual(['data_export.completed']);
  });

  it('a statement timeout: audited with its message', async () => {
    const orgId = await createOrg(t, owner, 'Timeout Ltd');
    const id = await request(orgId);
    jest.spyOn(repo, 'stream').mockRejectedValue(sqlError('57014', 'canceling statement due to statement timeout'));
    await t.app.get(OutboxRelay).drain();
    expect(await exportRow(id)).toEqual({ status: 'failed', error: 'canceling statement due to statement timeout' });
    expect(await audits(id)).toEqual([failed(orgId, 'organization', 'canceling statement due to statement timeout')]);
  });

  it('a failure that may pass: not audited while it is retried, audited once on the job\'s last try', async () => {
    const orgId = await createOrg(t, owner, 'Last Try Ltd');
    const id = await request(orgId);
    jest.spyOn(repo, 'stream').mockRejectedValue(sqlError('08006', 'connection failure during the export (simulated)'));
    await t.db.admin.query(`UPDATE core.outbox SET tries = $3 - 2 WHERE topic = $1 AND payload->>'exportId' = $2`, [DATA_EXPORT_JOB, id, DEFAULT_JOB_MAX_ATTEMPTS]);
    await t.app.get(OutboxRelay).drain();
    expect(await exportRow(id)).toEqual({ status: 'queued', error: null });
    expect(await audits(id)).toEqual([]);

    // its next try is its last
    await t.db.admin.query(`UPDATE core.outbox SET available_at = now() - interval '1 second' WHERE topic = $1 AND payload->>'exportId' = $2`, [DATA_EXPORT_JOB, id]);
    await t.app.get(OutboxRelay).drain();
    expect(await exportRow(id)).toEqual({ status: 'failed', error: 'connection failure during the export (simulated)' });
    expect(await audits(id)).toEqual([failed(orgId, 'organization', 'connection failure during the export (simulated)')]);
  });

  it('an export whose job was given up: audited when the next request fails it (naming that request), organization\'s and person\'s', async () => {
    const orgId = await createOrg(t, owner, 'Dead Job Ltd');
    const orgExport = await request(orgId);
    const personal = (await t.http.post('/v1/me/data-export').set(owner.auth).expect(202)).body.id as string;
    for (const id of [orgExport, personal]) {
      await t.db.admin.query(`UPDATE core.data_exports SET status = 'running' WHERE id = $1`, [id]);
      await t.db.admin.query(`UPDATE core.outbox SET processed_at = now(), dead_at = now() WHERE topic = $1 AND payload->>'exportId' = $2`, [DATA_EXPORT_JOB, id]);
    }
    await request(orgId);
    expect(await exportRow(orgExport)).toEqual({ status: 'failed', error: 'its job was given up after its last try' });
    expect(await audits(orgExport)).toEqual([failed(orgId, 'organization', 'its job was given up after its last try', true)]);

    await t.http.post('/v1/me/data-export').set(owner.auth).expect(202);
    expect(await exportRow(personal)).toEqual({ status: 'failed', error: 'its job was given up after its last try' });
    expect(await audits(personal)).toEqual([failed(owner.personalOrgId, 'person', 'its job was given up after its last try', true)]);
    // refused as in progress afterwards (the new ones' jobs are pending): nothing more failed, nothing more audited
    expect((await t.http.post(`/v1/orgs/${orgId}/data-export`).set(owner.auth).expect(409)).body.error.code).toBe('privacy.export_in_progress');
    expect(await audits(orgExport)).toHaveLength(1);
  });
});
