-- Generated from prisma/migrations/20270209040100_knowledge_usage_truncate_recount/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- The knowledge usage counters (20270208140100) stay right through a TRUNCATE, and can be recounted.
--
-- ai.knowledge_usage_counters is kept by statement triggers on INSERT and DELETE; TRUNCATE fires neither, so a
-- TRUNCATE of the documents or the versions (by hand, or cascaded from the collections or an organization table) left
-- every organization counted with what it no longer had, and its plan's limits refused writes it had room for. That
-- migration's comment left the repair to whoever truncated. A load with triggers off (session_replication_role =
-- replica, pg_restore --disable-triggers, ALTER TABLE ... DISABLE TRIGGER) fires none of them either.
--  * TRUNCATE: these tables are not append-only (a document is deleted with its versions, by cascade too), so TRUNCATE
--    is not refused as on the audit log and the ledger (core.reject_change, finance.reject_truncate); a statement
--    trigger AFTER TRUNCATE zeroes the count of the truncated table for every organization (all its rows are gone, of
--    every organization). It fires for a table truncated by CASCADE too. Truncate the documents and the versions in
--    one statement (TRUNCATE ai.knowledge_documents CASCADE does): the versions alone, while a new document holds its
--    organization's counter row and waits for the versions, deadlock (one of the two is canceled, nothing miscounted).
--  * Anything else that bypassed the triggers (or a TRUNCATE or restore of the counters themselves):
--    ai.recount_knowledge_usage(org), below, for the migration owner. The triggers are not made ENABLE ALWAYS: on a
--    logical replication subscriber the counter rows may be replicated too (counted twice), and a data-only restore
--    with --disable-triggers disables those as well.
CREATE FUNCTION ai.knowledge_usage_documents_truncated() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
BEGIN
  UPDATE ai.knowledge_usage_counters c SET documents = 0 WHERE c.documents <> 0;
  RETURN NULL;
END
$$;
CREATE FUNCTION ai.knowledge_usage_versions_truncated() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
BEGIN
  UPDATE ai.knowledge_usage_counters c SET text_bytes = 0 WHERE c.text_bytes <> 0;
  RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION ai.knowledge_usage_documents_truncated(), ai.knowledge_usage_versions_truncated()
  FROM PUBLIC, anon, authenticated, service_role;
CREATE TRIGGER knowledge_documents_usage_truncated AFTER TRUNCATE ON ai.knowledge_documents
  FOR EACH STATEMENT EXECUTE FUNCTION ai.knowledge_usage_documents_truncated();
CREATE TRIGGER knowledge_versions_usage_truncated AFTER TRUNCATE ON ai.knowledge_versions
  FOR EACH STATEMENT EXECUTE FUNCTION ai.knowledge_usage_versions_truncated();

-- The operators' recount: SELECT * FROM ai.recount_knowledge_usage('<org id>') for one organization, or
-- ai.recount_knowledge_usage() for every organization that has a counter row or any document or version. Answers each
-- organization recounted: what it holds now and what the row said before (NULL: it had no row).
-- Writers go on meanwhile, without a table lock: each organization's counter row is locked first (FOR UPDATE, created
-- when missing), then its documents and versions are counted in statements of their own. A write already counted in the
-- row holds it (its trigger updated it) until it ends, so the lock waits for it and the count then sees it; a write not
-- yet counted in the row is not committed (its trigger runs in its own statement, then waits for this lock), so the count
-- does not see it and its trigger adds it afterwards. That holds in READ COMMITTED only (a new snapshot per statement):
-- another isolation level is refused. Only the owner (the migration login) executes it: no grant, closed to the API's
-- roles and to Supabase's REST path; it changes no tenant data, nothing to audit.
CREATE FUNCTION ai.recount_knowledge_usage(p_org uuid DEFAULT NULL)
RETURNS TABLE (org_id uuid, documents bigint, text_bytes bigint, documents_were bigint, text_bytes_were bigint)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = '' AS $$
#variable_conflict use_column
DECLARE
  o uuid;
  created boolean;
BEGIN
  IF current_setting('transaction_isolation') <> 'read committed' THEN
    RAISE EXCEPTION 'ai.recount_knowledge_usage runs in a READ COMMITTED transaction, not %', current_setting('transaction_isolation')
      USING ERRCODE = '55000';
  END IF;
  IF p_org IS NOT NULL AND NOT EXISTS (SELECT 1 FROM core.organizations g WHERE g.id = p_org) THEN
    RAISE EXCEPTION 'no organization %', p_org USING ERRCODE = 'P0002';
  END IF;
  FOR o IN
    SELECT p_org WHERE p_org IS NOT NULL
    UNION SELECT c.org_id FROM ai.knowledge_usage_counters c WHERE p_org IS NULL
    UNION SELECT d.org_id FROM ai.knowledge_documents d WHERE p_org IS NULL
    UNION SELECT v.org_id FROM ai.knowledge_versions v WHERE p_org IS NULL
    ORDER BY 1
  LOOP
    INSERT INTO ai.knowledge_usage_counters AS c (org_id) VALUES (o) ON CONFLICT (org_id) DO NOTHING RETURNING true INTO created;
    SELECT c.documents, c.text_bytes INTO documents_were, text_bytes_were FROM ai.knowledge_usage_counters c WHERE c.org_id = o FOR UPDATE;
    IF created THEN
      documents_were := NULL;
      text_bytes_were := NULL;
    END IF;
    documents := (SELECT count(*) FROM ai.knowledge_documents d WHERE d.org_id = o);
    text_bytes := (SELECT coalesce(sum(octet_length(v.text)), 0) FROM ai.knowledge_versions v WHERE v.org_id = o);
    UPDATE ai.knowledge_usage_counters c SET documents = recount_knowledge_usage.documents, text_bytes = recount_knowledge_usage.text_bytes
    WHERE c.org_id = o;
    org_id := o;
    RETURN NEXT;
  END LOOP;
END
$$;
REVOKE ALL ON FUNCTION ai.recount_knowledge_usage(uuid) FROM PUBLIC, anon, authenticated, service_role;
COMMENT ON FUNCTION ai.recount_knowledge_usage(uuid) IS
  'Recounts ai.knowledge_usage_counters from the documents and versions (one organization, or every one when NULL), writers going on; for the migration owner, after a load with triggers off; answers the counts and what the row said before';
COMMENT ON TABLE ai.knowledge_usage_counters IS
  'Per organization: its knowledge documents and the bytes of text of their versions (kept by triggers, TRUNCATE included; read by ai.knowledge_usage for the plan limits; ai.recount_knowledge_usage repairs it after writes with triggers off)';

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270209040100_knowledge_usage_truncate_recount', '71a295be9676ee7653c9ba7593aa4fb95a08b6b41cf8329493ac0c53e3c14d83', 0)
  ON CONFLICT (name) DO NOTHING;
