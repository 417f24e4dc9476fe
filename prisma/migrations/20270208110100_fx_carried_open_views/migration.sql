-- The agents' open-item views show what each open item carries in the base currency (FX review follow-up, h11).
--
-- semantic.v_ar_open (through finance.ar_open_items) valued every open invoice and customer credit at the document's
-- rate, and semantic.v_ap_open each open bill at its base total less what its allocations took off: an item an FX
-- revaluation revalued (finance.fx_revaluation_items, 20270208010100) carries more or less than that, and the views
-- no longer added up to the AR and AP control accounts (nor to the agings, which add the revaluations). Both now
-- show the carried base, as the agings do: the document's base less what its settlements took off it (the base
-- their postings took off the control account) plus its revaluations dated by the day. Same columns, grants and
-- policies (security_invoker views; ar_open_items keeps its SECURITY DEFINER and its grants) and scales (AR in the
-- base currency's minor units, as before); the column comments say what the base now is.

CREATE OR REPLACE FUNCTION finance.ar_open_items(p_as_of date)
RETURNS TABLE (document_kind text, document_id uuid, customer_id uuid, customer_name text, number text, document_date date,
  due_date date, currency text, total numeric, open_amount numeric, open_base numeric)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = '' AS $$
#variable_conflict use_column
DECLARE
  org uuid := public.auth_org_id();
  mu int;
BEGIN
  IF org IS NULL THEN
    RETURN;
  END IF;
  SELECT c.minor_units INTO mu FROM finance.settings st JOIN finance.currencies c ON c.code = st.base_currency WHERE st.org_id = org;
  RETURN QUERY
  WITH alloc_inv AS (
    SELECT a.invoice_id, sum(a.amount) AS amount, sum(a.invoice_base) AS base FROM finance.receivable_allocations a
    WHERE a.org_id = org AND a.allocation_date <= p_as_of GROUP BY a.invoice_id),
  used AS (
    SELECT u.payment_id, sum(u.amount) AS amount, sum(u.base) AS base FROM (
      SELECT a.payment_id, a.amount, a.source_base AS base FROM finance.receivable_allocations a
      WHERE a.org_id = org AND a.payment_id IS NOT NULL AND a.allocation_date <= p_as_of
      UNION ALL
      SELECT r.payment_id, r.amount, r.source_base FROM finance.customer_refunds r WHERE r.org_id = org AND r.refund_date <= p_as_of) u
    GROUP BY u.payment_id),
  revalued AS (
    SELECT x.document_id, sum(x.base_delta) AS base FROM finance.fx_revaluation_items x
    WHERE x.org_id = org AND x.subledger = 'receivables' AND x.revaluation_date <= p_as_of GROUP BY x.document_id),
  inv AS (
    SELECT i.id, i.customer_id, i.number, i.invoice_date, i.due_date, i.currency, i.total, i.total - coalesce(x.amount, 0) AS open_amount,
      round(coalesce(i.base_total, 0) - coalesce(x.base, 0) + coalesce(v.base, 0), mu) AS open_base
    FROM finance.invoices i LEFT JOIN alloc_inv x ON x.invoice_id = i.id LEFT JOIN revalued v ON v.document_id = i.id
    WHERE i.org_id = org AND i.kind = 'invoice' AND i.status <> 'draft' AND i.invoice_date <= p_as_of
      AND (i.voided_on IS NULL OR i.voided_on > p_as_of)),
  pay AS (
    SELECT p.id, p.customer_id, p.reference, p.payment_date, p.currency, p.amount, p.amount - coalesce(x.amount, 0) AS open_amount,
      round(-round(p.amount * p.rate, mu) + coalesce(x.base, 0) + coalesce(v.base, 0), mu) AS open_base
    FROM finance.customer_payments p LEFT JOIN used x ON x.payment_id = p.id LEFT JOIN revalued v ON v.document_id = p.id
    WHERE p.org_id = org AND p.payment_date <= p_as_of),
  items AS (
    SELECT 'invoice'::text AS kind, inv.id, inv.customer_id, inv.number, inv.invoice_date AS d, inv.due_date AS due, inv.currency AS cur,
      inv.total AS tot, inv.open_amount AS open, inv.open_base AS base
    FROM inv WHERE inv.open_amount <> 0
    UNION ALL
    SELECT 'payment', pay.id, pay.customer_id, pay.reference, pay.payment_date, pay.payment_date, pay.currency, -pay.amount, -pay.open_amount,
      pay.open_base
    FROM pay WHERE pay.open_amount <> 0)
  SELECT it.kind, it.id, it.customer_id, c.name, it.number, it.d, it.due, it.cur, it.tot, it.open, it.base
  FROM items it JOIN finance.customers c ON c.org_id = org AND c.id = it.customer_id;
END
$$;

COMMENT ON COLUMN semantic.v_ar_open.open_amount_base IS
  'Open amount in the base currency as the AR account carries it: at the document''s rate, changed by the FX revaluations of the item since (the aging''s figure)';

CREATE OR REPLACE VIEW semantic.v_ap_open WITH (security_invoker = true) AS
WITH settled AS (
  SELECT a.org_id, a.bill_id, sum(a.amount) AS amount, sum(a.bill_base_amount) AS base_amount
  FROM finance.bill_allocations a WHERE a.org_id = public.auth_org_id()
  GROUP BY a.org_id, a.bill_id
),
revalued AS (
  SELECT x.document_id, sum(x.base_delta) AS base_amount
  FROM finance.fx_revaluation_items x WHERE x.org_id = public.auth_org_id() AND x.subledger = 'payables' AND x.revaluation_date <= current_date
  GROUP BY x.document_id
)
SELECT b.org_id, b.id AS bill_id, b.kind AS document_kind,
  CASE WHEN b.kind = 'bill' THEN 'vendor' ELSE 'employee' END AS party_type,
  coalesce(b.vendor_id::text, b.claimant_id) AS party_id, v.name AS party_name,
  b.bill_number AS document_number, b.bill_date, b.due_date, b.currency, b.total,
  b.total - coalesce(s.amount, 0) AS open_amount,
  b.base_currency, b.base_total,
  b.base_total - coalesce(s.base_amount, 0) + coalesce(r.base_amount, 0) AS open_base_amount,
  greatest(current_date - b.due_date, 0) AS days_past_due,
  finance.aging_bucket(current_date - b.due_date) AS bucket
FROM finance.bills b
LEFT JOIN finance.vendors v ON v.org_id = b.org_id AND v.id = b.vendor_id
LEFT JOIN settled s ON s.org_id = b.org_id AND s.bill_id = b.id
LEFT JOIN revalued r ON r.document_id = b.id
WHERE b.org_id = public.auth_org_id() AND b.status = 'posted' AND b.total - coalesce(s.amount, 0) > 0;

COMMENT ON COLUMN semantic.v_ap_open.open_base_amount IS
  'Open amount in the base currency as the AP account carries it (its share of the accounts payable balance): the base total less what its payments took off, changed by the FX revaluations of the document since';
