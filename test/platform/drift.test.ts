import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../../src/platform/database/migrator.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { parsePrismaEnums, parsePrismaSchema, typeMismatch, type DbColumn, type PrismaModel } from './prisma-schema.js';
import { NOT_FROM_EXTENSION, SCHEMAS_PARAM } from './schemas.js';

/**
 * prisma/schema.prisma describes the typed client; the migrations are the truth. This test fails
 * when the two drift apart: a table without a model, a model without a table, a column missing on
 * either side, a different nullability or an incompatible type. Messages name table and column.
 */
describe('drift: prisma/schema.prisma matches the migrated database', () => {
  let db: TestDatabase;
  let models: PrismaModel[];
  let enums: Map<string, string>;
  let relations: Map<string, 'table' | 'view'>;
  let columns: Map<string, Map<string, DbColumn>>;

  const key = (schema: string | undefined, table: string) => `${schema ?? '?'}.${table}`;

  beforeAll(async () => {
    const source = readFileSync(join(projectRoot(), 'prisma', 'schema.prisma'), 'utf8');
    models = parsePrismaSchema(source);
    enums = parsePrismaEnums(source);
    db = await createTestDatabase();
    const rels = await db.admin.query(
      `SELECT n.nspname AS schema, c.relname AS name, CASE WHEN c.relkind = 'v' THEN 'view' ELSE 'table' END AS kind
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE c.relkind IN ('r', 'p', 'v') AND NOT c.relispartition AND n.nspname = ANY($1) AND ${NOT_FROM_EXTENSION('c.oid', 'pg_class')}`, SCHEMAS_PARAM);
    relations = new Map(rels.rows.map((r) => [key(r.schema, r.name), r.kind]));
    const cols = await db.admin.query(
      `SELECT table_schema, table_name, column_name, data_type, udt_name, is_nullable,
              character_maximum_length, numeric_precision, numeric_scale, datetime_precision
       FROM information_schema.columns WHERE table_schema = ANY($1)`, SCHEMAS_PARAM);
    columns = new Map();
    for (const c of cols.rows) {
      const k = key(c.table_schema, c.table_name);
      if (!columns.has(k)) columns.set(k, new Map());
      columns.get(k)!.set(c.column_name, c);
    }
  });
  afterAll(() => db.drop());

  it('gives every model a @@schema of ours', () => {
    const ours = SCHEMAS_PARAM[0];
    expect(models.filter((m) => !m.schema || !ours.includes(m.schema)).map((m) => `${m.kind} ${m.name}: @@schema is ${m.schema ?? 'missing'}`)).toEqual([]);
  });

  it('has a model for every table', () => {
    const modelled = new Set(models.filter((m) => m.kind === 'model').map((m) => key(m.schema, m.table)));
    const missing = [...relations].filter(([k, kind]) => kind === 'table' && !modelled.has(k)).map(([k]) => `table ${k} has no model in prisma/schema.prisma`);
    expect(missing.sort()).toEqual([]);
  });

  it('has a table (or view) for every model', () => {
    const orphans = models
      .filter((m) => relations.get(key(m.schema, m.table)) !== (m.kind === 'model' ? 'table' : 'view'))
      .map((m) => `${m.kind} ${m.name} maps to ${key(m.schema, m.table)}, which is not a ${m.kind === 'model' ? 'table' : 'view'} in the database`);
    expect(orphans).toEqual([]);
  });

  it('has the same columns, nullability and compatible types on both sides', () => {
    const problems: string[] = [];
    for (const m of models) {
      const k = key(m.schema, m.table);
      const dbCols = columns.get(k);
      if (!dbCols) continue; // reported by the test above
      const fieldCols = new Set(m.fields.map((f) => f.column));
      for (const col of dbCols.keys()) {
        if (!fieldCols.has(col)) problems.push(`${k}.${col}: column has no field in model ${m.name}`);
      }
      for (const f of m.fields) {
        const col = dbCols.get(f.column);
        if (!col) {
          problems.push(`${k}.${f.column}: field ${m.name}.${f.name} has no column`);
          continue;
        }
        if (!f.list && f.optional !== (col.is_nullable === 'YES')) {
          problems.push(`${k}.${f.column}: model says ${f.optional ? 'optional' : 'required'}, column is ${col.is_nullable === 'YES' ? 'nullable' : 'NOT NULL'}`);
        }
        // the knowledge chunks' embedding is pgvector's vector, or real[] where the migration found no pgvector
        // (20261224000100_knowledge); the model names the vector type
        if (k === 'ai.knowledge_chunks' && f.column === 'embedding' && col.data_type === 'ARRAY' && col.udt_name === '_float4') continue;
        const mismatch = typeMismatch(f, col, f.isEnum ? enums.get(f.type) : undefined);
        if (mismatch) problems.push(`${k}.${f.column}: ${mismatch}`);
      }
    }
    expect(problems).toEqual([]);
  });
});

describe('drift: the schema parser and type rules', () => {
  const schema = `
    enum Status { open closed  @@map("status_t") @@schema("core") }
    model Thing {
      orgId     String   @map("org_id") @db.Uuid // comment with "quotes" @map("nope")
      id        BigInt   @default(autoincrement())
      amount    Decimal  @db.Decimal(12, 2)
      note      String?
      tags      String[]
      status    Status
      at        DateTime @db.Timestamptz(6)
      parent    Thing?   @relation("tree", fields: [orgId, id], references: [orgId, id])
      login     Unsupported("name")
      @@id([orgId, id])
      @@map("things")
      @@schema("core")
    }`;
  const col = (udt: string, extra: Partial<DbColumn> = {}): DbColumn => ({
    data_type: udt, udt_name: udt, is_nullable: 'NO', character_maximum_length: null, numeric_precision: null, numeric_scale: null, datetime_precision: null, ...extra,
  });

  it('reads @@schema, @@map, @map, optionality, lists, @db types and skips relation fields', () => {
    const [m] = parsePrismaSchema(schema);
    expect(m).toMatchObject({ name: 'Thing', schema: 'core', table: 'things' });
    expect(m.fields.map((f) => f.column)).toEqual(['org_id', 'id', 'amount', 'note', 'tags', 'status', 'at', 'login']);
    expect(m.fields[0]).toMatchObject({ type: 'String', nativeType: 'Uuid', optional: false });
    expect(m.fields[2]).toMatchObject({ nativeType: 'Decimal', nativeArgs: ['12', '2'] });
    expect(m.fields[3].optional).toBe(true);
    expect(m.fields[4].list).toBe(true);
    expect(parsePrismaEnums(schema).get('Status')).toBe('status_t');
  });

  it('accepts compatible types and names incompatible ones', () => {
    const f = Object.fromEntries(parsePrismaSchema(schema)[0].fields.map((x) => [x.name, x]));
    expect(typeMismatch(f.orgId, col('uuid'))).toBeNull();
    expect(typeMismatch(f.orgId, col('text'))).toMatch(/expects uuid but the column is text/);
    expect(typeMismatch(f.id, col('int8'))).toBeNull();
    expect(typeMismatch(f.id, col('int4'))).toMatch(/int8/);
    expect(typeMismatch(f.amount, col('numeric', { numeric_precision: 12, numeric_scale: 2 }))).toBeNull();
    expect(typeMismatch(f.amount, col('numeric', { numeric_precision: 18, numeric_scale: 4 }))).toMatch(/Decimal\(12, 2\)/);
    expect(typeMismatch(f.amount, col('float8'))).toMatch(/numeric/);
    expect(typeMismatch(f.tags, { ...col('_text'), data_type: 'ARRAY' })).toBeNull();
    expect(typeMismatch(f.tags, col('text'))).toMatch(/not an array/);
    expect(typeMismatch(f.status, { ...col('status_t'), data_type: 'USER-DEFINED' }, 'status_t')).toBeNull();
    expect(typeMismatch(f.at, col('timestamptz'))).toBeNull();
    expect(typeMismatch(f.at, col('timestamp'))).toMatch(/timestamptz/);
    expect(typeMismatch(f.login, col('name'))).toBeNull();
  });
});
