import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import Bull, { type Job as BullJob, type Queue } from 'bull';
import { JOBS_QUEUE, JOBS_QUEUE_TOKEN, OutboxRelay } from '../../src/platform/queue/outbox-relay.service.js';
import { POSTHOG_ERASURE_JOB } from '../../src/modules/analytics/posthog.forwarder.js';
import { PrivilegedDatabase } from '../../src/platform/database/privileged.service.js';
import { AuditService } from '../../src/modules/audit/audit.service.js';
import { secretBoxFromConfig } from '../../src/modules/integrations/integrations.module.js';
import { resealJobPayloads } from '../../src/modules/privacy/job-payload-rotation.js';
import { createTestApp, hasRedis, startApp, type TestApp } from '../support/app.js';
import { until } from '../support/throwaway-servers.js';
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

  /** Everything Bull keeps in Redis under `prefix` (its keys, and what each holds), as one text to look for a needle in. */
  const bullContents = async (prefix = t.config.redisPrefix): Promise<string> => {
    const client = queue.client;
    const keys: string[] = [];
    let cursor = '0';
    do {
      const [next, batch] = await client.scan(cursor, 'MATCH', `${prefix}:bull:*`, 'COUNT', 1000);
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

  // ---------------------------------------------------------------- what an earlier version left (payloads in the clear)
  /** A PostHog erasure's outbox row as the earlier version wrote it: its distinct ids in the clear; `state` its columns. */
  const oldRow = async (orgId: string, distinctIds: string[], state: string): Promise<string> => {
    const { rows: [r] } = await t.db.admin.query(`INSERT INTO core.outbox (org_id, topic, payload) VALUES ($1, $2, $3) RETURNING id::text`,
      [orgId, POSTHOG_ERASURE_JOB, { distinctIds }]);
    await t.db.admin.query(`UPDATE core.outbox SET ${state} WHERE id = $1`, [r.id]);
    return r.id;
  };
  /** Its Bull copy as the earlier relay queued it: the payload in the data. */
  const oldData = (id: string, orgId: string, distinctIds: string[]) => ({ id, orgId, topic: POSTHOG_ERASURE_JOB, payload: { distinctIds } });
  const OLD_OPTIONS = { attempts: 5, backoff: { type: 'exponential', delay: 1000 }, removeOnComplete: 1000 };
  const inOutbox = async (needle: string) => (await t.db.admin.query(`SELECT count(*)::int AS n FROM core.outbox WHERE strpos(lower(payload::text), $1) > 0`, [needle])).rows[0].n;

  it('copies an earlier version queued with the payload (completed, failed, waiting) are blanked at boot, kept under their ids; the waiting one deletes its persons; with secrets:rotate no address is left in core.outbox or Redis', async () => {
    const orgId = (await registerUser(t, 'ph-old')).personalOrgId;
    const address = `old-${randomUUID()}@example.test`;
    const ids = (what: string) => [`${what}-person`, `org:${orgId}:user:${address}`];
    // the outbox as the earlier version left it (a done row's payload emptied by the migration), and Bull under a prefix
    // of its own, filled before this version's instance boots on it
    const done = await oldRow(orgId, [], 'processed_at = now(), payload = \'{}\'');
    const failed = await oldRow(orgId, ids('failed'), `attempts = 1, tries = 5, available_at = now() + interval '1 hour'`);
    const waiting = await oldRow(orgId, ids('waiting'), `attempts = 1, available_at = now() + interval '1 hour'`);
    const dead = await oldRow(orgId, ids('dead'), 'processed_at = now(), dead_at = now()');
    const prefix = `${t.config.redisPrefix}-earlier`;
    const earlier = new Bull(JOBS_QUEUE, process.env.REDIS_URL!, { prefix: `${prefix}:bull` });
    try {
      await earlier.add(POSTHOG_ERASURE_JOB, oldData(done, orgId, ids('done')), { jobId: `outbox-${done}`, ...OLD_OPTIONS });
      await (await earlier.getNextJob())!.moveToCompleted(undefined, true, true);
      await earlier.add(POSTHOG_ERASURE_JOB, oldData(failed, orgId, ids('failed')), { jobId: `outbox-${failed}`, ...OLD_OPTIONS, attempts: 1 });
      await (await earlier.getNextJob())!.moveToFailed({ message: 'PostHog refused the deletion of persons: HTTP 503' }, true);
      await earlier.add(POSTHOG_ERASURE_JOB, oldData(waiting, orgId, ids('waiting')), { jobId: `outbox-${waiting}`, ...OLD_OPTIONS });
      const states = await Promise.all([done, failed, waiting].map(async (id) => (await earlier.getJob(`outbox-${id}`))!.getState()));
      expect(states).toEqual(['completed', 'failed', 'waiting']);
    } finally {
      await earlier.close();
    }
    expect((await bullContents(prefix)).includes(address)).toBe(true);

    // this version boots on that queue: its sweep blanks the copies; its worker runs the waiting one from its row
    const booted = await startApp({ ...t.config, redisPrefix: prefix });
    try {
      const bull = booted.app.get<Queue>(JOBS_QUEUE_TOKEN);
      await booted.app.get(OutboxRelay).bootSweep;
      await until('the waiting job has completed in Bull', async () => (await (await bull.getJob(`outbox-${waiting}`))?.getState()) === 'completed');
      const deleted = posthog.deletions.filter((d) => d.body.distinct_ids?.includes(`waiting-person`) && d.body.distinct_ids.includes(ids('waiting')[1]));
      expect(deleted.map((d) => [d.body.distinct_ids, d.answered])).toEqual([[ids('waiting'), 200]]);
      // each copy is still there under its id (a row relayed again is queued once), without its payload
      for (const id of [done, failed, waiting]) {
        expect((await bull.getJob(`outbox-${id}`))?.data).toEqual({ id, orgId, topic: POSTHOG_ERASURE_JOB, payload: {} });
      }
    } finally {
      await booted.app.close();
    }

    // the rows still to run or retry: sealed by secrets:rotate; the one done: emptied by its worker
    const rotated = await resealJobPayloads(t.app.get(PrivilegedDatabase), secretBoxFromConfig(t.config), t.app.get(AuditService));
    expect(rotated).toMatchObject({ resealed: 2, failed: [], remaining: 0 });
    const rows = (await t.db.admin.query(`SELECT id::text, payload ? '$sealed' AS sealed, payload = '{}' AS empty, processed_at IS NOT NULL AS processed
      FROM core.outbox WHERE id = ANY($1::bigint[]) ORDER BY id`, [[done, failed, waiting, dead]])).rows;
    expect(rows).toEqual([
      { id: done, sealed: false, empty: true, processed: true },
      { id: failed, sealed: true, empty: false, processed: false },
      { id: waiting, sealed: false, empty: true, processed: true },
      { id: dead, sealed: true, empty: false, processed: true },
    ]);
    expect([(await bullContents(prefix)).includes(address), await inOutbox(address)]).toEqual([false, 0]);
  });

  it('a copy with its payload that this version meets later (an earlier instance still relaying, during a rolling deploy) is blanked: by the worker before it runs it, by the relay when it claims its row again', async () => {
    const orgId = (await registerUser(t, 'ph-rolling')).personalOrgId;
    const address = `rolling-${randomUUID()}@example.test`;
    const ids = [`rolling-person`, `org:${orgId}:user:${address}`];
    await t.app.get(OutboxRelay).bootSweep;
    // queued by an earlier instance, with its payload: this version's worker runs it, reading the row
    const id = await oldRow(orgId, ids, `attempts = 1, available_at = now() + interval '1 hour'`);
    const jobId = `outbox-${id}`;
    const completed = next('completed', jobId);
    await queue.add(POSTHOG_ERASURE_JOB, oldData(id, orgId, ids), { jobId, ...OLD_OPTIONS });
    const copy = await completed;
    expect(posthog.deletions.filter((d) => d.body.distinct_ids?.includes(ids[1])).map((d) => [d.body.distinct_ids, d.answered])).toEqual([[ids, 200]]);
    expect((await queue.getJob(jobId))?.data).toEqual({ id, orgId, topic: POSTHOG_ERASURE_JOB, payload: {} });
    expect([(await bullContents()).includes(address), await inOutbox(address)]).toEqual([false, 0]);

    // the same copy completed by an earlier instance whose record of it did not land: the row still waits, in the clear,
    // and the copy holds the payload; the relay claims the row again, meets the copy, records it done and blanks it
    await t.db.admin.query(`UPDATE core.outbox SET processed_at = NULL, payload = $2, available_at = now() WHERE id = $1`, [id, { distinctIds: ids }]);
    await copy.update(oldData(id, orgId, ids));
    expect((await bullContents()).includes(address)).toBe(true);
    await relay.drain();
    expect((await queue.getJob(jobId))?.data).toEqual({ id, orgId, topic: POSTHOG_ERASURE_JOB, payload: {} });
    expect((await t.db.admin.query(`SELECT payload, processed_at IS NOT NULL AS done FROM core.outbox WHERE id = $1`, [id])).rows).toEqual([{ payload: {}, done: true }]);
    expect([(await bullContents()).includes(address), await inOutbox(address)]).toEqual([false, 0]);
  });
});
