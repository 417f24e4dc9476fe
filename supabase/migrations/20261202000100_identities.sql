-- Generated from prisma/migrations/20261202000100_identities/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- Identities (issue 21): a user signs in through identities (provider, subject) -- a password, a Hub /
-- NextAuth session, a Supabase user -- each with the e-mail it asserted and whether that e-mail was
-- verified. The token exchange finds users by identity, never by e-mail alone, and links by e-mail
-- only between verified e-mails. Plus the state that proves an e-mail (verification tokens) and the
-- single-use record of app tokens (Hub -> app handshake).
-- Only the privileged auth paths (role service_role) touch these tables; API-facing roles get nothing.

CREATE TABLE core.user_identities (
  provider text NOT NULL CHECK (provider IN ('password', 'nextauth', 'supabase')),
  -- password: the user id; nextauth: the Hub's sub; supabase: the auth.users id
  subject text NOT NULL CHECK (length(subject) BETWEEN 1 AND 400),
  user_id text NOT NULL REFERENCES core."User"(id) ON DELETE CASCADE,
  email text NOT NULL,
  email_verified_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  last_used_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (provider, subject)
);
CREATE INDEX user_identities_user_idx ON core.user_identities (user_id);

-- Proof of an e-mail address: the link carries the token, only its SHA-256 is stored.
CREATE TABLE core.email_verification_tokens (
  token_hash text PRIMARY KEY,
  user_id text NOT NULL REFERENCES core."User"(id) ON DELETE CASCADE,
  email text NOT NULL,
  expires_at timestamptz NOT NULL,
  used_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX email_verification_tokens_user_idx ON core.email_verification_tokens (user_id);

-- An app token (jti) is redeemed once; the row outlives the token's expiry, then the purge job drops it.
CREATE TABLE core.app_token_redemptions (
  jti uuid PRIMARY KEY,
  user_id text NOT NULL REFERENCES core."User"(id) ON DELETE CASCADE,
  app_code text NOT NULL,
  expires_at timestamptz NOT NULL,
  redeemed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX app_token_redemptions_expires_idx ON core.app_token_redemptions (expires_at);

ALTER TABLE core.user_identities ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE core.email_verification_tokens ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE core.app_token_redemptions ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;

CREATE POLICY user_identities_service ON core.user_identities FOR ALL TO service_role USING (true) WITH CHECK (true);
CREATE POLICY email_verification_tokens_service ON core.email_verification_tokens FOR ALL TO service_role USING (true) WITH CHECK (true);
CREATE POLICY app_token_redemptions_service ON core.app_token_redemptions FOR ALL TO service_role USING (true) WITH CHECK (true);

-- core's default privileges (and Supabase's in public) would hand these to API-facing roles: take all
-- back, then give the privileged auth path exactly what it does.
REVOKE ALL ON core.user_identities, core.email_verification_tokens, core.app_token_redemptions
  FROM PUBLIC, anon, authenticated, service_role;
GRANT SELECT, INSERT, UPDATE, DELETE ON core.user_identities TO service_role;
GRANT SELECT, INSERT, UPDATE, DELETE ON core.email_verification_tokens TO service_role;
GRANT SELECT, INSERT, DELETE ON core.app_token_redemptions TO service_role;

-- Every existing password becomes a password identity, its e-mail not (yet) verified: nobody ever
-- proved it.
INSERT INTO core.user_identities (provider, subject, user_id, email)
SELECT 'password', u.id, u.id, lower(u.email)
FROM core."User" u JOIN core.user_credentials c ON c.user_id = u.id
ON CONFLICT DO NOTHING;
-- Accounts without a password were made by the exchange. A Supabase user's account took its
-- auth.users id, so (supabase, id) is its identity and it keeps signing in; for a Hub user's account
-- (a random id) that identity names no Supabase user and is never matched. Hub users are found again
-- by the first exchange whose token says the Hub verified the e-mail (email_verified), which claims
-- the account as it claims any account nobody verified.
INSERT INTO core.user_identities (provider, subject, user_id, email)
SELECT 'supabase', lower(u.id), u.id, lower(u.email)
FROM core."User" u
WHERE NOT EXISTS (SELECT 1 FROM core.user_credentials c WHERE c.user_id = u.id)
  AND u.id ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
ON CONFLICT DO NOTHING;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20261202000100_identities', '243d00fef7e1f79690eb154db61a49bdcc38e863893812f31811a1d464d4c12d', 0)
  ON CONFLICT (name) DO NOTHING;
