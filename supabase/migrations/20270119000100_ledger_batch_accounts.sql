-- Generated from prisma/migrations/20270119000100_ledger_batch_accounts/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- Cheaper batch postings (issue 14): the batch's accounts read in about half the time.
--
-- Measured serially (bench/posting-profile.ts with PROFILE_BATCH=100, and the function alone in a loop):
-- finance.posting_accounts took ~1.9 ms of a 100-entry batch's ~15 ms. Of that, ~0.75 ms went to the regular
-- expression that kept malformed ids out of the uuid cast (~3.3 µs a line), ~0.35 ms to `a.id = ANY (array)`, which
-- PostgreSQL evaluates by comparing every account of the organization with every id of the array in turn.
-- Now:
-- 1. the ids are cast all at once; only when one of them is not a UUID (the cast raises 22P02) are they filtered
--    one by one, as before. A malformed id still fails its own entry's check (finance.check_entry casts it there),
--    never the whole call.
-- 2. the accounts are matched with the distinct ids through a join, not a scan of the array per account.
-- Same answer, with one difference that changes no result: ids in a non-canonical form that PostgreSQL reads as a
-- UUID (upper case, braces, no hyphens) are now in the map too, where check_entry used to read each of them itself.
CREATE OR REPLACE FUNCTION finance.posting_accounts(org uuid, p_entries jsonb, p_extra uuid) RETURNS jsonb
LANGUAGE plpgsql STABLE SET search_path = '' AS $$
DECLARE
  named text[];
  ids uuid[];
  found jsonb;
BEGIN
  -- what the lines name (entries or lines that are not arrays name nothing: their own checks reject them)
  named := ARRAY(
    SELECT l ->> 'accountId'
    FROM jsonb_array_elements(CASE WHEN jsonb_typeof(p_entries) = 'array' THEN p_entries ELSE '[]'::jsonb END) e
    CROSS JOIN LATERAL jsonb_array_elements(CASE WHEN jsonb_typeof(e -> 'lines') = 'array' THEN e -> 'lines' ELSE '[]'::jsonb END) l);
  BEGIN
    ids := named::uuid[];
  EXCEPTION WHEN invalid_text_representation THEN
    ids := ARRAY(SELECT x::uuid FROM unnest(named) x
                 WHERE x ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$');
  END;
  SELECT coalesce(jsonb_object_agg(a.id::text, jsonb_build_object(
           'code', a.code, 'isGroup', a.is_group, 'archived', a.archived_at IS NOT NULL, 'currency', a.currency)), '{}'::jsonb)
  INTO found
  FROM finance.accounts a
  WHERE a.org_id = org AND a.id IN (SELECT DISTINCT x FROM unnest(ids || p_extra) x);
  RETURN found;
END
$$;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270119000100_ledger_batch_accounts', '691c9f70cafb2133bbefb966f8fa7810d33d4e95048cba66f2f2d78b7e6ae6d5', 0)
  ON CONFLICT (name) DO NOTHING;
