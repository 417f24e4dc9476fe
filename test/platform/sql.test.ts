import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import pg from 'pg';
import { Decimal } from 'decimal.js';
import { clientDeadlineMs, SqlPool, type Db } from '../../src/platform/database/sql.js';
import { DatabaseUnavailableError } from '../../src/platform/errors/database-errors.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { FreezingRedisProxy } from '../support/freezing-redis-proxy.js';
import { bounded, until } from '../support/throwaway-servers.js';

/** The repositories' SQL client: bind parameters, the value types it returns, one transaction per call. */
describe('SqlPool', () => {
  let tdb: TestDatabase;
  let pool: SqlPool;

  beforeAll(async () => {
    tdb = await createTestDatabase({ template: null });
    pool = new SqlPool(tdb.url, { max: 2, connectTimeoutMs: 30_000, statementTimeoutMs: 5_000 }, 'test');
    await tdb.admin.query('CREATE TABLE t (id int PRIMARY KEY, note text)');
  });
  afterAll(async () => {
    await pool.end();
    await tdb.drop();
  });

  it('sends every interpolation as a bind parameter, never as SQL text', async () => {
    const hostile = `x'); DROP TABLE t; --`;
    const [row] = await pool.transaction((db) => db.$queryRaw<{ v: string; n: number }[]>`SELECT ${hostile}::text AS v, ${41}::int + 1 AS n`);
    expect(row).toEqual({ v: hostile, n: 42 });
    expect((await tdb.admin.query(`SELECT to_regclass('public.t') AS t`)).rows[0].t).toBe('t');
  });

  it('returns int8 as bigint, numeric as Decimal, date as UTC midnight, timestamp as Date, json parsed', async () => {
    const [row] = await pool.transaction((db) => db.$queryRaw<Record<string, any>[]>`
      SELECT 9007199254740993::int8 AS big, 12.345::numeric(12,3) AS amount, '2026-03-31'::date AS day,
             '2026-03-31 23:30:00'::timestamp AS at, '{"a":[1,2]}'::jsonb AS doc,
             ARRAY[1,2]::int8[] AS bigs, ARRAY[1.5]::numeric[] AS amounts, NULL::numeric AS nothing`);
    expect(row.big).toBe(9007199254740993n);
    expect(row.amount).toBeInstanceOf(Decimal);
    expect(row.amount.toFixed()).toBe('12.345');
    expect(row.day.toISOString()).toBe('2026-03-31T00:00:00.000Z');
    expect(row.at.toISOString()).toBe('2026-03-31T23:30:00.000Z');
    expect(row.doc).toEqual({ a: [1, 2] });
    expect(row.bigs).toEqual([1n, 2n]);
    expect(row.amounts.map((d: Decimal) => d.toFixed())).toEqual(['1.5']);
    expect(row.nothing).toBeNull();
  });

  it('sends a Decimal parameter as its exact text', async () => {
    const [row] = await pool.transaction((db) => db.$queryRaw<{ v: string }[]>`SELECT (${new Decimal('0.1')}::numeric + ${new Decimal('0.2')}::numeric)::text AS v`);
    expect(row.v).toBe('0.3');
  });

  it('commits the work of a transaction that returns, and counts affected rows', async () => {
    const n = await pool.transaction((db) => db.$executeRaw`INSERT INTO t (id, note) VALUES (${1}, ${'kept'}), (${2}, ${'kept'})`);
    expect(n).toBe(2);
    expect((await tdb.admin.query('SELECT count(*)::int AS n FROM t')).rows[0].n).toBe(2);
  });

  it('rolls back everything when the work throws, and the connection stays usable', async () => {
    await expect(pool.transaction(async (db) => {
      await db.$executeRaw`INSERT INTO t (id, note) VALUES (${3}, ${'lost'})`;
      await db.$executeRaw`INSERT INTO t (id, note) VALUES (${1}, ${'duplicate'})`;
    })).rejects.toMatchObject({ code: '23505' });
    expect((await tdb.admin.query(`SELECT count(*)::int AS n FROM t WHERE note <> 'kept'`)).rows[0].n).toBe(0);
    // both connections of the pool still answer
    const ids = await Promise.all([1, 2].map(() => pool.transaction((db) => db.$queryRaw<{ n: number }[]>`SELECT count(*)::int AS n FROM t`)));
    expect(ids.map(([r]) => r.n)).toEqual([2, 2]);
  });

  it('settles a write sent with $executeRawAtCommit with COMMIT: kept when it succeeds, the whole transaction rolled back when it fails', async () => {
    await pool.transaction(async (db) => {
      await db.$executeRaw`INSERT INTO t (id, note) VALUES (${10}, ${'with at-commit'})`;
      db.$executeRawAtCommit`INSERT INTO t (id, note) VALUES (${11}, ${'at-commit'})`;
    });
    expect((await tdb.admin.query(`SELECT id FROM t WHERE id IN (10, 11) ORDER BY id`)).rows).toEqual([{ id: 10 }, { id: 11 }]);

    await expect(pool.transaction(async (db) => {
      await db.$executeRaw`INSERT INTO t (id, note) VALUES (${12}, ${'lost with the failed at-commit write'})`;
      db.$executeRawAtCommit`INSERT INTO t (id, note) VALUES (${1}, ${'duplicate'})`;
      return 'answered';
    })).rejects.toMatchObject({ name: 'AtCommitWriteFailed', refusal: { code: '23505' } });
    expect((await tdb.admin.query(`SELECT count(*)::int AS n FROM t WHERE id = 12`)).rows[0].n).toBe(0);

    // refused for its data, an at-commit write is the server's failure (a 500); a conflict stays one (a 409 to retry)
    await expect(pool.transaction(async (db) => {
      await db.$executeRaw`INSERT INTO t (id, note) VALUES (${12}, ${'lost with the conflicting at-commit write'})`;
      db.$executeRawAtCommit`DO $$ BEGIN RAISE EXCEPTION 'could not serialize' USING ERRCODE = '40001'; END $$`;
    })).rejects.toMatchObject({ code: '40001' });
    expect((await tdb.admin.query(`SELECT count(*)::int AS n FROM t WHERE id = 12`)).rows[0].n).toBe(0);

    // the work throws after sending one: rolled back, no unhandled rejection, the connection usable
    await expect(pool.transaction(async (db) => {
      db.$executeRawAtCommit`INSERT INTO t (id, note) VALUES (${13}, ${'lost'})`;
      throw new Error('handler failed');
    })).rejects.toThrow('handler failed');
    expect((await tdb.admin.query(`SELECT count(*)::int AS n FROM t WHERE id = 13`)).rows[0].n).toBe(0);
    await tdb.admin.query('DELETE FROM t WHERE id IN (10, 11)');
  });

  it('fails a transaction whose awaited statement follows an at-commit write that failed as the server\'s failure naming that write\'s error, not 25P02', async () => {
    // statements timed (a recorder: one more promise between pg and the transaction) or not
    const timed = new SqlPool(tdb.url, { max: 1, connectTimeoutMs: 30_000, statementTimeoutMs: 5_000, recordQuery: () => undefined }, 'timed');
    try {
      for (const p of [pool, timed]) {
        await expect(p.transaction(async (db) => {
          db.$executeRawAtCommit`INSERT INTO t (id, note) VALUES (${1}, ${'duplicate'})`;
          // refused with 25P02 ("current transaction is aborted"): a 500 naming no cause, was the request's answer
          await db.$executeRaw`INSERT INTO t (id, note) VALUES (${40}, ${'after the failed at-commit write'})`;
        })).rejects.toMatchObject({
          name: 'AtCommitWriteFailed', message: expect.stringMatching(/^a write sent at commit failed: duplicate key value/),
          refusal: { code: '23505', constraint: 't_pkey' },
        });
      }
      expect((await tdb.admin.query(`SELECT count(*)::int AS n FROM t WHERE id = 40`)).rows[0].n).toBe(0);
      // a 25P02 behind a failure the work itself swallowed has no other cause here: it is thrown as it is
      await expect(pool.transaction(async (db) => {
        await db.$executeRaw`INSERT INTO t (id, note) VALUES (${1}, ${'duplicate'})`.catch(() => undefined);
        await db.$executeRaw`INSERT INTO t (id, note) VALUES (${41}, ${'after a swallowed failure'})`;
      })).rejects.toMatchObject({ code: '25P02' });
    } finally {
      await timed.end();
    }
  });

  it('runs afterCommit callbacks once COMMIT succeeded, never after a rollback; one that throws fails nothing', async () => {
    const ran: string[] = [];
    const answer = await pool.transaction(async (db) => {
      db.afterCommit(() => ran.push('first'));
      db.afterCommit(() => {
        throw new Error('callback failed');
      });
      db.$executeRawAtCommit`INSERT INTO t (id, note) VALUES (${30}, ${'after-commit'})`;
      db.afterCommit(() => ran.push(`committed: ${ran.length}`));
      expect(ran).toEqual([]); // nothing before COMMIT
      return 'answered';
    });
    expect(answer).toBe('answered');
    expect(ran).toEqual(['first', 'committed: 1']);
    expect((await tdb.admin.query(`SELECT count(*)::int AS n FROM t WHERE id = 30`)).rows[0].n).toBe(1);

    // the at-commit write fails, COMMIT rolls back: no callback
    await expect(pool.transaction(async (db) => {
      db.afterCommit(() => ran.push('rolled back'));
      db.$executeRawAtCommit`INSERT INTO t (id, note) VALUES (${30}, ${'duplicate'})`;
    })).rejects.toMatchObject({ refusal: { code: '23505' } });
    // the work throws: no callback
    await expect(pool.transaction(async (db) => {
      db.afterCommit(() => ran.push('thrown'));
      throw new Error('handler failed');
    })).rejects.toThrow('handler failed');
    expect(ran).toEqual(['first', 'committed: 1']);
    await tdb.admin.query('DELETE FROM t WHERE id = 30');
  });

  it('commitNow sends COMMIT behind the last statement without waiting for it: kept when it succeeds, rolled back when it fails; nothing may follow', async () => {
    const kept = await pool.transaction(async (db) => {
      await db.$executeRaw`INSERT INTO t (id, note) VALUES (${20}, ${'before'})`;
      const last = db.$queryRaw<{ id: number }[]>`INSERT INTO t (id, note) VALUES (${21}, ${'last'}) RETURNING id`;
      db.commitNow();
      expect(() => db.$executeRawAtCommit`INSERT INTO t (id, note) VALUES (${22}, ${'too late'})`).toThrow(/committed/);
      return (await last)[0].id;
    });
    expect(kept).toBe(21);
    expect((await tdb.admin.query(`SELECT id FROM t WHERE id BETWEEN 20 AND 22 ORDER BY id`)).rows).toEqual([{ id: 20 }, { id: 21 }]);

    // the last statement fails: COMMIT rolls back, the statement's error is the transaction's, the connection usable
    await expect(pool.transaction(async (db) => {
      await db.$executeRaw`INSERT INTO t (id, note) VALUES (${23}, ${'lost with the failed last statement'})`;
      const last = db.$executeRaw`INSERT INTO t (id, note) VALUES (${1}, ${'duplicate'})`;
      db.commitNow();
      return last;
    })).rejects.toMatchObject({ code: '23505' });
    expect((await tdb.admin.query(`SELECT count(*)::int AS n FROM t WHERE id = 23`)).rows[0].n).toBe(0);
    expect(await pool.transaction(async (db) => (await db.$queryRaw<{ n: number }[]>`SELECT count(*)::int AS n FROM t WHERE id IN (20, 21)`)[0].n)).toBe(2);
    await tdb.admin.query('DELETE FROM t WHERE id IN (20, 21)');
  });

  it('runs tagged templates as named prepared statements, and plain ones when told not to', async () => {
    const named = await pool.transaction(async (db) => db.$queryRaw<{ n: number }[]>`SELECT count(*)::int AS n FROM pg_prepared_statements WHERE name LIKE 'oz\_%'`);
    expect(named[0].n).toBeGreaterThan(0);
    const plain = new SqlPool(tdb.url, { max: 1, connectTimeoutMs: 30_000, statementTimeoutMs: 5_000, preparedStatements: false }, 'test');
    try {
      const none = await plain.transaction(async (db) => db.$queryRaw<{ n: number }[]>`SELECT count(*)::int AS n FROM pg_prepared_statements`);
      expect(none[0].n).toBe(0);
    } finally {
      await plain.end();
    }
  });

  it('discards a connection whose prepared statement went stale under a migration (a table read with * gained a column)', async () => {
    await tdb.admin.query('CREATE TABLE stale (id int)');
    const one = new SqlPool(tdb.url, { max: 1, connectTimeoutMs: 30_000, statementTimeoutMs: 5_000 }, 'test');
    try {
      const read = () => one.transaction((db) => db.$queryRaw<Record<string, unknown>[]>`SELECT * FROM stale WHERE id IS NOT NULL OR ${true}`);
      await read();
      await tdb.admin.query('ALTER TABLE stale ADD COLUMN note text');
      await expect(read()).rejects.toThrow(); // PostgreSQL refuses the cached plan once, on that connection
      await tdb.admin.query(`INSERT INTO stale VALUES (1, 'x')`);
      expect(await read()).toEqual([{ id: 1, note: 'x' }]); // a new connection prepares it afresh
    } finally {
      await one.end();
      await tdb.admin.query('DROP TABLE stale');
    }
  });

  it('runs caller-built SQL text with positional parameters ($queryRawUnsafe)', async () => {
    const rows = await pool.transaction((db) => db.$queryRawUnsafe<{ id: number }[]>('SELECT id FROM t WHERE note = $1 ORDER BY id', 'kept'));
    expect(rows.map((r) => r.id)).toEqual([1, 2]);
  });

  it('times each statement under the function that sent it, errors included, when given a recorder', async () => {
    const timed: [string, number][] = [];
    const timing = new SqlPool(tdb.url, { max: 1, connectTimeoutMs: 30_000, statementTimeoutMs: 5_000, recordQuery: (op, s) => timed.push([op, s]) }, 'test');
    async function readNotes(db: Db) {
      await db.$queryRaw`SELECT note FROM t WHERE id = ${1}`;
      await db.$queryRawUnsafe('SELECT note FROM t WHERE id = $1 -- timed', 2);
    }
    async function failWrite(db: Db) {
      await db.$executeRaw`INSERT INTO t (id) VALUES (${'not a number'})`;
    }
    try {
      for (let i = 0; i < 2; i++) await timing.transaction(readNotes);
      await expect(timing.transaction(failWrite)).rejects.toThrow(/invalid input syntax/);
    } finally {
      await timing.end();
    }
    expect(timed.map(([op]) => op)).toEqual(['sql.test.readNotes', 'sql.test.readNotes', 'sql.test.readNotes', 'sql.test.readNotes', 'sql.test.failWrite']);
    for (const [, seconds] of timed) expect(seconds).toBeGreaterThanOrEqual(0);
    for (const [, seconds] of timed) expect(seconds).toBeLessThan(5);
  });

  it('cancels a statement that runs past the statement timeout', async () => {
    const slow = new SqlPool(tdb.url, { max: 1, connectTimeoutMs: 30_000, statementTimeoutMs: 100 }, 'test');
    try {
      await expect(slow.transaction((db) => db.$queryRaw`SELECT pg_sleep(2)`)).rejects.toMatchObject({ code: '57014' });
    } finally {
      await slow.end();
    }
  });

  it('a server that stops answering fails the statement within the client deadline (not when TCP gives up), and so does the ping; both recover', async () => {
    // a TCP proxy (to PostgreSQL, whatever its name says) that, frozen, forwards nothing either way: a frozen host
    const proxy = new FreezingRedisProxy(new URL(tdb.url));
    await proxy.listen();
    const proxied = new URL(tdb.url);
    proxied.port = String(proxy.port);
    // client deadline: 2 × 200 ms + 1 s
    const frozen = new SqlPool(proxied.toString(), { max: 1, connectTimeoutMs: 1_000, statementTimeoutMs: 200 }, 'test');
    try {
      // a connection of each is open before the freeze: the server goes silent on it
      await frozen.transaction((db) => db.$queryRaw`SELECT 1`);
      await frozen.ping();
      proxy.frozen = true;
      const hung = () => 'a statement on a frozen connection waited past the client deadline';
      const err = await bounded(frozen.transaction((db) => db.$queryRaw`SELECT 1`), 5_000, hung).catch((e: Error) => e);
      // the first statement past the deadline (BEGIN or SELECT, pipelined together) fails, the other with the connection
      expect([err instanceof DatabaseUnavailableError, (err as Error).message])
        .toEqual([true, expect.stringMatching(/^the database is unavailable: (Query read timeout|Connection terminated unexpectedly)$/)]);
      await expect(bounded(frozen.ping(), 5_000, hung)).rejects.toThrow('Query read timeout');
      proxy.frozen = false;
      // the silent connections were given up: the next transaction and ping run on fresh ones
      expect(await frozen.transaction((db) => db.$queryRaw<{ n: number }[]>`SELECT 2 AS n`)).toEqual([{ n: 2 }]);
      await frozen.ping();
      expect(frozen.stats()).toEqual({ inUse: 0, idle: 1, waiting: 0 });
    } finally {
      await proxy.close(); // cuts a connection still waiting, which end() would wait for
      await frozen.end();
    }
  });

  it('a $queryArrays statement (a semantic query, under a longer statement timeout its transaction sets) gets the client deadline of that timeout, not the pool\'s', async () => {
    // the pool's client deadline: 2 × 100 ms + 1 s (its connections' setting); $queryArrays': 2 × 1 s + 1 s, on the statement
    const short = new SqlPool(tdb.url, { max: 1, connectTimeoutMs: 30_000, statementTimeoutMs: 100, localStatementTimeoutMs: 1_000 }, 'test');
    const sent: { text: string; deadline: unknown }[] = [];
    const query = pg.Client.prototype.query;
    const spy = jest.spyOn(pg.Client.prototype, 'query').mockImplementation(function (this: pg.Client, ...args: unknown[]) {
      const config = args[0] as { text?: string; query_timeout?: number };
      if (typeof config === 'object' && config?.text?.startsWith('SELECT $1')) sent.push({ text: config.text, deadline: config.query_timeout });
      return (query as (...a: unknown[]) => unknown).apply(this, args);
    } as never);
    try {
      const r = await short.transaction(async (db) => {
        await db.$executeRawUnsafe(`SELECT set_config('statement_timeout', '1000', true)`);
        await db.$queryRawUnsafe('SELECT $1::int AS n', 6);
        return db.$queryArrays('SELECT $1::int AS n', [7]);
      }, { readOnlyRolledBack: true });
      expect(r.rows).toEqual([[7]]);
      expect(sent).toEqual([{ text: 'SELECT $1::int AS n', deadline: undefined }, { text: 'SELECT $1::int AS n', deadline: 3_000 }]);
      expect(clientDeadlineMs(100)).toBe(1_200);
    } finally {
      spy.mockRestore();
      await short.end();
    }
  });

  it('the readiness ping answers while every connection of the pool is held by slow requests', async () => {
    let finish!: () => void;
    const held = new Promise<void>((resolve) => (finish = resolve));
    let started = 0;
    const slow = [1, 2].map(() => pool.transaction(async (db) => {
      await db.$queryRaw`SELECT 1`;
      started++;
      await held;
    }));
    try {
      await until('the slow transactions hold both connections', () => started === 2);
      expect(pool.stats()).toMatchObject({ inUse: 2, idle: 0 });
      // (bounded well inside the idle-in-transaction timeout, 5 s, which would end the held transactions)
      await bounded(pool.ping(), 2_000, () => 'the ping waited for a connection of the pool');
    } finally {
      finish();
      await Promise.all(slow);
    }
  });
});
