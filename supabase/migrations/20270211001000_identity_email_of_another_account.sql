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
-- core.email_of_another_account(user, email) states once when an address is another account's for a user: some other
-- account's core."User".email matches it more closely than the user's own does (review rB). The app stores addresses
-- trimmed, lower-cased and in NFC (platform/http/email.ts, migration 20270211000700), but nothing in core."User" holds
-- the Hub to that (it writes the table directly; 20270211000700 only put them in NFC): an account stored
-- `Bob@Example.test` is matched by `bob@example.test` too. An account's address matches the given one exactly (3), the
-- same lower-cased (2), or lower-cased the same as the given one trimmed, lower-cased and in NFC (1); the given address
-- is another account's when another account's best match beats the user's own (0 when the user's address does not match):
--   * case twins (`MIXED@x` and `mixed@x`, two accounts): `mixed@x` is the second's, also asserted for the first, which
--     keeps `MIXED@x`; a third form (`Mixed@x`) each keeps as its own (a tie is the user's);
--   * a pair 20270211000700 reported and left (K: an NFC address, L: the same decomposed) keeps each its own, and the NFC
--     form asserted for L is K's, the decomposed form asserted for K is L's (as before: exact beats lower-cased in NFC).
-- One probe of core."User" by lower(email): the index user_email_lower_idx below. Not a unique one: the twins exist.
-- identityRepository.add stores such an address unverified whatever the provider says, touch keeps the one it had, and
-- erasureRepository.provenEmails counts none of the addresses it gathers that is one (an identity's, and a confirmed
-- e-mail change's new or verified old address: kept forever, and free for another account to take since).
--
-- The index: a plain CREATE INDEX in the migration's transaction, as the other migrations (CONCURRENTLY is refused
-- there); it locks core."User" against writes (registrations, e-mail changes, the Hub's writes; reads go on) while it is
-- built: 0.3-0.4 s at 150k users (150k rows of `userN@example.test`, 2 shared cores). The function (not inlined: its SET
-- search_path) is one probe of that index and a two-row aggregate a call, where it was a probe of the primary key and,
-- for an address not the user's own, one of the unique index: 10-15 us a call against 7-10 us (the UPDATE below at 150k
-- users and 300k identities: 3-7 s against 3-4 s, both measured on the same loaded machine), and what link, sign-in,
-- listing and provenEmails pay per address.
--
-- The identities linked so before this: unverified here (still ways to sign in, no longer proof of the address), each
-- audited in its user's personal organization (user.identity_email_unverified; the address stays out of the audit log).
-- Idempotent: the index is made if missing, the function replaced, and a second run finds none of them verified. The
-- function runs as its caller (the privileged paths, service_role), search_path ''. Needs no superuser.

CREATE INDEX IF NOT EXISTS user_email_lower_idx ON core."User" (lower(email));

CREATE OR REPLACE FUNCTION core.email_of_another_account(p_user text, p_email text) RETURNS boolean
LANGUAGE sql STABLE SET search_path = '' AS $$
  SELECT coalesce(max(m.closeness) FILTER (WHERE m.id <> p_user), 0)
    > coalesce(max(m.closeness) FILTER (WHERE m.id = p_user), 0)
  FROM (SELECT u.id, CASE WHEN u.email = p_email THEN 3 WHEN lower(u.email) = lower(p_email) THEN 2 ELSE 1 END AS closeness
    FROM core."User" u WHERE lower(u.email) = ANY (ARRAY[lower(p_email), normalize(lower(trim(p_email)), NFC)])) m
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
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270211001000_identity_email_of_another_account', '256799aabf138179de4c152f9c13c256caa94692b58451f4fdc5557b390e895e', 0)
  ON CONFLICT (name) DO NOTHING;
