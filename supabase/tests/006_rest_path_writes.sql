-- Outbox jobs, audit rows and personal data keys are written by `authenticated` only in the API's own transactions
-- (claims verified by begin_request on the runtime login), never over Supabase's REST API, where a session is another
-- login switched into anon or authenticated with the token's claims (20270202000200). Before, a viewer's token
-- inserted a domain event `organization.deleted` (which the relay dispatched), and anyone planted or read keys.
-- The file becomes the runtime login with SET SESSION AUTHORIZATION (what the API's connection gives).
BEGIN;
-- assertions (pg_temp.check, check_text, refused): helpers/assertions.sql, run first by the runner

INSERT INTO core."User" (id, email) VALUES
  ('00000000-0000-4000-8000-00000000000a', 'ada@example.test'), ('00000000-0000-4000-8000-00000000000b', 'bob@example.test'),
  ('00000000-0000-4000-8000-00000000000c', 'vic@example.test');
INSERT INTO core.organizations (id, name, owner_user_id) VALUES
  ('10000000-0000-4000-8000-00000000000a', 'Acme', '00000000-0000-4000-8000-00000000000a'),
  ('10000000-0000-4000-8000-00000000000b', 'Bolt', '00000000-0000-4000-8000-00000000000b');
INSERT INTO core.memberships (org_id, user_id, role) VALUES
  ('10000000-0000-4000-8000-00000000000a', '00000000-0000-4000-8000-00000000000a', 'owner'),
  ('10000000-0000-4000-8000-00000000000a', '00000000-0000-4000-8000-00000000000c', 'viewer'),
  ('10000000-0000-4000-8000-00000000000b', '00000000-0000-4000-8000-00000000000b', 'owner');

-- REST: Vic, a viewer of Acme, with a Supabase token (no organization claimed), then with Acme claimed
SET LOCAL ROLE authenticated;
SELECT set_config('request.jwt.claims', '{"sub":"00000000-0000-4000-8000-00000000000c","role":"authenticated"}', true);
SELECT pg_temp.refused('a REST outbox row (a forged organization.deleted)',
  $q$INSERT INTO core.outbox (org_id, topic, payload) VALUES ('10000000-0000-4000-8000-00000000000a', 'domain_event',
     '{"type":"organization.deleted","version":1,"payload":{"organizationId":"10000000-0000-4000-8000-00000000000a","accountType":"business"}}')$q$);
SELECT pg_temp.refused('a REST audit row',
  $q$INSERT INTO core.audit_logs (org_id, actor_id, principal_type, action, entity_type)
     VALUES ('10000000-0000-4000-8000-00000000000a', '00000000-0000-4000-8000-00000000000c', 'user', 'organization.deleted', 'organization')$q$);
SELECT pg_temp.refused('a REST personal data key',
  $q$SELECT * FROM core.personal_data_key('20000000-0000-4000-8000-00000000000a', 'email:abc', '{"unwrapped":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}')$q$);
SELECT pg_temp.refused('a REST read of personal data keys', $q$SELECT * FROM core.personal_data_keys_by_id(ARRAY['20000000-0000-4000-8000-00000000000a'::uuid])$q$);
SELECT set_config('request.jwt.claims', '{"sub":"00000000-0000-4000-8000-00000000000c","role":"authenticated","org_id":"10000000-0000-4000-8000-00000000000a"}', true);
SELECT pg_temp.refused('a REST outbox row with Acme claimed',
  $q$INSERT INTO core.outbox (org_id, topic, payload) VALUES ('10000000-0000-4000-8000-00000000000a', 'domain_event', '{"type":"x"}')$q$);
SELECT pg_temp.refused('a REST audit row with Acme claimed',
  $q$INSERT INTO core.audit_logs (org_id, actor_id, principal_type, action, entity_type)
     VALUES ('10000000-0000-4000-8000-00000000000a', '00000000-0000-4000-8000-00000000000c', 'user', 'x', 'x')$q$);

-- REST as anon: no EXECUTE on the key functions
RESET ROLE;
SET LOCAL ROLE anon;
SELECT set_config('request.jwt.claims', '{"role":"anon"}', true);
SELECT pg_temp.refused('an anonymous personal data key',
  $q$SELECT * FROM core.personal_data_key('20000000-0000-4000-8000-00000000000a', 'email:abc', '{"unwrapped":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}')$q$);
SELECT pg_temp.refused('an anonymous read of personal data keys', $q$SELECT * FROM core.personal_data_keys_by_id(ARRAY['20000000-0000-4000-8000-00000000000a'::uuid])$q$);
RESET ROLE;
SELECT set_config('request.jwt.claims', '', true);

-- the API: Vic's request outside any organization (as POST /v1/invitations/accept and POST /v1/orgs are) writes the
-- audit row and the event of an organization he belongs to, not of another
SET LOCAL SESSION AUTHORIZATION omnizen_api;
SELECT org_id FROM public.begin_request('{"sub":"00000000-0000-4000-8000-00000000000c","role":"authenticated"}', 'authenticated');
INSERT INTO core.audit_logs (org_id, actor_id, principal_type, action, entity_type, entity_id)
VALUES ('10000000-0000-4000-8000-00000000000a', '00000000-0000-4000-8000-00000000000c', 'user', 'invitation.accepted', 'membership', '00000000-0000-4000-8000-00000000000c');
INSERT INTO core.outbox (org_id, topic, payload) VALUES ('10000000-0000-4000-8000-00000000000a', 'domain_event', '{"type":"member.joined"}');
SELECT pg_temp.refused('an API audit row for an organization of others',
  $q$INSERT INTO core.audit_logs (org_id, actor_id, principal_type, action, entity_type)
     VALUES ('10000000-0000-4000-8000-00000000000b', '00000000-0000-4000-8000-00000000000c', 'user', 'x', 'x')$q$);
SELECT pg_temp.refused('an API outbox row for an organization of others',
  $q$INSERT INTO core.outbox (org_id, topic, payload) VALUES ('10000000-0000-4000-8000-00000000000b', 'domain_event', '{"type":"x"}')$q$);
-- its audit sealing gets and reads keys, of the shapes the application writes only
SELECT pg_temp.check('an API personal data key',
  (SELECT count(*) FROM core.personal_data_key('20000000-0000-4000-8000-00000000000a', 'email:abc', '{"unwrapped":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}')), 1);
SELECT pg_temp.check('an API read of personal data keys',
  (SELECT count(*) FROM core.personal_data_keys_by_id(ARRAY['20000000-0000-4000-8000-00000000000a'::uuid])), 1);
DO $$
BEGIN
  PERFORM core.personal_data_key('20000000-0000-4000-8000-00000000000b', 'email:def', '{"unwrapped":"known to nobody but the caller"}');
  RAISE EXCEPTION 'a personal data key candidate of no wrapped shape was stored';
EXCEPTION WHEN invalid_parameter_value THEN NULL;
END $$;
RESET ROLE;
RESET SESSION AUTHORIZATION;

-- a privileged path (service_role) still reaches the keys
SET LOCAL ROLE service_role;
SELECT pg_temp.check('a service_role read of personal data keys',
  (SELECT count(*) FROM core.personal_data_keys_by_id(ARRAY['20000000-0000-4000-8000-00000000000a'::uuid])), 1);
RESET ROLE;

SELECT pg_temp.check('audit rows written', (SELECT count(*) FROM core.audit_logs), 1);
SELECT pg_temp.check('outbox rows written', (SELECT count(*) FROM core.outbox), 1);
SELECT pg_temp.check('personal data keys stored', (SELECT count(*) FROM core.personal_data_keys), 1);

ROLLBACK;
