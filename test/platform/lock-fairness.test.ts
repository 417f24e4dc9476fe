import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { until } from '../support/throwaway-servers.js';

/**
 * Named locks queue fairly (review: row locks do not: a FOR SHARE on a share-locked row was granted at once while a
 * FOR UPDATE waited, so a stream of postings, finance.posting shared, starved a period close or a settings change until
 * lock_timeout). An exclusive taker holds the name's gate row while it waits; sharers pass the gate, so they queue behind
 * it. A transaction holding the name does not pass the gate again (it would deadlock with the waiting taker).
 */
describe('named locks: an exclusive waiter is not starved by new sharers', () => {
  let db: TestDatabase;
  const clients: pg.PoolClient[] = [];

  beforeAll(async () => {
    db = await createTestDatabase();
  });
  /** Ends and returns to the pool every connection opened so far (the pool has 4). */
  const releaseAll = async () => {
    // all at once: a failed test may leave one waiting for another
    const all = clients.splice(0);
    await Promise.all(all.map((c) => c.query('ROLLBACK').catch(() => undefined)));
    for (const c of all) c.release();
  };
  afterEach(releaseAll);
  afterAll(async () => {
    await releaseAll();
    await db?.drop();
  });

  /** A connection in an open transaction, and its backend. */
  const open = async (): Promise<{ c: pg.PoolClient; pid: number }> => {
    const c = await db.admin.connect();
    clients.push(c);
    await c.query('BEGIN');
    const { rows: [{ pid }] } = await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    return { c, pid };
  };
  /** Whether `pid` waits for a lock now. */
  const waits = async (pid: number): Promise<boolean> => (await db.admin.query(
    `SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'Lock'`, [pid])).rowCount === 1;
  /** `sql` started on `c`; `done` is set once it answers (or fails). */
  const start = (c: pg.PoolClient, sql: string, name: string, log: string[]) => {
    const state = { done: false };
    const p = c.query(sql, [name]).finally(() => {
      state.done = true;
      log.push(sql);
    });
    return { p, state };
  };

  it('queues a new sharer behind a waiting exclusive taker: the sharer before it, the taker, then the new sharer', async () => {
    const name = `finance.posting:${randomUUID()}`;
    const order: string[] = [];
    // the name's rows exist (a first use waits for the inserting transaction, whatever the mode)
    await db.admin.query('SELECT core.xact_lock($1)', [name]);
    const s1 = await open();
    await s1.c.query('SELECT core.xact_lock_shared($1)', [name]);
    const e = await open();
    const eLock = e.c.query('SELECT core.xact_lock($1)', [name]).then(() => order.push('E'));
    await until('the exclusive taker waits for the sharer', () => waits(e.pid));
    const s2 = await open();
    const s2Lock = start(s2.c, 'SELECT core.xact_lock_shared($1)', name, []);
    void s2Lock.p.then(() => order.push('S2'));
    await until('the new sharer waits, or is granted', async () => s2Lock.state.done || await waits(s2.pid));
    // before: the new sharer was granted at once, ahead of the waiting taker
    expect({ granted: s2Lock.state.done }).toEqual({ granted: false });
    await s1.c.query('COMMIT');
    await eLock;
    expect({ order, s2Waits: await waits(s2.pid) }).toEqual({ order: ['E'], s2Waits: true });
    await e.c.query('COMMIT');
    await s2Lock.p;
    await s2.c.query('COMMIT');
    expect(order).toEqual(['E', 'S2']);
  });

  it('takes a name again in the transaction that holds it (shared twice; exclusive, then shared) while a taker waits: no deadlock', async () => {
    for (const [first, again] of [['core.xact_lock_shared', 'core.xact_lock_shared'], ['core.xact_lock', 'core.xact_lock_shared'], ['core.xact_lock', 'core.xact_lock']]) {
      const name = `finance.posting:${randomUUID()}`;
      const t1 = await open();
      await t1.c.query(`SELECT ${first}($1)`, [name]);
      const e = await open();
      const eLock = e.c.query('SELECT core.xact_lock($1)', [name]);
      await until('the exclusive taker waits', () => waits(e.pid));
      // a deadlock would end one of the two with 40P01 after deadlock_timeout; the holder answers at once instead
      await t1.c.query(`SELECT ${again}($1)`, [name]);
      await t1.c.query(`SELECT ${again}($1)`, [name]);
      expect({ [`${first}, ${again}`]: await waits(e.pid) }).toEqual({ [`${first}, ${again}`]: true });
      await t1.c.query('COMMIT');
      await eLock;
      await e.c.query('COMMIT');
      await releaseAll();
    }
  });

  it('forgets a name taken in a savepoint rolled back: the lock is released, and a new take queues at the gate again', async () => {
    const name = `finance.posting:${randomUUID()}`;
    const t1 = await open();
    await t1.c.query('SAVEPOINT a');
    await t1.c.query('SELECT core.xact_lock_shared($1)', [name]);
    await t1.c.query('ROLLBACK TO SAVEPOINT a');
    // released with the savepoint: an exclusive taker gets it while t1's transaction is still open
    const e = await open();
    await e.c.query('SELECT core.xact_lock($1)', [name]);
    await e.c.query('COMMIT');
    clients.splice(clients.indexOf(e.c), 1);
    e.c.release();

    const s1 = await open();
    await s1.c.query('SELECT core.xact_lock_shared($1)', [name]);
    const e2 = await open();
    const e2Lock = e2.c.query('SELECT core.xact_lock($1)', [name]);
    await until('the exclusive taker waits', () => waits(e2.pid));
    // t1 holds nothing: its take queues behind the waiting taker (had it kept "held", it would skip the gate)
    const again = start(t1.c, 'SELECT core.xact_lock_shared($1)', name, []);
    await until('t1 waits, or is granted', async () => again.state.done || await waits(t1.pid));
    expect({ granted: again.state.done }).toEqual({ granted: false });
    await s1.c.query('COMMIT');
    await e2Lock;
    await e2.c.query('COMMIT');
    await again.p;
    await t1.c.query('COMMIT');
  });

  it('try_xact_lock answers false at once while the name is held or a taker waits at the gate, true once free', async () => {
    const name = `finance.posting:${randomUUID()}`;
    const s1 = await open();
    await s1.c.query('SELECT core.xact_lock_shared($1)', [name]);
    const e = await open();
    const eLock = e.c.query('SELECT core.xact_lock($1)', [name]);
    await until('the exclusive taker waits', () => waits(e.pid));
    const probe = async () => {
      const t1 = await open();
      const { rows: [r] } = await t1.c.query<{ locked: boolean }>('SELECT core.try_xact_lock($1) AS locked', [name]);
      await t1.c.query('ROLLBACK');
      clients.splice(clients.indexOf(t1.c), 1);
      t1.c.release();
      return r.locked;
    };
    expect(await probe()).toBe(false);
    await s1.c.query('COMMIT');
    await eLock;
    expect(await probe()).toBe(false);
    await e.c.query('COMMIT');
    expect(await probe()).toBe(true);
  });
});
