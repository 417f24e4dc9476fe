-- Generated from prisma/migrations/20270211003300_payables_first_posting_pending/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- Whether payables' first posting without settings is still to come, for the caller's verified organization
-- (PayablesService: its posting lock is taken exclusively for that posting only, so that a manual entry on the default
-- AP account 2100 cannot commit meanwhile). The API read it as the caller, and a member's restrictive read policies
-- (20270206000100) hide the other employees' expense claims and reimbursements: in an organization whose payables
-- postings were all expense claims, every member's request still read "first posting pending" and drained every
-- posting in flight. Read here as the owner, whatever the caller may see; it answers one boolean and nothing of the
-- rows (NULL for a caller who may not act in the claimed organization: public.auth_org_id() is NULL). Not VOLATILE:
-- it changes nothing.
CREATE FUNCTION finance.payables_first_posting_pending() RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
  SELECT NOT EXISTS (SELECT 1 FROM finance.payables_settings s WHERE s.org_id = o.org)
     AND NOT EXISTS (SELECT 1 FROM finance.bills b WHERE b.org_id = o.org AND b.journal_entry_id IS NOT NULL)
     AND NOT EXISTS (SELECT 1 FROM finance.bill_payments p WHERE p.org_id = o.org)
  FROM (SELECT public.auth_org_id() AS org) o
  WHERE o.org IS NOT NULL
$$;
REVOKE ALL ON FUNCTION finance.payables_first_posting_pending() FROM PUBLIC, anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION finance.payables_first_posting_pending() TO authenticated;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270211003300_payables_first_posting_pending', 'aa67a50f865a4a7cc36f21750676ba7b7b11a25da3ab1c922f51d05080501802', 0)
  ON CONFLICT (name) DO NOTHING;
