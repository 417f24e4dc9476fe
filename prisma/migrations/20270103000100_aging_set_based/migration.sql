-- Aging as of any date as one set-based, grouped pass (issue 15: p99 ≤ 200 ms for 100,000 open invoices), and one
-- SQL aging bucket rule for receivables and payables.
--
--  * finance.aging_bucket(days, edges) is THE bucket rule (the SQL twin of src/modules/ledger/aging.ts): a plain SQL
--    expression without SET clause or subquery, so the planner inlines it into a query instead of calling a
--    function per row. finance.aging_bucket_index, its integer twin, is dropped.
--  * finance.ar_aging(as_of, edges) and finance.ap_aging(as_of, edges) answer the aging already grouped per party
--    and bucket: a document's open base value as of a date is its base total less the base its settlements dated
--    on or before that day took off it (the allocations carry that base: it is exactly what their postings took off
--    the control account), so the buckets add up to the control account's balance at that date by construction.
--    One scan of the documents of the date range (index-only on the covering indexes below) hash-joined with
--    the settlements of the range grouped per document, aggregated per party and bucket inside the function:
--    only the grouped rows leave it (at most parties × buckets), never one row per open document.

-- ---------------------------------------------------------------- the one bucket rule
-- 'current' (not yet due), then '1-30', '31-60', '61-90' and '>90' for the default edges; `p_edges` ascending.
-- width_bucket(days - 1, edges) + 1 is the position of the first edge ≥ days (1 for 1..30 with {30,60,90}).
-- Every part immutable (int::text, not int || text, which is only stable): an immutable SQL function is inlined
-- only when its body is immutable too; called per row instead, it cost ten times the grouping itself.
CREATE OR REPLACE FUNCTION finance.aging_bucket(p_days integer, p_edges integer[] DEFAULT '{30,60,90}') RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE
    WHEN p_days <= 0 THEN 'current'
    WHEN p_days > p_edges[cardinality(p_edges)] THEN '>' || p_edges[cardinality(p_edges)]::text
    ELSE (coalesce(p_edges[width_bucket(p_days - 1, p_edges)], 0) + 1)::text || '-' || p_edges[width_bucket(p_days - 1, p_edges) + 1]::text
  END
$$;
REVOKE ALL ON FUNCTION finance.aging_bucket(integer, integer[]) FROM PUBLIC, anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION finance.aging_bucket(integer, integer[]) TO authenticated, service_role, omnizen_analyst;

-- v_ar_open named its bucket through aging_bucket_index: the same columns, the one rule
CREATE OR REPLACE VIEW semantic.v_ar_open WITH (security_invoker = true) AS
SELECT public.auth_org_id() AS org_id, o.document_kind, o.document_id, o.customer_id, o.customer_name, o.number,
  o.document_date, o.due_date, o.currency, o.total, o.open_amount, s.base_currency, o.open_base AS open_amount_base,
  greatest(current_date - o.due_date, 0) AS days_past_due,
  finance.aging_bucket(current_date - o.due_date) AS bucket
FROM finance.ar_open_items(current_date) o
JOIN finance.settings s ON s.org_id = public.auth_org_id();
DROP FUNCTION finance.aging_bucket_index(integer, integer[]);

-- ---------------------------------------------------------------- covering indexes of the as-of pass
-- the issued invoices of a date range with what the aging needs (no heap visit for an all-visible page)
CREATE INDEX invoices_aging_idx ON finance.invoices (org_id, invoice_date) INCLUDE (id, customer_id, due_date, base_total, voided_on)
  WHERE kind = 'invoice' AND status <> 'draft';
-- the settlements of a date range, with the base they took off the invoice and off the payment
CREATE INDEX receivable_allocations_date_idx ON finance.receivable_allocations (org_id, allocation_date) INCLUDE (invoice_id, payment_id, invoice_base, source_base);
CREATE INDEX customer_payments_aging_idx ON finance.customer_payments (org_id, payment_date) INCLUDE (id, customer_id, amount, rate);
CREATE INDEX bills_aging_idx ON finance.bills (org_id, bill_date) INCLUDE (id, kind, vendor_id, claimant_id, due_date, base_total)
  WHERE status = 'posted';
CREATE INDEX bill_allocations_date_idx ON finance.bill_allocations (org_id, allocation_date) INCLUDE (bill_id, payment_id, bill_base_amount, payment_base_amount);
CREATE INDEX bill_payments_aging_idx ON finance.bill_payments (org_id, payment_date) INCLUDE (id, vendor_id, claimant_id, base_amount);

-- ---------------------------------------------------------------- AR aging
-- Per customer and bucket, the open base amount as of `p_as_of` in the caller's organization: issued invoices not
-- voided by then, less the base of their settlements dated by then; and payments' unallocated remainders
-- (customer credit, negative, aged from the payment date). SECURITY DEFINER with the organization fixed by
-- auth_org_id() (NULL: no rows), as finance.ar_open_items: the tenant policies are not evaluated per row. The
-- customers' names are joined after grouping (one per customer, not one per invoice).
CREATE FUNCTION finance.ar_aging(p_as_of date, p_edges integer[] DEFAULT '{30,60,90}')
RETURNS TABLE (customer_id uuid, customer_name text, bucket text, amount numeric)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
  WITH settled AS (
    SELECT a.invoice_id, sum(a.invoice_base) AS base FROM finance.receivable_allocations a
    WHERE a.org_id = (SELECT public.auth_org_id()) AND a.allocation_date <= p_as_of GROUP BY a.invoice_id),
  used AS (
    SELECT a.payment_id, sum(a.source_base) AS base FROM finance.receivable_allocations a
    WHERE a.org_id = (SELECT public.auth_org_id()) AND a.allocation_date <= p_as_of AND a.payment_id IS NOT NULL GROUP BY a.payment_id),
  items AS (
    SELECT i.customer_id, i.due_date, i.base_total - coalesce(s.base, 0) AS base
    FROM finance.invoices i LEFT JOIN settled s ON s.invoice_id = i.id
    WHERE i.org_id = (SELECT public.auth_org_id()) AND i.kind = 'invoice' AND i.status <> 'draft' AND i.invoice_date <= p_as_of
      AND (i.voided_on IS NULL OR i.voided_on > p_as_of)
    UNION ALL
    SELECT p.customer_id, p.payment_date, coalesce(u.base, 0) - round(p.amount * p.rate, (
      SELECT c.minor_units FROM finance.settings st JOIN finance.currencies c ON c.code = st.base_currency WHERE st.org_id = (SELECT public.auth_org_id())))
    FROM finance.customer_payments p LEFT JOIN used u ON u.payment_id = p.id
    WHERE p.org_id = (SELECT public.auth_org_id()) AND p.payment_date <= p_as_of)
  SELECT g.customer_id, c.name, g.bucket, g.amount
  FROM (SELECT it.customer_id, finance.aging_bucket(p_as_of - it.due_date, p_edges) AS bucket, sum(it.base) AS amount
        FROM items it WHERE it.base <> 0 GROUP BY 1, 2) g
  JOIN finance.customers c ON c.org_id = (SELECT public.auth_org_id()) AND c.id = g.customer_id
$$;
REVOKE ALL ON FUNCTION finance.ar_aging(date, integer[]) FROM PUBLIC, anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION finance.ar_aging(date, integer[]) TO authenticated, service_role, omnizen_analyst;

-- ---------------------------------------------------------------- AP aging
-- The same for payables: posted bills and expense claims less the base of their allocations dated by then; and
-- payments' unapplied parts (negative). Party: the vendor (bills) or the claimant's user id (expense claims).
-- Unapplied payments count as current (they have no due date).
CREATE FUNCTION finance.ap_aging(p_as_of date, p_edges integer[] DEFAULT '{30,60,90}')
RETURNS TABLE (party_type text, party_id text, party_name text, bucket text, amount numeric)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
  WITH settled AS (
    SELECT a.bill_id, sum(a.bill_base_amount) AS base FROM finance.bill_allocations a
    WHERE a.org_id = (SELECT public.auth_org_id()) AND a.allocation_date <= p_as_of GROUP BY a.bill_id),
  used AS (
    SELECT a.payment_id, sum(a.payment_base_amount) AS base FROM finance.bill_allocations a
    WHERE a.org_id = (SELECT public.auth_org_id()) AND a.allocation_date <= p_as_of GROUP BY a.payment_id),
  items AS (
    SELECT CASE WHEN b.kind = 'bill' THEN 'vendor' ELSE 'employee' END AS party_type, coalesce(b.vendor_id::text, b.claimant_id) AS party_id,
      finance.aging_bucket(p_as_of - b.due_date, p_edges) AS bucket, b.base_total - coalesce(s.base, 0) AS base
    FROM finance.bills b LEFT JOIN settled s ON s.bill_id = b.id
    WHERE b.org_id = (SELECT public.auth_org_id()) AND b.status = 'posted' AND b.bill_date <= p_as_of
    UNION ALL
    SELECT CASE WHEN p.vendor_id IS NOT NULL THEN 'vendor' ELSE 'employee' END, coalesce(p.vendor_id::text, p.claimant_id), 'current',
      -(p.base_amount - coalesce(u.base, 0))
    FROM finance.bill_payments p LEFT JOIN used u ON u.payment_id = p.id
    WHERE p.org_id = (SELECT public.auth_org_id()) AND p.payment_date <= p_as_of)
  SELECT g.party_type, g.party_id, v.name, g.bucket, g.amount
  FROM (SELECT it.party_type, it.party_id, it.bucket, sum(it.base) AS amount FROM items it WHERE it.base <> 0 GROUP BY 1, 2, 3) g
  LEFT JOIN finance.vendors v ON g.party_type = 'vendor' AND v.org_id = (SELECT public.auth_org_id()) AND v.id::text = g.party_id
$$;
REVOKE ALL ON FUNCTION finance.ap_aging(date, integer[]) FROM PUBLIC, anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION finance.ap_aging(date, integer[]) TO authenticated, service_role, omnizen_analyst;
