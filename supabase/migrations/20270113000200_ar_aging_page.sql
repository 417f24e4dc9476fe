-- Generated from prisma/migrations/20270113000200_ar_aging_page/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- AR aging: one page of customers built in SQL (issue 15: p99 ≤ 200 ms for 100,000 open invoices over 5,000 customers).
--
-- finance.ar_aging_parties built the bucket arrays of every customer (5,000 array pairs, a quarter of the report's
-- database time once the as-of pass reads stored open amounts, 20270113000100), of which the API shows one page.
-- finance.ar_aging_page(as_of, edges, minor_units, after_name, after_id, limit) answers that page only: the customers
-- with a bucket that is not zero once rounded (name, then id, after the cursor, at most `limit`; all when NULL) with
-- their buckets, and the totals row over all of them (customer_id NULL: per bucket, in total, and how many
-- customers), as ar_aging_parties did. ar_aging_parties is now the page without a limit.

CREATE FUNCTION finance.ar_aging_page(p_as_of date, p_edges integer[], p_minor_units integer, p_after_name text, p_after_id uuid, p_limit integer)
RETURNS TABLE (customer_id uuid, customer_name text, bucket_indexes integer[], amounts text[], total text, party_count integer)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
  WITH g AS MATERIALIZED (SELECT * FROM finance.ar_aging_index(p_as_of, p_edges)),
  -- the customers the report shows: one with a bucket that is not zero once rounded
  shown AS MATERIALIZED (
    SELECT g.customer_id FROM g GROUP BY g.customer_id HAVING bool_or(round(g.amount, p_minor_units) <> 0)),
  page AS MATERIALIZED (
    SELECT c.id, c.name FROM shown s JOIN finance.customers c ON c.org_id = (SELECT public.auth_org_id()) AND c.id = s.customer_id
    WHERE p_after_name IS NULL OR (c.name, c.id) > (p_after_name, p_after_id)
    ORDER BY c.name, c.id LIMIT p_limit)
  SELECT p.id, p.name, array_agg(g.bucket_index ORDER BY g.bucket_index), array_agg(round(g.amount, p_minor_units)::text ORDER BY g.bucket_index),
    round(sum(g.amount), p_minor_units)::text, NULL::integer
  FROM page p JOIN g ON g.customer_id = p.id GROUP BY p.id, p.name
  UNION ALL
  SELECT NULL, NULL, coalesce(array_agg(t.bucket_index ORDER BY t.bucket_index), '{}'), coalesce(array_agg(t.amount ORDER BY t.bucket_index), '{}'),
    (SELECT round(coalesce(sum(g.amount), 0), p_minor_units)::text FROM g), (SELECT count(*)::integer FROM shown)
  FROM (SELECT g.bucket_index, round(sum(g.amount), p_minor_units)::text AS amount FROM g GROUP BY 1) t
$$;
REVOKE ALL ON FUNCTION finance.ar_aging_page(date, integer[], integer, text, uuid, integer) FROM PUBLIC, anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION finance.ar_aging_page(date, integer[], integer, text, uuid, integer) TO authenticated, service_role, omnizen_analyst;

-- every customer (the CSV's report, and analysts'): the page without a limit
CREATE OR REPLACE FUNCTION finance.ar_aging_parties(p_as_of date, p_edges integer[], p_minor_units integer)
RETURNS TABLE (customer_id uuid, customer_name text, bucket_indexes integer[], amounts text[], total text, party_count integer)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
  SELECT * FROM finance.ar_aging_page(p_as_of, p_edges, p_minor_units, NULL, NULL, NULL)
$$;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270113000200_ar_aging_page', '3334a3d3565e5571a13b39ef77d28c6241e19c37ef3aec975b9ca05c7bc7438a', 0)
  ON CONFLICT (name) DO NOTHING;
