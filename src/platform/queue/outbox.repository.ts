import type { Db } from '../database/sql.js';
import type { Job } from './jobs.js';

/** A claimed outbox row: the job, and how many times it has been relayed (this time included). */
export interface ClaimedJob extends Job {
  attempts: number;
}

/**
 * Claims up to `limit` due rows for one relay pass: each becomes due again `claimSeconds` later,
 * so a row whose outcome is never recorded (the process died, Redis lost the job) is relayed again.
 * The first claim keeps when the row first became due (first_due_at): the lag is measured from it.
 * Committed at once: nothing holds a transaction open while the jobs are handed on.
 */
export async function claimDue(db: Db, limit: number, claimSeconds: number): Promise<ClaimedJob[]> {
  const rows = await db.$queryRaw<{ id: bigint; org_id: string; topic: string; payload: Record<string, unknown>; attempts: number }[]>`
    UPDATE core.outbox o SET available_at = now() + make_interval(secs => ${claimSeconds}::double precision), attempts = o.attempts + 1,
      first_due_at = coalesce(o.first_due_at, o.available_at)
    FROM (SELECT org_id, id FROM core.outbox WHERE processed_at IS NULL AND available_at <= now()
          ORDER BY available_at, id LIMIT ${limit} FOR UPDATE SKIP LOCKED) due
    WHERE o.org_id = due.org_id AND o.id = due.id
    RETURNING o.id, o.org_id, o.topic, o.payload, o.attempts`;
  return rows
    .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    .map((r) => ({ id: r.id.toString(), orgId: r.org_id, topic: r.topic, payload: r.payload, attempts: r.attempts }));
}

/** The jobs' handlers have finished: they are never relayed again (one statement for all). */
export async function markDone(db: Db, jobs: Job[]): Promise<void> {
  if (!jobs.length) return;
  const keys = jobs.map((j) => ({ org: j.orgId, id: j.id }));
  await db.$executeRaw`UPDATE core.outbox o SET processed_at = now(), last_error = NULL
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
 * Handing the job on (or running it) failed: it is due again after `delaySeconds`. Only under this claim: a failure
 * recorded after the row was claimed again (this claim ran out) would move the later claim's time.
 */
export async function recordFailure(db: Db, job: ClaimedJob, error: string, delaySeconds: number): Promise<void> {
  await db.$executeRaw`UPDATE core.outbox SET last_error = ${error}, available_at = now() + make_interval(secs => ${delaySeconds}::double precision)
    WHERE org_id = ${job.orgId}::uuid AND id = ${BigInt(job.id)} AND attempts = ${job.attempts} AND processed_at IS NULL`;
}

/**
 * The job failed in Bull's worker: its error is kept on the row (Bull retries it with its own backoff, and the relay once
 * its claim runs out; the claim and its attempts are left as they are).
 */
export async function recordError(db: Db, job: Job, error: string): Promise<void> {
  await db.$executeRaw`UPDATE core.outbox SET last_error = ${error}
    WHERE org_id = ${job.orgId}::uuid AND id = ${BigInt(job.id)} AND processed_at IS NULL`;
}

/**
 * Rows not yet processed, and the age in seconds of the oldest one waiting (0 when none is), measured from when it first
 * became due: claims and failures move available_at forward, and a job retried for ever would show no lag. Waiting: due
 * and not claimed (available_at passed), or failed at least once (last_error); a healthy job still running under its
 * renewed claim is not lag.
 */
export async function backlog(db: Db): Promise<{ depth: number; lagSeconds: number }> {
  const [row] = await db.$queryRaw<{ depth: number; lag: number }[]>`
    SELECT count(*)::int AS depth,
           coalesce(extract(epoch FROM now() - min(coalesce(first_due_at, available_at)) FILTER (WHERE available_at <= now() OR last_error IS NOT NULL)), 0)::float8 AS lag
    FROM core.outbox WHERE processed_at IS NULL`;
  return { depth: row.depth, lagSeconds: row.lag };
}
