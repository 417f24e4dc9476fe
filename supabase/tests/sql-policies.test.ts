import { describe, expect, it } from '@jest/globals';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { createTestDatabase } from '../../test/support/database.js';

/**
 * Runs every supabase/tests/*.sql file against its own fresh clone of the migrated template, as
 * the owner (the files switch role and claims themselves). A file fails by raising; the failure
 * names the file and carries the database's message.
 */
const here = dirname(fileURLToPath(import.meta.url));
const files = readdirSync(here).filter((f) => f.endsWith('.sql')).sort();
const assertions = readFileSync(join(here, 'helpers', 'assertions.sql'), 'utf8');

async function runSqlFile(name: string, sql: string): Promise<void> {
  const db = await createTestDatabase();
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  try {
    await client.query(assertions);
    await client.query(sql);
  } catch (err) {
    const e = err as pg.DatabaseError;
    throw new Error(`supabase/tests/${name} failed: ${e.message}${e.where ? `\n  where: ${e.where}` : ''}`);
  } finally {
    await client.end();
    await db.drop();
  }
}

describe('SQL policy tests (supabase/tests/*.sql)', () => {
  it('finds the SQL files', () => {
    expect(files.length).toBeGreaterThanOrEqual(4);
  });

  it.each(files)('%s', async (file) => {
    await runSqlFile(file, readFileSync(join(here, file), 'utf8'));
  });

  it('reports a failing file by name with the raised message', async () => {
    await expect(runSqlFile('broken.sql', `BEGIN; DO $$ BEGIN RAISE EXCEPTION 'expected 1, got 2'; END $$; ROLLBACK;`))
      .rejects.toThrow(/supabase\/tests\/broken\.sql failed: expected 1, got 2/);
  });
});
