-- Generated from prisma/migrations/20270103000200_credit_refunds/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- Refunds of credit (issue 15): a customer payment's unallocated remainder (customer credit) paid back to the
-- customer, and a bill payment's unallocated part (credit with the vendor) paid back by the vendor. Append-only
-- like payments and allocations. Each refund posts in one entry (AR debit / bank credit; bank debit / AP credit)
-- at the rate of its date; the credit side carries the base the refund takes off the payment's credit (at the
-- payment's rate), the difference is realized FX. The aging and v_ar_open count a refund dated by then.

-- ---------------------------------------------------------------- customer credit refunds
CREATE TABLE finance.customer_refunds (
  org_id uuid NOT NULL REFERENCES core.organizations(id) ON DELETE CASCADE,
  id uuid NOT NULL DEFAULT gen_random_uuid(),
  payment_id uuid NOT NULL,
  customer_id uuid NOT NULL,
  refund_date date NOT NULL,
  -- in the payment's currency
  amount numeric(20, 4) NOT NULL CHECK (amount > 0),
  currency text NOT NULL REFERENCES finance.currencies(code),
  -- the rate on the refund date (1 for the base currency)
  rate numeric(24, 10) NOT NULL CHECK (rate > 0),
  -- the base the refund took off the customer credit (at the payment's rate): what it debited to AR
  source_base numeric(20, 4) NOT NULL,
  account_id uuid NOT NULL,
  method text NOT NULL CHECK (method IN ('bank_transfer', 'card', 'cash', 'check', 'other')),
  reference text CHECK (length(reference) <= 200),
  entry_id uuid NOT NULL,
  created_by text,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, id),
  FOREIGN KEY (org_id, payment_id) REFERENCES finance.customer_payments(org_id, id),
  FOREIGN KEY (org_id, customer_id) REFERENCES finance.customers(org_id, id),
  FOREIGN KEY (org_id, account_id) REFERENCES finance.accounts(org_id, id),
  FOREIGN KEY (org_id, entry_id) REFERENCES finance.journal_entries(org_id, id)
);
CREATE INDEX customer_refunds_payment_idx ON finance.customer_refunds (org_id, payment_id) INCLUDE (amount, source_base);
CREATE INDEX customer_refunds_date_idx ON finance.customer_refunds (org_id, refund_date) INCLUDE (payment_id, amount, source_base);
CREATE TRIGGER customer_refunds_immutable BEFORE UPDATE OR DELETE ON finance.customer_refunds FOR EACH ROW EXECUTE FUNCTION core.reject_change();
CREATE TRIGGER customer_refunds_no_truncate BEFORE TRUNCATE ON finance.customer_refunds FOR EACH STATEMENT EXECUTE FUNCTION finance.reject_truncate();

-- ---------------------------------------------------------------- vendor credit refunds
CREATE TABLE finance.bill_payment_refunds (
  org_id uuid NOT NULL REFERENCES core.organizations(id) ON DELETE CASCADE,
  id uuid NOT NULL DEFAULT gen_random_uuid(),
  payment_id uuid NOT NULL,
  refund_date date NOT NULL,
  amount numeric(20, 4) NOT NULL CHECK (amount > 0),
  currency text NOT NULL REFERENCES finance.currencies(code),
  rate numeric(24, 10) NOT NULL CHECK (rate > 0),
  -- the base the refund took off the credit with the vendor (at the payment's rate): what it credited to AP
  payment_base_amount numeric(20, 4) NOT NULL,
  bank_account_id uuid NOT NULL,
  reference text CHECK (length(reference) <= 200),
  journal_entry_id uuid NOT NULL,
  created_by text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, id),
  FOREIGN KEY (org_id, payment_id) REFERENCES finance.bill_payments(org_id, id),
  FOREIGN KEY (org_id, bank_account_id) REFERENCES finance.accounts(org_id, id),
  FOREIGN KEY (org_id, journal_entry_id) REFERENCES finance.journal_entries(org_id, id)
);
CREATE INDEX bill_payment_refunds_payment_idx ON finance.bill_payment_refunds (org_id, payment_id) INCLUDE (amount, payment_base_amount);
CREATE INDEX bill_payment_refunds_date_idx ON finance.bill_payment_refunds (org_id, refund_date) INCLUDE (payment_id, amount, payment_base_amount);
CREATE TRIGGER bill_payment_refunds_append_only BEFORE UPDATE OR DELETE ON finance.bill_payment_refunds FOR EACH ROW EXECUTE FUNCTION core.reject_change();
CREATE TRIGGER bill_payment_refunds_no_truncate BEFORE TRUNCATE ON finance.bill_payment_refunds FOR EACH STATEMENT EXECUTE FUNCTION finance.reject_truncate();

-- ---------------------------------------------------------------- privileges and policies
REVOKE ALL ON finance.customer_refunds, finance.bill_payment_refunds FROM PUBLIC, anon, authenticated, service_role;
GRANT SELECT, INSERT ON finance.customer_refunds TO authenticated, service_role;
GRANT SELECT, INSERT ON finance.bill_payment_refunds TO authenticated;
GRANT SELECT ON finance.bill_payment_refunds TO service_role;
GRANT SELECT ON finance.customer_refunds, finance.bill_payment_refunds TO omnizen_analyst;
ALTER TABLE finance.customer_refunds ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE finance.bill_payment_refunds ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY customer_refunds_read ON finance.customer_refunds FOR SELECT TO authenticated, omnizen_analyst USING (org_id = public.auth_org_id());
CREATE POLICY customer_refunds_insert ON finance.customer_refunds FOR INSERT TO authenticated
  WITH CHECK (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'accountant', 'service'));
CREATE POLICY customer_refunds_service ON finance.customer_refunds FOR ALL TO service_role USING (true) WITH CHECK (true);
CREATE POLICY bill_payment_refunds_read ON finance.bill_payment_refunds FOR SELECT TO authenticated, omnizen_analyst USING (org_id = public.auth_org_id());
CREATE POLICY bill_payment_refunds_insert ON finance.bill_payment_refunds FOR INSERT TO authenticated
  WITH CHECK (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'accountant', 'service'));
CREATE POLICY bill_payment_refunds_service ON finance.bill_payment_refunds FOR SELECT TO service_role USING (true);

-- ---------------------------------------------------------------- the open items and the aging count refunds
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
    SELECT a.invoice_id, sum(a.amount) AS amount FROM finance.receivable_allocations a
    WHERE a.org_id = org AND a.allocation_date <= p_as_of GROUP BY a.invoice_id),
  used AS (
    SELECT u.payment_id, sum(u.amount) AS amount FROM (
      SELECT a.payment_id, a.amount FROM finance.receivable_allocations a
      WHERE a.org_id = org AND a.payment_id IS NOT NULL AND a.allocation_date <= p_as_of
      UNION ALL
      SELECT r.payment_id, r.amount FROM finance.customer_refunds r WHERE r.org_id = org AND r.refund_date <= p_as_of) u
    GROUP BY u.payment_id),
  inv AS (
    SELECT i.id, i.customer_id, i.number, i.invoice_date, i.due_date, i.currency, i.rate, i.total, i.total - coalesce(x.amount, 0) AS open_amount
    FROM finance.invoices i LEFT JOIN alloc_inv x ON x.invoice_id = i.id
    WHERE i.org_id = org AND i.kind = 'invoice' AND i.status <> 'draft' AND i.invoice_date <= p_as_of
      AND (i.voided_on IS NULL OR i.voided_on > p_as_of)),
  pay AS (
    SELECT p.id, p.customer_id, p.reference, p.payment_date, p.currency, p.rate, p.amount, p.amount - coalesce(x.amount, 0) AS open_amount
    FROM finance.customer_payments p LEFT JOIN used x ON x.payment_id = p.id
    WHERE p.org_id = org AND p.payment_date <= p_as_of),
  items AS (
    SELECT 'invoice'::text AS kind, inv.id, inv.customer_id, inv.number, inv.invoice_date AS d, inv.due_date AS due, inv.currency AS cur,
      inv.total AS tot, inv.open_amount AS open, round(inv.open_amount * inv.rate, mu) AS base
    FROM inv WHERE inv.open_amount <> 0
    UNION ALL
    SELECT 'payment', pay.id, pay.customer_id, pay.reference, pay.payment_date, pay.payment_date, pay.currency, -pay.amount, -pay.open_amount,
      -round(pay.open_amount * pay.rate, mu)
    FROM pay WHERE pay.open_amount <> 0)
  SELECT it.kind, it.id, it.customer_id, c.name, it.number, it.d, it.due, it.cur, it.tot, it.open, it.base
  FROM items it JOIN finance.customers c ON c.org_id = org AND c.id = it.customer_id;
END
$$;

CREATE OR REPLACE FUNCTION finance.ar_aging(p_as_of date, p_edges integer[] DEFAULT '{30,60,90}')
RETURNS TABLE (customer_id uuid, customer_name text, bucket text, amount numeric)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
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
    UNION ALL
    SELECT CASE WHEN p.vendor_id IS NOT NULL THEN 'vendor' ELSE 'employee' END, coalesce(p.vendor_id::text, p.claimant_id), 'current',
      -(p.base_amount - coalesce(u.base, 0))
    FROM finance.bill_payments p LEFT JOIN used u ON u.payment_id = p.id
    WHERE p.org_id = (SELECT public.auth_org_id()) AND p.payment_date <= p_as_of)
  SELECT g.party_type, g.party_id, v.name, g.bucket, g.amount
  FROM (SELECT it.party_type, it.party_id, it.bucket, sum(it.base) AS amount FROM items it WHERE it.base <> 0 GROUP BY 1, 2, 3) g
  LEFT JOIN finance.vendors v ON g.party_type = 'vendor' AND v.org_id = (SELECT public.auth_org_id()) AND v.id::text = g.party_id
$$;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270103000200_credit_refunds', '140bcdbd1893996f23332e97356dac4c1c08dd74c3120214f8734f374ad32144', 0)
  ON CONFLICT (name) DO NOTHING;
