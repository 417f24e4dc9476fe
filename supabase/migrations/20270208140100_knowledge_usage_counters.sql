-- Generated from prisma/migrations/20270208140100_knowledge_usage_counters/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- The knowledge base's usage (its documents, the bytes of its versions' text) kept per organization, not counted.
--
-- 20270208060200's ai.knowledge_usage() counted every document of the organization and summed octet_length over every
-- version, and KnowledgeService called it twice per write (the documents' or text's check, then the text's check after
-- the insert) while holding the organization's counted limits' lock (hub.limit_locks, which invitations, workspaces,
-- agents and checkouts take too); GET entitlements paid the same scans. At a Professional plan's size (20,000 documents,
-- each with versions) every upload cost two full scans under that lock.
--
-- Now ai.knowledge_usage_counters holds one row per organization, kept by statement triggers on the documents and the
-- versions (an insert, a delete: a document's, a collection's, a workspace's or an organization's deletion cascades
-- included, each counted once by the statement that removed the rows), and ai.knowledge_usage() reads the row.
-- The triggers run in the writing transaction: a new document or version updates the row after KnowledgeService took the
-- counted limits' lock (collection, document, limits lock, versions, then this row: docs/knowledge.md "Locks"), so
-- concurrent uploads still count one after the other; a deletion takes the row last, after every lock it needs, and
-- waits for no other lock while holding it.
CREATE TABLE ai.knowledge_usage_counters (
  org_id uuid NOT NULL REFERENCES core.organizations(id) ON DELETE CASCADE,
  -- the organization's documents, every collection
  documents bigint NOT NULL DEFAULT 0,
  -- octet_length(text) summed over every version of those documents
  text_bytes bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (org_id)
);
REVOKE ALL ON ai.knowledge_usage_counters FROM PUBLIC, anon, authenticated, service_role;
-- read for the request's organization only; written only by the triggers below (SECURITY DEFINER, as the owner)
GRANT SELECT ON ai.knowledge_usage_counters TO authenticated, service_role;
ALTER TABLE ai.knowledge_usage_counters ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY knowledge_usage_counters_read ON ai.knowledge_usage_counters FOR SELECT TO authenticated, service_role
  USING (org_id = public.auth_org_id());
COMMENT ON TABLE ai.knowledge_usage_counters IS
  'Per organization: its knowledge documents and the bytes of text of their versions (kept by triggers; read by ai.knowledge_usage for the plan limits)';

-- SECURITY DEFINER (the table has no write grant): each statement adds what it inserted or removes what it deleted, per
-- organization of the rows (whose own policies admitted them). A statement trigger with its transition table: a
-- collection's deletion of thousands of documents updates the row once, not once per document. A deletion only updates
-- (an organization being deleted may have lost its row already); an insert creates the row of an organization's first
-- document.
CREATE FUNCTION ai.knowledge_usage_documents_added() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
BEGIN
  INSERT INTO ai.knowledge_usage_counters AS c (org_id, documents)
  SELECT a.org_id, count(*) FROM added a GROUP BY a.org_id ORDER BY a.org_id
  ON CONFLICT (org_id) DO UPDATE SET documents = c.documents + EXCLUDED.documents;
  RETURN NULL;
END
$$;
CREATE FUNCTION ai.knowledge_usage_documents_removed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
BEGIN
  UPDATE ai.knowledge_usage_counters c SET documents = c.documents - r.n
  FROM (SELECT o.org_id, count(*) AS n FROM removed o GROUP BY o.org_id) r WHERE c.org_id = r.org_id;
  RETURN NULL;
END
$$;
CREATE FUNCTION ai.knowledge_usage_versions_added() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
BEGIN
  INSERT INTO ai.knowledge_usage_counters AS c (org_id, text_bytes)
  SELECT a.org_id, sum(octet_length(a.text)) FROM added a GROUP BY a.org_id ORDER BY a.org_id
  ON CONFLICT (org_id) DO UPDATE SET text_bytes = c.text_bytes + EXCLUDED.text_bytes;
  RETURN NULL;
END
$$;
CREATE FUNCTION ai.knowledge_usage_versions_removed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
BEGIN
  UPDATE ai.knowledge_usage_counters c SET text_bytes = c.text_bytes - r.n
  FROM (SELECT o.org_id, sum(octet_length(o.text)) AS n FROM removed o GROUP BY o.org_id) r WHERE c.org_id = r.org_id;
  RETURN NULL;
END
$$;
-- A version's text is never rewritten by the API (history is kept; a restore is a new version), but the service role
-- may update any column: a changed text (or organization) moves the bytes. A row trigger with a column list (a
-- transition table cannot have one), so the ingestion's status updates fire nothing.
CREATE FUNCTION ai.knowledge_usage_version_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
BEGIN
  UPDATE ai.knowledge_usage_counters c SET text_bytes = c.text_bytes - octet_length(OLD.text) WHERE c.org_id = OLD.org_id;
  INSERT INTO ai.knowledge_usage_counters AS c (org_id, text_bytes) VALUES (NEW.org_id, octet_length(NEW.text))
  ON CONFLICT (org_id) DO UPDATE SET text_bytes = c.text_bytes + EXCLUDED.text_bytes;
  RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION ai.knowledge_usage_documents_added(), ai.knowledge_usage_documents_removed(), ai.knowledge_usage_versions_added(),
  ai.knowledge_usage_versions_removed(), ai.knowledge_usage_version_changed() FROM PUBLIC, anon, authenticated, service_role;

CREATE TRIGGER knowledge_documents_usage_added AFTER INSERT ON ai.knowledge_documents
  REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION ai.knowledge_usage_documents_added();
CREATE TRIGGER knowledge_documents_usage_removed AFTER DELETE ON ai.knowledge_documents
  REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION ai.knowledge_usage_documents_removed();
CREATE TRIGGER knowledge_versions_usage_added AFTER INSERT ON ai.knowledge_versions
  REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION ai.knowledge_usage_versions_added();
CREATE TRIGGER knowledge_versions_usage_removed AFTER DELETE ON ai.knowledge_versions
  REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION ai.knowledge_usage_versions_removed();
CREATE TRIGGER knowledge_versions_usage_changed AFTER UPDATE OF org_id, text ON ai.knowledge_versions FOR EACH ROW
  WHEN (OLD.org_id IS DISTINCT FROM NEW.org_id OR octet_length(OLD.text) IS DISTINCT FROM octet_length(NEW.text))
  EXECUTE FUNCTION ai.knowledge_usage_version_changed();
-- TRUNCATE fires none of these: the API never truncates, and a truncate of the knowledge tables by hand is followed by
-- DELETE FROM ai.knowledge_usage_counters (or the backfill below).

-- The backfill, with the writers kept out meanwhile (a document or version written between the count and the end of
-- this migration would otherwise be counted twice or not at all): the triggers above count every write after it.
LOCK TABLE ai.knowledge_documents, ai.knowledge_versions IN SHARE MODE;
INSERT INTO ai.knowledge_usage_counters (org_id, documents, text_bytes)
SELECT o.org_id, coalesce(d.n, 0), coalesce(v.n, 0)
FROM (SELECT org_id FROM ai.knowledge_documents UNION SELECT org_id FROM ai.knowledge_versions) o
LEFT JOIN (SELECT org_id, count(*) AS n FROM ai.knowledge_documents GROUP BY org_id) d ON d.org_id = o.org_id
LEFT JOIN (SELECT org_id, sum(octet_length(text)) AS n FROM ai.knowledge_versions GROUP BY org_id) v ON v.org_id = o.org_id;

-- The request's organization's usage: its row (none yet: nothing stored). Same signature and result as before; still
-- SECURITY DEFINER, so its answer does not depend on the caller's policies.
CREATE OR REPLACE FUNCTION ai.knowledge_usage(OUT documents bigint, OUT text_bytes bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  org uuid := public.auth_org_id();
BEGIN
  IF org IS NULL THEN
    RAISE EXCEPTION 'no organization in this request' USING ERRCODE = '42501';
  END IF;
  SELECT c.documents, c.text_bytes INTO documents, text_bytes FROM ai.knowledge_usage_counters c WHERE c.org_id = org;
  documents := coalesce(documents, 0);
  text_bytes := coalesce(text_bytes, 0);
END
$$;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270208140100_knowledge_usage_counters', '81c0a774c9a7d2e6237b40939c90c19450f77b5ef684474ea1bf62153e4797f8', 0)
  ON CONFLICT (name) DO NOTHING;
