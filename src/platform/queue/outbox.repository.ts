import type { Db } from '../database/sql.js';
import { jobPayload, SEALED_PAYLOAD_KEY, type Job } from './jobs.js';

/**
 * A claimed outbox row: the job, how many times it has been claimed (this time included: the claim's guard, it only grows)
 * and how many times its handler was started before this claim (`tries`: its topic's cap and the backoff compare it; a
 * claim of a job Bull still holds, or a hand-off Redis refused, is no try).
 */
export interface ClaimedJob extends Job {
  attempts: number;
  tries: number;
}

/**
 * Claims up to `limit` due rows for one relay pass: each becomes due again `claimSeconds` later,
 * so a row whose outcome is never recorded (the process died, Redis lost the job) is relayed again.
 * The first claim keeps when the row first became due (first_due_at): the lag is measured from it.
 * Committed at once: nothing holds a transaction open while the jobs are handed on.
 */
export async function claimDue(db: Db, limit: number, claimSeconds: number): Promise<ClaimedJob[]> {
  const rows = await db.$queryRaw<{ id: bigint; org_id: string; topic: string; payload: Record<string, unknown>; attempts: number; tries: number }[]>`
    UPDATE core.outbox o SET available_at = now() + make_interval(secs => ${claimSeconds}::double precision), attempts = o.attempts + 1,
      first_due_at = coalesce(o.first_due_at, o.available_at)
    FROM (SELECT org_id, id FROM core.outbox WHERE processed_at IS NULL AND available_at <= now()
          ORDER BY available_at, id LIMIT ${limit} FOR UPDATE SKIP LOCKED) due
    WHERE o.org_id = due.org_id AND o.id = due.id
    RETURNING o.id, o.org_id, o.topic, o.payload, o.attempts, o.tries`;
  return rows
    .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    .map((r) => ({ id: r.id.toString(), orgId: r.org_id, topic: r.topic, ...jobPayload(r.payload), attempts: r.attempts, tries: r.tries }));
}

/**
 * The jobs' handlers have finished: they are never relayed again (one statement for all). A dead one is done too (a
 * success wins): another relay gave it up, claimed past its cap, while its last try still ran here. The payload of one
 * that `personalData` says is personal data is emptied (`{}`) in the same statement: a done job is never run again.
 */
export async function markDone(db: Db, jobs: Job[], personalData: (job: Job) => boolean): Promise<void> {
  if (!jobs.length) return;
  const keys = jobs.map((j) => ({ org: j.orgId, id: j.id, empty: personalData(j) }));
  await db.$executeRaw`UPDATE core.outbox o SET processed_at = now(), last_error = NULL, dead_at = NULL,
      payload = CASE WHEN k.empty THEN '{}'::jsonb ELSE o.payload END
    FROM jsonb_to_recordset(${JSON.stringify(keys)}::jsonb) AS k(org uuid, id bigint, empty boolean)
    WHERE o.org_id = k.org AND o.id = k.id AND (o.processed_at IS NULL OR o.dead_at IS NOT NULL)`;
}

/**
 * The stored payload of a job not yet done (null when its row is done, dead or gone): Bull's worker reads a personal-data
 * topic's from its row (JobOptions.personalData: Bull's copy holds none).
 */
export async function pendingPayload(db: Db, job: Job): Promise<Record<string, unknown> | null> {
  const rows = await db.$queryRaw<{ payload: Record<string, unknown> }[]>`SELECT payload FROM core.outbox
    WHERE org_id = ${job.orgId}::uuid AND id = ${BigInt(job.id)} AND processed_at IS NULL`;
  return rows[0]?.payload ?? null;
}

/**
 * Records a job done, as markDone does, only if it was still to be done, answering whether it was: a handler that hands
 * its work on to a job of its own (written in the same transaction) does so only once, though its job is run again.
 */
export async function closeIfPending(db: Db, job: Job): Promise<boolean> {
  const n = await db.$executeRaw`UPDATE core.outbox SET processed_at = now(), last_error = NULL
    WHERE org_id = ${job.orgId}::uuid AND id = ${BigInt(job.id)} AND processed_at IS NULL`;
  return n > 0;
}

/** A job's tries so far (core.outbox.tries; null when its row is gone). */
export async function triesOf(db: Db, job: Job): Promise<number | null> {
  const rows = await db.$queryRaw<{ tries: number }[]>`SELECT tries FROM core.outbox WHERE org_id = ${job.orgId}::uuid AND id = ${BigInt(job.id)}`;
  return rows[0]?.tries ?? null;
}

/**
 * The relay starts the claimed job's handler in-process: one more try. Only under this claim (null when the row is no
 * longer this claim's, or done): answers its tries, this one included.
 */
export async function startTry(db: Db, job: ClaimedJob): Promise<number | null> {
  const rows = await db.$queryRaw<{ tries: number }[]>`UPDATE core.outbox SET tries = tries + 1
    WHERE org_id = ${job.orgId}::uuid AND id = ${BigInt(job.id)} AND attempts = ${job.attempts} AND processed_at IS NULL
    RETURNING tries`;
  return rows[0]?.tries ?? null;
}

/**
 * Bull's worker starts the jobs' handlers: one more try each (one statement for all). Whatever claim the row is under: a
 * job Bull holds runs whenever Bull gets to it, and each start is a try (Bull's retries included).
 */
export async function countTries(db: Db, jobs: Job[]): Promise<void> {
  if (!jobs.length) return;
  const keys = jobs.map((j) => ({ org: j.orgId, id: j.id }));
  await db.$executeRaw`UPDATE core.outbox o SET tries = o.tries + 1
    FROM jsonb_to_recordset(${JSON.stringify(keys)}::jsonb) AS k(org uuid, id bigint)
    WHERE o.org_id = k.org AND o.id = k.id AND o.processed_at IS NULL`;
}

/**
 * Claimed jobs this instance will not run (it is shutting down, or their claim runs short): due again at once, their
 * claim not counted as an attempt. A row claimed again meanwhile (its attempts moved on) belongs to that claim: left alone.
 */
export async function releaseClaims(db: Db, jobs: ClaimedJob[]): Promise<void> {
  if (!jobs.length) return;
  const keys = jobs.map((j) => ({ org: j.orgId, id: j.id, attempts: j.attempts }));
  await db.$executeRaw`UPDATE core.outbox o SET available_at = now(), attempts = greatest(o.attempts - 1, 0)
    FROM jsonb_to_recordset(${JSON.stringify(keys)}::jsonb) AS k(org uuid, id bigint, attempts int)
    WHERE o.org_id = k.org AND o.id = k.id AND o.attempts = k.attempts AND o.processed_at IS NULL`;
}

/**
 * The job is still running here: its row is due again `claimSeconds` from now instead of when its claim runs out. Only
 * under this claim (its attempts unchanged, not done): false when the claim is no longer this relay's.
 */
export async function renewClaim(db: Db, job: ClaimedJob, claimSeconds: number): Promise<boolean> {
  const n = await db.$executeRaw`UPDATE core.outbox SET available_at = greatest(available_at, now() + make_interval(secs => ${claimSeconds}::double precision))
    WHERE org_id = ${job.orgId}::uuid AND id = ${BigInt(job.id)} AND attempts = ${job.attempts} AND processed_at IS NULL`;
  return n > 0;
}

/**
 * Handing the job on (or running it) failed: it is due again after `delaySeconds`. `error` becomes last_error when the
 * job itself failed (`tried`); a hand-off Redis refused (not the job's failure) keeps the job's own last error, the one
 * a dead job is kept with, and is written only where there is none (so the row shows it waits, and the lag counts it). Only
 * under this claim: a failure recorded after the row was claimed again (this claim ran out) would move the later claim's time.
 */
export async function recordFailure(db: Db, job: ClaimedJob, error: string, delaySeconds: number, tried = true): Promise<void> {
  await db.$executeRaw`UPDATE core.outbox SET last_error = CASE WHEN ${tried}::boolean THEN ${error} ELSE coalesce(last_error, ${error}) END, available_at = now() + make_interval(secs => ${delaySeconds}::double precision)
    WHERE org_id = ${job.orgId}::uuid AND id = ${BigInt(job.id)} AND attempts = ${job.attempts} AND processed_at IS NULL`;
}

/**
 * The job's last try failed (`tries` reached its topic's cap), or it was claimed after its last try without that try's
 * failure recorded (the process died, Redis lost it): it is dead, never relayed again (processed_at with dead_at), its payload kept for an
 * operator's retry and the retention purge, `error` kept as last_error (NULL: the one recorded before stays). Only under
 * this claim. False when the row is no longer this claim's.
 */
export async function markDead(db: Db, job: ClaimedJob, error: string | null): Promise<boolean> {
  const n = await db.$executeRaw`UPDATE core.outbox SET last_error = coalesce(${error}, last_error), dead_at = now(), processed_at = now()
    WHERE org_id = ${job.orgId}::uuid AND id = ${BigInt(job.id)} AND attempts = ${job.attempts} AND processed_at IS NULL`;
  return n > 0;
}

/**
 * A try of the job failed in Bull's worker: its error is kept on the row (the claim and its attempts are left as they
 * are). A row whose tries (countTries, this one included) reached `maxTries` is dead (markDead's state); otherwise Bull
 * retries it with its own backoff, or, `final` (Bull's last attempt of this hand-off), the row is due again no sooner
 * than the relay's backoff after its tries (retryDelaySeconds, here in SQL): a job refused for good is tried about as
 * often as in-process (Bull's backoff, 1, 2, 4 and 8 s, is the relay's first four), not each time its claim runs out.
 * Answers whether it is now dead.
 */
export async function recordError(db: Db, job: Job, error: string, maxTries: number, final: boolean): Promise<boolean> {
  const rows = await db.$queryRaw<{ dead: boolean }[]>`
    UPDATE core.outbox SET last_error = ${error},
      dead_at = CASE WHEN tries >= ${maxTries}::int THEN now() END,
      processed_at = CASE WHEN tries >= ${maxTries}::int THEN now() END,
      available_at = CASE WHEN NOT ${final}::boolean OR tries >= ${maxTries}::int THEN available_at
        ELSE greatest(available_at, now() + make_interval(secs => least(3600, 2 ^ least(greatest(tries, 1) - 1, 12)))) END
    WHERE org_id = ${job.orgId}::uuid AND id = ${BigInt(job.id)} AND processed_at IS NULL
    RETURNING dead_at IS NOT NULL AS dead`;
  return rows[0]?.dead ?? false;
}

/** Of the jobs `keys` (organization and outbox id), those whose outbox row still exists (the queue's sweep). */
export async function existingJobs(db: Db, keys: { org: string; id: string }[]): Promise<{ org: string; id: string }[]> {
  if (!keys.length) return [];
  return db.$queryRaw<{ org: string; id: string }[]>`SELECT o.org_id::text AS org, o.id::text AS id
    FROM core.outbox o JOIN jsonb_to_recordset(${JSON.stringify(keys)}::jsonb) AS k(org uuid, id bigint) ON o.org_id = k.org AND o.id = k.id`;
}

/**
 * Rows not yet processed, and the age in seconds of the oldest one waiting (0 when none is), measured from when it first
 * became due: claims and failures move available_at forward, and a job retried for ever would show no lag. Waiting: due
 * and not claimed (available_at passed), or failed at least once (last_error); a healthy job still running under its
 * renewed claim is not lag. A dead job is processed: in neither. `dead`: the dead jobs still kept, by topic.
 */
export async function backlog(db: Db): Promise<{ depth: number; lagSeconds: number; dead: { topic: string; count: number }[] }> {
  const [row] = await db.$queryRaw<{ depth: number; lag: number; dead: { topic: string; count: number }[] }[]>`
    SELECT count(*)::int AS depth,
           coalesce(extract(epoch FROM now() - min(coalesce(first_due_at, available_at)) FILTER (WHERE available_at <= now() OR last_error IS NOT NULL)), 0)::float8 AS lag,
           (SELECT coalesce(jsonb_agg(jsonb_build_object('topic', d.topic, 'count', d.n) ORDER BY d.topic), '[]'::jsonb)
            FROM (SELECT topic, count(*)::int AS n FROM core.outbox WHERE dead_at IS NOT NULL GROUP BY topic) d) AS dead
    FROM core.outbox WHERE processed_at IS NULL`;
  return { depth: row.depth, lagSeconds: row.lag, dead: row.dead };
}

// ---------------------------------------------------------------- re-sealing (privileged: secrets.rotate)
/**
 * The rows secrets:rotate seals: a payload sealed (JobOptions.personalData) under another key than `activeKid`, waiting or
 * dead (a done one's is emptied); and a payload of a personal-data topic (`topics`) still in the clear (written before
 * its topic was sealed, or without SECRETS_KEYS): waiting, dead, or done by a relay that did not empty it.
 */
export async function countStaleSealedPayloads(db: Db, activeKid: string, topics: readonly string[]): Promise<number> {
  const [r] = await db.$queryRaw<{ n: number }[]>`SELECT count(*)::int AS n FROM core.outbox
    WHERE (payload -> ${SEALED_PAYLOAD_KEY}::text ->> 'kid' IS DISTINCT FROM ${activeKid} AND payload -> ${SEALED_PAYLOAD_KEY}::text IS NOT NULL)
      OR (topic = ANY(${topics}::text[]) AND payload -> ${SEALED_PAYLOAD_KEY}::text IS NULL AND payload <> '{}'::jsonb)`;
  return r.n;
}

/**
 * The next `limit` such rows after (`after.orgId`, `after.id`), locked (one the relay is writing is skipped: the next run
 * takes it); `done`: processed and not dead, a payload its job no longer needs.
 */
export function lockStaleSealedPayloads(db: Db, activeKid: string, topics: readonly string[], after: { orgId: string; id: string }, limit: number): Promise<{ org_id: string; id: string; topic: string; payload: Record<string, unknown>; done: boolean }[]> {
  return db.$queryRaw`SELECT org_id::text AS org_id, id::text AS id, topic, payload, processed_at IS NOT NULL AND dead_at IS NULL AS done
    FROM core.outbox
    WHERE ((payload -> ${SEALED_PAYLOAD_KEY}::text ->> 'kid' IS DISTINCT FROM ${activeKid} AND payload -> ${SEALED_PAYLOAD_KEY}::text IS NOT NULL)
      OR (topic = ANY(${topics}::text[]) AND payload -> ${SEALED_PAYLOAD_KEY}::text IS NULL AND payload <> '{}'::jsonb))
      AND (org_id, id) > (${after.orgId}::uuid, ${BigInt(after.id)})
    ORDER BY org_id, id LIMIT ${limit} FOR UPDATE SKIP LOCKED`;
}

export async function replacePayload(db: Db, orgId: string, id: string, payload: Record<string, unknown>): Promise<void> {
  await db.$executeRaw`UPDATE core.outbox SET payload = ${JSON.stringify(payload)}::jsonb WHERE org_id = ${orgId}::uuid AND id = ${BigInt(id)}`;
}
