import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

const here = dirname(fileURLToPath(import.meta.url));

/** supabase/tests/*.sql, in order */
export const POLICY_SQL_FILES = readdirSync(here).filter((f) => f.endsWith('.sql')).sort();

export const readPolicySqlFile = (name: string) => readFileSync(join(here, name), 'utf8');

/** Whether a file becomes other logins with SET SESSION AUTHORIZATION, which only a superuser session may do. */
export const needsSuperuser = (sql: string) => /SESSION AUTHORIZATION/i.test(sql);

/**
 * Runs one SQL policy test file on `url` (after the shared assertions). A file fails by raising; the error
 * names the file and carries the database's message.
 */
export async function runPolicySqlFile(url: string, name: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(readFileSync(join(here, 'helpers', 'assertions.sql'), 'utf8'));
    await client.query(sql);
  } catch (err) {
    const e = err as pg.DatabaseError;
    throw new Error(`supabase/tests/${name} failed: ${e.message}${e.where ? `\n  where: ${e.where}` : ''}`);
  } finally {
    await client.end();
  }
}
