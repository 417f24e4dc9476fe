-- A member reads their own expense claims and reimbursements only (20270206000100), but the FX revaluation rows of
-- open items (finance.fx_revaluation_items, 20270208010100) were read by organization only: over Supabase's REST path
-- a member read another employee's claim or reimbursement revalued (document_id, rate, base_delta: enough to work its
-- amount out). A RESTRICTIVE read policy, for `authenticated` only as the others: a member reads the receivables' rows
-- (members read invoices and customer payments) and, of the payables', those of the documents they may read: a
-- vendor's bill or payment, their own claim or reimbursement. The payables' document is a bill (or claim) or a bill
-- payment; the helpers of 20270206000100 let those tables' own policies decide (not SECURITY DEFINER, no subquery in
-- the policy). Every other role, analysts (omnizen_analyst) and service_role are unchanged.
--
-- The other reads of the table already follow the documents: semantic.v_ap_open (security_invoker) joins its rows
-- to the bills the caller reads; finance.ap_aging (SECURITY DEFINER) adds them to the bills and payments it keeps
-- for a member (their own claims, vendors'); finance.ar_open_items, ar_aging_index and the receivables' open
-- amounts read receivables' rows only.
CREATE POLICY fx_revaluation_items_member_own_claims ON finance.fx_revaluation_items AS RESTRICTIVE FOR SELECT TO authenticated
  USING (subledger = 'receivables' OR NOT public.auth_has_role('member')
    OR finance.bill_readable(org_id, document_id) OR finance.bill_payment_readable(org_id, document_id));
