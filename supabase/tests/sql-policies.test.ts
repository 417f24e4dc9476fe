import { describe, expect, it } from '@jest/globals';
import { createTestDatabase } from '../../test/support/database.js';
import { POLICY_SQL_FILES, readPolicySqlFile, runPolicySqlFile } from './run-sql-file.js';

/**
 * Runs every supabase/tests/*.sql file against its own fresh clone of the migrated template, as
 * the owner (the files switch role and claims themselves). A file fails by raising; the failure
 * names the file and carries the database's message. test/supabase/supabase-project.test.ts runs
 * the same files on a Supabase-shaped database.
 */
async function runOnClone(name: string, sql: string): Promise<void> {
  const db = await createTestDatabase();
  try {
    await runPolicySqlFile(db.url, name, sql);
  } finally {
    await db.drop();
  }
}

describe('SQL policy tests (supabase/tests/*.sql)', () => {
  it('finds the SQL files', () => {
    expect(POLICY_SQL_FILES.length).toBeGreaterThanOrEqual(4);
  });

  it.each(POLICY_SQL_FILES)('%s', async (file) => {
    await runOnClone(file, readPolicySqlFile(file));
  });

  it('reports a failing file by name with the raised message', async () => {
    await expect(runOnClone('broken.sql', `BEGIN; DO $$ BEGIN RAISE EXCEPTION 'expected 1, got 2'; END $$; ROLLBACK;`))
      .rejects.toThrow(/supabase\/tests\/broken\.sql failed: expected 1, got 2/);
  });
});
