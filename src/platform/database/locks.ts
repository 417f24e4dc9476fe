import type { Db } from './sql.js';

/**
 * Transaction-scoped named locks: rows of core.lock_rows locked through core.xact_lock / xact_lock_shared /
 * try_xact_lock (migration 20270211003700), held until the transaction ends. Not advisory locks: any role may take
 * those and pg_locks shows their keys to every role, so an analyst's login could hold another organization's lock.
 * A wait ends at lock_timeout with 55P03, as every lock wait does. They queue fairly, as advisory locks did: a new
 * shared taker waits behind a waiting exclusive one (a gate row per name, 20270211003700); taking a name again in the
 * transaction that holds it never waits at the gate.
 *
 * The SQL-side sites (the posting functions and triggers) build the same names with `uuid::text` (lower case): an id in
 * a name is lower-cased here too (`lockId`), so that both name one lock.
 */
export const locks = {
  /** Exclusive: waits for every other holder. */
  async exclusive(db: Db, name: string): Promise<void> {
    await db.$executeRaw`SELECT core.xact_lock(${name}::text)`;
  },

  /** Shared: waits for an exclusive holder, and behind an exclusive taker already waiting. */
  async shared(db: Db, name: string): Promise<void> {
    await db.$executeRaw`SELECT core.xact_lock_shared(${name}::text)`;
  },

  /** Exclusive, or false at once when another transaction holds the lock (in either mode). */
  async tryExclusive(db: Db, name: string): Promise<boolean> {
    const [row] = await db.$queryRaw<{ locked: boolean }[]>`SELECT core.try_xact_lock(${name}::text) AS locked`;
    return row.locked;
  },
};

/** An id as PostgreSQL's uuid::text writes it (ids reach us in either case). */
export const lockId = (id: string): string => id.toLowerCase();
