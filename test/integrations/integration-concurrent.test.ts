import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type pg from 'pg';
import { createTestApp, type TestApp } from '../support/app.js';
import { registerUser, type TestUser } from '../support/factories.js';
import { until } from '../support/throwaway-servers.js';
import { testKeys } from './keys.js';

/**
 * PATCH and DELETE /v1/me/integrations/:id at once with another change of the row: each audits as `before` what it
 * replaces (the row is locked before it is read), never what another change replaced too. The row is held from an admin
 * connection so the requests queue in the order they are sent.
 */
describe('concurrent changes of an integration', () => {
  let t: TestApp;
  let ada: TestUser;

  beforeAll(async () => {
    t = await createTestApp({ SECRETS_KEYS: testKeys('k1').env });
    ada = await registerUser(t, 'ada-concurrent');
  });
  afterAll(() => t.close());

  const lockWaiters = (n: number) => until(`${n} backend(s) wait for a lock`, async () => (await t.db.admin.query(
    `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`)).rows[0].n >= n);
  const audited = async (id: string) => (await t.db.admin.query(
    `SELECT action, before ->> 'label' AS before, after ->> 'label' AS after FROM core.audit_logs
     WHERE entity_type = 'integration' AND entity_id = $1 AND action <> 'integration.created' ORDER BY id`, [id])).rows;

  /** Sends each request once the ones before it wait for `holder`'s lock on the row, then commits. */
  async function queued(holder: pg.PoolClient, requests: (() => PromiseLike<{ status: number; body: any }>)[]) {
    const sent: Promise<{ status: number; body: any }>[] = [];
    for (const [i, send] of requests.entries()) {
      sent.push(Promise.resolve(send()));
      await lockWaiters(i + 1);
    }
    await holder.query('COMMIT');
    holder.release();
    return Promise.all(sent);
  }

  async function holdRow(id: string): Promise<pg.PoolClient> {
    const holder = await t.db.admin.connect();
    await holder.query('BEGIN');
    await holder.query('SELECT 1 FROM public.integrations WHERE id = $1 FOR UPDATE', [id]);
    return holder;
  }

  it('two PATCHes at once: the second audits the first one\'s label as before', async () => {
    const { body: i } = await t.http.post('/v1/me/integrations').set(ada.auth).send({ integrationType: 'google', label: 'A' }).expect(201);
    const patch = (label: string) => () => t.http.patch(`/v1/me/integrations/${i.id}`).set(ada.auth).send({ label });
    const [b, c] = await queued(await holdRow(i.id), [patch('B'), patch('C')]);

    expect([b.status, b.body.label, c.status, c.body.label]).toEqual([200, 'B', 200, 'C']);
    expect(await audited(i.id)).toEqual([
      { action: 'integration.updated', before: 'A', after: 'B' },
      { action: 'integration.updated', before: 'B', after: 'C' },
    ]);
    expect((await t.db.admin.query('SELECT label FROM public.integrations WHERE id = $1', [i.id])).rows).toEqual([{ label: 'C' }]);
  });

  it('a DELETE while a PATCH is being made: the deletion audits the patched row as before', async () => {
    const { body: i } = await t.http.post('/v1/me/integrations').set(ada.auth).send({ integrationType: 'stripe', label: 'A' }).expect(201);
    const [patched, deleted] = await queued(await holdRow(i.id), [
      () => t.http.patch(`/v1/me/integrations/${i.id}`).set(ada.auth).send({ label: 'B' }),
      () => t.http.delete(`/v1/me/integrations/${i.id}`).set(ada.auth),
    ]);

    expect([patched.status, deleted.status]).toEqual([200, 204]);
    expect(await audited(i.id)).toEqual([
      { action: 'integration.updated', before: 'A', after: 'B' },
      { action: 'integration.deleted', before: 'B', after: null },
    ]);
    expect((await t.db.admin.query('SELECT count(*)::int AS n FROM public.integrations WHERE id = $1', [i.id])).rows).toEqual([{ n: 0 }]);
  });
});
