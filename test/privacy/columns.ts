import type pg from 'pg';
import { NOT_FROM_EXTENSION, SCHEMAS_PARAM } from '../platform/schemas.js';

export interface TextColumn {
  /** format('%I.%I'): core."User" */
  table: string;
  column: string;
  type: string;
}

/** Every text, varchar, text[] and json(b) column of every table in our schemas (from pg_catalog). */
export async function textColumns(admin: pg.Pool): Promise<TextColumn[]> {
  const { rows } = await admin.query<TextColumn>(
    `SELECT format('%I.%I', n.nspname, c.relname) AS table, a.attname AS column, format_type(a.atttypid, a.atttypmod) AS type
     FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY($1) AND a.attnum > 0 AND NOT a.attisdropped
       AND a.atttypid IN ('text'::regtype, 'varchar'::regtype, 'text[]'::regtype, 'json'::regtype, 'jsonb'::regtype, 'varchar[]'::regtype)
       AND NOT c.relispartition AND ${NOT_FROM_EXTENSION('c.oid', 'pg_class')}
     ORDER BY 1, 2`, SCHEMAS_PARAM);
  return rows;
}

/** `table.column` of every place `needle` occurs (case-insensitive) in any text or JSON column of our schemas. */
export async function findEverywhere(admin: pg.Pool, needle: string): Promise<string[]> {
  const found: string[] = [];
  for (const c of await textColumns(admin)) {
    const col = `"${c.column.replace(/"/g, '""')}"`;
    const { rows } = await admin.query(`SELECT count(*)::int AS n FROM ${c.table} WHERE strpos(lower(${col}::text), lower($1)) > 0`, [needle]);
    if (rows[0].n > 0) found.push(`${c.table}.${c.column} (${rows[0].n} rows)`);
  }
  return found;
}
