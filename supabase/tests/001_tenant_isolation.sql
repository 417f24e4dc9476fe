-- Tenant isolation: a member sees their organization's rows and not another's; a claimed
-- organization the caller does not belong to resolves to NULL; anon sees nothing.
-- Runs as the owner, switches role and claims like the API does, and rolls everything back.
BEGIN;
-- assertions (pg_temp.check, check_text, refused): helpers/assertions.sql, run first by the runner

-- fixtures: Ada owns Acme, Bob owns Bolt, Vic is a viewer of Acme
INSERT INTO core."User" (id, email, name) VALUES
  ('00000000-0000-4000-8000-00000000000a', 'ada@example.test', 'Ada'),
  ('00000000-0000-4000-8000-00000000000b', 'bob@example.test', 'Bob'),
  ('00000000-0000-4000-8000-00000000000c', 'vic@example.test', 'Vic');
INSERT INTO core.organizations (id, name, owner_user_id) VALUES
  ('10000000-0000-4000-8000-00000000000a', 'Acme', '00000000-0000-4000-8000-00000000000a'),
  ('10000000-0000-4000-8000-00000000000b', 'Bolt', '00000000-0000-4000-8000-00000000000b');
INSERT INTO core.memberships (org_id, user_id, role) VALUES
  ('10000000-0000-4000-8000-00000000000a', '00000000-0000-4000-8000-00000000000a', 'owner'),
  ('10000000-0000-4000-8000-00000000000b', '00000000-0000-4000-8000-00000000000b', 'owner'),
  ('10000000-0000-4000-8000-00000000000a', '00000000-0000-4000-8000-00000000000c', 'viewer');
INSERT INTO core.settings (org_id, scope, key, value) VALUES
  ('10000000-0000-4000-8000-00000000000a', 'org', 'locale', '"en"'),
  ('10000000-0000-4000-8000-00000000000a', 'org', 'currency', '"EUR"'),
  ('10000000-0000-4000-8000-00000000000b', 'org', 'locale', '"de"');
INSERT INTO core.workspaces (org_id, name) VALUES
  ('10000000-0000-4000-8000-00000000000a', 'HQ'), ('10000000-0000-4000-8000-00000000000b', 'HQ');

-- Ada, acting in Acme
SET LOCAL ROLE authenticated;
SELECT set_config('request.jwt.claims', '{"sub":"00000000-0000-4000-8000-00000000000a","role":"authenticated","org_id":"10000000-0000-4000-8000-00000000000a"}', true);
SELECT pg_temp.check_text('Ada in Acme: auth_org_id()', public.auth_org_id()::text, '10000000-0000-4000-8000-00000000000a');
SELECT pg_temp.check_text('Ada in Acme: auth_role()', public.auth_role(), 'owner');
SELECT pg_temp.check('Ada sees Acme''s settings only', (SELECT count(*) FROM core.settings), 2);
SELECT pg_temp.check('Ada sees no Bolt setting', (SELECT count(*) FROM core.settings WHERE org_id = '10000000-0000-4000-8000-00000000000b'), 0);
SELECT pg_temp.check('Ada sees Acme''s workspaces only', (SELECT count(*) FROM core.workspaces), 1);
SELECT pg_temp.check('Ada sees Acme''s two members', (SELECT count(*) FROM core.memberships), 2);
SELECT pg_temp.check('Ada sees the organization she belongs to', (SELECT count(*) FROM core.organizations), 1);
SELECT pg_temp.check('Ada sees herself and Vic, not Bob', (SELECT count(*) FROM core."User"), 2);
-- writes into another organization are refused by the policy
DO $$
BEGIN
  INSERT INTO core.settings (org_id, scope, key, value) VALUES ('10000000-0000-4000-8000-00000000000b', 'org', 'evil', 'true');
  RAISE EXCEPTION 'Ada could write a setting into Bolt';
EXCEPTION WHEN insufficient_privilege THEN NULL; -- new row violates row-level security policy
END $$;
DO $$
DECLARE n bigint;
BEGIN
  UPDATE core.settings SET value = '"xx"' WHERE org_id = '10000000-0000-4000-8000-00000000000b';
  GET DIAGNOSTICS n = ROW_COUNT;
  PERFORM pg_temp.check('Ada updates nothing in Bolt', n, 0);
END $$;

-- Ada claims Bolt, where she is not a member: the database does not believe her
SELECT set_config('request.jwt.claims', '{"sub":"00000000-0000-4000-8000-00000000000a","role":"authenticated","org_id":"10000000-0000-4000-8000-00000000000b"}', true);
SELECT pg_temp.check_text('Ada claiming Bolt: auth_org_id()', public.auth_org_id()::text, NULL);
SELECT pg_temp.check_text('Ada claiming Bolt: auth_role()', public.auth_role(), NULL);
SELECT pg_temp.check('Ada claiming Bolt sees no setting', (SELECT count(*) FROM core.settings), 0);
SELECT pg_temp.check('Ada claiming Bolt sees no workspace', (SELECT count(*) FROM core.workspaces), 0);
SELECT pg_temp.check('Ada claiming Bolt still sees only her own memberships', (SELECT count(*) FROM core.memberships WHERE org_id = '10000000-0000-4000-8000-00000000000b'), 0);

-- a malformed organization claim is NULL too, not an error
SELECT set_config('request.jwt.claims', '{"sub":"00000000-0000-4000-8000-00000000000a","role":"authenticated","org_id":"not-a-uuid"}', true);
SELECT pg_temp.check_text('malformed org claim: auth_org_id()', public.auth_org_id()::text, NULL);

-- Vic, a viewer of Acme: reads, but admin-only writes are refused
SELECT set_config('request.jwt.claims', '{"sub":"00000000-0000-4000-8000-00000000000c","role":"authenticated","org_id":"10000000-0000-4000-8000-00000000000a"}', true);
SELECT pg_temp.check_text('Vic in Acme: auth_role()', public.auth_role(), 'viewer');
SELECT pg_temp.check('Vic reads Acme''s settings', (SELECT count(*) FROM core.settings), 2);
DO $$
DECLARE n bigint;
BEGIN
  UPDATE core.settings SET value = '"xx"';
  GET DIAGNOSTICS n = ROW_COUNT;
  PERFORM pg_temp.check('Vic, a viewer, updates no setting', n, 0);
END $$;

-- a deleted organization is nobody's any more (deleted here through the privileged role)
RESET ROLE;
SET LOCAL ROLE service_role;
UPDATE core.organizations SET deleted_at = now() WHERE id = '10000000-0000-4000-8000-00000000000b';
SET LOCAL ROLE authenticated;
SELECT set_config('request.jwt.claims', '{"sub":"00000000-0000-4000-8000-00000000000b","role":"authenticated","org_id":"10000000-0000-4000-8000-00000000000b"}', true);
SELECT pg_temp.check_text('Bob in his deleted Bolt: auth_org_id()', public.auth_org_id()::text, NULL);
SELECT pg_temp.check('Bob sees no setting of deleted Bolt', (SELECT count(*) FROM core.settings), 0);

-- anon: no identity, no rows, no organization
RESET ROLE;
SET LOCAL ROLE anon;
SELECT set_config('request.jwt.claims', '{"role":"anon"}', true);
SELECT pg_temp.check_text('anon: auth_org_id()', public.auth_org_id()::text, NULL);
DO $$
DECLARE
  t record;
  n bigint;
BEGIN
  -- every core table and every tenant table (with org_id) of every module: anon may not read it or sees no row
  FOR t IN SELECT format('%I.%I', c.relnamespace::regnamespace, c.relname) AS name FROM pg_class c
           WHERE c.relkind IN ('r', 'p') AND c.relnamespace::regnamespace::text IN ('core', 'hub', 'finance', 'ai', 'public', 'semantic')
             AND (c.relnamespace = 'core'::regnamespace
                  OR EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'org_id' AND NOT a.attisdropped))
  LOOP
    BEGIN
      EXECUTE format('SELECT count(*) FROM %s', t.name) INTO n;
      IF n > 0 THEN
        RAISE EXCEPTION 'anon sees % row(s) of %', n, t.name;
      END IF;
    EXCEPTION WHEN insufficient_privilege THEN NULL;
    END;
  END LOOP;
END $$;

ROLLBACK;
