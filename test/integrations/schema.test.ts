import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestDatabase, type TestDatabase } from '../support/database.js';

// Seed 004, transcribed: columns (type, nullability, default), indexes, constraints, triggers and policies.
const COLUMNS = {
  integrations: [
    ['id', 'uuid', 'NO', 'gen_random_uuid()'],
    ['user_id', 'uuid', 'NO', null],
    ['integration_type', 'text', 'NO', null],
    ['label', 'text', 'YES', null],
    ['status', 'text', 'NO', "'active'::text"],
    ['created_at', 'timestamp with time zone', 'NO', 'now()'],
    ['updated_at', 'timestamp with time zone', 'NO', 'now()'],
    ['external_username', 'text', 'YES', null],
    ['external_email', 'text', 'YES', null],
  ],
  integration_secrets: [
    ['integration_id', 'uuid', 'NO', null],
    ['user_id', 'uuid', 'NO', null],
    ['secret', 'jsonb', 'NO', null],
    ['created_at', 'timestamp with time zone', 'NO', 'now()'],
    ['updated_at', 'timestamp with time zone', 'NO', 'now()'],
  ],
  providers: [
    ['id', 'uuid', 'NO', 'gen_random_uuid()'],
    ['owner_user_id', 'uuid', 'NO', null],
    ['public_slug', 'text', 'YES', null],
    ['is_public', 'boolean', 'NO', 'false'],
    ['timezone', 'text', 'NO', "'Asia/Dubai'::text"],
    ['settings', 'jsonb', 'NO', "'{}'::jsonb"],
    ['created_at', 'timestamp with time zone', 'NO', 'now()'],
    ['updated_at', 'timestamp with time zone', 'NO', 'now()'],
  ],
};

describe('seed 004 schema, exactly', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(() => db.drop());
  const q = async (sql: string) => (await db.admin.query({ text: sql, rowMode: 'array' })).rows;

  it('has every column with its type, nullability and default, in order', async () => {
    for (const [table, expected] of Object.entries(COLUMNS)) {
      const rows = await q(`SELECT column_name, data_type, is_nullable, column_default FROM information_schema.columns
        WHERE table_schema = 'public' AND table_name = '${table}' ORDER BY ordinal_position`);
      expect([table, rows]).toEqual([table, expected]);
    }
    expect(await q(`SELECT extname FROM pg_extension WHERE extname = 'pgcrypto'`)).toEqual([['pgcrypto']]);
  });

  it('has the indexes, unique constraints, foreign keys and checks', async () => {
    const indexes = await q(`SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'
      AND tablename IN ('integrations', 'integration_secrets', 'providers') ORDER BY indexname`);
    expect(indexes.map((r) => [r[0], String(r[1]).replace(/^.* USING btree /, '')])).toEqual([
      ['integration_secrets_pkey', '(integration_id)'],
      ['integration_secrets_user_id_idx', '(user_id)'],
      ['integrations_pkey', '(id)'],
      ['integrations_user_id_idx', '(user_id)'],
      ['integrations_user_type_uq', '(user_id, integration_type)'],
      ['providers_owner_user_id_uq', '(owner_user_id)'],
      ['providers_pkey', '(id)'],
      ['providers_public_slug_uq', '(public_slug)'],
    ]);
    const unique = await q(`SELECT indexname FROM pg_indexes WHERE schemaname = 'public' AND indexdef LIKE 'CREATE UNIQUE%'
      AND tablename IN ('integrations', 'integration_secrets', 'providers') ORDER BY 1`);
    expect(unique.flat()).toEqual(['integration_secrets_pkey', 'integrations_pkey', 'integrations_user_type_uq', 'providers_owner_user_id_uq', 'providers_pkey', 'providers_public_slug_uq']);
    const fks = await q(`SELECT conrelid::regclass::text, pg_get_constraintdef(oid) FROM pg_constraint
      WHERE contype = 'f' AND conrelid::regclass::text IN ('integrations', 'integration_secrets', 'providers') ORDER BY 1, 2`);
    expect(fks).toEqual([
      ['integration_secrets', 'FOREIGN KEY (integration_id) REFERENCES integrations(id) ON DELETE CASCADE'],
      ['integration_secrets', 'FOREIGN KEY (user_id) REFERENCES auth.users(id) ON DELETE CASCADE'],
      ['integrations', 'FOREIGN KEY (user_id) REFERENCES auth.users(id) ON DELETE CASCADE'],
      ['providers', 'FOREIGN KEY (owner_user_id) REFERENCES auth.users(id) ON DELETE CASCADE'],
    ]);
    // beyond the seed (20270211003100): the status the API documents, whoever writes the row
    const checks = await q(`SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid), convalidated FROM pg_constraint
      WHERE contype = 'c' AND conrelid::regclass::text IN ('integrations', 'integration_secrets', 'providers') ORDER BY 1, 2`);
    expect(checks).toEqual([
      ['integrations', 'integrations_status_check', "CHECK ((status = ANY (ARRAY['active'::text, 'disabled'::text, 'error'::text])))", true],
    ]);
  });

  it('has the triggers', async () => {
    const triggers = await q(`SELECT tgrelid::regclass::text, tgname, pg_get_triggerdef(oid) FROM pg_trigger
      WHERE NOT tgisinternal AND tgrelid::regclass::text IN ('integrations', 'integration_secrets', 'providers') ORDER BY 2`);
    expect(triggers.map((r) => [r[1], String(r[2]).replace(/^CREATE TRIGGER \S+ /, '').replace(/ ON public\.\w+ FOR EACH ROW/, '')])).toEqual([
      ['integration_secrets_owner', 'BEFORE INSERT OR UPDATE EXECUTE FUNCTION enforce_integration_owner()'],
      ['integration_secrets_touch', 'BEFORE UPDATE EXECUTE FUNCTION touch_updated_at()'],
      ['integrations_touch', 'BEFORE UPDATE EXECUTE FUNCTION touch_updated_at()'],
      // beyond the seed (20270210360100): what the owner writes over REST is checked as the API checks it
      ['providers_check', 'BEFORE INSERT OR UPDATE EXECUTE FUNCTION check_provider_row()'],
      ['providers_touch', 'BEFORE UPDATE EXECUTE FUNCTION touch_updated_at()'],
    ]);
  });

  it('has RLS enabled and forced, the four auth.uid() policies per table for authenticated, and for service_role only the erasure path', async () => {
    const rls = await q(`SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class
      WHERE relnamespace = 'public'::regnamespace AND relname IN ('integrations', 'integration_secrets', 'providers') ORDER BY 1`);
    expect(rls).toEqual([['integration_secrets', true, true], ['integrations', true, true], ['providers', true, true]]);
    const policies = await q(`SELECT tablename, cmd, roles::text, coalesce(qual, with_check) FROM pg_policies
      WHERE schemaname = 'public' AND tablename IN ('integrations', 'integration_secrets', 'providers') ORDER BY 1, 2`);
    const owner = (t: string) => (t === 'providers' ? 'owner_user_id' : 'user_id');
    const expected = ['integration_secrets', 'integrations', 'providers'].flatMap((t) =>
      ['DELETE', 'INSERT', 'SELECT', 'UPDATE'].map((cmd) => [t, cmd, '{authenticated}', `(auth.uid() = ${owner(t)})`]));
    expect(policies.filter((p) => p[2] === '{authenticated}')).toEqual(expected);
    // DELETE /v1/me (issue 20) deletes a person's rows as service_role on the privileged path privacy.erasure, and nowhere else
    const others = policies.filter((p) => p[2] !== '{authenticated}');
    expect(others.length).toBeGreaterThan(0);
    for (const p of others) {
      expect(p[2]).toBe('{service_role}');
      expect(p[3]).toBe(`(current_setting('omnizen.privileged_path'::text, true) = 'privacy.erasure'::text)`);
    }
  });
});
