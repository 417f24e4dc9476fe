import { afterAll, afterEach, beforeAll, describe, expect, it, jest } from '@jest/globals';
import pg from 'pg';
import { advisoryLockWaiters, createTestDatabase, type TestDatabase } from '../support/database.js';
import { pauseNext, releaseAll, waitsForLockOrAnswers } from './lock-order.js';

/**
 * waitsForLockOrAnswers tells a request that queued behind the paused step (waiting for a lock its transaction holds)
 * from one that did not: another backend's lock wait elsewhere in the database (another request, a job) does not count.
 * It used to answer 'waiting' as soon as any backend waited for any lock.
 */
describe('lock-order helpers: waitsForLockOrAnswers', () => {
  let db: TestDatabase;
  const clients: pg.Client[] = [];
  const open = async () => {
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    clients.push(c);
    await c.query('BEGIN');
    return c;
  };
  /** The Db-like argument pauseNext asks its backend (repositories' `$queryRaw`), over one connection. */
  const asDb = (c: pg.Client) => ({ $queryRaw: async (strings: TemplateStringsArray) => (await c.query(strings.join(''))).rows });
  /** A step that works in `c`'s transaction (it holds advisory lock 1), to pause. */
  const step = { async run(_db: ReturnType<typeof asDb>) { return 'ran'; } };

  beforeAll(async () => { db = await createTestDatabase(); });
  afterEach(async () => {
    releaseAll();
    jest.restoreAllMocks();
    for (const c of clients.splice(0)) await c.end();
  });
  afterAll(() => db.drop());

  async function pausedHoldingLock1() {
    const holder = await open();
    await holder.query('SELECT pg_advisory_xact_lock(1)');
    const paused = pauseNext(step, 'run');
    const ran = step.run(asDb(holder));
    await paused.reached;
    return { holder, paused, ran };
  }

  it('another backend waiting for a lock the paused step does not hold: the request is seen answering, not waiting', async () => {
    const { paused, ran } = await pausedHoldingLock1();
    expect(paused.backend).toEqual(expect.any(Number));
    // elsewhere in the database: one transaction holds advisory lock 2, another waits for it
    await (await open()).query('SELECT pg_advisory_xact_lock(2)');
    const waiter = await open();
    const unrelated = waiter.query('SELECT pg_advisory_xact_lock(2)');
    unrelated.catch(() => undefined);
    await advisoryLockWaiters(db.admin, 1);

    // the request under test answers after the helper has looked once (no clock): it never waited
    let answer!: () => void;
    const request = new Promise<void>((resolve) => (answer = resolve));
    const admin = { query: async (sql: string, params?: unknown[]) => { const r = await db.admin.query(sql, params); answer(); return r; } };
    expect(await waitsForLockOrAnswers(admin as unknown as pg.Pool, request, paused)).toBe('answered');
    // and without naming the paused step: the steps paused now are the holders
    let answer2!: () => void;
    const request2 = new Promise<void>((resolve) => (answer2 = resolve));
    const admin2 = { query: async (sql: string, params?: unknown[]) => { const r = await db.admin.query(sql, params); answer2(); return r; } };
    expect(await waitsForLockOrAnswers(admin2 as unknown as pg.Pool, request2)).toBe('answered');
    paused.release();
    expect(await ran).toBe('ran');
  });

  it('a request waiting for a lock the paused step holds: waiting', async () => {
    const { holder, paused, ran } = await pausedHoldingLock1();
    const requester = await open();
    const request = requester.query('SELECT pg_advisory_xact_lock(1)');
    expect(await waitsForLockOrAnswers(db.admin, request, paused)).toBe('waiting');
    paused.release();
    expect(await ran).toBe('ran');
    await holder.query('COMMIT');
    await request;
  });
});
