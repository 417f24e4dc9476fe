-- Generated from prisma/migrations/20270210900100_open_views_utc_today/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- semantic.v_ar_open and semantic.v_ap_open are "as of today", and their today was current_date: the day in the
-- session's TimeZone (a Supabase project's setting, a role's or a database's), while the API's today is the UTC day
-- (its clock's, as finance.ar_aging / ap_aging are asked for it): under Pacific/Kiritimati a bill dated tomorrow (UTC) was
-- open from 10:00 UTC on and every document a day more past due (review r4). Today is now the UTC day,
-- (now() AT TIME ZONE 'UTC')::date, whatever the session's TimeZone. Same columns, security_invoker, owner and grants
-- (CREATE OR REPLACE keeps the grants and the column comments); the views' comments are restated to say which today.

CREATE OR REPLACE VIEW semantic.v_ar_open WITH (security_invoker = true) AS
SELECT public.auth_org_id() AS org_id, o.document_kind, o.document_id, o.customer_id, o.customer_name, o.number,
  o.document_date, o.due_date, o.currency, o.total, o.open_amount, s.base_currency, o.open_base AS open_amount_base,
  greatest((now() AT TIME ZONE 'UTC')::date - o.due_date, 0) AS days_past_due,
  finance.aging_bucket((now() AT TIME ZONE 'UTC')::date - o.due_date) AS bucket
FROM finance.ar_open_items((now() AT TIME ZONE 'UTC')::date) o
JOIN finance.settings s ON s.org_id = public.auth_org_id();

COMMENT ON VIEW semantic.v_ar_open IS 'Open receivables today (the UTC day): one row per issued invoice with an open amount, and one per payment with an unallocated remainder (customer credit, negative)';

CREATE OR REPLACE VIEW semantic.v_ap_open WITH (security_invoker = true) AS
WITH settled AS (
  SELECT a.org_id, a.bill_id, sum(a.amount) AS amount, sum(a.bill_base_amount) AS base_amount
  FROM finance.bill_allocations a WHERE a.org_id = public.auth_org_id() AND a.allocation_date <= (now() AT TIME ZONE 'UTC')::date
  GROUP BY a.org_id, a.bill_id
),
revalued AS (
  SELECT x.document_id, sum(x.base_delta) AS base_amount
  FROM finance.fx_revaluation_items x
  WHERE x.org_id = public.auth_org_id() AND x.subledger = 'payables' AND x.revaluation_date <= (now() AT TIME ZONE 'UTC')::date
  GROUP BY x.document_id
)
SELECT b.org_id, b.id AS bill_id, b.kind AS document_kind,
  CASE WHEN b.kind = 'bill' THEN 'vendor' ELSE 'employee' END AS party_type,
  coalesce(b.vendor_id::text, b.claimant_id) AS party_id, v.name AS party_name,
  b.bill_number AS document_number, b.bill_date, b.due_date, b.currency, b.total,
  b.total - coalesce(s.amount, 0) AS open_amount,
  b.base_currency, b.base_total,
  b.base_total - coalesce(s.base_amount, 0) + coalesce(r.base_amount, 0) AS open_base_amount,
  greatest((now() AT TIME ZONE 'UTC')::date - b.due_date, 0) AS days_past_due,
  finance.aging_bucket((now() AT TIME ZONE 'UTC')::date - b.due_date) AS bucket
FROM finance.bills b
LEFT JOIN finance.vendors v ON v.org_id = b.org_id AND v.id = b.vendor_id
LEFT JOIN settled s ON s.org_id = b.org_id AND s.bill_id = b.id
LEFT JOIN revalued r ON r.document_id = b.id
WHERE b.org_id = public.auth_org_id() AND b.bill_date <= (now() AT TIME ZONE 'UTC')::date
  AND (b.status = 'posted' OR (b.status = 'voided' AND b.voided_on > (now() AT TIME ZONE 'UTC')::date))
  AND b.total - coalesce(s.amount, 0) > 0;

COMMENT ON VIEW semantic.v_ap_open IS 'Open accounts-payable documents (posted vendor bills and approved expense claims with an open amount), one row each, as of today (the UTC day): dated by today, less what allocations dated by today settled, open until the date of their void (members: vendors'' bills and their own expense claims)';

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270210900100_open_views_utc_today', '85e7fcf925ae604e3c9aa818d4a61b72d5d80b530ff12e6c849946414d259039', 0)
  ON CONFLICT (name) DO NOTHING;
