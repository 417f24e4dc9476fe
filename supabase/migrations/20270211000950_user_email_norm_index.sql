-- Generated from prisma/migrations/20270211000950_user_email_norm_index/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- core.email_of_another_account (migration 20270211001000) looks for another account whose stored address, trimmed,
-- lower-cased and in NFC, is the given one so (review rF: the Hub writes core."User" directly, so a stored address may be
-- padded, have capitals or be decomposed; the unique index on email serves none of that). This index serves that lookup.
-- Its own migration, so its own transaction (review rF): built inside 20270211001000, its SHARE lock on core."User"
-- (registrations, e-mail changes and the Hub's writes wait; reads go on) lasted through that migration's update of every
-- identity (9.5 s at 300k identities); here it lasts the build only. Not CONCURRENTLY: refused inside the migration's
-- transaction. Not unique: case twins and the pairs 20270211000700 reported and left share a form. normalize() and
-- lower() are immutable; the migration role owns the table (no superuser). RLS and grants are unchanged (an index only).
CREATE INDEX user_email_norm_idx ON core."User" ((normalize(lower(trim(email)), NFC)));

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270211000950_user_email_norm_index', 'd445c4d32ecd80c128723f13901edd80e229192754713222cfabf5b1a0c42811', 0)
  ON CONFLICT (name) DO NOTHING;
