import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
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
 * export's organization, with the class of its reason (error, timeout, database_unavailable, abandoned), in the
 * transaction that fails it. The reason's text stays on the export's row: it may name the server's paths, and the
 * organization's audit-log API serves the audit (review B2: the exports directory's path was shown there).
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

  it('a job\'s error: audited once as an error (its message on the row); the next drain and a new request add none', async () => {
    const orgId = await createOrg(t, owner, 'Error Ltd');
    const id = await request(orgId);
    jest.spyOn(repo, 'stream').mockRejectedValue(new Error('disk full (simulated)'));
    await t.app.get(OutboxRelay).drain();
    expect(await exportRow(id)).toEqual({ status: 'failed', error: 'disk full (simulated)' });
    expect(await audits(id)).toEqual([failed(orgId, 'organization', 'error')]);

    jest.restoreAllMocks();
    await t.app.get(OutboxRelay).drain();
    const again = await request(orgId);
    await t.app.get(OutboxRelay).drain();
    expect(await audits(id)).toEqual([failed(orgId, 'organization', 'error')]);
    expect((await audits(again)).map((a) => a.action)).toEqual(['data_export.completed']);
  });

  it('a statement timeout: audited as a timeout, its message on the row', async () => {
    const orgId = await createOrg(t, owner, 'Timeout Ltd');
    const id = await request(orgId);
    jest.spyOn(repo, 'stream').mockRejectedValue(sqlError('57014', 'canceling statement due to statement timeout'));
    await t.app.get(OutboxRelay).drain();
    expect(await exportRow(id)).toEqual({ status: 'failed', error: 'canceling statement due to statement timeout' });
    expect(await audits(id)).toEqual([failed(orgId, 'organization', 'timeout')]);
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
    expect(await audits(id)).toEqual([failed(orgId, 'organization', 'database_unavailable')]);
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
    expect(await audits(orgExport)).toEqual([failed(orgId, 'organization', 'abandoned', true)]);

    await t.http.post('/v1/me/data-export').set(owner.auth).expect(202);
    expect(await exportRow(personal)).toEqual({ status: 'failed', error: 'its job was given up after its last try' });
    expect(await audits(personal)).toEqual([failed(owner.personalOrgId, 'person', 'abandoned', true)]);
    // refused as in progress afterwards (the new ones' jobs are pending): nothing more failed, nothing more audited
    expect((await t.http.post(`/v1/orgs/${orgId}/data-export`).set(owner.auth).expect(409)).body.error.code).toBe('privacy.export_in_progress');
    expect(await audits(orgExport)).toHaveLength(1);
  });

  it('an exports directory that cannot be created: its path on the export\'s row only, not in the audit log the organization reads', async () => {
    const blocked = await createTestApp({ DATA_EXPORT_DIR: join(dir, 'a-file', 'exports'), REDIS_URL: '' });
    try {
      writeFileSync(join(dir, 'a-file'), 'in the way');
      const admin = await registerUser(blocked, 'nodirowner');
      const orgId = await createOrg(blocked, admin, 'No Directory Ltd');
      const id = (await blocked.http.post(`/v1/orgs/${orgId}/data-export`).set(admin.auth).expect(202)).body.id as string;
      await blocked.app.get(OutboxRelay).drain();
      const { rows: [row] } = await blocked.db.admin.query(`SELECT status, error FROM core.data_exports WHERE id = $1`, [id]);
      expect(row.status).toBe('failed');
      expect(row.error).toContain(join(dir, 'a-file'));
      expect((await blocked.http.get(`/v1/orgs/${orgId}/data-exports/${id}`).set(admin.auth).expect(200)).body)
        .toMatchObject({ status: 'failed', error: 'the export failed; ask for a new one' });
      const served = (await blocked.http.get(`/v1/orgs/${orgId}/audit-logs?action=data_export.failed`).set(admin.auth).expect(200)).body;
      expect(served.items).toEqual([expect.objectContaining({ action: 'data_export.failed', entityId: id, after: { kind: 'organization', reason: 'error' } })]);
      expect(JSON.stringify(served)).not.toContain(dir);
    } finally {
      await blocked.close();
    }
  });
});
