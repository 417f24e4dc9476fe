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
--    every organization): the documents' zeroes the text bytes too (their versions went with them: a TRUNCATE of the
--    documents must take the versions, which refer to them). It fires for a table truncated by CASCADE too. Truncate the
--    documents and the versions in one statement (TRUNCATE ai.knowledge_documents CASCADE does): the versions alone,
--    while a new document holds its organization's counter row and waits for the versions, deadlock (one of the two is
--    canceled, nothing miscounted). Each organization whose counts it changes is audited (knowledge.usage_truncated,
--    principal system: before and after); naming the versions before the documents audits their two zeroings apart.
--  * Anything else that bypassed the triggers (or a TRUNCATE or restore of the counters themselves):
--    ai.recount_knowledge_usage(org), below, for the migration owner. The triggers are not made ENABLE ALWAYS: on a
--    logical replication subscriber the counter rows may be replicated too (counted twice), and a data-only restore
--    with --disable-triggers disables those as well.
CREATE FUNCTION ai.knowledge_usage_documents_truncated() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  r record;
BEGIN
  FOR r IN SELECT c.org_id, c.documents, c.text_bytes FROM ai.knowledge_usage_counters c
    WHERE c.documents <> 0 OR c.text_bytes <> 0 ORDER BY c.org_id FOR UPDATE
  LOOP
    UPDATE ai.knowledge_usage_counters c SET documents = 0, text_bytes = 0 WHERE c.org_id = r.org_id;
    INSERT INTO core.audit_logs (org_id, actor_id, principal_type, action, entity_type, entity_id, before, after)
    VALUES (r.org_id, NULL, 'system', 'knowledge.usage_truncated', 'organization', r.org_id::text,
      jsonb_build_object('documents', r.documents, 'textBytes', r.text_bytes), jsonb_build_object('documents', 0, 'textBytes', 0));
  END LOOP;
  RETURN NULL;
END
$$;
CREATE FUNCTION ai.knowledge_usage_versions_truncated() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  r record;
BEGIN
  FOR r IN SELECT c.org_id, c.documents, c.text_bytes FROM ai.knowledge_usage_counters c
    WHERE c.text_bytes <> 0 ORDER BY c.org_id FOR UPDATE
  LOOP
    UPDATE ai.knowledge_usage_counters c SET text_bytes = 0 WHERE c.org_id = r.org_id;
    INSERT INTO core.audit_logs (org_id, actor_id, principal_type, action, entity_type, entity_id, before, after)
    VALUES (r.org_id, NULL, 'system', 'knowledge.usage_truncated', 'organization', r.org_id::text,
      jsonb_build_object('documents', r.documents, 'textBytes', r.text_bytes), jsonb_build_object('documents', r.documents, 'textBytes', 0));
  END LOOP;
  RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION ai.knowledge_usage_documents_truncated(), ai.knowledge_usage_versions_truncated()
  FROM PUBLIC, anon, authenticated, service_role;
CREATE TRIGGER knowledge_documents_usage_truncated AFTER TRUNCATE ON ai.knowledge_documents
  FOR EACH STATEMENT EXECUTE FUNCTION ai.knowledge_usage_documents_truncated();
CREATE TRIGGER knowledge_versions_usage_truncated AFTER TRUNCATE ON ai.knowledge_versions
  FOR EACH STATEMENT EXECUTE FUNCTION ai.knowledge_usage_versions_truncated();

-- The operators' recount, one organization per call: SELECT * FROM ai.recount_knowledge_usage('<org id>'). Answers what
-- the organization holds now and what its row said before (NULL: it had no row); a change is audited
-- (knowledge.usage_recounted, principal system: before and after). Every organization is recounted one transaction
-- each (docs/knowledge.md: psql's \gexec over core.organizations, in autocommit): no all-organizations form, whose one
-- transaction would hold every organization's counter row, blocking every knowledge write of the platform, until it
-- had counted them all.
-- Writers go on meanwhile, without a table lock: the organization's counter row is locked first (FOR UPDATE, created
-- when missing), then its documents and versions are counted in statements of their own. A write already counted in the
-- row holds it (its trigger updated it) until it ends, so the lock waits for it and the count then sees it; a write not
-- yet counted in the row is not committed (its trigger runs in its own statement, then waits for this lock), so the count
-- does not see it and its trigger adds it afterwards. That holds in READ COMMITTED only (a new snapshot per statement):
-- another isolation level is refused. The organization is locked first (FOR KEY SHARE: the lock its counter row's
-- foreign key takes): one deleted before, its row gone or soft-deleted (deleted_at set, as the API deletes one), is
-- named (P0002), not a foreign key failure nor a counter row written for it; its row's deletion meanwhile waits for
-- the recount. Only the owner (the migration login) executes it: no grant, closed to the API's roles and to Supabase's
-- REST path.
CREATE FUNCTION ai.recount_knowledge_usage(p_org uuid)
RETURNS TABLE (org_id uuid, documents bigint, text_bytes bigint, documents_were bigint, text_bytes_were bigint)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = '' AS $$
#variable_conflict use_column
DECLARE
  created boolean;
BEGIN
  IF current_setting('transaction_isolation') <> 'read committed' THEN
    RAISE EXCEPTION 'ai.recount_knowledge_usage runs in a READ COMMITTED transaction, not %', current_setting('transaction_isolation')
      USING ERRCODE = '55000';
  END IF;
  IF p_org IS NULL THEN
    RAISE EXCEPTION 'ai.recount_knowledge_usage recounts one organization: name it (docs/knowledge.md recounts every one, one at a time)'
      USING ERRCODE = '22004';
  END IF;
  PERFORM FROM core.organizations g WHERE g.id = p_org AND g.deleted_at IS NULL FOR KEY SHARE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'no organization %', p_org USING ERRCODE = 'P0002';
  END IF;
  INSERT INTO ai.knowledge_usage_counters AS c (org_id) VALUES (p_org) ON CONFLICT (org_id) DO NOTHING RETURNING true INTO created;
  SELECT c.documents, c.text_bytes INTO documents_were, text_bytes_were FROM ai.knowledge_usage_counters c WHERE c.org_id = p_org FOR UPDATE;
  IF created THEN
    documents_were := NULL;
    text_bytes_were := NULL;
  END IF;
  documents := (SELECT count(*) FROM ai.knowledge_documents d WHERE d.org_id = p_org);
  text_bytes := (SELECT coalesce(sum(octet_length(v.text)), 0) FROM ai.knowledge_versions v WHERE v.org_id = p_org);
  UPDATE ai.knowledge_usage_counters c SET documents = recount_knowledge_usage.documents, text_bytes = recount_knowledge_usage.text_bytes
  WHERE c.org_id = p_org;
  -- no row read as zero (ai.knowledge_usage): a zero row created is no change
  IF coalesce(documents_were, 0) <> documents OR coalesce(text_bytes_were, 0) <> text_bytes THEN
    INSERT INTO core.audit_logs (org_id, actor_id, principal_type, action, entity_type, entity_id, before, after)
    VALUES (p_org, NULL, 'system', 'knowledge.usage_recounted', 'organization', p_org::text,
      CASE WHEN created THEN NULL ELSE jsonb_build_object('documents', documents_were, 'textBytes', text_bytes_were) END,
      jsonb_build_object('documents', documents, 'textBytes', text_bytes));
  END IF;
  org_id := p_org;
  RETURN NEXT;
END
$$;
REVOKE ALL ON FUNCTION ai.recount_knowledge_usage(uuid) FROM PUBLIC, anon, authenticated, service_role;
COMMENT ON FUNCTION ai.recount_knowledge_usage(uuid) IS
  'Recounts ai.knowledge_usage_counters of one organization from its documents and versions, writers going on, audited when it changes; for the migration owner, after a load with triggers off; answers the counts and what the row said before';
COMMENT ON TABLE ai.knowledge_usage_counters IS
  'Per organization: its knowledge documents and the bytes of text of their versions (kept by triggers, TRUNCATE included; read by ai.knowledge_usage for the plan limits; ai.recount_knowledge_usage repairs it after writes with triggers off)';

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270209040100_knowledge_usage_truncate_recount', '0ab133f76918aefaba0453899632f4b85c95e032b61dbd7d2d3b560c9df3292e', 0)
  ON CONFLICT (name) DO NOTHING;
