-- semantic.v_ap_open says "as of today" (its comment, the agents' list_open_bills tool) but read the documents as they
-- stand, whatever their dates (review r3): a bill dated after today was shown open, a payment allocated after today
-- already took its amount off the bill (sum of every allocation), and a bill voided by a reversal dated after today
-- was gone at once, while its revaluations were counted only up to today and finance.ap_aging (20270209080100)
-- counts each of these by its date. It now reads what finance.ap_aging(current_date) reads of a bill or claim: dated
-- by today, its allocations dated by today, open until the day it is voided (its revaluations dated by today, as
-- before). semantic.v_ar_open needs nothing: it reads finance.ar_open_items(current_date), which dates all of these.
-- Same columns, security_invoker, grants and comments (CREATE OR REPLACE keeps the grants and the column comments;
-- the view's comment is restated to say what "today" means).

CREATE OR REPLACE VIEW semantic.v_ap_open WITH (security_invoker = true) AS
WITH settled AS (
  SELECT a.org_id, a.bill_id, sum(a.amount) AS amount, sum(a.bill_base_amount) AS base_amount
  FROM finance.bill_allocations a WHERE a.org_id = public.auth_org_id() AND a.allocation_date <= current_date
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
WHERE b.org_id = public.auth_org_id() AND b.bill_date <= current_date
  AND (b.status = 'posted' OR (b.status = 'voided' AND b.voided_on > current_date))
  AND b.total - coalesce(s.amount, 0) > 0;

COMMENT ON VIEW semantic.v_ap_open IS 'Open accounts-payable documents (posted vendor bills and approved expense claims with an open amount), one row each, as of today: dated by today, less what allocations dated by today settled, open until the date of their void (members: vendors'' bills and their own expense claims)';
