-- Generated from prisma/migrations/20270111000100_ar_aging_pages/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- AR aging through the API in one page (issue 15: p99 ≤ 200 ms for 100,000 open invoices over 5,000 customers).
--
--  * finance.ar_aging_index(as_of, edges): THE as-of pass (what finance.ar_aging did), grouped per customer and
--    bucket *position* (0 = current, 1 … n = up to each edge, n + 1 = past the last): an integer per row instead of
--    building the bucket's label text for each of 100,000 documents; labels are put on the grouped rows only.
--    work_mem sized so the per-document settlement sums do not spill to disk (they did at the default 4 MB), and
--    random_page_cost for data in memory, so the covering indexes of 20270103000100 are read index-only instead of
--    the invoices' heap (a third of the bytes per row).
--  * finance.ar_aging(as_of, edges): the same answer as before (per customer and bucket label), now over
--    ar_aging_index.
--  * finance.ar_aging_parties(as_of, edges, minor_units): what the API's report shows: one row per customer with a
--    non-zero bucket (bucket positions, amounts rounded to the base currency, total) and one row of totals (per
--    bucket, in total, and how many customers): 5,001 rows instead of 13,000 grouping-set rows, so the API pages
--    through customers (by name, then id) without grouping or adding anything itself.

CREATE FUNCTION finance.ar_aging_index(p_as_of date, p_edges integer[] DEFAULT '{30,60,90}')
RETURNS TABLE (customer_id uuid, bucket_index integer, amount numeric)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' SET work_mem = '64MB' SET random_page_cost = 1.1 AS $$
  WITH settled AS (
    SELECT a.invoice_id, sum(a.invoice_base) AS base FROM finance.receivable_allocations a
    WHERE a.org_id = (SELECT public.auth_org_id()) AND a.allocation_date <= p_as_of GROUP BY a.invoice_id),
  used AS (
    SELECT u.payment_id, sum(u.base) AS base FROM (
      SELECT a.payment_id, a.source_base AS base FROM finance.receivable_allocations a
      WHERE a.org_id = (SELECT public.auth_org_id()) AND a.allocation_date <= p_as_of AND a.payment_id IS NOT NULL
      UNION ALL
      SELECT r.payment_id, r.source_base FROM finance.customer_refunds r
      WHERE r.org_id = (SELECT public.auth_org_id()) AND r.refund_date <= p_as_of) u
    GROUP BY u.payment_id),
  items AS (
    SELECT i.customer_id, p_as_of - i.due_date AS days, i.base_total - coalesce(s.base, 0) AS base
    FROM finance.invoices i LEFT JOIN settled s ON s.invoice_id = i.id
    WHERE i.org_id = (SELECT public.auth_org_id()) AND i.kind = 'invoice' AND i.status <> 'draft' AND i.invoice_date <= p_as_of
      AND (i.voided_on IS NULL OR i.voided_on > p_as_of)
    UNION ALL
    SELECT p.customer_id, p_as_of - p.payment_date, coalesce(u.base, 0) - round(p.amount * p.rate, (
      SELECT c.minor_units FROM finance.settings st JOIN finance.currencies c ON c.code = st.base_currency WHERE st.org_id = (SELECT public.auth_org_id())))
    FROM finance.customer_payments p LEFT JOIN used u ON u.payment_id = p.id
    WHERE p.org_id = (SELECT public.auth_org_id()) AND p.payment_date <= p_as_of)
  -- the position of finance.aging_bucket's label: width_bucket(days - 1, edges) edges lie below days
  SELECT it.customer_id, CASE WHEN it.days <= 0 THEN 0 ELSE width_bucket(it.days - 1, p_edges) + 1 END, sum(it.base)
  FROM items it WHERE it.base <> 0 GROUP BY 1, 2
$$;
REVOKE ALL ON FUNCTION finance.ar_aging_index(date, integer[]) FROM PUBLIC, anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION finance.ar_aging_index(date, integer[]) TO authenticated, service_role, omnizen_analyst;

-- the label of bucket position `p_index` for `p_edges` (finance.aging_bucket's labels: current, 1-30, …, >90)
CREATE FUNCTION finance.aging_bucket_label(p_index integer, p_edges integer[] DEFAULT '{30,60,90}') RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE
    WHEN p_index <= 0 THEN 'current'
    WHEN p_index > cardinality(p_edges) THEN '>' || p_edges[cardinality(p_edges)]::text
    ELSE (coalesce(p_edges[p_index - 1], 0) + 1)::text || '-' || p_edges[p_index]::text
  END
$$;
REVOKE ALL ON FUNCTION finance.aging_bucket_label(integer, integer[]) FROM PUBLIC, anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION finance.aging_bucket_label(integer, integer[]) TO authenticated, service_role, omnizen_analyst;

CREATE OR REPLACE FUNCTION finance.ar_aging(p_as_of date, p_edges integer[] DEFAULT '{30,60,90}')
RETURNS TABLE (customer_id uuid, customer_name text, bucket text, amount numeric)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
  SELECT g.customer_id, c.name, finance.aging_bucket_label(g.bucket_index, p_edges), g.amount
  FROM finance.ar_aging_index(p_as_of, p_edges) g
  JOIN finance.customers c ON c.org_id = (SELECT public.auth_org_id()) AND c.id = g.customer_id
$$;

-- One row per customer with a bucket that is not zero once rounded to `p_minor_units` (customer_id, name, the
-- bucket positions it has and their amounts, its total), then one row with customer_id NULL: the totals per bucket
-- position, the total and the number of customer rows. Every amount rounded to `p_minor_units`, as text. Unordered.
CREATE FUNCTION finance.ar_aging_parties(p_as_of date, p_edges integer[], p_minor_units integer)
RETURNS TABLE (customer_id uuid, customer_name text, bucket_indexes integer[], amounts text[], total text, party_count integer)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
  WITH g AS MATERIALIZED (SELECT * FROM finance.ar_aging_index(p_as_of, p_edges)),
  parties AS MATERIALIZED (
    SELECT g.customer_id, array_agg(g.bucket_index ORDER BY g.bucket_index) AS idx,
      array_agg(round(g.amount, p_minor_units)::text ORDER BY g.bucket_index) AS amounts, round(sum(g.amount), p_minor_units)::text AS total
    FROM g GROUP BY g.customer_id HAVING bool_or(round(g.amount, p_minor_units) <> 0))
  SELECT p.customer_id, c.name, p.idx, p.amounts, p.total, NULL::integer
  FROM parties p JOIN finance.customers c ON c.org_id = (SELECT public.auth_org_id()) AND c.id = p.customer_id
  UNION ALL
  SELECT NULL, NULL, coalesce(array_agg(t.bucket_index ORDER BY t.bucket_index), '{}'), coalesce(array_agg(t.amount ORDER BY t.bucket_index), '{}'),
    (SELECT round(coalesce(sum(g.amount), 0), p_minor_units)::text FROM g), (SELECT count(*)::integer FROM parties)
  FROM (SELECT g.bucket_index, round(sum(g.amount), p_minor_units)::text AS amount FROM g GROUP BY 1) t
$$;
REVOKE ALL ON FUNCTION finance.ar_aging_parties(date, integer[], integer) FROM PUBLIC, anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION finance.ar_aging_parties(date, integer[], integer) TO authenticated, service_role, omnizen_analyst;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270111000100_ar_aging_pages', '4f60e0e4ddf3d2cf52965b5874426bdc3e204c7b65ed76d2dba4ed6068fe0997', 0)
  ON CONFLICT (name) DO NOTHING;
