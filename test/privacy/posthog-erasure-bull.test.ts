import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Job as BullJob, Queue } from 'bull';
import { JOBS_QUEUE_TOKEN, OutboxRelay } from '../../src/platform/queue/outbox-relay.service.js';
import { POSTHOG_ERASURE_JOB } from '../../src/modules/analytics/posthog.forwarder.js';
import { createTestApp, hasRedis, type TestApp } from '../support/app.js';
import { registerUser, verifyEmailOf } from '../support/factories.js';
import { startPostHogDouble, type PostHogDouble } from '../support/doubles/posthog-double.js';
import { testKeys } from '../integrations/keys.js';

const PASSWORD = 'correct horse battery';

/**
 * A person's erasure writes a job naming the ids PostHog knows them by, their address among them (`org:<org>:user:<e-mail>`).
 * Its payload is personal data (JobOptions.personalData): sealed in core.outbox, emptied once done, never in Bull's copy
 * (the worker reads it from the row). Bull's retry is promoted at once: nothing waits on the wall clock.
 */
(hasRedis ? describe : describe.skip)('a PostHog erasure through Bull (REDIS_URL set): the erased address neither in core.outbox nor in Redis', () => {
  let t: TestApp;
  let posthog: PostHogDouble;
  let relay: OutboxRelay;
  let queue: Queue;

  beforeAll(async () => {
    posthog = await startPostHogDouble();
    t = await createTestApp({ REDIS_URL: process.env.REDIS_URL, SECRETS_KEYS: testKeys('k1').env, ...posthog.env });
    relay = t.app.get(OutboxRelay);
    queue = t.app.get<Queue>(JOBS_QUEUE_TOKEN);
  });
  afterAll(async () => {
    await t?.close();
    await posthog?.close();
  });

  /** Everything Bull keeps in Redis (its keys, and what each holds), as one text to look for a needle in. */
  const bullContents = async (): Promise<string> => {
    const client = queue.client;
    const keys: string[] = [];
    let cursor = '0';
    do {
      const [next, batch] = await client.scan(cursor, 'MATCH', `${t.config.redisPrefix}:bull:*`, 'COUNT', 1000);
      cursor = next;
      keys.push(...batch);
    } while (cursor !== '0');
    const values = await Promise.all(keys.map(async (key) => {
      const type = await client.type(key);
      if (type === 'string') return (await client.get(key)) ?? '';
      if (type === 'hash') return JSON.stringify(await client.hgetall(key));
      if (type === 'list') return JSON.stringify(await client.lrange(key, 0, -1));
      if (type === 'set') return JSON.stringify(await client.smembers(key));
      if (type === 'zset') return JSON.stringify(await client.zrange(key, 0, -1));
      return `${key}: ${type}`;
    }));
    return [...keys, ...values].join('\n').toLowerCase();
  };
  /** Bull's next failure or completion of job `jobId`: resolves with the job if it is `event`, rejects otherwise. */
  const next = (event: 'failed' | 'completed', jobId: string) => new Promise<BullJob>((resolve, reject) => {
    const settle = (what: 'failed' | 'completed') => (job: BullJob) => {
      if (String(job.id) !== jobId) return;
      queue.off('failed', onFailed);
      queue.off('completed', onCompleted);
      if (what === event) resolve(job);
      else reject(new Error(`job ${jobId} ${what}, expected ${event}`));
    };
    const onFailed = settle('failed');
    const onCompleted = settle('completed');
    queue.on('failed', onFailed);
    queue.on('completed', onCompleted);
  });

  it('keeps their address sealed while the job waits for a retry, deletes their persons, then leaves it neither in the row nor in Redis', async () => {
    const p = await verifyEmailOf(t, await registerUser(t, 'ph-bull'));
    const email = p.email.toLowerCase();
    posthog.refuseDeletions = true;
    await t.http.delete('/v1/me').set(p.auth).send({ password: PASSWORD }).expect(200);
    const job = async () => (await t.db.admin.query(`SELECT id, payload, processed_at IS NOT NULL AS done FROM core.outbox
      WHERE topic = $1 AND org_id = $2`, [POSTHOG_ERASURE_JOB, p.personalOrgId])).rows;
    const [{ id, payload: written }] = await job();
    const jobId = `outbox-${id}`;
    expect(JSON.stringify(written).toLowerCase()).not.toContain(email);

    // its hour has passed (moved here instead of waiting): relayed to Bull, where PostHog refuses it
    await t.db.admin.query(`UPDATE core.outbox SET available_at = now() WHERE id = $1`, [id]);
    const failed = next('failed', jobId);
    await relay.drain();
    const refused = await failed;
    // waiting for Bull's retry: Redis holds the job (the scan finds its id and organization), none of its payload, not
    // even sealed: the worker reads that from the row
    const waiting = await bullContents();
    expect([waiting.includes(jobId), waiting.includes(p.personalOrgId)]).toEqual([true, true]);
    expect([waiting.includes(email), waiting.includes(p.id), waiting.includes(written.$sealed.ciphertext.toLowerCase())]).toEqual([false, false, false]);
    expect(await job()).toEqual([{ id, payload: written, done: false }]);

    // PostHog is back; Bull's retry (promoted instead of waiting for its backoff) has what it needs
    posthog.refuseDeletions = false;
    const completed = next('completed', jobId);
    await refused.promote();
    await completed;
    const mine = posthog.deletions.filter((d) => d.body.distinct_ids?.includes(p.id));
    expect(mine.map((d) => d.answered)).toEqual([503, 200]);
    expect(mine[1].body.distinct_ids).toEqual(expect.arrayContaining([p.id, `org:${p.personalOrgId}:user:${email}`]));
    expect(mine[1].body).toEqual(mine[0].body);

    // done: the row's payload emptied; Bull keeps the completed job (a row relayed twice is queued once), without its
    // payload: their address, and their id, nowhere in Bull's keys
    expect(await job()).toEqual([{ id, payload: {}, done: true }]);
    expect((await queue.getJob(jobId))?.data).toEqual({ id, orgId: p.personalOrgId, topic: POSTHOG_ERASURE_JOB, payload: {} });
    const after = await bullContents();
    expect([after.includes(email), after.includes(p.id)]).toEqual([false, false]);
    expect((await t.db.admin.query(`SELECT count(*)::int AS n FROM core.outbox WHERE strpos(lower(payload::text), $1) > 0`, [email])).rows).toEqual([{ n: 0 }]);
  });
});
