import { jest } from '@jest/globals';
import type pg from 'pg';

/**
 * Tools for tests that force one interleaving of two requests on real connections: pause one request inside its
 * transaction (its locks held), start the other, and go on once that one waits for a lock (or has answered without).
 */

/** A step paused by pauseNext: `reached` resolves when the call is made; `release()` lets it run on. */
export interface Paused {
  reached: Promise<void>;
  release(): void;
}

const unreleased = new Set<() => void>();

/** Lets every paused step run on (afterEach: a test that failed half-way leaves no request hanging on its pause). */
export function releaseAll(): void {
  for (const release of unreleased) release();
  unreleased.clear();
}

/** Pauses the next call of `target[method]` (only that one) until released; it then runs as it would have. */
export function pauseNext<T extends object>(target: T, method: keyof T & string): Paused {
  const original = (target[method] as (...args: unknown[]) => Promise<unknown>).bind(target);
  let reached!: () => void;
  const reachedP = new Promise<void>((resolve) => (reached = resolve));
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  unreleased.add(release);
  const spy = jest.spyOn(target as Record<string, (...args: unknown[]) => Promise<unknown>>, method);
  spy.mockImplementationOnce(async (...args: unknown[]) => {
    reached();
    await released;
    return original(...args);
  });
  return { reached: reachedP, release };
}

/**
 * 'waiting' once a backend of the test's database waits for a lock (the second request queues behind the paused one),
 * 'answered' when `request` answers first (it took no lock the paused one holds). Polls pg_stat_activity; bounded.
 */
export async function waitsForLockOrAnswers(admin: pg.Pool, request: Promise<unknown>): Promise<'waiting' | 'answered'> {
  let answered = false;
  request.then(() => (answered = true), () => (answered = true));
  for (let i = 0; i < 1500; i++) {
    if (answered) return 'answered';
    const { rows: [{ n }] } = await admin.query(
      `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`);
    if (n > 0) return 'waiting';
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error('the request neither waited for a lock nor answered within 30 s');
}
