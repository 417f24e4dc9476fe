import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { migrate, projectRoot } from '../../src/platform/database/migrator.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';

const IDENTITIES = '20261202000100_identities';
const before = readdirSync(join(projectRoot(), 'prisma', 'migrations')).sort().filter((m) => m < IDENTITIES).at(-1)!;

describe('identities migration: existing accounts get the identities they sign in with', () => {
  let db: TestDatabase;
  const [passwordUser, exchangeUser] = [randomUUID(), randomUUID()];

  beforeAll(async () => {
    db = await createTestDatabase({ template: null });
    await migrate(db.url, { until: before, log: () => undefined });
  });
  afterAll(() => db.drop());

  it('backfills an unverified password identity per password and a Supabase identity per exchange-made account', async () => {
    const q = (sql: string, params: unknown[] = []) => db.admin.query(sql, params);
    for (const [id, email] of [[passwordUser, 'Pat@Example.test'], [exchangeUser, 'sam@example.test']]) {
      await q(`INSERT INTO core."User" (id, email, "createdAt", "updatedAt") VALUES ($1, $2, now(), now())`, [id, email]);
    }
    await q(`INSERT INTO core.user_credentials (user_id, password_hash) VALUES ($1, '$2a$12$legacy')`, [passwordUser]);

    const applied = await migrate(db.url, { log: () => undefined });
    expect(applied).toContain(IDENTITIES);

    const { rows } = await q('SELECT provider, subject, user_id, email, email_verified_at FROM core.user_identities ORDER BY provider');
    expect(rows).toEqual([
      { provider: 'password', subject: passwordUser, user_id: passwordUser, email: 'pat@example.test', email_verified_at: null },
      { provider: 'supabase', subject: exchangeUser, user_id: exchangeUser, email: 'sam@example.test', email_verified_at: null },
    ]);
  });
});
