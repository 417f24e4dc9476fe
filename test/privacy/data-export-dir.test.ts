import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { uniqueEmail } from '../support/factories.js';
import { OutboxRelay } from '../../src/platform/queue/outbox-relay.service.js';
import { DATA_EXPORT_JOB } from '../../src/modules/privacy/data-export.service.js';

/**
 * The exports' directory cannot be created (in the image: /app is root's and the API runs as node; here: a file
 * stands where a parent directory should be). The export fails, recorded with the reason, and its job is done: it is
 * not retried until dead while the person's status route says queued.
 */
describe('data exports: a directory that cannot be created', () => {
  let t: TestApp;
  const root = mkdtempSync(join(tmpdir(), 'omnizen-exports-unusable-'));
  const blocker = join(root, 'not-a-directory');

  beforeAll(async () => {
    writeFileSync(blocker, 'a file where the exports directory\'s parent should be');
    t = await createTestApp({ DATA_EXPORT_DIR: join(blocker, 'exports'), REDIS_URL: '' });
  });
  afterAll(async () => {
    await t?.close();
    rmSync(root, { recursive: true, force: true });
  });

  it('the export ends failed with the reason recorded, its job processed and not retried', async () => {
    const email = uniqueEmail('exportdir');
    await t.http.post('/v1/auth/register').send({ email, password: 'correct horse battery', name: 'Export Dir' }).expect(202);
    const login = (await t.http.post('/v1/auth/login').send({ email, password: 'correct horse battery' }).expect(200)).body;
    const auth = { Authorization: `Bearer ${login.accessToken}` };
    const id = (await t.http.post('/v1/me/data-export').set(auth).expect(202)).body.id as string;

    await t.app.get(OutboxRelay).drain();

    const status = (await t.http.get(`/v1/me/data-exports/${id}`).set(auth).expect(200)).body;
    // the person is told it failed (the reason, a server path, is the operator's)
    expect(status).toMatchObject({ id, status: 'failed', downloadUrl: null, error: 'the export failed; ask for a new one' });
    expect((await t.db.admin.query('SELECT status, error, file_name FROM core.data_exports WHERE id = $1', [id])).rows).toEqual([{
      status: 'failed', file_name: null,
      error: `the exports directory (DATA_EXPORT_DIR) cannot be created: ENOTDIR: not a directory, mkdir '${join(blocker, 'exports')}'`,
    }]);
    expect((await t.db.admin.query(
      `SELECT processed_at IS NOT NULL AS processed, dead_at IS NOT NULL AS dead, last_error FROM core.outbox WHERE topic = $1 AND payload->>'exportId' = $2`,
      [DATA_EXPORT_JOB, id])).rows).toEqual([{ processed: true, dead: false, last_error: null }]);

    // a new export may be asked for (a failed one is not in progress)
    await t.http.post('/v1/me/data-export').set(auth).expect(202);
  });
});
