-- Identities, e-mail verification tokens and app-token redemptions (issue 21) belong to the privileged
-- auth path alone: no API-facing role can read or change them, not even a user's own rows; TRUNCATE,
-- REFERENCES and TRIGGER belong to no API-facing role.
BEGIN;
-- assertions (pg_temp.check, check_text, refused): helpers/assertions.sql, run first by the runner

INSERT INTO core."User" (id, email) VALUES ('00000000-0000-4000-8000-00000000000a', 'ada@example.test');
INSERT INTO core.user_identities (provider, subject, user_id, email)
  VALUES ('password', '00000000-0000-4000-8000-00000000000a', '00000000-0000-4000-8000-00000000000a', 'ada@example.test');
INSERT INTO core.email_verification_tokens (token_hash, user_id, email, expires_at)
  VALUES ('h', '00000000-0000-4000-8000-00000000000a', 'ada@example.test', now() + interval '1 day');
INSERT INTO core.app_token_redemptions (jti, user_id, app_code, expires_at)
  VALUES (gen_random_uuid(), '00000000-0000-4000-8000-00000000000a', 'app_securevault', now() + interval '1 minute');

SELECT pg_temp.check('RLS is enabled and forced on all three',
  (SELECT count(*) FROM pg_class WHERE oid IN ('core.user_identities'::regclass, 'core.email_verification_tokens'::regclass, 'core.app_token_redemptions'::regclass)
     AND relrowsecurity AND relforcerowsecurity), 3);
SELECT pg_temp.check('no API-facing role holds any privilege but service_role''s',
  (SELECT count(*) FROM information_schema.role_table_grants
    WHERE table_schema = 'core' AND table_name IN ('user_identities', 'email_verification_tokens', 'app_token_redemptions')
      AND grantee IN ('PUBLIC', 'anon', 'authenticated', 'omnizen_api', 'omnizen_analyst')), 0);
SELECT pg_temp.check('service_role: no TRUNCATE, REFERENCES or TRIGGER',
  (SELECT count(*) FROM information_schema.role_table_grants
    WHERE table_schema = 'core' AND table_name IN ('user_identities', 'email_verification_tokens', 'app_token_redemptions')
      AND grantee = 'service_role' AND privilege_type IN ('TRUNCATE', 'REFERENCES', 'TRIGGER')), 0);

-- Ada herself, through the API's role
SET LOCAL ROLE authenticated;
SELECT set_config('request.jwt.claims', '{"sub":"00000000-0000-4000-8000-00000000000a","role":"authenticated"}', true);
SELECT pg_temp.refused('Ada reads her identities', 'SELECT * FROM core.user_identities');
SELECT pg_temp.refused('Ada verifies her own e-mail', 'UPDATE core.user_identities SET email_verified_at = now()');
SELECT pg_temp.refused('Ada adds an identity', $$INSERT INTO core.user_identities (provider, subject, user_id, email) VALUES ('supabase', 'x', '00000000-0000-4000-8000-00000000000a', 'ada@example.test')$$);
SELECT pg_temp.refused('Ada reads verification tokens', 'SELECT * FROM core.email_verification_tokens');
SELECT pg_temp.refused('Ada deletes a redemption (to reuse an app token)', 'DELETE FROM core.app_token_redemptions');
RESET ROLE;

SET LOCAL ROLE anon;
SELECT set_config('request.jwt.claims', '', true);
SELECT pg_temp.refused('anon reads identities', 'SELECT * FROM core.user_identities');
SELECT pg_temp.refused('anon reads verification tokens', 'SELECT * FROM core.email_verification_tokens');
SELECT pg_temp.refused('anon reads redemptions', 'SELECT * FROM core.app_token_redemptions');
RESET ROLE;

ROLLBACK;
