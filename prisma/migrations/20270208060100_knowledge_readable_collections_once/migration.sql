-- The knowledge policies read the readable collections once per statement, not once per row.
--
-- 20270105000100 said ai.readable_collections() was inlined into the policies of documents, versions and chunks, its
-- ARRAY(SELECT ...) an InitPlan run once per statement. It is not: PostgreSQL inlines no function whose body holds a
-- subquery (as 20270207900200 found for core.member_org_ids()), so the policies called it, and read the collections,
-- for every row: 1,001 calls to list 1,000 documents. The same cure as 20270207900200, with the memo kept for one
-- statement rather than one transaction:
--  * ai.readable_collections_checked() reads the collections (the old body, as the caller: the collections' own
--    policy decides which are readable) and, for claims begin_request verified (the API's runtime login), records
--    the answer in transaction-local settings keyed by the claims and statement_timestamp();
--  * ai.readable_collections() becomes a plain SQL function without a subquery, which PostgreSQL inlines into the
--    policies: while the claims and the statement are the ones recorded, it answers the recorded list (a settings
--    read per row); otherwise (the statement's first row, other claims, Supabase's PostgREST) it reads them again.
-- What a statement sees is therefore what it saw before: the collections readable as of its first row. The next
-- statement reads them again, so a collection created, deleted or given other read_roles earlier in the transaction
-- (or by another transaction that committed meanwhile) counts from the next statement on, as before. A change inside
-- one client statement (a function that writes a collection, then reads documents) clears the record too: a
-- statement trigger on the collections forgets it.
-- Only the runtime login takes the fast path, and it sets the claims itself (the trust of omnizen.verified_*).
CREATE FUNCTION ai.readable_collections_checked() RETURNS uuid[]
LANGUAGE plpgsql STABLE AS $$
DECLARE
  ids uuid[] := ARRAY(SELECT k.id FROM ai.knowledge_collections k);
  _ text;
BEGIN
  IF public.auth_claims_verified() THEN
    _ := set_config('omnizen.readable_collections', ids::text, true);
    _ := set_config('omnizen.readable_collections_for',
      current_setting('request.jwt.claims', true) || '|' || extract(epoch FROM statement_timestamp())::text, true);
  END IF;
  RETURN ids;
END
$$;
REVOKE ALL ON FUNCTION ai.readable_collections_checked() FROM PUBLIC, anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION ai.readable_collections_checked() TO authenticated, service_role;

-- Same signature: the policies (which refer to the function) take the new form at once. No SECURITY DEFINER, no SET
-- clause and no subquery: any of them would stop PostgreSQL from inlining it.
CREATE OR REPLACE FUNCTION ai.readable_collections() RETURNS uuid[]
LANGUAGE sql STABLE AS $$
  SELECT CASE WHEN public.auth_claims_verified()
                   AND current_setting('omnizen.readable_collections_for', true)
                       = current_setting('request.jwt.claims', true) || '|' || extract(epoch FROM statement_timestamp())::text
              THEN current_setting('omnizen.readable_collections', true)::uuid[]
              ELSE ai.readable_collections_checked() END
$$;

-- A write to the collections forgets the record (the next row reads them again). No EXECUTE grant: a trigger runs
-- its function without an EXECUTE check.
CREATE FUNCTION ai.knowledge_collections_forget_readable() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM set_config('omnizen.readable_collections_for', '', true);
  RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION ai.knowledge_collections_forget_readable() FROM PUBLIC, anon, authenticated, service_role;
CREATE TRIGGER knowledge_collections_forget_readable AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON ai.knowledge_collections
  FOR EACH STATEMENT EXECUTE FUNCTION ai.knowledge_collections_forget_readable();
