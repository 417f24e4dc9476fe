import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, hasRedis, type TestApp } from '../support/app.js';
import { addMember, createOrg, registerUser, type TestUser } from '../support/factories.js';
import { bounded } from '../support/throwaway-servers.js';
import { FreezingRedisProxy } from '../support/freezing-redis-proxy.js';
import { JobRegistry } from '../../src/platform/queue/jobs.js';
import { DOMAIN_EVENT_TOPIC } from '../../src/platform/events/events.js';


(hasRedis ? describe : describe.skip)('a Redis that hangs (accepts, never answers)', () => {
  let proxy: FreezingRedisProxy;
  let t: TestApp;
  let owner: TestUser;
  let member: TestUser;
  let orgId: string;
  const upstream = new URL(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');

  beforeAll(async () => {
    proxy = new FreezingRedisProxy(upstream);
    await proxy.listen();
    t = await createTestApp({
      REDIS_URL: `redis://127.0.0.1:${proxy.port}`,
      // the pool of the app's API login: fewer connections than the concurrent requests below, which take turns
      API_DATABASE_POOL_SIZE: '4',
      REDIS_COMMAND_TIMEOUT_MS: '200',
    });
    owner = await registerUser(t, 'hang-owner');
    member = await registerUser(t, 'hang-member');
    orgId = await createOrg(t, owner, 'Hung Redis Co');
    await addMember(t, orgId, member, 'member');
    // from here on, Redis answers nothing
    proxy.frozen = true;
  });
  afterAll(async () => {
    await proxy?.close();
    await t?.close();
  });

  it('tenant requests beyond the pool size all answer 200, counted in memory: a silent Redis costs a request at most the command timeout', async () => {
    const concurrent = 24;
    const answers = await bounded(Promise.all(Array.from({ length: concurrent }, () => t.http.get(`/v1/orgs/${orgId}`).set(owner.auth).then((r) => r))),
      20_000, () => 'the requests did not all answer');
    expect(answers.map((r) => r.status)).toEqual(Array(concurrent).fill(200));
    for (const r of answers) expect(r.body).toMatchObject({ id: orgId, name: 'Hung Redis Co' });
    // every request was counted by the in-memory limiter: one token each, none twice, none skipped
    const limit = Number(answers[0].headers['ratelimit-limit']);
    expect(limit).toBeGreaterThan(concurrent);
    expect(answers.map((r) => Number(r.headers['ratelimit-remaining'])).sort((a, b) => b - a))
      .toEqual(Array.from({ length: concurrent }, (_, i) => limit - 1 - i));
  });

  it('a job that routes a notification (and pushes it through Redis) finishes; the notice is in the inbox', async () => {
    const payload = { type: 'member.role_changed', version: 1, occurredAt: new Date().toISOString(), payload: { userId: member.id, previousRole: 'member', role: 'viewer', changedBy: owner.id } };
    const [event] = (await t.db.admin.query<{ id: string }>(`INSERT INTO core.outbox (org_id, topic, payload) VALUES ($1, $2, $3) RETURNING id::text`,
      [orgId, DOMAIN_EVENT_TOPIC, payload])).rows;
    // what the relay (or Bull's worker) runs for the row; it awaits the push to open streams
    await bounded(t.app.get(JobRegistry).run({ id: event.id, orgId, topic: DOMAIN_EVENT_TOPIC, payload }), 10_000, () => 'the routing job did not finish');
    const rows = await t.db.admin.query(`SELECT user_id, event_type, title FROM core.notifications WHERE org_id = $1 AND event_id = $2`, [orgId, event.id]);
    expect(rows.rows).toEqual([{ user_id: member.id, event_type: 'member.role_changed', title: 'Your role in Hung Redis Co changed' }]);
    const inbox = await t.http.get('/v1/me/notifications').set(member.auth).expect(200);
    expect(inbox.body.items[0]).toMatchObject({ orgId, eventType: 'member.role_changed', readAt: null });
  });
});
