import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { SCHEMAS_PARAM } from './schemas.js';

/**
 * A foreign key whose ON DELETE is CASCADE, SET NULL or SET DEFAULT makes every delete of a referenced row look up the
 * rows referencing it. Without an index leading with the referencing columns that is a scan of the whole referencing
 * table per deleted row: the retention job's purge of a day's sent digests scanned every e-mail delivery once per
 * digest (core.email_deliveries.digest_id, until 20270210930100), past the statement timeout, and purged nothing.
 * Each such key needs an index whose first N columns are its N columns (in any order), whole or partial on nothing but
 * those columns being NOT NULL (which the lookup's equality implies).
 *
 * Keys whose referenced rows are never deleted, each with the reason (`schema.table.constraint`). The list is checked
 * too: an entry that is no longer such a key, or has its index now, fails.
 */
const NEVER_DELETED: Record<string, string> = {
  // the app catalog (hub."App", hub.features): seeded by the migrations, read-only to every API role, deleted by nothing
  'hub.plan_features.plan_features_app_id_feature_fkey': 'a feature of the app catalog',
  'hub.limit_locks.limit_locks_app_id_fkey': 'an app of the app catalog',
};

interface ForeignKey {
  key: string;
  table: string;
  on_delete: string;
  columns: string[];
  types: string[];
  covered: boolean;
}

describe('foreign keys that act on delete are indexed', () => {
  let db: TestDatabase;
  let keys: ForeignKey[];

  beforeAll(async () => {
    db = await createTestDatabase();
    // conparentid = 0: a partitioned table's key once (its partitions' copies and their indexes follow the parent's)
    const { rows } = await db.admin.query<{ key: string; table: string; on_delete: string; columns: string[]; types: string[]; attnums: number[]; relid: number }>(
      `SELECT format('%s.%s.%s', n.nspname, c.relname, con.conname) AS key, format('%I.%I', n.nspname, c.relname) AS table,
              CASE con.confdeltype WHEN 'c' THEN 'CASCADE' WHEN 'n' THEN 'SET NULL' ELSE 'SET DEFAULT' END AS on_delete,
              array_agg(a.attname::text ORDER BY k.i) AS columns, array_agg(format_type(a.atttypid, a.atttypmod) ORDER BY k.i) AS types,
              array_agg(k.attnum::int ORDER BY k.i) AS attnums, c.oid::int AS relid
       FROM pg_constraint con
       JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
       CROSS JOIN LATERAL unnest(con.conkey) WITH ORDINALITY AS k(attnum, i)
       JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
       WHERE con.contype = 'f' AND con.confdeltype IN ('c', 'n', 'd') AND con.conparentid = 0 AND n.nspname = ANY($1)
       GROUP BY n.nspname, c.relname, con.conname, con.confdeltype, c.oid ORDER BY 1`, SCHEMAS_PARAM);
    const { rows: indexes } = await db.admin.query<{ relid: number; attnums: number[]; predicate: string | null }>(
      `SELECT i.indrelid::int AS relid, i.indkey::int2[]::int[] AS attnums, pg_get_expr(i.indpred, i.indrelid) AS predicate
       FROM pg_index i WHERE i.indisvalid AND i.indrelid = ANY($1)`, [rows.map((r) => r.relid)]);
    keys = rows.map((r) => {
      const fkCols = new Set(r.attnums);
      const notNullOfKey = (predicate: string) => predicate.split(' AND ').every((part) => {
        const m = /^\(*"?([a-z_][a-z0-9_]*)"? IS NOT NULL\)*$/i.exec(part.trim());
        return !!m && r.columns.includes(m[1]);
      });
      const covered = indexes.some((ix) => ix.relid === r.relid
        && ix.attnums.length >= fkCols.size && ix.attnums.slice(0, fkCols.size).every((a) => fkCols.has(a))
        && (ix.predicate === null || notNullOfKey(ix.predicate)));
      return { key: r.key, table: r.table, on_delete: r.on_delete, columns: r.columns, types: r.types, covered };
    });
  });
  afterAll(() => db.drop());

  it('finds the keys (the digests e-mail deliveries point to among them)', () => {
    expect(keys.length).toBeGreaterThan(50);
    expect(keys.map((k) => k.key)).toContain('core.email_deliveries.email_deliveries_digest_id_fkey');
  });

  it('has an index leading with the columns of every such key, except the listed ones', () => {
    const missing = keys.filter((k) => !k.covered && !(k.key in NEVER_DELETED))
      .map((k) => `${k.key} (${k.columns.join(', ')}, ON DELETE ${k.on_delete}) has no index leading with its columns`);
    expect(missing).toEqual([]);
  });

  it('lists only keys that exist and still have no index', () => {
    const byKey = new Map(keys.map((k) => [k.key, k]));
    const stale = Object.keys(NEVER_DELETED).map((name) => [name, byKey.get(name)] as const)
      .filter(([, k]) => !k || k.covered)
      .map(([name, k]) => `${name}: ${k ? 'has an index now (remove it from the list)' : 'is no longer a foreign key acting on delete'}`);
    expect(stale).toEqual([]);
  });

  it('answers the lookup of a deleted row by an index, even as a generic plan (a partial index included)', async () => {
    // the referential action's lookup as PostgreSQL prepares it (its plan is cached: generic after a few executions)
    const c = await db.admin.connect();
    const seqScans: string[] = [];
    try {
      await c.query('BEGIN');
      await c.query(`SET LOCAL plan_cache_mode = force_generic_plan; SET LOCAL enable_seqscan = off`);
      for (const [i, k] of keys.filter((k) => k.covered).entries()) {
        const where = k.columns.map((col, j) => `${c.escapeIdentifier(col)} = $${j + 1}`).join(' AND ');
        await c.query(`PREPARE fk_lookup_${i} (${k.types.join(', ')}) AS SELECT 1 FROM ${k.table} x WHERE ${where}`);
        const plan = (await c.query(`EXPLAIN EXECUTE fk_lookup_${i} (${k.types.map(() => 'NULL').join(', ')})`)).rows
          .map((r) => r['QUERY PLAN'] as string).join('\n');
        if (/Seq Scan/.test(plan)) seqScans.push(`${k.key}: ${plan}`);
      }
    } finally {
      await c.query('ROLLBACK');
      await c.query('DEALLOCATE ALL');
      c.release();
    }
    expect(seqScans).toEqual([]);
  });
});
