import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { DatabaseService } from '../../src/platform/database/database.service.js';
import { PrivilegedDatabase } from '../../src/platform/database/privileged.service.js';
import { DEFAULT_JOB_MAX_ATTEMPTS, enqueue, JobRegistry, retryDelaySeconds } from '../../src/platform/queue/jobs.js';
import { claimDue, markDead } from '../../src/platform/queue/outbox.repository.js';
import { OutboxRelay } from '../../src/platform/queue/outbox-relay.service.js';
import { Metrics } from '../../src/platform/observability/metrics.js';
import { POSTHOG_ERASURE_JOB, POSTHOG_ERASURE_MAX_ATTEMPTS, PostHogForwarder } from '../../src/modules/analytics/posthog.forwarder.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { startPostHogDouble, type PostHogDouble } from '../support/doubles/posthog-double.js';
import { testKeys } from '../integrations/keys.js';

const service = { kind: 'service', name: 'outbox-dead-test' } as const;
const meta = { requestId: 'outbox-dead-test' };

/**
 * A job refused for good is tried as many times as its topic allows (JobRegistry.register's maxAttempts), then it is dead:
 * never relayed again, its error and payload kept for an operator, counted by omnizen_outbox_dead, out of the depth and lag.
 * Attempts are driven here by making each backoff pass (available_at moved to now), never by waiting.
 */
describe('dead jobs of the outbox (in-process)', () => {
  let t: TestApp;
  let orgId: string;
  let relay: OutboxRelay;
  let registry: JobRegistry;
  let posthog: PostHogDouble;

  beforeAll(async () => {
    posthog = await startPostHogDouble();
    // the secret box seals the payloads of personal-data topics (a PostHog erasure's)
    t = await createTestApp({ REDIS_URL: undefined, SECRETS_KEYS: testKeys('k1').env, ...posthog.env });
    const userId = randomUUID();
    await t.db.admin.query(`INSERT INTO core."User" (id, email) VALUES ($1, $2)`, [userId, `${userId}@example.test`]);
    orgId = (await t.db.admin.query(`INSERT INTO core.organizations (name, owner_user_id) VALUES ('Dead Jobs Org', $1) RETURNING id`, [userId])).rows[0].id;
    await t.db.admin.query(`INSERT INTO core.memberships (org_id, user_id, role) VALUES ($1, $2, 'owner')`, [orgId, userId]);
    relay = t.app.get(OutboxRelay);
    registry = t.app.get(JobRegistry);
  });
  afterAll(async () => {
    await t?.close();
    await posthog?.close();
  });

  const enqueueCommitted = (topic: string, payload: Record<string, unknown>) =>
    t.app.get(DatabaseService).tenant(service, orgId, meta, (tx) => enqueue(tx, topic, payload));
  const row = async (topic: string) => (await t.db.admin.query(
    `SELECT attempts, tries, last_error, payload, processed_at IS NOT NULL AS processed, dead_at IS NOT NULL AS dead, available_at > now() AS later
     FROM core.outbox WHERE topic = $1`, [topic])).rows[0];
  /** its backoff has passed (moved here instead of waiting) */
  const due = (topic: string) => t.db.admin.query(`UPDATE core.outbox SET available_at = now() WHERE topic = $1 AND processed_at IS NULL`, [topic]);
  /** as if it had been claimed and tried `tries` times already, the last one failing with `error` */
  const triedAlready = (topic: string, tries: number, error: string) => t.db.admin.query(
    `UPDATE core.outbox SET attempts = $2, tries = $2, last_error = $3, first_due_at = now() - interval '3 days', available_at = now() WHERE topic = $1`, [topic, tries, error]);
  async function scrape(): Promise<string> {
    return t.app.get(Metrics).scrape();
  }
  const deadOf = (text: string, topic: string) => Number(text.match(new RegExp(`^omnizen_outbox_dead\\{topic="${topic.replace('.', '\\.')}"\\} (\\S+)$`, 'm'))?.[1] ?? 0);
  const gauge = (text: string, name: string) => Number(text.match(new RegExp(`^${name} (\\S+)$`, 'm'))?.[1]);

  it('tries a refused job as often as its topic allows, then gives it up: never run again, its error and payload kept, counted, out of the lag', async () => {
    let calls = 0;
    registry.register('test.refused', async () => {
      calls += 1;
      throw new Error('the key was revoked');
    }, { maxAttempts: 3 });
    await enqueueCommitted('test.refused', { userId: 'u-1' });
    await t.db.admin.query(`UPDATE core.outbox SET available_at = now() - interval '10 minutes' WHERE topic = 'test.refused'`);
    for (let attempt = 1; attempt <= 2; attempt++) {
      await relay.drain();
      expect(await row('test.refused')).toMatchObject({ attempts: attempt, tries: attempt, last_error: 'the key was revoked', processed: false, dead: false, later: true });
      await due('test.refused');
    }
    // failing, it is lag; not dead yet
    let metrics = await scrape();
    expect(gauge(metrics, 'omnizen_outbox_lag_seconds')).toBeGreaterThanOrEqual(600);
    expect(deadOf(metrics, 'test.refused')).toBe(0);

    // the third and last attempt fails: dead
    await relay.drain();
    expect(calls).toBe(3);
    expect(await row('test.refused')).toMatchObject({
      attempts: 3, tries: 3, last_error: 'the key was revoked', payload: { userId: 'u-1' }, processed: true, dead: true,
    });
    metrics = await scrape();
    expect(deadOf(metrics, 'test.refused')).toBe(1);
    // nothing else waits: a dead job is neither depth nor lag
    expect(gauge(metrics, 'omnizen_outbox_lag_seconds')).toBe(0);
    expect(gauge(metrics, 'omnizen_outbox_depth')).toBe(0);

    // never relayed again, however long one waits
    await t.db.admin.query(`UPDATE core.outbox SET available_at = now() - interval '30 days' WHERE topic = 'test.refused'`);
    expect(await relay.drain()).toBe(0);
    expect(calls).toBe(3);

    // an operator's retry (alerts.yml, OmniZenJobsDead) runs it again from its first attempt; done, it is no longer counted
    registry.register('test.refused_mended', async () => undefined);
    await t.db.admin.query(`UPDATE core.outbox SET topic = 'test.refused_mended', processed_at = NULL, dead_at = NULL, first_due_at = NULL,
      attempts = 0, tries = 0, available_at = now() WHERE topic = 'test.refused'`);
    await relay.drain();
    expect(await row('test.refused_mended')).toMatchObject({ attempts: 1, tries: 1, last_error: null, processed: true, dead: false });
    expect(deadOf(await scrape(), 'test.refused')).toBe(0);
  });

  it('gives a topic registered without a cap DEFAULT_JOB_MAX_ATTEMPTS attempts', async () => {
    expect(registry.maxAttempts('test.uncapped')).toBe(DEFAULT_JOB_MAX_ATTEMPTS);
    registry.register('test.uncapped', async () => {
      throw new Error('still refused');
    });
    await enqueueCommitted('test.uncapped', {});
    await triedAlready('test.uncapped', DEFAULT_JOB_MAX_ATTEMPTS - 2, 'refused before');
    await relay.drain();
    expect(await row('test.uncapped')).toMatchObject({ tries: DEFAULT_JOB_MAX_ATTEMPTS - 1, last_error: 'still refused', dead: false, later: true });
    await due('test.uncapped');
    await relay.drain();
    expect(await row('test.uncapped')).toMatchObject({ tries: DEFAULT_JOB_MAX_ATTEMPTS, last_error: 'still refused', processed: true, dead: true });
    expect(deadOf(await scrape(), 'test.uncapped')).toBe(1);
  });

  it('gives up, without running it, a job claimed past its cap whose last failure was never recorded (the process died)', async () => {
    let calls = 0;
    registry.register('test.crashing', async () => void (calls += 1), { maxAttempts: 2 });
    await enqueueCommitted('test.crashing', { n: 1 });
    await triedAlready('test.crashing', 2, 'the failure recorded before');
    await relay.drain();
    expect(calls).toBe(0);
    expect(await row('test.crashing')).toMatchObject({ attempts: 3, tries: 2, last_error: 'the failure recorded before', processed: true, dead: true });
  });

  it('gives up a PostHog erasure PostHog keeps refusing after about three days of hourly retries, its distinct ids kept sealed for a retry', async () => {
    expect(registry.maxAttempts(POSTHOG_ERASURE_JOB)).toBe(POSTHOG_ERASURE_MAX_ATTEMPTS);
    // the backoffs between its tries (the twelve first take about 68 minutes, every later one an hour) add up to about
    // three days, as its documentation says
    const backedOff = Array.from({ length: POSTHOG_ERASURE_MAX_ATTEMPTS - 1 }, (_, i) => retryDelaySeconds(i + 1)).reduce((a, b) => a + b, 0);
    expect(backedOff / 86_400).toBeGreaterThan(2.75);
    expect(backedOff / 86_400).toBeLessThan(3.5);
    const distinctId = randomUUID();
    await t.app.get(PrivilegedDatabase).run('privacy.erasure', (db) => t.app.get(PostHogForwarder).erasePersons({ db, orgId }, [distinctId]));
    posthog.refuseDeletions = true;
    try {
      await triedAlready(POSTHOG_ERASURE_JOB, POSTHOG_ERASURE_MAX_ATTEMPTS - 2, 'PostHog refused the deletion of persons: HTTP 503');
      await relay.drain();
      expect(await row(POSTHOG_ERASURE_JOB)).toMatchObject({ tries: POSTHOG_ERASURE_MAX_ATTEMPTS - 1, dead: false, later: true });
      await due(POSTHOG_ERASURE_JOB);
      await relay.drain();
      // dead: its distinct ids kept sealed, never in the clear
      const sealed = { $sealed: { ciphertext: expect.any(String), iv: expect.any(String), tag: expect.any(String), kid: 'k1' } };
      expect(await row(POSTHOG_ERASURE_JOB)).toMatchObject({
        tries: POSTHOG_ERASURE_MAX_ATTEMPTS, last_error: 'PostHog refused the deletion of persons: HTTP 503', payload: sealed, processed: true, dead: true,
      });
      expect(JSON.stringify((await row(POSTHOG_ERASURE_JOB)).payload)).not.toContain(distinctId);
      const tries = posthog.deletions.filter((d) => d.body.distinct_ids?.includes(distinctId)).length;
      expect(tries).toBe(2);
      expect(deadOf(await scrape(), POSTHOG_ERASURE_JOB)).toBe(1);
      await t.db.admin.query(`UPDATE core.outbox SET available_at = now() - interval '30 days' WHERE topic = $1`, [POSTHOG_ERASURE_JOB]);
      await relay.drain();
      expect(posthog.deletions.filter((d) => d.body.distinct_ids?.includes(distinctId)).length).toBe(tries);
    } finally {
      posthog.refuseDeletions = false;
    }
    // PostHog mended, an operator retries it (OmniZenJobsDead's UPDATE): its sealed payload still says what to delete
    await t.db.admin.query(`UPDATE core.outbox SET processed_at = NULL, dead_at = NULL, first_due_at = NULL, attempts = 0, tries = 0, available_at = now()
      WHERE topic = $1`, [POSTHOG_ERASURE_JOB]);
    await relay.drain();
    expect(posthog.deletions.filter((d) => d.body.distinct_ids?.includes(distinctId)).map((d) => [d.body, d.answered]).slice(2))
      .toEqual([[{ distinct_ids: [distinctId], delete_events: true }, 200]]);
    // done: emptied
    expect(await row(POSTHOG_ERASURE_JOB)).toMatchObject({ tries: 1, last_error: null, payload: {}, processed: true, dead: false });
  });

  it('in Bull\'s worker: the last failure of a hand-off backs the row off as the relay does (by its tries, not its claims), and its last try makes it dead', async () => {
    registry.register('test.worker_refused', async () => undefined, { maxAttempts: 20 });
    await enqueueCommitted('test.worker_refused', {});
    const job = { id: String((await t.db.admin.query(`SELECT id FROM core.outbox WHERE topic = 'test.worker_refused'`)).rows[0].id), orgId, topic: 'test.worker_refused', payload: {} };
    /** When the row is due, in seconds from the database's clock as `fail` began and as it ended (no wall-clock bound). */
    const dueAfter = async (fail: () => Promise<unknown>): Promise<{ fromStart: number; fromEnd: number }> => {
      // as text: a JS Date keeps milliseconds only, and a start rounded down lands before the UPDATE's now()
      const at = async () => (await t.db.admin.query(`SELECT clock_timestamp()::text AS t`)).rows[0].t as string;
      const start = await at();
      await fail();
      const end = await at();
      const { rows: [r] } = await t.db.admin.query(`SELECT extract(epoch FROM available_at - $1::timestamptz)::float8 AS s, extract(epoch FROM available_at - $2::timestamptz)::float8 AS e
        FROM core.outbox WHERE topic = 'test.worker_refused'`, [start, end]);
      return { fromStart: r.s, fromEnd: r.e };
    };
    // claimed 60 times (it waited in Bull), tried 4: a failure Bull retries leaves the row's time as it is
    await t.db.admin.query(`UPDATE core.outbox SET attempts = 60, tries = 4, available_at = now() + interval '5 minutes' WHERE topic = 'test.worker_refused'`);
    expect((await dueAfter(() => relay.recordWorkerFailure(job, new Error('refused'), 4, 5))).fromStart).toBeLessThanOrEqual(300);
    // Bull's last attempt of this hand-off, the fifth try: due again 16 s later (the relay's backoff after five tries),
    // no sooner than its claim runs out (not an hour later, as its 60 claims would say)
    await t.db.admin.query(`UPDATE core.outbox SET tries = 5, available_at = now() WHERE topic = 'test.worker_refused'`);
    const fifth = await dueAfter(() => relay.recordWorkerFailure(job, new Error('refused'), 5, 5));
    expect(fifth.fromStart).toBeGreaterThanOrEqual(16);
    expect(fifth.fromEnd).toBeLessThanOrEqual(16);
    // tried 19 times: an hour
    await t.db.admin.query(`UPDATE core.outbox SET tries = 19 WHERE topic = 'test.worker_refused'`);
    expect((await dueAfter(() => relay.recordWorkerFailure(job, new Error('refused'), 6, 5))).fromStart).toBeGreaterThanOrEqual(3600);
    expect(await row('test.worker_refused')).toMatchObject({ attempts: 60, tries: 19, last_error: 'refused', processed: false, dead: false });
    // the 20th and last try fails, though Bull would retry it: dead (answered: the worker then completes the Bull job)
    await t.db.admin.query(`UPDATE core.outbox SET tries = 20 WHERE topic = 'test.worker_refused'`);
    expect(await relay.recordWorkerFailure(job, new Error('refused for good'), 2, 5)).toBe(true);
    expect(await row('test.worker_refused')).toMatchObject({ attempts: 60, tries: 20, last_error: 'refused for good', processed: true, dead: true });
    expect(deadOf(await scrape(), 'test.worker_refused')).toBe(1);
  });

  it('never gives up a last try that succeeded but whose done the database did not record: no failure, recorded done at the next pass', async () => {
    let calls = 0;
    registry.register('test.done_unrecorded', async () => void (calls += 1), { maxAttempts: 2 });
    await enqueueCommitted('test.done_unrecorded', { n: 1 });
    await triedAlready('test.done_unrecorded', 1, 'refused before');
    // its second and last try succeeds; recording it done fails (a database blip)
    const markDone = jest.spyOn(relay, 'markDone').mockRejectedValueOnce(new Error('the database did not answer'));
    try {
      await relay.drain();
    } finally {
      markDone.mockRestore();
    }
    expect(calls).toBe(1);
    // not a failed try: neither dead nor backed off, its claim stands, its last error the job's own
    expect(await row('test.done_unrecorded')).toMatchObject({ attempts: 2, tries: 2, last_error: 'refused before', processed: false, dead: false, later: true });
    expect(deadOf(await scrape(), 'test.done_unrecorded')).toBe(0);
    // the next pass records it done, without running it again
    await relay.drain();
    expect(calls).toBe(1);
    expect(await row('test.done_unrecorded')).toMatchObject({ attempts: 2, tries: 2, last_error: null, processed: true, dead: false });
    expect(deadOf(await scrape(), 'test.done_unrecorded')).toBe(0);
  });

  it('records done a job whose last try succeeded after another relay, claiming it past that try, had given it up (a success wins)', async () => {
    let started!: () => void;
    const running = new Promise<void>((resolve) => (started = resolve));
    let finish!: () => void;
    const finishing = new Promise<void>((resolve) => (finish = resolve));
    registry.register('test.slow_last_try', async () => {
      started();
      await finishing;
    }, { maxAttempts: 2 });
    await enqueueCommitted('test.slow_last_try', { n: 1 });
    await triedAlready('test.slow_last_try', 1, 'refused before');
    // this relay runs its second and last try, which stalls past its claim
    const relayed = relay.drain();
    try {
      await running;
      // its claim ran out (moved here instead of waiting): another instance claims it after its last try, and gives it up
      await t.db.admin.query(`UPDATE core.outbox SET available_at = now() WHERE topic = 'test.slow_last_try'`);
      const privileged = t.app.get(PrivilegedDatabase);
      const [other] = (await privileged.run('jobs.relay', (db) => claimDue(db, 100, 300))).filter((j) => j.topic === 'test.slow_last_try');
      expect(await privileged.run('jobs.relay', (db) => markDead(db, other, null))).toBe(true);
      expect(await row('test.slow_last_try')).toMatchObject({ attempts: 3, tries: 2, processed: true, dead: true });
      expect(deadOf(await scrape(), 'test.slow_last_try')).toBe(1);
    } finally {
      // the last try succeeds after all
      finish();
      await relayed;
    }
    // done, not dead, its old error gone
    expect(await row('test.slow_last_try')).toMatchObject({ attempts: 3, tries: 2, last_error: null, processed: true, dead: false });
    expect(deadOf(await scrape(), 'test.slow_last_try')).toBe(0);
  });
});
