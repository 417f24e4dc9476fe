-- Generated from prisma/migrations/20270211000950_user_email_norm_index/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- core.email_of_another_account (migration 20270211001000) looks for another account whose stored address has the key of
-- the given one (review rF: the Hub writes core."User" directly, so a stored address may be padded, have capitals or be
-- decomposed; the unique index on email serves none of that). This index serves that lookup. The key is the app's
-- normalizeEmail (platform/http/email.ts: JavaScript trim(), toLowerCase(), NFC) done in SQL so that an address and its
-- normalizeEmail form have one key (review rI), which trim(), lower() and NFC alone do not:
--   * btrim with JavaScript's trim() set (tab, LF, VT, FF, CR, space, NBSP, U+1680, U+2000-200A, U+2028, U+2029, U+202F,
--     U+205F, U+3000, U+FEFF): PostgreSQL trim() removes spaces only, so a stored "\u00a0d@x\n" was no one's `d@x`;
--   * upper, NFC, then lower: lower() maps one character at a time, JavaScript's in context, so final sigma (Σ: σ in SQL,
--     ς in JavaScript) and İ (i in SQL, i + U+0307 in JavaScript) differed; upper-casing first brings ς and σ to Σ, and
--     i + U+0307 to I + U+0307, which NFC composes to İ; then lower() and NFC again (a lower-casing may leave a sequence
--     NFC composes). ß stays ß in both (neither upper-cases it to SS).
-- The key is case-, padding- and Unicode-form-insensitive; it is not normalizeEmail's output (final sigma lower-cases to σ).
-- Its own migration, so its own transaction (review rF): built inside 20270211001000, its SHARE lock on core."User"
-- (registrations, e-mail changes and the Hub's writes wait; reads go on) lasted through that migration's update of every
-- identity (9.5 s at 300k identities); here it lasts the build only. Not CONCURRENTLY: refused inside the migration's
-- transaction. Not unique: case twins and the pairs 20270211000700 reported and left share a key. btrim(), upper(),
-- lower() and normalize() are built-in and immutable (no function of ours: an index expression's function needs EXECUTE
-- for every role whose write evaluates it); the expression is written out again, the same, in 20270211001000 (that is
-- how the lookup uses the index). The migration role owns the table (no superuser). RLS and grants are unchanged (an
-- index only).
CREATE INDEX user_email_norm_idx ON core."User" ((normalize(lower(normalize(upper(btrim(email, E'\t\n\u000b\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff')), NFC)), NFC)));

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270211000950_user_email_norm_index', 'c000b3a98953f2f7599652978ae6e580961c493f47559693372fcfecaf56c855', 0)
  ON CONFLICT (name) DO NOTHING;
