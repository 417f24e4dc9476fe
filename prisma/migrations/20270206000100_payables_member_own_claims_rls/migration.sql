-- A member sees their own expense claims only (PayablesService.mayRead, the expense-claims and payments routes,
-- finance.ap_aging since 20270205000950), but the tables' read policies checked the organization only: over
-- Supabase's REST path, in semantic.v_ap_open (the semantic query route, the agents' query_semantic and
-- list_open_bills tools) a member read every other employee's claim: amounts, memo, lines (descriptions, receipts),
-- decisions (approval notes, rejection reasons, comments), the reimbursements with their allocations and refunds.
--
-- RESTRICTIVE read policies, ANDed with the permissive ones, now say the same below the API, for `authenticated`
-- only: a member reads vendors' bills and payments and, of the expense claims and reimbursements, their own (the
-- predicate of the bills' update policy and of ap_aging: claimant_id = auth_user_id()). Every other role
-- (owner, admin, accountant, viewer, service keys) is unchanged, so are analysts (omnizen_analyst: organization-wide,
-- not `authenticated`) and service_role. The journal is not touched: members read the books by design.
--
-- The tables without a claimant (lines, decisions, allocations, refunds) follow their bill or payment through a
-- helper that lets the bills' (payments') own policies decide, like ai.run_readable (20270205001000): not SECURITY
-- DEFINER, so RLS applies inside it; no subquery in a policy (Citus, test/platform/citus.test.ts). A role that is
-- not a member never calls it (NOT auth_has_role('member') comes first and is true).
CREATE FUNCTION finance.bill_readable(p_org uuid, p_bill uuid) RETURNS boolean
LANGUAGE sql STABLE AS $$
  SELECT EXISTS (SELECT 1 FROM finance.bills b WHERE b.org_id = p_org AND b.id = p_bill)
$$;
CREATE FUNCTION finance.bill_payment_readable(p_org uuid, p_payment uuid) RETURNS boolean
LANGUAGE sql STABLE AS $$
  SELECT EXISTS (SELECT 1 FROM finance.bill_payments p WHERE p.org_id = p_org AND p.id = p_payment)
$$;
REVOKE ALL ON FUNCTION finance.bill_readable(uuid, uuid), finance.bill_payment_readable(uuid, uuid) FROM PUBLIC, anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION finance.bill_readable(uuid, uuid), finance.bill_payment_readable(uuid, uuid) TO authenticated;

CREATE POLICY bills_member_own_claims ON finance.bills AS RESTRICTIVE FOR SELECT TO authenticated
  USING (kind = 'bill' OR NOT public.auth_has_role('member') OR claimant_id = public.auth_user_id());
CREATE POLICY bill_lines_member_own_claims ON finance.bill_lines AS RESTRICTIVE FOR SELECT TO authenticated
  USING (NOT public.auth_has_role('member') OR finance.bill_readable(org_id, bill_id));
CREATE POLICY bill_decisions_member_own_claims ON finance.bill_decisions AS RESTRICTIVE FOR SELECT TO authenticated
  USING (NOT public.auth_has_role('member') OR finance.bill_readable(org_id, bill_id));
CREATE POLICY bill_payments_member_own_claims ON finance.bill_payments AS RESTRICTIVE FOR SELECT TO authenticated
  USING (vendor_id IS NOT NULL OR NOT public.auth_has_role('member') OR claimant_id = public.auth_user_id());
-- an allocation settles a bill from a payment of the same party: it follows the bill
CREATE POLICY bill_allocations_member_own_claims ON finance.bill_allocations AS RESTRICTIVE FOR SELECT TO authenticated
  USING (NOT public.auth_has_role('member') OR finance.bill_readable(org_id, bill_id));
CREATE POLICY bill_payment_refunds_member_own_claims ON finance.bill_payment_refunds AS RESTRICTIVE FOR SELECT TO authenticated
  USING (NOT public.auth_has_role('member') OR finance.bill_payment_readable(org_id, payment_id));

COMMENT ON VIEW semantic.v_ap_open IS 'Open accounts-payable documents (posted vendor bills and approved expense claims with an open amount), one row each, as of today (members: vendors'' bills and their own expense claims)';
