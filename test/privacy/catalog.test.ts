import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { AUTHORSHIP_COLUMNS, PERSONAL_COLUMN_NAME, PERSONAL_DATA_CATALOG, USER_ID_COLUMN_NAME } from '../../src/modules/privacy/personal-data.catalog.js';
import { SCHEMAS_PARAM } from '../platform/schemas.js';
import { textColumns, type TextColumn } from './columns.js';

/**
 * The catalog of personal data against the database: whatever a module adds to our schemas, a text or JSON
 * column whose name looks personal (e-mail, name, phone, address, contact, ip, user agent...) must be declared
 * in src/modules/privacy/personal-data.catalog.ts, and every declared column must exist.
 */
describe('personal data catalog', () => {
  let db: TestDatabase;
  let columns: TextColumn[];
  const declared = new Set(PERSONAL_DATA_CATALOG.flatMap((t) => Object.keys(t.columns).map((c) => `${t.table}.${c}`)));

  beforeAll(async () => {
    db = await createTestDatabase();
    columns = await textColumns(db.admin);
  });
  afterAll(() => db.drop());

  it('finds the columns it checks', () => {
    expect(columns.map((c) => `${c.table}.${c.column}`)).toEqual(expect.arrayContaining(['core."User".email', 'core.sessions.ip', 'finance.vendors.phone']));
  });

  it('declares every text or JSON column whose name looks like personal data', () => {
    const undeclared = columns
      .filter((c) => PERSONAL_COLUMN_NAME.test(c.column) && !declared.has(`${c.table}.${c.column}`))
      .map((c) => `${c.table}.${c.column} (${c.type}) looks personal: declare it in personal-data.catalog.ts`);
    expect(undeclared).toEqual([]);
  });

  it('declares only columns that exist', async () => {
    const { rows } = await db.admin.query<{ name: string }>(
      `SELECT format('%I.%I', n.nspname, c.relname) || '.' || a.attname AS name
       FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped`);
    const existing = new Set(rows.map((r) => r.name));
    expect([...declared].filter((d) => !existing.has(d)).map((d) => `${d} is declared but does not exist`)).toEqual([]);
  });

  it('locates the person of every table by a column that exists', async () => {
    const { rows } = await db.admin.query<{ name: string }>(
      `SELECT format('%I.%I', n.nspname, c.relname) || '.' || a.attname AS name
       FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped`);
    const existing = new Set(rows.map((r) => r.name));
    const missing = PERSONAL_DATA_CATALOG
      .filter((t) => 'column' in t.person && !existing.has(`${t.table}.${(t.person as { column: string }).column}`))
      .map((t) => `${t.table}: person column missing`);
    expect(missing).toEqual([]);
    // a row reached through another table's: that table is in the catalog, and the columns joining them exist
    const has = (table: string, column: string) => existing.has(`${table}.${column}`);
    const broken = PERSONAL_DATA_CATALOG.flatMap((t) => [t.person, ...(t.alsoLocatedBy ?? []), ...(t.alsoErasedBy ?? [])].flatMap((l) => (l.kind !== 'through' ? [] : [
      ...(PERSONAL_DATA_CATALOG.some((x) => x.table === l.table) ? [] : [`${t.table}: ${l.table} is not in the catalog`]),
      ...l.columns.filter(([mine, theirs]) => !has(t.table, mine) || !has(l.table, theirs)).map(([mine, theirs]) => `${t.table}.${mine} = ${l.table}.${theirs}: a column is missing`),
    ])));
    expect(broken).toEqual([]);
  });

  it('declares a user locator on a uuid column as one (compared as a uuid, its index serves it), and only those', async () => {
    const { rows } = await db.admin.query<{ name: string }>(
      `SELECT format('%I.%I', n.nspname, c.relname) || '.' || a.attname AS name
       FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped AND a.atttypid = 'uuid'::regtype`);
    const uuids = new Set(rows.map((r) => r.name));
    const wrong = PERSONAL_DATA_CATALOG.flatMap((t) => [t.person, ...(t.alsoLocatedBy ?? []), ...(t.alsoErasedBy ?? []), ...(t.alsoExportedBy?.locators ?? [])]
      .flatMap((l) => (l.kind === 'user' && !!l.uuid !== uuids.has(`${t.table}.${l.column}`) ? [`${t.table}.${l.column}: uuid ${!!l.uuid} in the catalog`] : [])));
    expect(wrong).toEqual([]);
  });

  it('knows every column that holds a user id: a person locator (the person\'s export and erasure find its rows) or an organization\'s record they authored', async () => {
    const { rows } = await db.admin.query<{ name: string }>(
      `SELECT format('%I.%I', n.nspname, c.relname) || '.' || a.attname AS name, a.attname AS column
       FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND n.nspname = ANY($1) AND a.attnum > 0 AND NOT a.attisdropped
         AND (a.attname ~* '^(user_?id|owner_user_id|actor_id|claimant_id|started_by|created_by|revoked_by|invited_by|accepted_by)$'
              OR EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conrelid = c.oid AND k.contype = 'f' AND a.attnum = ANY(k.conkey)
                         AND k.confrelid IN ('core."User"'::regclass, 'auth.users'::regclass)))`, SCHEMAS_PARAM);
    const locators = new Set(PERSONAL_DATA_CATALOG.filter((t) => 'column' in t.person).map((t) => `${t.table}.${(t.person as { column: string }).column}`));
    // the audit log names its actor; the erasure and the export find their entries by it (declared above)
    const unknown = rows.map((r) => r.name.replace(/^(\w+)\.(\w+)\./, '$1.$2.'))
      .filter((name) => !locators.has(name) && !locators.has(name.replace(/\.([A-Za-z]+)$/, '."$1"')) && AUTHORSHIP_COLUMNS[name] === undefined)
      .map((name) => `${name} holds a user id: declare its table in personal-data.catalog.ts (exported) or the column in AUTHORSHIP_COLUMNS`);
    expect(unknown).toEqual([]);
    expect(Object.keys(AUTHORSHIP_COLUMNS).every((c) => USER_ID_COLUMN_NAME.test(c.split('.').pop()!))).toBe(true);
  });

  it('gives every retained column a legal basis and a duration', () => {
    const vague = PERSONAL_DATA_CATALOG.flatMap((t) => Object.entries(t.columns)
      .filter(([, tr]) => tr.kind === 'retain' && (!tr.basis.trim() || !tr.duration.trim()))
      .map(([c]) => `${t.table}.${c}`));
    // rows in a person's export that their erasure leaves (an organization's record they wrote): kept on a stated basis too
    const keptVaguely = PERSONAL_DATA_CATALOG.filter((t) => t.alsoExportedBy && (!t.alsoExportedBy.basis.trim() || !t.alsoExportedBy.duration.trim())).map((t) => t.table);
    expect(vague).toEqual([]);
    expect(keptVaguely).toEqual([]);
  });
});
