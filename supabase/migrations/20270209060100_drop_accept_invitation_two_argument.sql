-- Generated from prisma/migrations/20270209060100_drop_accept_invitation_two_argument/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- The rolling deploy's wrapper core.accept_invitation(uuid, text) (20270208040100) served the instances of the release
-- before 20270207300100 while the release that brought it replaced them. That release has shipped everywhere this one
-- ships, and no instance of its predecessor runs: every running API calls core.accept_invitation(uuid, text, text).
-- The wrapper goes, as its TODO said; the three-argument function is unchanged.
DROP FUNCTION core.accept_invitation(uuid, text);

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270209060100_drop_accept_invitation_two_argument', 'd79ee13628b04a5930b1d840807e9043e51e88a4b2e441eda4c18e147bb38b6f', 0)
  ON CONFLICT (name) DO NOTHING;
