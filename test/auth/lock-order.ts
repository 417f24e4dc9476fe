import { jest } from '@jest/globals';
import type pg from 'pg';
import { until } from '../support/throwaway-servers.js';

/**
 * Tools for tests that force one interleaving of two requests on real connections: pause one request inside its
 * transaction (its locks held), start the other, and go on once that one waits for a lock (or has answered without).
 */

/** A step paused by pauseNext: `reached` resolves when the call is made; `release()` lets it run on. */
export interface Paused {
  reached: Promise<void>;
  release(): void;
  /** the database backend (pg_backend_pid()) of the paused step's transaction, once reached; undefined if it got none */
  readonly backend: number | undefined;
}

const unreleased = new Set<() => void>();
/** the backends of the steps paused now (reached, not yet released): the locks they hold are the ones waited for */
const pausedBackends = new Set<number>();

/** Lets every paused step run on (afterEach: a test that failed half-way leaves no request hanging on its pause). */
export function releaseAll(): void {
  for (const release of unreleased) release();
  unreleased.clear();
  pausedBackends.clear();
}

interface Queryable { $queryRaw<R>(strings: TemplateStringsArray, ...values: unknown[]): Promise<R> }
const isQueryable = (x: unknown): x is Queryable => typeof (x as Queryable | undefined)?.$queryRaw === 'function';

/** The transaction a paused call works in: an argument that is a Db, or a TenantTx-like one holding it (`.db`). */
function dbOf(args: unknown[]): Queryable | undefined {
  for (const a of args) {
    if (isQueryable(a)) return a;
    if (a && typeof a === 'object' && isQueryable((a as { db?: unknown }).db)) return (a as { db: Queryable }).db;
  }
  return undefined;
}

/**
 * Pauses the next call of `target[method]` (only that one) until released; it then runs as it would have. The call's
 * transaction (its Db argument, or a `tx` holding one) is asked its backend first, so that waitsForLockOrAnswers
 * notices only the backends waiting for it.
 */
export function pauseNext<T extends object>(target: T, method: keyof T & string): Paused {
  const original = (target[method] as (...args: unknown[]) => Promise<unknown>).bind(target);
  let reached!: () => void;
  const reachedP = new Promise<void>((resolve) => (reached = resolve));
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  unreleased.add(release);
  const paused: { -readonly [K in keyof Paused]: Paused[K] } = { reached: reachedP, release, backend: undefined };
  const spy = jest.spyOn(target as Record<string, (...args: unknown[]) => Promise<unknown>>, method);
  spy.mockImplementationOnce(async (...args: unknown[]) => {
    const db = dbOf(args);
    if (db) {
      const [{ pid }] = await db.$queryRaw<{ pid: number }[]>`SELECT pg_backend_pid() AS pid`;
      paused.backend = pid;
      pausedBackends.add(pid);
    }
    reached();
    await released;
    if (paused.backend !== undefined) pausedBackends.delete(paused.backend);
    return original(...args);
  });
  return paused;
}

/**
 * 'waiting' once a backend waits for a lock that a paused step's transaction holds (`paused`'s, or else any step paused
 * now, pauseNext): the request under test has queued behind it. 'answered' when `request` answers first (it took no
 * lock the paused one holds). Other backends' lock waits (another test's, a job's) do not count. A paused step whose
 * transaction is unknown (no Db argument) falls back to any backend of the test's database waiting for a lock. Polls
 * pg_stat_activity / pg_blocking_pids with the suite's bounded `until`.
 */
export async function waitsForLockOrAnswers(admin: pg.Pool, request: Promise<unknown>, paused?: Paused): Promise<'waiting' | 'answered'> {
  let answered = false;
  request.then(() => (answered = true), () => (answered = true));
  let waiting = false;
  await until('the request waits for a lock or answers', async () => {
    if (answered) return true;
    const holders = paused ? (paused.backend === undefined ? [] : [paused.backend]) : [...pausedBackends];
    const { rows: [{ n }] } = await admin.query(
      `SELECT count(*)::int AS n FROM pg_stat_activity
       WHERE datname = current_database() AND wait_event_type = 'Lock'
         AND (cardinality($1::int[]) = 0 OR pg_blocking_pids(pid) && $1::int[])`, [holders]);
    return (waiting = n > 0);
  }, 1500, 20);
  return waiting ? 'waiting' : 'answered';
}
