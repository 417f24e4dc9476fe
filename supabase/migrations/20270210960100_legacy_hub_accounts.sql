-- Generated from prisma/migrations/20270210960100_legacy_hub_accounts/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- Accounts the Hub (NextAuth) made through the token exchange before identities existed (20261202000100). The exchange
-- of that time kept no Hub subject, so the identities migration recorded no Hub identity for them; it gave each a Supabase
-- identity named after its id instead, which names no Supabase user: that id was minted by our exchange (randomUUID) for
-- a Hub token whose e-mail had no account. Their owner's first Hub sign-in after the upgrade found no identity and an
-- account nobody had verified: 409 auth.link_required without email_verified (locked out), or with it the claim of an
-- unverified account (password, sessions, API keys, invitations, webhooks, provider keys ... closed: AccountClaim).
--
-- How they are known: the old exchange audited every account it made as user.registered, entity user, after =
-- { ...user, provider } (provider in the clear: audit sealing seals e-mail, name, image; no audit row is ever updated),
-- and wrote no emailVerified there, which every account made since carries. It wrote that row as the account itself
-- (principalOf(user, personalOrgId): principal_type user, actor_id the account's id) in the account's personal
-- organization. The row must say all of that: from 2026-11-22 until 20270202000200 any Supabase user could insert audit
-- rows into an organization of theirs, as themselves, with any entity_id and after; a row naming another account is not
-- that account's own, nor in its personal organization. Such an account never had a password: the registration of that
-- time refused a taken e-mail, and nothing else set one. Only accounts nothing has happened to since are recorded: no
-- password, no Hub identity, no verified e-mail, no identity but that Supabase one (a claim since, by a password reset or
-- a verified Supabase sign-in, made them their claimant's), not erased, with a personal organization (the audit row's).
--
-- The first Hub sign-in of the account's e-mail consumes the record and joins its identity to the account as its own,
-- without a claim (AuthService.exchange, legacy-hub-account.repository.ts): the Hub signed that e-mail into this account
-- before, by the same assertion. The join removes nothing, so an account is recorded only when its Supabase identity is
-- provably nobody's, and that identity is removed: always on plain PostgreSQL (auth.users is the compatibility table:
-- the old exchange wrote every account there, no Supabase Auth behind it); on a Supabase database only when the
-- auth.users row of that id is our mirror (instance_id and aud NULL, as 20270210210100 tells them) and no
-- auth.identities row names it (GoTrue linked no sign-in to it: it links by e-mail alone). Otherwise the account is not
-- recorded and keeps today's way (a verified sign-in claims it, which removes that identity). Each record is audited in
-- the account's personal organization. Only service_role (the privileged auth path) reads or deletes the records; no
-- superuser needed.

CREATE TABLE core.legacy_hub_accounts (
  user_id text PRIMARY KEY REFERENCES core."User"(id) ON DELETE CASCADE,
  created_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE core.legacy_hub_accounts ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY legacy_hub_accounts_service_read ON core.legacy_hub_accounts FOR SELECT TO service_role USING (true);
CREATE POLICY legacy_hub_accounts_service_consume ON core.legacy_hub_accounts FOR DELETE TO service_role USING (true);
REVOKE ALL ON core.legacy_hub_accounts FROM PUBLIC, anon, authenticated, service_role;
GRANT SELECT, DELETE ON core.legacy_hub_accounts TO service_role;

DO $migration$
DECLARE
  gotrue boolean := EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'auth.users'::regclass AND attname = 'is_sso_user' AND NOT attisdropped);
  -- GoTrue's own row of that id, or a sign-in it linked to the mirror row: a Supabase user
  supabase_user text := 'false';
BEGIN
  IF gotrue THEN
    IF NOT has_table_privilege('auth.users', 'SELECT') THEN
      supabase_user := 'true'; -- unreadable: nothing is provably nobody's
    ELSE
      supabase_user := 'EXISTS (SELECT 1 FROM auth.users g WHERE g.id::text = lower(u.id) AND (g.instance_id IS NOT NULL OR g.aud IS NOT NULL))';
      IF to_regclass('auth.identities') IS NOT NULL THEN
        supabase_user := supabase_user || CASE WHEN has_table_privilege('auth.identities', 'SELECT')
          THEN ' OR EXISTS (SELECT 1 FROM auth.identities g WHERE g.user_id::text = lower(u.id))' ELSE ' OR true' END;
      END IF;
    END IF;
  END IF;

  EXECUTE format($sql$
    INSERT INTO core.legacy_hub_accounts (user_id)
    SELECT u.id FROM core."User" u
    WHERE EXISTS (
        SELECT 1 FROM core.audit_logs a
        WHERE a.action = 'user.registered' AND a.entity_type = 'user' AND a.entity_id = u.id
          AND a.principal_type = 'user' AND a.actor_id = u.id AND a.org_id = core.personal_org_id(u.id)
          AND a.after ->> 'provider' = 'nextauth' AND NOT (a.after ? 'emailVerified'))
      AND u.email <> 'erased+' || u.id || '@invalid'
      AND NOT EXISTS (SELECT 1 FROM core.user_credentials c WHERE c.user_id = u.id)
      AND NOT EXISTS (
        SELECT 1 FROM core.user_identities i
        WHERE i.user_id = u.id AND (i.provider <> 'supabase' OR i.subject <> lower(u.id) OR i.email_verified_at IS NOT NULL))
      AND NOT (%s)
    ORDER BY u.id
  $sql$, supabase_user);
END
$migration$;

WITH removed AS (
  DELETE FROM core.user_identities i USING core.legacy_hub_accounts m
  WHERE i.user_id = m.user_id AND i.provider = 'supabase' AND i.subject = lower(m.user_id)
  RETURNING i.user_id)
INSERT INTO core.audit_logs (org_id, actor_id, principal_type, action, entity_type, entity_id, before, after)
SELECT core.personal_org_id(m.user_id), 'migration:20270210960100', 'system', 'auth.legacy_hub_account_recorded', 'user', m.user_id,
  jsonb_build_object('identities', CASE WHEN r.user_id IS NOT NULL THEN jsonb_build_array('supabase') ELSE '[]'::jsonb END),
  jsonb_build_object('identities', '[]'::jsonb, 'legacyHubAccount', true)
FROM core.legacy_hub_accounts m
LEFT JOIN removed r ON r.user_id = m.user_id
ORDER BY m.user_id;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270210960100_legacy_hub_accounts', 'a934f9f5f846e5f9102e27f16bd50e6d1111bb3c3d4799190a28370ced1c8b55', 0)
  ON CONFLICT (name) DO NOTHING;
