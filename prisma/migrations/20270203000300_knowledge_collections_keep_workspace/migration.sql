-- A workspace that holds knowledge collections is not deleted: the collections' foreign key refused nothing (ON DELETE
-- CASCADE took them, with their documents, versions and chunks, without their own audit rows and events), so the
-- API counted them first under a lock on the workspace. The foreign key now refuses (NO ACTION, checked at the end of
-- the statement, so deleting the organization still cascades to both): the API answers 409 workspace.not_empty, and a
-- collection created while the workspace is deleted waits for that deletion and then fails its own check.
ALTER TABLE ai.knowledge_collections
  DROP CONSTRAINT knowledge_collections_org_id_workspace_id_fkey,
  ADD CONSTRAINT knowledge_collections_org_id_workspace_id_fkey FOREIGN KEY (org_id, workspace_id) REFERENCES core.workspaces(org_id, id);
