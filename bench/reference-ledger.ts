// The reference ledger (bench/reference-ledger.sql) as bench:ledger's sql_reference_2 and bench/posting-profile.ts
// call it: created once in a benchmark's own database, then one transfer between two of its 1,000 accounts a call.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';

/** One transfer, autocommit, one round trip: what the reference measures. */
export const TRANSFER_SQL = 'SELECT id FROM bench_reference.transfer($1::uuid, $2::uuid, $3::numeric)';

/** Creates the reference's schema, function and accounts unless the database has them; answers the accounts' ids. */
export async function loadReferenceLedger(owner: pg.Pool | pg.ClientBase): Promise<string[]> {
  if (!(await owner.query(`SELECT 1 FROM pg_namespace WHERE nspname = 'bench_reference'`)).rowCount) {
    await owner.query(readFileSync(fileURLToPath(new URL('./reference-ledger.sql', import.meta.url)), 'utf8'));
  }
  return (await owner.query<{ id: string }>('SELECT id FROM bench_reference.accounts')).rows.map((r) => r.id);
}

/** TRANSFER_SQL's parameters: two different accounts drawn at random, and the amount. */
export function transferParams(ids: readonly string[], amount: string): [string, string, string] {
  const from = Math.floor(Math.random() * ids.length);
  const to = (from + 1 + Math.floor(Math.random() * (ids.length - 1))) % ids.length;
  return [ids[from], ids[to], amount];
}
