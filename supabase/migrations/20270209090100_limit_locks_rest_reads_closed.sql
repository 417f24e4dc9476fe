-- Generated from prisma/migrations/20270209090100_limit_locks_rest_reads_closed/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- hub.limit_locks was readable over Supabase's REST API (PostgREST: `authenticated` with the token's claims, never
-- through begin_request) by any member of the organization: 20261201000100 grants SELECT to `authenticated`, the
-- table's policy (limit_lock_member) checks only the organization, and 20270205000900 closed its writes only. A viewer
-- could read a checkout's key, its Stripe sessions and checkout_params, the Stripe parameters of a checkout in doubt
-- (the requesting admin's e-mail address, the Stripe customer id).
--
-- The API reads the table as `authenticated` only in its own transactions, whose claims begin_request verified
-- (BillingRepository.lockLimits, right after inserting the row, which 20270205000900 already allows only there; the
-- SECURITY DEFINER functions that lock it run as their owner). So its reads are closed to every other `authenticated`
-- caller as its writes are: a RESTRICTIVE policy ANDed with limit_lock_member (no subquery: one inlined expression).
CREATE POLICY rest_path_closed_select ON hub.limit_locks AS RESTRICTIVE FOR SELECT TO authenticated
  USING (public.auth_claims_verified());

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270209090100_limit_locks_rest_reads_closed', 'c72862831da582e470b6ed2531cc48b139cd2086bce956fd7e83f54dcddb200d', 0)
  ON CONFLICT (name) DO NOTHING;
