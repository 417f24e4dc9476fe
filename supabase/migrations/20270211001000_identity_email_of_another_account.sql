-- Generated from prisma/migrations/20270211001000_identity_email_of_another_account/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- An identity linked while signed in (POST /v1/auth/identities) took the e-mail its provider asserted, verified when the
-- provider said so, also when that address was another account's (review rf1). A verified identity's address is a proven
-- address of its user (erasureRepository.provenEmails: what erasure and export locate invitations, mails, jobs and keys
-- by), so the linking account's erasure took the other account's invitations, mails and e-mail key, and its export read
-- them. A sign-in through a linked identity already kept another account's address out (identityRepository.touch,
-- review ro); accepting an invitation never went by an identity's address (core.accept_invitation compares the caller's
-- own core."User".email).
--
-- core.email_of_another_account(user, email) states once when an address is another account's for a user: it is some
-- other account's core."User".email, and not the user's own. Addresses are stored trimmed, lower-cased and in NFC
-- (platform/http/email.ts, migration 20270211000700): the given address is compared as given, lower-cased, and
-- lower-cased in NFC, by the unique index on core."User".email (identityRepository.add runs it on a link). The user's
-- own is compared lower-cased only: a pair 20270211000700 reported and left (an NFC address, and another account's
-- decomposed form of it) keeps each its own, and the decomposed account's identity asserting the NFC form is the other
-- account's. identityRepository.add now stores such an address unverified whatever the provider says, and
-- erasureRepository.provenEmails does not count an identity's address that is one.
--
-- The identities linked so before this: unverified here (still ways to sign in, no longer proof of the address), each
-- audited in its user's personal organization (user.identity_email_unverified; the address stays out of the audit log).
-- Idempotent: the function is replaced, and a second run finds none of them verified. The function runs as its caller
-- (the privileged paths, service_role), search_path ''. Needs no superuser.

CREATE OR REPLACE FUNCTION core.email_of_another_account(p_user text, p_email text) RETURNS boolean
LANGUAGE sql STABLE SET search_path = '' AS $$
  SELECT NOT EXISTS (SELECT 1 FROM core."User" s WHERE s.id = p_user AND lower(s.email) = lower(p_email))
    AND EXISTS (SELECT 1 FROM core."User" o
      WHERE o.email = ANY (ARRAY[p_email, lower(p_email), normalize(lower(trim(p_email)), NFC)]) AND o.id <> p_user)
$$;
REVOKE ALL ON FUNCTION core.email_of_another_account(text, text) FROM PUBLIC, anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION core.email_of_another_account(text, text) TO service_role;

WITH unverified AS (
  UPDATE core.user_identities i SET email_verified_at = NULL
  WHERE i.email_verified_at IS NOT NULL AND core.email_of_another_account(i.user_id, i.email)
  RETURNING i.user_id, i.provider, i.subject)
INSERT INTO core.audit_logs (org_id, actor_id, principal_type, action, entity_type, entity_id, before, after)
SELECT o.org_id, 'migration:20270211001000', 'system', 'user.identity_email_unverified', 'user', u.user_id,
  jsonb_build_object('provider', u.provider, 'emailVerified', true),
  jsonb_build_object('provider', u.provider, 'emailVerified', false, 'reason', 'email_of_another_account')
FROM unverified u CROSS JOIN LATERAL (SELECT core.personal_org_id(u.user_id) AS org_id) o
WHERE o.org_id IS NOT NULL
ORDER BY u.user_id, u.provider, u.subject;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270211001000_identity_email_of_another_account', 'b467aa228594648b270180aa9f0b95c878c7d83ae0bab26010c65d52e8ec1dd8', 0)
  ON CONFLICT (name) DO NOTHING;
