-- Generated from prisma/migrations/20270205000900_rest_path_writes_closed/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- Writes over Supabase's REST API (PostgREST: `authenticated` with the token's claims, never through begin_request)
-- are closed on every table of OmniZen's own schemas, not table by table.
--
-- 20270202000200 closed core.outbox and core.audit_logs, 20270205000500 data exports. A review
-- found the same hole on every other table the API writes as `authenticated`: the write policies check membership
-- and role, which a REST caller's token passes as well as the API's transaction does. Over /rest/v1 an admin could
-- change a member's role or an organization unaudited, an accountant reopen a closed fiscal period
-- (finance.fiscal_periods), insert accounts, invoices or tax codes past the API's checks and plan gates, and call
-- rpc/post_journal_entry on a subscription that allows no writing. Every mutation is meant to be audited and to
-- pass the API's rules, so a row is written as `authenticated` only in a transaction whose claims begin_request
-- verified (public.auth_claims_verified()). Reads over REST are unchanged: a member still sees their
-- organization's rows.
--
-- 1. For each table in core, finance, hub and ai on which `authenticated` holds INSERT, UPDATE or DELETE, a
--    RESTRICTIVE policy per command (rest_path_closed_insert / _update / _delete) ANDed with the table's own
--    policies (no subquery in a policy: Citus, test/platform/citus.test.ts; the function is one inlined expression). Schema public keeps the seed's user-owned tables
--    (integrations, integration_secrets, providers) writable over REST by their owner, as the seed specifies.
--    A new table needs the same three policies: test/security/rest-path-writes.test.ts lists every table that
--    lacks them.
-- 2. The postings: finance.post_journal_entry / post_journal_entries run as finance_posting (SECURITY DEFINER), so
--    the policies of (1) do not reach them. finance.journal_entries takes a posting's row only from a verified
--    transaction or from the privileged paths (service_role), as core.personal_data_key decides its callers. Every
--    posting writes its entry row, so nothing of a refused posting is written.
DO $$
DECLARE
  t record;
BEGIN
  FOR t IN
    SELECT c.oid::regclass AS rel,
           has_any_column_privilege('authenticated', c.oid, 'INSERT') AS ins,
           has_any_column_privilege('authenticated', c.oid, 'UPDATE') AS upd,
           has_table_privilege('authenticated', c.oid, 'DELETE') AS del
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname IN ('core', 'finance', 'hub', 'ai') AND c.relkind IN ('r', 'p')
    ORDER BY 1::text
  LOOP
    IF t.ins THEN
      EXECUTE format('CREATE POLICY rest_path_closed_insert ON %s AS RESTRICTIVE FOR INSERT TO authenticated
        WITH CHECK (public.auth_claims_verified())', t.rel);
    END IF;
    IF t.upd THEN
      EXECUTE format('CREATE POLICY rest_path_closed_update ON %s AS RESTRICTIVE FOR UPDATE TO authenticated
        USING (public.auth_claims_verified()) WITH CHECK (public.auth_claims_verified())', t.rel);
    END IF;
    IF t.del THEN
      EXECUTE format('CREATE POLICY rest_path_closed_delete ON %s AS RESTRICTIVE FOR DELETE TO authenticated
        USING (public.auth_claims_verified())', t.rel);
    END IF;
  END LOOP;
END
$$;

CREATE POLICY journal_entries_posting_caller ON finance.journal_entries AS RESTRICTIVE FOR INSERT TO finance_posting
  WITH CHECK (public.auth_claims_verified() OR current_setting('role', true) = 'service_role');

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270205000900_rest_path_writes_closed', '40caa51672f795cf1ace31c93ffd848d2fab337fb2332a0e7992ebeb54cba94e', 0)
  ON CONFLICT (name) DO NOTHING;
