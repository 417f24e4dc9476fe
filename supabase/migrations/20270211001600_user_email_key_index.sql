-- Generated from prisma/migrations/20270211001600_user_email_key_index/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- The key core.email_of_another_account compares another account's stored address by (user_email_norm_idx, migration
-- 20270211000950) was not one for every address and its normalizeEmail form (review rM, finding 2): it upper-cased
-- before NFC, and glibc's upper() takes U+0345 (the combining iota subscript) to a capital Ι of its own, so
-- `α\u0345δω@x` had the key `αιδω@x` and its normalizeEmail form `ᾳδω@x` (JavaScript lower-cases, then NFC composes
-- α + U+0345 to ᾳ) the key `ᾳδω@x`: an account the Hub stored decomposed was no one's when another account's link
-- asserted its address in NFC, so that link was stored verified. 36 letters so, and their capitals, written decomposed
-- (U+1F80-1F87, U+1F90-1F97, U+1FA0-1FA7, U+1FB2-1FB4, U+1FB7, U+1FC2-1FC4, U+1FC7, U+1FF2-1FF4, U+1FF7: the Greek
-- letters with ypogegrammeni). This index is the key done with NFC first: btrim of JavaScript's trim() set, NFC, ẞ
-- (U+1E9E) made ß, upper, NFC, lower, NFC. NFC first composes α + U+0345 to ᾳ, which upper() takes to ᾼ, one letter, as
-- it does every composed form; the rest is 20270211000950's reasoning (upper first so that final sigma and σ, and
-- i + U+0307 and İ, meet; NFC again after each case mapping, which may leave a sequence NFC composes). ẞ made ß changes
-- nothing where the C library cases (its lower() makes ẞ a ß, its upper() keeps ß); a database whose default collation
-- is ICU's upper-cases ß to SS and kept ẞ apart, so `STRAẞE@x` and its normalizeEmail form `straße@x` had two keys
-- there (and ß meets ss there: merging only costs a proof). Checked for every code point up to U+2FFFF, alone and in
-- context, against JavaScript (review rM's brute force, re-run on this key under C.UTF-8 and under ICU's und): an
-- address and its normalizeEmail form have one key, except for letters newer than the server's Unicode tables (see
-- 20270211001650).
-- Its own migration, so its own transaction, as 20270211000950: its SHARE lock on core."User" (registrations, e-mail
-- changes and the Hub's writes wait; reads go on) lasts the build only. Not CONCURRENTLY: refused inside the
-- migration's transaction. Not unique (case twins, the pairs 20270211000700 reported and left). Built-in immutable
-- functions only (an index expression's function needs EXECUTE for every role whose write evaluates it); the expression
-- is written out again, the same, in 20270211001650's core.email_of_another_account (that is how the lookup uses it).
-- user_email_norm_idx serves the function as 20270211001000 left it until 20270211001650 replaces that and drops it. The
-- migration role owns the table (no superuser). RLS and grants are unchanged (an index only).
CREATE INDEX user_email_key_idx ON core."User" ((normalize(lower(normalize(upper(replace(normalize(btrim(email, E'\t\n\u000b\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff'), NFC), E'\u1e9e', E'\u00df')), NFC)), NFC)));

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270211001600_user_email_key_index', '8d00b0fdd24aecab81d503d50bf3c786458f79c90973a8e6227605cee6e6ded8', 0)
  ON CONFLICT (name) DO NOTHING;
