import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Job as BullJob, Queue } from 'bull';
import { JobRegistry } from '../../src/platform/queue/jobs.js';
import { JOBS_QUEUE_TOKEN, OutboxRelay } from '../../src/platform/queue/outbox-relay.service.js';
import { RetentionJob } from '../../src/modules/privacy/retention.job.js';
import { createTestApp, hasRedis, type TestApp } from '../support/app.js';
import { addMember, createOrg, registerUser, verifyEmailOf } from '../support/factories.js';

const PASSWORD = 'correct horse battery';

/**
 * A job's copy in Bull holds its payload (an invitee's e-mail); a failed one stays in Bull's failed set for ever. When its
 * outbox row goes, the copy goes too: at once after an erasure that deleted the row, and at the retention run for a row
 * gone otherwise (an organization's deletion, ON DELETE CASCADE; a removal that failed). Bull's backoff between its retries
 * is not waited for: the delayed job is promoted.
 */
(hasRedis ? describe : describe.skip)('copies in the jobs queue of deleted outbox rows (REDIS_URL set)', () => {
  let t: TestApp;
  let relay: OutboxRelay;
  let queue: Queue;
  const hurried = new Set<string>();

  beforeAll(async () => {
    t = await createTestApp({ AUTH_COOKIES: 'false', REDIS_URL: process.env.REDIS_URL });
    relay = t.app.get(OutboxRelay);
    queue = t.app.get<Queue>(JOBS_QUEUE_TOKEN);
    t.app.get(JobRegistry).register('test.invite_mail', async () => {
      throw new Error('the mail provider refuses it');
    }, { maxAttempts: 50 });
    queue.on('failed', (job: BullJob) => {
      if (!hurried.has(String(job.id))) return;
      void job.isDelayed().then((delayed) => (delayed ? job.promote() : undefined)).catch(() => undefined);
    });
  });
  afterAll(() => t?.close());

  /** an outbox job naming `email`, committed, relayed to Bull and failed there five times: left in Bull's failed set */
  const failedInBull = async (orgId: string, email: string): Promise<string> => {
    const id = String((await t.db.admin.query(`INSERT INTO core.outbox (org_id, topic, payload) VALUES ($1, 'test.invite_mail', $2) RETURNING id`,
      [orgId, JSON.stringify({ email })])).rows[0].id);
    const jobId = `outbox-${id}`;
    hurried.add(jobId);
    const fifth = new Promise<void>((resolve) => {
      let seen = 0;
      const onFailed = (job: BullJob) => {
        if (String(job.id) === jobId && ++seen === 5) {
          queue.off('failed', onFailed);
          resolve();
        }
      };
      queue.on('failed', onFailed);
    });
    await relay.drain();
    await fifth;
    expect(await inRedis(id)).toEqual({ state: 'failed', hash: 1 });
    return id;
  };
  /** what Redis holds of the job's Bull copy: its state, and whether its hash (with the payload) is still there */
  const inRedis = async (id: string) => {
    const job = await queue.getJob(`outbox-${id}`);
    return { state: job ? await job.getState() : null, hash: await queue.client.exists(queue.toKey(`outbox-${id}`)) };
  };
  const outboxRows = async (ids: string[]) => (await t.db.admin.query(`SELECT id::text FROM core.outbox WHERE id::text = ANY($1) ORDER BY id`, [ids])).rows.map((r) => r.id);

  it('an erasure that deletes a job naming the person removes its copy from Bull\'s failed set; another person\'s stays', async () => {
    const owner = await registerUser(t, 'queue-owner');
    const orgId = await createOrg(t, owner, 'Queue Copies Ltd');
    const p = await verifyEmailOf(t, await registerUser(t, 'queue-invitee'));
    // a member: the erasure looks for the jobs naming them in their organizations only
    await addMember(t, orgId, p, 'member');
    const theirs = await failedInBull(orgId, p.email);
    const someoneElses = await failedInBull(orgId, owner.email);

    const res = await t.http.delete('/v1/me').set(p.auth).send({ password: PASSWORD }).expect(200);
    expect(res.body).toMatchObject({ userId: p.id, deletedOrganizationIds: [p.personalOrgId] });
    expect(await outboxRows([theirs, someoneElses])).toEqual([someoneElses]);
    expect(await inRedis(theirs)).toEqual({ state: null, hash: 0 });
    expect(await inRedis(someoneElses)).toEqual({ state: 'failed', hash: 1 });
  });

  it('the retention run removes the Bull copies of jobs whose outbox row is gone, and keeps those whose row is there', async () => {
    const owner = await registerUser(t, 'sweep-owner');
    const orgId = await createOrg(t, owner, 'Swept Ltd');
    const gone = await failedInBull(orgId, 'gone-invitee@example.test');
    const kept = await failedInBull(orgId, 'kept-invitee@example.test');
    // the row goes without the queue hearing of it (as an organization's deletion cascades to its outbox)
    await t.db.admin.query(`DELETE FROM core.outbox WHERE id = $1`, [gone]);

    await t.app.get(RetentionJob).run();
    expect(await inRedis(gone)).toEqual({ state: null, hash: 0 });
    expect(await inRedis(kept)).toEqual({ state: 'failed', hash: 1 });
    expect(await outboxRows([gone, kept])).toEqual([kept]);
  });
});
