import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type pg from 'pg';
import { createTestApp, type TestApp } from '../support/app.js';
import { registerUser, type TestUser } from '../support/factories.js';
import { until } from '../support/throwaway-servers.js';
import { testKeys } from './keys.js';

/**
 * PATCH /v1/me/provider at once with itself: the first save creates the row once, and a public page's slug is checked
 * against what the update replaces (the row is locked before it is read). The row is held from an admin connection so
 * the requests queue in the order they are sent.
 */
describe('concurrent saves of a provider profile', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await createTestApp({ SECRETS_KEYS: testKeys('k1').env });
  });
  afterAll(() => t.close());

  const patch = (u: TestUser, body: object) => () => t.http.patch('/v1/me/provider').set(u.auth).send(body);
  const lockWaiters = (n: number) => until(`${n} backend(s) wait for a lock`, async () => (await t.db.admin.query(
    `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`)).rows[0].n >= n);
  const row = async (u: TestUser) => (await t.db.admin.query('SELECT public_slug, is_public FROM public.providers WHERE owner_user_id = $1', [u.id])).rows;
  const actions = async (u: TestUser) => (await t.db.admin.query(
    `SELECT action FROM core.audit_logs WHERE org_id = $1 AND entity_type = 'provider' ORDER BY id`, [u.personalOrgId])).rows.map((r) => r.action);

  /** Sends each request once the one before it waits for `holder`'s transaction, then ends it with `end`. */
  async function queued(holder: pg.PoolClient, end: 'COMMIT' | 'ROLLBACK', requests: (() => PromiseLike<{ status: number; body: any }>)[]) {
    const sent: Promise<{ status: number; body: any }>[] = [];
    for (const [i, send] of requests.entries()) {
      sent.push(Promise.resolve(send()));
      await lockWaiters(i + 1);
    }
    await holder.query(end);
    holder.release();
    return Promise.all(sent);
  }

  it('clearing the slug while another save makes the page public: the later one sees no slug and is refused (400), never public without one', async () => {
    const u = await registerUser(t, 'slugless');
    await t.http.patch('/v1/me/provider').set(u.auth).send({ publicSlug: 'soon-cleared', isPublic: false }).expect(200);
    const holder = await t.db.admin.connect();
    await holder.query('BEGIN');
    await holder.query('SELECT 1 FROM public.providers WHERE owner_user_id = $1 FOR UPDATE', [u.id]);
    const [cleared, published] = await queued(holder, 'COMMIT', [patch(u, { publicSlug: null }), patch(u, { isPublic: true })]);

    expect(cleared.status).toBe(200);
    expect(cleared.body).toMatchObject({ publicSlug: null, isPublic: false });
    expect(published.status).toBe(400);
    expect(published.body.error).toEqual({ code: 'provider.slug_required', message: 'a public profile needs a publicSlug' });
    expect(await row(u)).toEqual([{ public_slug: null, is_public: false }]);
    expect(await actions(u)).toEqual(['provider.created', 'provider.updated']);
    // and the profile can still be changed
    await t.http.patch('/v1/me/provider').set(u.auth).send({ timezone: 'Europe/Berlin' }).expect(200);
  });

  it('three first saves at once: one creates the profile, the others update it (audited once as created)', async () => {
    const u = await registerUser(t, 'first');
    // a row of the user being inserted, rolled back once the three wait for it: they then race to create it
    const holder = await t.db.admin.connect();
    await holder.query('BEGIN');
    await holder.query('INSERT INTO public.providers (owner_user_id) VALUES ($1)', [u.id]);
    const answers = await queued(holder, 'ROLLBACK', [patch(u, { timezone: 'Europe/Paris' }), patch(u, { timezone: 'Europe/Paris' }), patch(u, { timezone: 'Europe/Paris' })]);

    expect(answers.map((r) => r.status)).toEqual([200, 200, 200]);
    expect(new Set(answers.map((r) => r.body.id)).size).toBe(1);
    expect((await t.db.admin.query('SELECT count(*)::int AS n FROM public.providers WHERE owner_user_id = $1', [u.id])).rows).toEqual([{ n: 1 }]);
    expect(await actions(u)).toEqual(['provider.created', 'provider.updated', 'provider.updated']);
  });
});
