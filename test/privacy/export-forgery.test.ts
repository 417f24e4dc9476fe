import { createHmac, randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { restGateway, type RestGateway } from '../support/rest-gateway.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { ManualClock } from '../support/clock.js';
import { addMember, createOrg, onEnterprisePlan, registerUser, type TestUser } from '../support/factories.js';
import { OutboxRelay } from '../../src/platform/queue/outbox-relay.service.js';
import { RetentionJob } from '../../src/modules/privacy/retention.job.js';

const HOUR = 3_600_000;

/**
 * An organization's export is its owners' alone (migration 20270205000500). An admin of the organization (who reads
 * the export's id in the audit log) owns a personal organization, and the insert policy of core.data_exports let any
 * owner insert every column: over Supabase's REST API they inserted into it a row already `ready` naming the other
 * organization's archive (or carrying its very id), and the status route of their personal organization signed a link
 * that served the other archive. The REST path inserts nothing now, and a row naming another file than its own id's
 * gets no link, serves nothing and makes the retention job delete nothing.
 */
describe('an organization\'s export cannot be forged into another organization to download it', () => {
  let t: TestApp;
  const clock = new ManualClock();
  const dir = mkdtempSync(join(tmpdir(), 'omnizen-export-forgery-'));
  let gateway: RestGateway;
  let owner: TestUser;
  let admin: TestUser;
  let acme: string;
  let exportId: string;

  const download = (url: string) => t.http.get(url).buffer(true)
    .parse((res, cb) => { const chunks: Buffer[] = []; res.on('data', (c: Buffer) => chunks.push(c)); res.on('end', () => cb(null, Buffer.concat(chunks))); });

  beforeAll(async () => {
    t = await createTestApp({ DATA_EXPORT_DIR: dir, REDIS_URL: '', AUTH_COOKIES: 'false' }, { clock });
    gateway = await restGateway(t.db);

    owner = await registerUser(t, 'exportowner');
    admin = await registerUser(t, 'exportadmin');
    acme = await createOrg(t, owner, 'Exported Ltd');
    await onEnterprisePlan(t, acme);
    await addMember(t, acme, admin, 'admin');
    // the API's own insert (the owner's tenant transaction) keeps working
    exportId = (await t.http.post(`/v1/orgs/${acme}/data-export`).set(owner.auth).expect(202)).body.id;
    await t.app.get(OutboxRelay).drain();
    const ready = (await t.http.get(`/v1/orgs/${acme}/data-exports/${exportId}`).set(owner.auth).expect(200)).body;
    expect(ready).toMatchObject({ id: exportId, kind: 'organization', status: 'ready', downloadUrl: expect.any(String) });
    expect(existsSync(join(dir, `${exportId}.zip`))).toBe(true);
  });
  afterAll(async () => {
    await gateway?.end();
    await t?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const rest = (claims: Record<string, unknown>, sql: string, params: unknown[] = []) => gateway.rest('authenticated', claims, sql, params);

  /** A download link for an export id, signed as the API signs them (what a link to a forged row would be). */
  function signedLink(id: string, expiresAtMs: number): string {
    const key = createHmac('sha256', t.config.auth.supabaseJwtSecret).update('omnizen.data_export_link.v1').digest();
    const body = `${id}.${expiresAtMs}`;
    return `/v1/data-exports/download?token=${body}.${createHmac('sha256', key).update(body).digest('base64url')}`;
  }

  it('the admin finds the export\'s id in the audit log, but cannot insert an export over REST: not a ready one naming it, not one with its id, not even a queued one', async () => {
    const audit = (await t.http.get(`/v1/orgs/${acme}/audit-logs?action=data_export.requested`).set(admin.auth).expect(200)).body;
    expect(audit.items.map((e: { entityId: string }) => e.entityId)).toEqual([exportId]);
    await t.http.get(`/v1/orgs/${acme}/data-exports/${exportId}`).set(admin.auth).expect(403);

    const claims = { sub: admin.id, email: admin.email, aud: 'authenticated', org_id: admin.personalOrgId };
    const expires = new Date(clock.now() + HOUR).toISOString();
    // status, file, expiry and id are no caller's to choose: no privilege on those columns at all
    const forged: [string, unknown[]][] = [
      [`INSERT INTO core.data_exports (kind, org_id, user_id, status, file_name, expires_at) VALUES ('organization', $1, $2, 'ready', $3, $4) RETURNING id`,
        [admin.personalOrgId, admin.id, `${exportId}.zip`, expires]],
      [`INSERT INTO core.data_exports (id, kind, org_id, user_id) VALUES ($3, 'organization', $1, $2) RETURNING id`, [admin.personalOrgId, admin.id, exportId]],
    ];
    for (const [sql, params] of forged) {
      await expect(rest(claims, sql, params)).rejects.toMatchObject({ code: '42501', message: expect.stringMatching(/^permission denied for table data_exports/) });
    }
    // and a plain request only through the API (its verified transaction, which audits it)
    await expect(rest(claims, `INSERT INTO core.data_exports (kind, org_id, user_id) VALUES ('organization', $1, $2) RETURNING id`, [admin.personalOrgId, admin.id]))
      .rejects.toMatchObject({ code: '42501' });
    const { rows } = await t.db.admin.query('SELECT count(*)::int AS n FROM core.data_exports WHERE org_id = $1', [admin.personalOrgId]);
    expect(rows).toEqual([{ n: 0 }]);
  });

  it('a row naming another export\'s archive (one forged before) gets no link, its signed link serves nothing (403), and its expiry deletes nothing', async () => {
    const forged = randomUUID();
    const expiresAt = clock.now() + HOUR;
    await t.db.admin.query(
      `INSERT INTO core.data_exports (id, kind, org_id, user_id, status, file_name, expires_at, completed_at)
       VALUES ($1, 'organization', $2, $3, 'ready', $4, $5, $5)`, [forged, admin.personalOrgId, admin.id, `${exportId}.zip`, new Date(expiresAt)]);

    const status = (await t.http.get(`/v1/orgs/${admin.personalOrgId}/data-exports/${forged}`).set(admin.auth).expect(200)).body;
    expect(status).toMatchObject({ id: forged, downloadUrl: null });
    const refused = await download(signedLink(forged, expiresAt)).expect(403);
    expect(JSON.parse((refused.body as Buffer).toString('utf8'))).toMatchObject({ error: { code: 'privacy.export_link_invalid' } });

    // the owner's own link still serves their archive
    const own = (await t.http.get(`/v1/orgs/${acme}/data-exports/${exportId}`).set(owner.auth).expect(200)).body;
    const archive = await download(own.downloadUrl).expect(200);
    expect(archive.headers['content-type']).toBe('application/zip');
    expect((archive.body as Buffer).length).toBe(own.sizeBytes);

    // the forged row expires first: the retention job marks it expired and leaves the other archive in place
    await t.db.admin.query('UPDATE core.data_exports SET expires_at = $2 WHERE id = $1', [forged, new Date(clock.now() - 1000)]);
    await t.app.get(RetentionJob).run();
    const { rows } = await t.db.admin.query('SELECT id, status FROM core.data_exports WHERE id = ANY($1::uuid[]) ORDER BY id', [[forged, exportId]]);
    expect(rows).toEqual([{ id: forged, status: 'expired' }, { id: exportId, status: 'ready' }].sort((a, b) => a.id.localeCompare(b.id)));
    expect(existsSync(join(dir, `${exportId}.zip`))).toBe(true);
  });
});
