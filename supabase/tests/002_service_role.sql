-- The service principal: the API runs it as role authenticated with claims role = service_role and
-- the organization it acts for. It is inside that organization's policies (role 'service'), and
-- nowhere else. The database role service_role itself is reserved for the privileged paths.
BEGIN;
-- assertions (pg_temp.check, check_text, refused): helpers/assertions.sql, run first by the runner

INSERT INTO core."User" (id, email) VALUES
  ('00000000-0000-4000-8000-00000000000a', 'ada@example.test'), ('00000000-0000-4000-8000-00000000000b', 'bob@example.test');
INSERT INTO core.organizations (id, name, owner_user_id) VALUES
  ('10000000-0000-4000-8000-00000000000a', 'Acme', '00000000-0000-4000-8000-00000000000a'),
  ('10000000-0000-4000-8000-00000000000b', 'Bolt', '00000000-0000-4000-8000-00000000000b');
INSERT INTO core.memberships (org_id, user_id, role) VALUES
  ('10000000-0000-4000-8000-00000000000a', '00000000-0000-4000-8000-00000000000a', 'owner'),
  ('10000000-0000-4000-8000-00000000000b', '00000000-0000-4000-8000-00000000000b', 'owner');
INSERT INTO core.settings (org_id, scope, key, value) VALUES
  ('10000000-0000-4000-8000-00000000000a', 'org', 'locale', '"en"'),
  ('10000000-0000-4000-8000-00000000000b', 'org', 'locale', '"de"');

-- a service acting for Acme (as DatabaseService.tenant runs it: the runtime login, claims verified by begin_request)
SET LOCAL SESSION AUTHORIZATION omnizen_api;
SELECT org_id FROM public.begin_request('{"role":"service_role","org_id":"10000000-0000-4000-8000-00000000000a"}', 'authenticated');
SELECT pg_temp.check_text('service for Acme: auth_org_id()', public.auth_org_id()::text, '10000000-0000-4000-8000-00000000000a');
SELECT pg_temp.check_text('service for Acme: auth_role()', public.auth_role(), 'service');
SELECT pg_temp.check_text('service for Acme: auth_user_id()', public.auth_user_id(), NULL);
SELECT pg_temp.check('service for Acme sees Acme''s setting only', (SELECT count(*) FROM core.settings), 1);
SELECT pg_temp.check('service for Acme sees no Bolt setting', (SELECT count(*) FROM core.settings WHERE org_id = '10000000-0000-4000-8000-00000000000b'), 0);
-- it writes like an admin inside Acme
INSERT INTO core.settings (org_id, scope, key, value) VALUES ('10000000-0000-4000-8000-00000000000a', 'org', 'currency', '"EUR"');
SELECT pg_temp.check('service wrote an Acme setting', (SELECT count(*) FROM core.settings), 2);
-- and not into Bolt
DO $$
BEGIN
  INSERT INTO core.settings (org_id, scope, key, value) VALUES ('10000000-0000-4000-8000-00000000000b', 'org', 'evil', 'true');
  RAISE EXCEPTION 'a service acting for Acme wrote into Bolt';
EXCEPTION WHEN insufficient_privilege THEN NULL;
END $$;

-- the same claims set without begin_request on another login (Supabase's REST path) read the same and write nothing
-- (20270205000900)
RESET ROLE;
RESET SESSION AUTHORIZATION;
SET LOCAL ROLE authenticated;
SELECT set_config('request.jwt.claims', '{"role":"service_role","org_id":"10000000-0000-4000-8000-00000000000a"}', true);
SELECT pg_temp.check('REST service for Acme sees Acme''s settings', (SELECT count(*) FROM core.settings), 2);
DO $$
BEGIN
  INSERT INTO core.settings (org_id, scope, key, value) VALUES ('10000000-0000-4000-8000-00000000000a', 'org', 'rest', 'true');
  RAISE EXCEPTION 'a service''s claims wrote over the REST path';
EXCEPTION WHEN insufficient_privilege THEN NULL;
END $$;

-- a service naming an organization that does not exist, or none at all, is in no organization
SELECT set_config('request.jwt.claims', '{"role":"service_role","org_id":"10000000-0000-4000-8000-0000000000ff"}', true);
SELECT pg_temp.check_text('service for an unknown org: auth_org_id()', public.auth_org_id()::text, NULL);
SELECT pg_temp.check('service for an unknown org sees no setting', (SELECT count(*) FROM core.settings), 0);
SELECT set_config('request.jwt.claims', '{"role":"service_role"}', true);
SELECT pg_temp.check_text('service without org: auth_org_id()', public.auth_org_id()::text, NULL);
SELECT pg_temp.check('service without org sees no setting', (SELECT count(*) FROM core.settings), 0);

RESET ROLE;

-- the runtime login cannot reach the real service_role through begin_request
DO $$
BEGIN
  PERFORM public.begin_request('{"role":"service_role"}', 'service_role');
  RAISE EXCEPTION 'begin_request accepted role service_role';
EXCEPTION WHEN insufficient_privilege THEN NULL;
END $$;
SELECT pg_temp.check('omnizen_api is not a member of service_role',
  (SELECT count(*) FROM pg_roles r WHERE r.rolname = 'service_role' AND pg_has_role('omnizen_api', r.oid, 'MEMBER'))::bigint, 0);

ROLLBACK;
