import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { NOT_FROM_EXTENSION, SCHEMAS_PARAM } from './schemas.js';

/**
 * Static Citus readiness (docs/scaling.md): tenant tables (every table with an org_id column) are
 * distributed by org_id, so org_id must be NOT NULL and part of every primary key, unique key and
 * foreign key between tenant tables, and their policies may not contain subqueries.
 *
 * Tables that carry org_id but become reference tables in the plan, each with the reason.
 * The list is checked too: an entry that no longer exists or has no org_id fails.
 */
const REFERENCE_TABLES: Record<string, string> = {
  'core.analyst_logins': 'maps a database login to its organization; looked up by session_user before any organization is known',
};

describe('citus readiness (static, from the catalog)', () => {
  let db: TestDatabase;
  let tenant: { oid: number; name: string; org_attnum: number; org_not_null: boolean }[];

  beforeAll(async () => {
    db = await createTestDatabase();
    tenant = (await db.admin.query(
      `SELECT c.oid::int AS oid, format('%I.%I', n.nspname, c.relname) AS name, a.attnum::int AS org_attnum, a.attnotnull AS org_not_null
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'org_id' AND NOT a.attisdropped
       WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY($1) AND ${NOT_FROM_EXTENSION('c.oid', 'pg_class')}
       ORDER BY 2`, SCHEMAS_PARAM)).rows;
  });
  afterAll(() => db.drop());

  const distributed = () => tenant.filter((t) => !(t.name in REFERENCE_TABLES));

  it('finds the tenant tables and every listed reference table', () => {
    expect(distributed().map((t) => t.name)).toEqual(expect.arrayContaining(['core.memberships', 'core.audit_logs', 'core.outbox']));
    const names = new Set(tenant.map((t) => t.name));
    expect(Object.keys(REFERENCE_TABLES).filter((n) => !names.has(n)).map((n) => `${n}: listed as reference table but has no org_id (or is gone)`)).toEqual([]);
  });

  it('keeps org_id NOT NULL on tenant tables (a distribution column cannot be NULL)', () => {
    expect(distributed().filter((t) => !t.org_not_null).map((t) => `${t.name}.org_id is nullable`)).toEqual([]);
  });

  it('includes org_id in the primary key and every unique constraint or index of a tenant table', async () => {
    const problems: string[] = [];
    for (const t of distributed()) {
      const { rows } = await db.admin.query(
        `SELECT i.indexrelid::regclass::text AS index, i.indisprimary AS primary, $2 = ANY (i.indkey::int2[]) AS has_org
         FROM pg_index i WHERE i.indrelid = $1 AND (i.indisunique OR i.indisprimary)`, [t.oid, t.org_attnum]);
      if (!rows.some((r) => r.primary)) problems.push(`${t.name}: no primary key`);
      for (const r of rows.filter((r) => !r.has_org)) {
        problems.push(`${t.name}: ${r.primary ? 'primary key' : 'unique index'} ${r.index} does not include org_id`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('includes org_id on both sides of every foreign key between tenant tables', async () => {
    const byOid = new Map(distributed().map((t) => [t.oid, t]));
    const { rows } = await db.admin.query(
      `SELECT con.conname, con.conrelid::int AS from_oid, con.confrelid::int AS to_oid,
              con.conkey::int[] AS from_cols, con.confkey::int[] AS to_cols
       FROM pg_constraint con WHERE con.contype = 'f'`);
    const problems: string[] = [];
    for (const fk of rows) {
      const from = byOid.get(fk.from_oid);
      const to = byOid.get(fk.to_oid);
      if (!from || !to) continue;
      const i = (fk.from_cols as number[]).indexOf(from.org_attnum);
      if (i < 0 || (fk.to_cols as number[])[i] !== to.org_attnum) {
        problems.push(`${from.name} foreign key ${fk.conname} to ${to.name} does not pair org_id with org_id`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('has no subquery in any tenant-table policy (Citus rejects them; call a function instead)', async () => {
    const { rows } = await db.admin.query(
      `SELECT p.polrelid::int AS oid, p.polname,
              coalesce(p.polqual::text, '') LIKE '%{SUBLINK%' AS in_using,
              coalesce(p.polwithcheck::text, '') LIKE '%{SUBLINK%' AS in_check
       FROM pg_policy p`);
    const byOid = new Map(distributed().map((t) => [t.oid, t]));
    const bad = rows.filter((r) => byOid.has(r.oid) && (r.in_using || r.in_check))
      .map((r) => `${byOid.get(r.oid)!.name} policy ${r.polname} has a subquery in ${[r.in_using && 'USING', r.in_check && 'WITH CHECK'].filter(Boolean).join(' and ')}`);
    expect(bad).toEqual([]);
  });
});
