import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { OutboxRelay } from '../../src/platform/queue/outbox-relay.service.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { addMember, createOrg, registerUser, type TestUser } from '../support/factories.js';

/**
 * An organization's download link kept working for the owner who asked for it after they lost access to the
 * organization (demoted, or removed): the link is checked against the requester's ownership at each download now.
 */
describe('data exports: a download link ends with its requester\'s access', () => {
  let t: TestApp;
  let asker: TestUser;
  let other: TestUser;
  const dir = mkdtempSync(join(tmpdir(), 'omnizen-exports-access-'));
  const download = (url: string, status: number) => t.http.get(url).buffer(true)
    .parse((res, cb) => { const chunks: Buffer[] = []; res.on('data', (c: Buffer) => chunks.push(c)); res.on('end', () => cb(null, Buffer.concat(chunks))); })
    .expect(status);
  const errorCode = (res: { body: unknown }) => JSON.parse((res.body as Buffer).toString('utf8')).error.code;

  beforeAll(async () => {
    t = await createTestApp({ DATA_EXPORT_DIR: dir, REDIS_URL: '' });
    asker = await registerUser(t, 'asker');
    other = await registerUser(t, 'otherowner');
  });
  afterAll(async () => {
    await t?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** An organization with both as owners, and the asker's ready export of it: its download link. */
  const readyExport = async (name: string) => {
    const orgId = await createOrg(t, asker, name);
    await addMember(t, orgId, other, 'owner');
    const id = (await t.http.post(`/v1/orgs/${orgId}/data-export`).set(asker.auth).expect(202)).body.id as string;
    await t.app.get(OutboxRelay).drain();
    const link = (await t.http.get(`/v1/orgs/${orgId}/data-exports/${id}`).set(asker.auth).expect(200)).body.downloadUrl as string;
    expect((await download(link, 200)).headers['content-type']).toMatch(/zip/);
    return { orgId, id, link };
  };

  it('an owner demoted to admin: 410 privacy.export_link_expired; the co-owner\'s role change stands, the row is kept', async () => {
    const { orgId, id, link } = await readyExport('Demoted Ltd');
    await t.http.patch(`/v1/orgs/${orgId}/members/${asker.id}`).set(other.auth).send({ role: 'admin' }).expect(200);
    expect(errorCode(await download(link, 410))).toBe('privacy.export_link_expired');
    expect((await t.db.admin.query('SELECT status, file_name FROM core.data_exports WHERE id = $1', [id])).rows).toEqual([{ status: 'ready', file_name: `${id}.zip` }]);
    // owner again: the link works again (it is the same export, still within its 24 hours)
    await t.http.patch(`/v1/orgs/${orgId}/members/${asker.id}`).set(other.auth).send({ role: 'owner' }).expect(200);
    await download(link, 200);
  });

  /**
   * The co-owner was still shown the link of such an export (GET data-exports/{id}: downloadUrl), which answers 410: the
   * status answer offers no link its requester may not take (review, LOW). It stays ready: owner again, it is offered again.
   */
  it('the export of a requester demoted or removed shows the co-owner no downloadUrl (still ready); owner again, it does', async () => {
    const { orgId, id, link } = await readyExport('Shown Link Ltd');
    const shown = async () => (await t.http.get(`/v1/orgs/${orgId}/data-exports/${id}`).set(other.auth).expect(200)).body;
    expect(await shown()).toMatchObject({ id, status: 'ready', downloadUrl: link });
    await t.http.patch(`/v1/orgs/${orgId}/members/${asker.id}`).set(other.auth).send({ role: 'admin' }).expect(200);
    expect(await shown()).toMatchObject({ id, kind: 'organization', status: 'ready', progress: 100, downloadUrl: null, error: null });
    expect(errorCode(await download(link, 410))).toBe('privacy.export_link_expired');
    await t.http.patch(`/v1/orgs/${orgId}/members/${asker.id}`).set(other.auth).send({ role: 'owner' }).expect(200);
    expect((await shown()).downloadUrl).toBe(link);
    await download(link, 200);
    await t.http.delete(`/v1/orgs/${orgId}/members/${asker.id}`).set(other.auth).expect(204);
    expect(await shown()).toMatchObject({ id, status: 'ready', downloadUrl: null });
  });

  it('an owner removed from the organization: 410 privacy.export_link_expired', async () => {
    const { orgId, link } = await readyExport('Removed Ltd');
    await t.http.delete(`/v1/orgs/${orgId}/members/${asker.id}`).set(other.auth).expect(204);
    expect((await t.db.admin.query('SELECT role FROM core.memberships WHERE org_id = $1 AND user_id = $2', [orgId, asker.id])).rows).toEqual([]);
    expect(errorCode(await download(link, 410))).toBe('privacy.export_link_expired');
  });
});
