-- The audit log is append-only for every role the API uses: members append rows for their
-- organization; UPDATE, DELETE and TRUNCATE fail for authenticated, service_role and even the owner.
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

-- Ada appends to Acme's log and reads it back, through the API's runtime login (authenticated writes audit rows only
-- in a transaction whose claims begin_request verified: 006_rest_path_writes.sql)
SET LOCAL SESSION AUTHORIZATION omnizen_api;
SELECT org_id FROM public.begin_request('{"sub":"00000000-0000-4000-8000-00000000000a","role":"authenticated","org_id":"10000000-0000-4000-8000-00000000000a"}', 'authenticated');
INSERT INTO core.audit_logs (org_id, actor_id, principal_type, action, entity_type, entity_id)
VALUES ('10000000-0000-4000-8000-00000000000a', '00000000-0000-4000-8000-00000000000a', 'user', 'test.created', 'test', '1');
SELECT pg_temp.check('Ada reads Acme''s audit row', (SELECT count(*) FROM core.audit_logs), 1);
SELECT pg_temp.refused('authenticated UPDATE of the audit log', 'UPDATE core.audit_logs SET action = ''tampered''');
SELECT pg_temp.refused('authenticated DELETE from the audit log', 'DELETE FROM core.audit_logs');
SELECT pg_temp.refused('authenticated TRUNCATE of the audit log', 'TRUNCATE core.audit_logs');
-- and she cannot write into Bolt's log
SELECT pg_temp.refused('an audit row for another organization',
  $q$INSERT INTO core.audit_logs (org_id, principal_type, action, entity_type) VALUES ('10000000-0000-4000-8000-00000000000b', 'user', 'x', 'x')$q$);

-- the privileged role cannot change history either
RESET ROLE;
RESET SESSION AUTHORIZATION;
SET LOCAL ROLE service_role;
SELECT pg_temp.check('service_role sees the row', (SELECT count(*) FROM core.audit_logs), 1);
SELECT pg_temp.refused('service_role UPDATE of the audit log', 'UPDATE core.audit_logs SET action = ''tampered''');
SELECT pg_temp.refused('service_role DELETE from the audit log', 'DELETE FROM core.audit_logs');
SELECT pg_temp.refused('service_role TRUNCATE of the audit log', 'TRUNCATE core.audit_logs');

-- nor the owner (the append-only trigger applies to everyone)
RESET ROLE;
SELECT pg_temp.refused('owner UPDATE of the audit log', 'UPDATE core.audit_logs SET action = ''tampered''');
SELECT pg_temp.refused('owner DELETE from the audit log', 'DELETE FROM core.audit_logs');
SELECT pg_temp.check('the row is unchanged', (SELECT count(*) FROM core.audit_logs WHERE action = 'test.created'), 1);

ROLLBACK;
