import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type pg from 'pg';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { PERSONAL_DATA_CATALOG, type PersonLocator } from '../../src/modules/privacy/personal-data.catalog.js';
import { locate, type LocatedPerson } from '../../src/modules/privacy/erasure.repository.js';

/**
 * A person's export and erasure read each catalog table by its person locators, across every organization: each
 * table's statement, and each of its locators on its own, planned with sequential scans priced out, searches an index on
 * its leading column. A lookup no index serves (a uuid column cast to text, a user column with no index, an index that
 * leads on another column, an EXISTS or'ed with another locator) reads its whole table or index: at volume that is up to
 * seconds per table (docs/privacy.md, Export; migration 20270211000300). The value scans bounded by the person's
 * organizations search the primary keys that lead on org_id.
 */
describe('person locators are index lookups', () => {
  let db: TestDatabase;

  /**
   * The partial index a statement reads whole by design (its plan has no index condition there), and why. Locators given
   * nothing to look for (a value scan of no changed column) plan no statement.
   */
  const READ_WHOLE: Record<string, string> = {
    // a digest is stored under its first organization's id but gathers every organization's notices: the digests are read
    // whole, by their partial index (one per user, category and hour at most, purged after 30 days)
    'core.email_deliveries erasure': 'email_deliveries_digest_mail_idx',
  };

  const CHANGED: string[] = ['erase', 'pseudonymize', 'delete-row'];

  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(() => db.drop());

  type PlanNode = { 'Node Type': string; 'Relation Name'?: string; 'Index Name'?: string; 'Index Cond'?: string; Plans?: PlanNode[] };
  const nodesOf = (n: PlanNode): PlanNode[] => [n, ...(n.Plans ?? []).flatMap(nodesOf)];
  const name = (l: PersonLocator) =>
    l.kind === 'user' || l.kind === 'email' || l.kind === 'personal-org' || l.kind === 'erased-org' ? `${l.kind} ${l.column}`
      : l.kind === 'through' ? `through ${l.table}`
        : l.kind === 'value-scan' ? `value-scan${l.only ? ` ${l.only.column}=${l.only.values.join(',')}` : ''}` : l.kind;

  /** What the index leads on, as its plan's condition prints it (parentheses and spaces left out): `org_id`, `lower(to_address)`. */
  const bare = (sql: string) => sql.replace(/[()\s]/g, '');
  async function leadingKey(c: pg.PoolClient, index: string): Promise<string> {
    const { rows: [row] } = await c.query<{ key: string }>(
      `SELECT pg_get_indexdef(i.oid, 1, true) AS key FROM pg_class i JOIN pg_namespace n ON n.oid = i.relnamespace
       WHERE i.relname = $1 AND i.relkind IN ('i', 'I') AND n.nspname IN ('core', 'public', 'finance', 'ai', 'hub')`, [index]);
    return bare(row.key);
  }

  /** What of the statement's plan reads a table or an index whole. */
  async function wholeReadsOf(c: pg.PoolClient, label: string, table: string, where: { sql: string; values: unknown[] }, readWhole?: string): Promise<string[]> {
    const found: string[] = [];
    const { rows: [{ 'QUERY PLAN': [plan] }] } = await c.query(`EXPLAIN (FORMAT JSON) SELECT 1 FROM ${table} x WHERE ${where.sql}`, where.values);
    for (const n of nodesOf(plan.Plan as PlanNode)) {
      if (n['Node Type'] === 'Seq Scan') found.push(`${label}: Seq Scan on ${n['Relation Name']}`);
      if (!n['Index Name'] || n['Index Name'] === readWhole) continue;
      const key = await leadingKey(c, n['Index Name']);
      if (!bare(n['Index Cond'] ?? '').includes(key)) {
        found.push(`${label}: ${n['Node Type']} on ${n['Index Name']} reads it whole (leads on ${key}; condition ${n['Index Cond'] ?? 'none'})`);
      }
    }
    return found;
  }

  /**
   * Each table's statement (export and erasure) as a whole, where its locators are or'ed (an arm no index serves makes it
   * read the table), and each locator on its own (what its own index serves is checked even where another arm's would do).
   */
  async function wholeReads(c: pg.PoolClient, person: LocatedPerson): Promise<string[]> {
    const found: string[] = [];
    for (const t of PERSONAL_DATA_CATALOG) {
      for (const erasure of [false, true]) {
        if (!erasure && t.exported === false) continue;
        // the erasure reads only the tables it changes (erasureRepository.applyCatalog); a party is erased by its id in
        // one organization (its primary key)
        if (erasure && !Object.values(t.columns).some((tr) => CHANGED.includes(tr.kind))) continue;
        if (t.person.kind === 'party') continue;
        // the export reads no table whose rows are found by their content only
        if (!erasure && t.person.kind === 'value-scan') continue;
        const mode = erasure ? 'erasure' : 'export';
        const readWhole = READ_WHOLE[`${t.table} ${mode}`];
        const all = locate(t, person, erasure);
        if (all) found.push(...await wholeReadsOf(c, `${t.table} ${mode}`, t.table, all, readWhole));
        const locators = [t.person, ...(t.alsoLocatedBy ?? []), ...(erasure ? t.alsoErasedBy ?? [] : t.alsoExportedBy?.locators ?? [])];
        for (const l of locators.length > 1 ? locators : []) {
          const where = locate({ ...t, person: l, alsoLocatedBy: undefined, alsoErasedBy: undefined, alsoExportedBy: undefined }, person, erasure);
          if (where) found.push(...await wholeReadsOf(c, `${t.table} ${mode} ${name(l)}`, t.table, where, readWhole));
        }
      }
    }
    return found;
  }

  it('finds every locator\'s rows by an index search on its leading column, in the export and in the erasure', async () => {
    const person: LocatedPerson = { userId: randomUUID(), emails: ['someone@example.test'], orgIds: [randomUUID(), randomUUID()], erasedOrgIds: [randomUUID()] };
    const c = await db.admin.connect();
    try {
      await c.query('BEGIN');
      await c.query('SET LOCAL enable_seqscan = off');
      expect(await wholeReads(c, person)).toEqual([]);
    } finally {
      await c.query('ROLLBACK');
      c.release();
    }
  });

  it('looks for a user id that is no uuid in no uuid column: every statement still runs', async () => {
    // core."User".id is text: an id that is no uuid (a legacy account's) must not fail the export's or the erasure's
    // statement on a uuid column (ai.runs.started_by, public.integrations.user_id...) with an invalid uuid
    const person: LocatedPerson = { userId: 'legacy-user-1', emails: ['legacy@example.test'], orgIds: [randomUUID()], erasedOrgIds: [randomUUID()] };
    const counted: string[] = [];
    for (const t of PERSONAL_DATA_CATALOG) {
      for (const erasure of [false, true]) {
        const where = locate(t, person, erasure);
        if (!where) continue;
        const { rows: [{ n }] } = await db.admin.query(`SELECT count(*)::int AS n FROM ${t.table} x WHERE ${where.sql}`, where.values);
        counted.push(`${t.table} ${n}`);
      }
    }
    expect(counted).toContain('ai.runs 0');
    expect(counted).toContain('public.integrations 0');
    const runs = PERSONAL_DATA_CATALOG.find((x) => x.table === 'ai.runs')!;
    expect(locate(runs, person, false)!.sql).toBe('false');
  });
});
