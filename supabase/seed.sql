-- Demo data for local development: one user, their personal organization, a business
-- organization they own, and its membership. Idempotent: running it twice changes nothing.
--
-- `supabase db reset` loads it after the migrations (config.toml [db.seed]); with the project's runner:
--   npm run db:migrate && psql "$DATABASE_URL" -f supabase/seed.sql
-- Then log in: POST /v1/auth/login {"email":"demo@omnizen.local","password":"omnizen-demo-password"}
-- The password is public: never load this file into a shared or production database.

BEGIN;

INSERT INTO core."User" (id, email, name, "accountType", "createdAt", "updatedAt")
VALUES ('7d1c6d3e-1f0a-4c4e-9a51-0de3a0000001', 'demo@omnizen.local', 'Demo User', 'business', now(), now())
ON CONFLICT (id) DO NOTHING;

-- bcrypt (cost 10) of 'omnizen-demo-password'
INSERT INTO core.user_credentials (user_id, password_hash)
VALUES ('7d1c6d3e-1f0a-4c4e-9a51-0de3a0000001', '$2b$10$UgWqx7BDgm.90bzI2Jsif.kOyzDgPknB1B1j47wPFfdkbOzDpf5si')
ON CONFLICT (user_id) DO NOTHING;

-- signs in with that password (a bcrypt hash: replaced by argon2id at the first login); the demo address counts as verified
INSERT INTO core.user_identities (provider, subject, user_id, email, email_verified_at)
VALUES ('password', '7d1c6d3e-1f0a-4c4e-9a51-0de3a0000001', '7d1c6d3e-1f0a-4c4e-9a51-0de3a0000001', 'demo@omnizen.local', now())
ON CONFLICT (provider, subject) DO NOTHING;

-- every user has a personal organization; business organizations are the ones they create
INSERT INTO core.organizations (id, name, account_type, owner_user_id) VALUES
  ('7d1c6d3e-1f0a-4c4e-9a51-0de3a0000101', 'Demo User', 'personal', '7d1c6d3e-1f0a-4c4e-9a51-0de3a0000001'),
  ('7d1c6d3e-1f0a-4c4e-9a51-0de3a0000102', 'Demo Trading Ltd', 'business', '7d1c6d3e-1f0a-4c4e-9a51-0de3a0000001')
ON CONFLICT (id) DO NOTHING;

INSERT INTO core.memberships (org_id, user_id, role) VALUES
  ('7d1c6d3e-1f0a-4c4e-9a51-0de3a0000101', '7d1c6d3e-1f0a-4c4e-9a51-0de3a0000001', 'owner'),
  ('7d1c6d3e-1f0a-4c4e-9a51-0de3a0000102', '7d1c6d3e-1f0a-4c4e-9a51-0de3a0000001', 'owner')
ON CONFLICT (org_id, user_id) DO NOTHING;

INSERT INTO core.workspaces (org_id, id, name)
VALUES ('7d1c6d3e-1f0a-4c4e-9a51-0de3a0000102', '7d1c6d3e-1f0a-4c4e-9a51-0de3a0000201', 'Head office')
ON CONFLICT (org_id, id) DO NOTHING;

INSERT INTO core.settings (org_id, scope, key, value)
VALUES ('7d1c6d3e-1f0a-4c4e-9a51-0de3a0000102', 'org', 'locale', '"en-GB"')
ON CONFLICT (org_id, scope, key) DO NOTHING;

COMMIT;
