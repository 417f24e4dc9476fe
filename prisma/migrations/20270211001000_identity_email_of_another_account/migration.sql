-- An identity linked while signed in (POST /v1/auth/identities) took the e-mail its provider asserted, verified when the
-- provider said so, also when that address was another account's (review rf1). A verified identity's address is a proven
-- address of its user (erasureRepository.provenEmails: what erasure and export locate invitations, mails, jobs and keys
-- by), so the linking account's erasure took the other account's invitations, mails and e-mail key, and its export read
-- them. A sign-in through a linked identity already kept another account's address out (identityRepository.touch,
-- review ro); accepting an invitation never went by an identity's address (core.accept_invitation compares the caller's
-- own core."User".email).
--
-- core.email_of_another_account(user, email) states once when an address is another account's for a user (reviews rF,
-- rI): it is not the user's own, and some other account's core."User".email has its key: the app's normalizeEmail
-- (platform/http/email.ts: JavaScript trim(), toLowerCase(), NFC) done in SQL, as user_email_norm_idx (migration
-- 20270211000950) says and indexes: btrim of JavaScript's whitespace set, upper, NFC, lower, NFC. The app stores addresses
-- normalized, but nothing holds the Hub to that (it writes core."User" directly): a stored `Bob@Example.test`,
-- `\u00a0bob@example.test\n`, `ΟΔΥΣΣΕΑΣ@…` or decomposed address is matched by every form of it and by its normalizeEmail
-- form (review rI: PostgreSQL's trim() keeps NBSP and newlines, its lower() maps final Σ to σ and İ to i where
-- JavaScript gives ς and i + U+0307). The user's own is compared with JavaScript's whitespace trimmed and case-insensitively
-- (lower, İ lowered as JavaScript does, to i + U+0307), not in NFC, and not through upper as the key is: upper then lower
-- makes ſ an s, ı an i, µ a μ and twenty more, so a user registered as `bill.ſam@x` would have `bill.sam@x`, another
-- account's, for its own and prove it by a link (review rK); in the key, merging more only costs a proof, never lends
-- one. Nor are ς and σ taken for one (review rL: `οδυσσεας@x` and `οδυσσεασ@x` are two addresses to JavaScript, and can be
-- two accounts); PostgreSQL's lower() of İ is i (JavaScript's i + U+0307), so a Hub-stored `bİll@x` owned `bill@x` (rL).
-- What lower() still does otherwise than JavaScript (a capital final Σ lowered to σ, not ς) only makes the user's own
-- address not its own: that costs a proof, never lends one (rL checked every code point up to U+2FFFF). So that:
--   * case twins (`MIXED@x` and `mixed@x`, two accounts, as before f75087f): each keeps every case of the address as its
--     own; ambiguous rows, but no proof is lost (the identities of `MIXED@x` carry `mixed@x`: backfills and sign-ins
--     lower-case, and core.user_email_verified would lose its only proof, review rF);
--   * a pair 20270211000700 reported and left (K: an NFC address, L: the same decomposed) keeps each its own form, and
--     the other form is another's: the NFC form asserted for L is K's, the decomposed one asserted for K is L's.
--   (An own address stored with İ by the Hub owns its normalizeEmail form, i + U+0307, and not the form with a plain i.)
-- The other account is one probe of user_email_norm_idx (its expression is written out here the same), the user's own
-- one of the primary key.
-- identityRepository.add stores such an address unverified whatever the provider says, touch keeps the one it had, and
-- erasureRepository.provenEmails counts none of the addresses it gathers that is one (an identity's, and a confirmed
-- e-mail change's new or verified old address: kept forever, and free for another account to take since).
--
-- The identities linked so before this: unverified here (still ways to sign in, no longer proof of the address), each
-- audited in its user's personal organization (user.identity_email_unverified; the address stays out of the audit log).
-- Idempotent: the function is replaced, and a second run finds none of them verified. The function runs as its caller
-- (the privileged paths, service_role), search_path ''. Needs no superuser.

CREATE OR REPLACE FUNCTION core.email_of_another_account(p_user text, p_email text) RETURNS boolean
LANGUAGE sql STABLE SET search_path = '' AS $$
  SELECT NOT EXISTS (SELECT 1 FROM core."User" s WHERE s.id = p_user
      AND lower(replace(btrim(s.email, E'\t\n\u000b\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff'), 'İ', E'i\u0307')) = lower(replace(btrim(p_email, E'\t\n\u000b\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff'), 'İ', E'i\u0307')))
    AND EXISTS (SELECT 1 FROM core."User" u
      WHERE normalize(lower(normalize(upper(btrim(u.email, E'\t\n\u000b\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff')), NFC)), NFC) = normalize(lower(normalize(upper(btrim(p_email, E'\t\n\u000b\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff')), NFC)), NFC)
        AND u.id <> p_user)
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
