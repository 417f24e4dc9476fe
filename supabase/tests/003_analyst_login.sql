-- Analyst logins: a database login granted omnizen_analyst and mapped to one organization in
-- core.analyst_logins. With no JWT claims, auth_org_id() resolves from session_user, so the test
-- becomes that login with SET SESSION AUTHORIZATION (what a real connection as that login gives).
-- The logins are created inside the transaction and vanish with the ROLLBACK.
BEGIN;
-- assertions (pg_temp.check, check_text, refused): helpers/assertions.sql, run first by the runner

INSERT INTO core."User" (id, email) VALUES ('00000000-0000-4000-8000-00000000000a', 'ada@example.test');
INSERT INTO core.organizations (id, name, owner_user_id) VALUES
  ('10000000-0000-4000-8000-00000000000a', 'Acme', '00000000-0000-4000-8000-00000000000a'),
  ('10000000-0000-4000-8000-00000000000b', 'Bolt', '00000000-0000-4000-8000-00000000000a');
INSERT INTO core.memberships (org_id, user_id, role) VALUES
  ('10000000-0000-4000-8000-00000000000a', '00000000-0000-4000-8000-00000000000a', 'owner'),
  ('10000000-0000-4000-8000-00000000000b', '00000000-0000-4000-8000-00000000000a', 'owner');

CREATE ROLE omnizen_test_analyst_mapped LOGIN IN ROLE omnizen_analyst;
CREATE ROLE omnizen_test_analyst_unmapped LOGIN IN ROLE omnizen_analyst;
INSERT INTO core.analyst_logins (login, org_id) VALUES ('omnizen_test_analyst_mapped', '10000000-0000-4000-8000-00000000000a');
SELECT set_config('request.jwt.claims', '', true);

-- the mapped analyst is in Acme, as 'analyst'
SET LOCAL SESSION AUTHORIZATION omnizen_test_analyst_mapped;
SELECT pg_temp.check_text('session_user', session_user::text, 'omnizen_test_analyst_mapped');
SELECT pg_temp.check_text('mapped analyst: auth_org_id()', public.auth_org_id()::text, '10000000-0000-4000-8000-00000000000a');
SELECT pg_temp.check_text('mapped analyst: auth_role()', public.auth_role(), 'analyst');

-- read-only: no write privilege on any table of ours, no read of the base tables behind semantic
DO $$
DECLARE
  bad text;
BEGIN
  SELECT string_agg(format('%I.%I', c.relnamespace::regnamespace, c.relname), ', ') INTO bad FROM pg_class c
  WHERE c.relkind IN ('r', 'p', 'v') AND c.relnamespace::regnamespace::text IN ('core', 'hub', 'finance', 'ai', 'public', 'semantic')
    AND (has_table_privilege(c.oid, 'INSERT') OR has_table_privilege(c.oid, 'UPDATE') OR has_table_privilege(c.oid, 'DELETE'));
  IF bad IS NOT NULL THEN RAISE EXCEPTION 'an analyst may write to %', bad; END IF;
END $$;
DO $$
BEGIN
  PERFORM count(*) FROM core.memberships;
  RAISE EXCEPTION 'an analyst read core.memberships';
EXCEPTION WHEN insufficient_privilege THEN NULL;
END $$;

-- claims cannot move an analyst into another organization: they are ignored, the mapping decides
SELECT set_config('request.jwt.claims', '{"org_id":"10000000-0000-4000-8000-00000000000b"}', true);
SELECT pg_temp.check_text('analyst claiming Bolt: auth_org_id()', public.auth_org_id()::text, '10000000-0000-4000-8000-00000000000a');
SELECT set_config('request.jwt.claims', '{"org_id":"10000000-0000-4000-8000-00000000000b","role":"service_role"}', true);
SELECT pg_temp.check_text('analyst claiming Bolt as a service: auth_org_id()', public.auth_org_id()::text, '10000000-0000-4000-8000-00000000000a');
SELECT pg_temp.check_text('analyst claiming Bolt as a service: auth_role()', public.auth_role(), 'analyst');
SELECT set_config('request.jwt.claims', '', true);

-- a login granted omnizen_analyst but not mapped is in no organization
RESET SESSION AUTHORIZATION;
SET LOCAL SESSION AUTHORIZATION omnizen_test_analyst_unmapped;
SELECT pg_temp.check_text('unmapped analyst: auth_org_id()', public.auth_org_id()::text, NULL);
SELECT pg_temp.check_text('unmapped analyst: auth_role()', public.auth_role(), NULL);

-- the runtime login reaches the request helpers only through begin_request (after it has switched role)
RESET SESSION AUTHORIZATION;
SET LOCAL SESSION AUTHORIZATION omnizen_api;
SELECT pg_temp.refused('omnizen_api calling auth_org_id() without a request role', 'SELECT public.auth_org_id()');

RESET SESSION AUTHORIZATION;
ROLLBACK;
