-- Generated from prisma/migrations/20270203000300_knowledge_collections_keep_workspace/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- A workspace that holds knowledge collections is not deleted: the collections' foreign key refused nothing (ON DELETE
-- CASCADE took them, with their documents, versions and chunks, without their own audit rows and events), so the
-- API counted them first under a lock on the workspace. The foreign key now refuses (NO ACTION, checked at the end of
-- the statement, so deleting the organization still cascades to both): the API answers 409 workspace.not_empty, and a
-- collection created while the workspace is deleted waits for that deletion and then fails its own check.
ALTER TABLE ai.knowledge_collections
  DROP CONSTRAINT knowledge_collections_org_id_workspace_id_fkey,
  ADD CONSTRAINT knowledge_collections_org_id_workspace_id_fkey FOREIGN KEY (org_id, workspace_id) REFERENCES core.workspaces(org_id, id);

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270203000300_knowledge_collections_keep_workspace', 'b259f0efec18bbf7793771f4e54171b6af1962003d6f07d22e74ed74bcb47565', 0)
  ON CONFLICT (name) DO NOTHING;
