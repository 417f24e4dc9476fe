-- A member sees their own expense claims only (PayablesService.mayRead, the expense-claims routes), so their AP
-- aging leaves out other employees' party rows: the bills and the reimbursements of another claimant. Done here,
-- in the SECURITY DEFINER function every caller (the API, a direct call as authenticated) reads through, with the
-- predicate of the bills' update policy (claimant_id = auth_user_id() for a member). Vendors and every other role
-- are unchanged. Otherwise the definition of 20270103000200_credit_refunds; privileges stay as granted there.
CREATE OR REPLACE FUNCTION finance.ap_aging(p_as_of date, p_edges integer[] DEFAULT '{30,60,90}')
RETURNS TABLE (party_type text, party_id text, party_name text, bucket text, amount numeric)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
  WITH settled AS (
    SELECT a.bill_id, sum(a.bill_base_amount) AS base FROM finance.bill_allocations a
    WHERE a.org_id = (SELECT public.auth_org_id()) AND a.allocation_date <= p_as_of GROUP BY a.bill_id),
  used AS (
    SELECT u.payment_id, sum(u.base) AS base FROM (
      SELECT a.payment_id, a.payment_base_amount AS base FROM finance.bill_allocations a
      WHERE a.org_id = (SELECT public.auth_org_id()) AND a.allocation_date <= p_as_of
      UNION ALL
      SELECT r.payment_id, r.payment_base_amount FROM finance.bill_payment_refunds r
      WHERE r.org_id = (SELECT public.auth_org_id()) AND r.refund_date <= p_as_of) u
    GROUP BY u.payment_id),
  items AS (
    SELECT CASE WHEN b.kind = 'bill' THEN 'vendor' ELSE 'employee' END AS party_type, coalesce(b.vendor_id::text, b.claimant_id) AS party_id,
      finance.aging_bucket(p_as_of - b.due_date, p_edges) AS bucket, b.base_total - coalesce(s.base, 0) AS base
    FROM finance.bills b LEFT JOIN settled s ON s.bill_id = b.id
    WHERE b.org_id = (SELECT public.auth_org_id()) AND b.status = 'posted' AND b.bill_date <= p_as_of
      AND (b.kind = 'bill' OR NOT (SELECT public.auth_has_role('member')) OR b.claimant_id = (SELECT public.auth_user_id()))
    UNION ALL
    SELECT CASE WHEN p.vendor_id IS NOT NULL THEN 'vendor' ELSE 'employee' END, coalesce(p.vendor_id::text, p.claimant_id), 'current',
      -(p.base_amount - coalesce(u.base, 0))
    FROM finance.bill_payments p LEFT JOIN used u ON u.payment_id = p.id
    WHERE p.org_id = (SELECT public.auth_org_id()) AND p.payment_date <= p_as_of
      AND (p.vendor_id IS NOT NULL OR NOT (SELECT public.auth_has_role('member')) OR p.claimant_id = (SELECT public.auth_user_id())))
  SELECT g.party_type, g.party_id, v.name, g.bucket, g.amount
  FROM (SELECT it.party_type, it.party_id, it.bucket, sum(it.base) AS amount FROM items it WHERE it.base <> 0 GROUP BY 1, 2, 3) g
  LEFT JOIN finance.vendors v ON g.party_type = 'vendor' AND v.org_id = (SELECT public.auth_org_id()) AND v.id::text = g.party_id
$$;
