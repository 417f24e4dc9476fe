-- Generated from prisma/migrations/20270211001650_email_of_another_account_nfc_key_and_sigma/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- core.email_of_another_account(user, email) (migration 20270211001000) answered wrongly for two kinds of address
-- (review rM, which checked every code point up to U+2FFFF, alone and in context, against JavaScript):
--   * HIGH: the user's own address was compared through lower(), and glibc's lower() makes every Σ a σ, JavaScript's
--     toLowerCase() a final Σ a ς. So account A, stored `ΟΔΥΣΣΕΑΣ@x.test` by the Hub (normalizeEmail: `οδυσσεας@x.test`),
--     owned `οδυσσεασ@x.test`, account B's address: A's link asserting it was stored verified, a proof of B's address
--     (erasure and export locate invitations, mails, jobs and keys by it). Now an address with a capital Σ (U+03A3),
--     stored or asked, is nobody's own unless the two are the same string, trimmed (review rv6: a mailed link copies the
--     stored address into the password identity as it is, core.prove_user_email; erasure and export take an identity's
--     address through normalizeEmail, erasureRepository.provenEmails, so an address byte-equal to the account's own is
--     its own there too): such an account loses the shortcut otherwise, which matters only when another account has
--     its key (then its own link is stored unverified: that costs a proof, never lends one). Final sigma is the only
--     rule by context in JavaScript's toLowerCase() (no locale); İ is replaced as 20270211001000 did. Needs nothing of
--     ICU: the rule holds with the C library's lower() and with ICU's.
--   * MEDIUM: the key upper-cased before NFC, so a Hub-stored `α\u0345δω@x` and `ᾳδω@x`, one address to JavaScript, had
--     two keys (see 20270211001600). The key is now user_email_key_idx's, NFC first (and ẞ made ß, for a database whose
--     default collation is ICU's: 20270211001600); user_email_norm_idx, which served the old key, is dropped by
--     20270211001660, in a transaction of its own (review rv6: dropped here, its ACCESS EXCLUSIVE lock on core."User",
--     asked for while this transaction held the identities the UPDATE below locked, waited on a sign-in that held its
--     User row and waited on one of those identities: a deadlock).
-- Checked again by that brute force on databases migrated with this (PostgreSQL 15, glibc 2.36; default collation
-- C.UTF-8, and ICU's und): no address has a key other than its normalizeEmail form's, and nothing the function takes for
-- the user's own has another normalizeEmail form, except addresses with characters newer than the server's Unicode
-- tables (review rM, finding 3):
-- lower() and upper() are the C library's (glibc 2.36: Unicode 14), normalize() PostgreSQL's (15: Unicode 14), and
-- JavaScript's are newer (Node 24: Unicode 17), so the case pairs and compositions added since (e.g. U+1C89/U+1C8A,
-- U+A7CB/U+0264, U+A7DC/U+019B, U+10D50-10D85, Todhri's U+105C9 = U+105D2 U+0307) escape the key (one address, two
-- keys) until the server's tables catch up. Unavoidable in SQL: the server does not know those characters.
-- After an OS or C library upgrade that changes the case tables, `REINDEX INDEX core.user_email_key_idx`: an index on
-- lower() and upper() is only as stable as the library's tables, and a key computed by the new tables may miss an entry
-- stored by the old.
-- The database's LC_CTYPE must be a UTF-8 locale (C.UTF-8, en_US.UTF-8 ...) without Turkish casing: under plain C,
-- lower() and upper() case ASCII only, and every other case pair (Ж and ж, É and é) escapes the key; under Turkish or
-- Azeri casing (a default collation of ICU's tr-TR or az, or glibc's tr_TR.UTF-8) lower('I') is ı and upper('i') İ, so
-- ASCII's I and i escape it (`ALICE@x` has the key `alıce@x`, its normalizeEmail form `alice@x` the key `alice@x`;
-- review rv6); under Lithuanian casing (ICU's lt) upper() drops the dot above an i (`i̇@x`, normalizeEmail's form of
-- `İ@x`, has the key `i@x`, `İ@x` the key `i̇@x`; review rv7). Checked here, a WARNING if so (the migration still applies:
-- the rule is then only as good as that casing).
--
-- The identities verified under the old rule that this one says assert another account's address: unverified here, as
-- 20270211001000 did (still ways to sign in, no longer proof of the address), each audited in its user's personal
-- organization (user.identity_email_unverified, actor migration:20270211001650; the address stays out of the audit
-- log). None the old rule unverified is verified again, though the new key is not coarser everywhere (`α\u0345` and `αι`
-- no longer meet): a proof taken away costs a new proof, one given back wrongly would lend an address. Idempotent: the
-- function is replaced, and a second run finds none of them verified. The function runs as its caller (the privileged
-- paths, service_role), search_path ''; its grants are restated as 20270211001000 gave them. Needs no superuser.

DO $$
BEGIN
  IF lower(U&'\0416') <> U&'\0436' OR lower('I') <> 'i' OR upper('i') <> 'I' OR upper(U&'i\0307') <> U&'I\0307' THEN
    RAISE WARNING 'core.email_of_another_account: this database''s casing (LC_CTYPE %, or its default collation''s ICU locale) is not the one the key needs: either it does not lower-case beyond ASCII (lower(Ж) is not ж), or it is Turkish or Azeri casing (lower(I) is ı, upper(i) is İ) or Lithuanian (upper of i with a dot above drops the dot), so an address and its case forms (Ж/ж, É/é, Σ/σ; or ASCII''s I/i, ALICE/alice) have different keys and another account''s address written so is not recognized: identity links asserting it are stored verified. Use a database whose LC_CTYPE is a UTF-8 locale without Turkish or Lithuanian casing (C.UTF-8, en_US.UTF-8; createdb --locale=C.UTF-8 --template=template0), migrate it, and move the data there',
      (SELECT datctype FROM pg_database WHERE datname = current_database());
  END IF;
END
$$;

CREATE OR REPLACE FUNCTION core.email_of_another_account(p_user text, p_email text) RETURNS boolean
LANGUAGE sql STABLE SET search_path = '' AS $$
  SELECT NOT EXISTS (SELECT 1 FROM core."User" s WHERE s.id = p_user
      AND (btrim(s.email, E'\t\n\u000b\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff') COLLATE "C" = btrim(p_email, E'\t\n\u000b\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff') COLLATE "C"
        OR (strpos(s.email, E'\u03a3') = 0 AND strpos(p_email, E'\u03a3') = 0
      AND lower(replace(btrim(s.email, E'\t\n\u000b\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff'), 'İ', E'i\u0307')) = lower(replace(btrim(p_email, E'\t\n\u000b\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff'), 'İ', E'i\u0307')))))
    AND EXISTS (SELECT 1 FROM core."User" u
      WHERE normalize(lower(normalize(upper(replace(normalize(btrim(u.email, E'\t\n\u000b\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff'), NFC), E'\u1e9e', E'\u00df')), NFC)), NFC) = normalize(lower(normalize(upper(replace(normalize(btrim(p_email, E'\t\n\u000b\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff'), NFC), E'\u1e9e', E'\u00df')), NFC)), NFC)
        AND u.id <> p_user)
$$;
REVOKE ALL ON FUNCTION core.email_of_another_account(text, text) FROM PUBLIC, anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION core.email_of_another_account(text, text) TO service_role;

WITH unverified AS (
  UPDATE core.user_identities i SET email_verified_at = NULL
  WHERE i.email_verified_at IS NOT NULL AND core.email_of_another_account(i.user_id, i.email)
  RETURNING i.user_id, i.provider, i.subject)
INSERT INTO core.audit_logs (org_id, actor_id, principal_type, action, entity_type, entity_id, before, after)
SELECT o.org_id, 'migration:20270211001650', 'system', 'user.identity_email_unverified', 'user', u.user_id,
  jsonb_build_object('provider', u.provider, 'emailVerified', true),
  jsonb_build_object('provider', u.provider, 'emailVerified', false, 'reason', 'email_of_another_account')
FROM unverified u CROSS JOIN LATERAL (SELECT core.personal_org_id(u.user_id) AS org_id) o
WHERE o.org_id IS NOT NULL
ORDER BY u.user_id, u.provider, u.subject;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270211001650_email_of_another_account_nfc_key_and_sigma', '2a260b2ac22a2519e8a7eef2ce0131e225df657409b8c235f7b17db3d2ad7f05', 0)
  ON CONFLICT (name) DO NOTHING;
