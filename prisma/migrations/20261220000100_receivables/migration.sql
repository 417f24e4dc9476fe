-- Receivables (issue 15, receivables half): customers, invoices and credit notes with their lines, gapless
-- document numbers, payments received and their allocations, the receivables settings, the open-items and
-- aging functions, and the semantic views v_ar_open, v_revenue_by_customer and v_cash_flow.
--
-- The books stay the one truth: every issued document and payment posts through finance.post_journal_entry
-- (the API's JournalService.post); these tables only record what is open and what settled it.
--  * Customers' contact fields (contact person, email, phone, tax id, address) are personal data: they live in
--    finance.customers only, never in journal lines (lines carry the customer's id), so an erasure can blank
--    them without touching posted amounts. Analysts see a customer's id and name only (column grant).
--  * An issued invoice is immutable (trigger, for every role): only its status and void columns may change
--    (status follows allocations; void posts the reversal). Draft invoices are edited and deleted freely.
--  * Payments and allocations are append-only: un-allocating is a new allocation row with the opposite sign
--    that names the row it reverses (each row is reversed at most once).

-- ---------------------------------------------------------------- settings
CREATE TABLE finance.receivables_settings (
  org_id uuid NOT NULL REFERENCES core.organizations(id) ON DELETE CASCADE,
  -- the AR control account every invoice debits and every payment credits
  ar_account_id uuid NOT NULL,
  -- where lines with a service period are credited at issue, until recognized
  deferred_revenue_account_id uuid,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id),
  FOREIGN KEY (org_id, ar_account_id) REFERENCES finance.accounts(org_id, id),
  FOREIGN KEY (org_id, deferred_revenue_account_id) REFERENCES finance.accounts(org_id, id)
);

-- ---------------------------------------------------------------- customers
CREATE TABLE finance.customers (
  org_id uuid NOT NULL REFERENCES core.organizations(id) ON DELETE CASCADE,
  id uuid NOT NULL DEFAULT gen_random_uuid(),
  name text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
  contact_person text CHECK (length(contact_person) <= 200),
  email text CHECK (length(email) <= 320),
  phone text CHECK (length(phone) <= 50),
  tax_id text CHECK (length(tax_id) <= 50),
  billing_address text CHECK (length(billing_address) <= 1000),
  default_currency text REFERENCES finance.currencies(code),
  payment_terms_days integer NOT NULL DEFAULT 30 CHECK (payment_terms_days BETWEEN 0 AND 3650),
  credit_limit numeric(20, 4) CHECK (credit_limit >= 0),
  archived_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, id)
);
CREATE INDEX customers_name_idx ON finance.customers (org_id, lower(name), id);
CREATE INDEX customers_email_idx ON finance.customers (org_id, lower(email));

-- ---------------------------------------------------------------- invoices and credit notes
CREATE TABLE finance.invoices (
  org_id uuid NOT NULL REFERENCES core.organizations(id) ON DELETE CASCADE,
  id uuid NOT NULL DEFAULT gen_random_uuid(),
  kind text NOT NULL DEFAULT 'invoice' CHECK (kind IN ('invoice', 'credit_note')),
  customer_id uuid NOT NULL,
  -- a credit note's invoice
  credited_invoice_id uuid,
  status text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'issued', 'partially_paid', 'paid', 'void')),
  series text NOT NULL CHECK (series ~ '^[A-Z][A-Z0-9]{0,9}$'),
  -- assigned at issue: <series>-<year>-<6 digits>, gapless per organization, series and year
  number text,
  invoice_date date NOT NULL,
  due_date date NOT NULL,
  currency text NOT NULL REFERENCES finance.currencies(code),
  -- the rate effective on the invoice date (1 for the base currency), fixed at issue
  rate numeric(24, 10) CHECK (rate > 0),
  subtotal numeric(20, 4) NOT NULL DEFAULT 0,
  tax_total numeric(20, 4) NOT NULL DEFAULT 0,
  total numeric(20, 4) NOT NULL DEFAULT 0 CHECK (total >= 0),
  base_subtotal numeric(20, 4),
  base_total numeric(20, 4),
  memo text NOT NULL DEFAULT '' CHECK (length(memo) <= 1000),
  entry_id uuid,
  issued_at timestamptz,
  voided_on date,
  void_entry_id uuid,
  created_by text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, id),
  FOREIGN KEY (org_id, customer_id) REFERENCES finance.customers(org_id, id),
  FOREIGN KEY (org_id, credited_invoice_id) REFERENCES finance.invoices(org_id, id),
  FOREIGN KEY (org_id, entry_id) REFERENCES finance.journal_entries(org_id, id),
  FOREIGN KEY (org_id, void_entry_id) REFERENCES finance.journal_entries(org_id, id),
  CHECK ((kind = 'credit_note') = (credited_invoice_id IS NOT NULL)),
  CHECK ((status = 'draft') = (number IS NULL)),
  CHECK ((status = 'draft') = (entry_id IS NULL)),
  CHECK ((status = 'void') = (void_entry_id IS NOT NULL))
);
CREATE UNIQUE INDEX invoices_number_key ON finance.invoices (org_id, number) WHERE number IS NOT NULL;
CREATE INDEX invoices_customer_idx ON finance.invoices (org_id, customer_id, invoice_date);
CREATE INDEX invoices_list_idx ON finance.invoices (org_id, invoice_date DESC, id DESC);
-- aging reads the issued invoices of a date range
CREATE INDEX invoices_open_idx ON finance.invoices (org_id, invoice_date) INCLUDE (customer_id, due_date, rate, total, currency, voided_on)
  WHERE kind = 'invoice' AND status <> 'draft';

CREATE TABLE finance.invoice_lines (
  org_id uuid NOT NULL,
  invoice_id uuid NOT NULL,
  line_no smallint NOT NULL CHECK (line_no BETWEEN 1 AND 200),
  description text NOT NULL CHECK (length(description) BETWEEN 1 AND 500),
  quantity numeric(20, 4) NOT NULL CHECK (quantity > 0),
  unit_price numeric(20, 4) NOT NULL CHECK (unit_price >= 0),
  discount_percent numeric(7, 4) NOT NULL DEFAULT 0 CHECK (discount_percent BETWEEN 0 AND 100),
  tax_code_id uuid,
  revenue_account_id uuid NOT NULL,
  service_start date,
  service_end date,
  net_amount numeric(20, 4) NOT NULL,
  tax_amount numeric(20, 4) NOT NULL,
  gross_amount numeric(20, 4) NOT NULL,
  -- a credit note line: the line of the credited invoice
  credited_line_no smallint,
  PRIMARY KEY (org_id, invoice_id, line_no),
  FOREIGN KEY (org_id, invoice_id) REFERENCES finance.invoices(org_id, id) ON DELETE CASCADE,
  FOREIGN KEY (org_id, tax_code_id) REFERENCES finance.tax_codes(org_id, id),
  FOREIGN KEY (org_id, revenue_account_id) REFERENCES finance.accounts(org_id, id),
  CHECK ((service_start IS NULL) = (service_end IS NULL) AND (service_start IS NULL OR service_start <= service_end))
);

-- gapless numbers: the issuing transaction increments the row (a row lock serializes concurrent issues; a
-- rollback gives the number back), so numbers are consecutive and never reused
CREATE TABLE finance.document_numbers (
  org_id uuid NOT NULL REFERENCES core.organizations(id) ON DELETE CASCADE,
  -- e.g. INV-2026
  series text NOT NULL CHECK (series ~ '^[A-Z][A-Z0-9]{0,9}-[0-9]{4}$'),
  last_number bigint NOT NULL CHECK (last_number > 0),
  PRIMARY KEY (org_id, series)
);

-- ---------------------------------------------------------------- payments and allocations
CREATE TABLE finance.customer_payments (
  org_id uuid NOT NULL REFERENCES core.organizations(id) ON DELETE CASCADE,
  id uuid NOT NULL DEFAULT gen_random_uuid(),
  customer_id uuid NOT NULL,
  payment_date date NOT NULL,
  amount numeric(20, 4) NOT NULL CHECK (amount > 0),
  currency text NOT NULL REFERENCES finance.currencies(code),
  rate numeric(24, 10) NOT NULL CHECK (rate > 0),
  deposit_account_id uuid NOT NULL,
  method text NOT NULL CHECK (method IN ('bank_transfer', 'card', 'cash', 'check', 'other')),
  reference text CHECK (length(reference) <= 200),
  entry_id uuid NOT NULL,
  created_by text,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, id),
  FOREIGN KEY (org_id, customer_id) REFERENCES finance.customers(org_id, id),
  FOREIGN KEY (org_id, deposit_account_id) REFERENCES finance.accounts(org_id, id),
  FOREIGN KEY (org_id, entry_id) REFERENCES finance.journal_entries(org_id, id)
);
CREATE INDEX customer_payments_customer_idx ON finance.customer_payments (org_id, customer_id, payment_date);
CREATE INDEX customer_payments_list_idx ON finance.customer_payments (org_id, payment_date DESC, id DESC);

-- what settled an invoice: a payment's amount, or a credit note's; negative with reverses_allocation_id when undone.
-- invoice_base / source_base: the base-currency value the allocation took off the invoice (at its rate) and
-- off the payment (at its rate); their difference is the realized FX gain or loss.
CREATE TABLE finance.receivable_allocations (
  org_id uuid NOT NULL REFERENCES core.organizations(id) ON DELETE CASCADE,
  id uuid NOT NULL DEFAULT gen_random_uuid(),
  seq bigint GENERATED ALWAYS AS IDENTITY,
  invoice_id uuid NOT NULL,
  payment_id uuid,
  credit_note_id uuid,
  allocation_date date NOT NULL,
  amount numeric(20, 4) NOT NULL CHECK (amount <> 0),
  invoice_base numeric(20, 4) NOT NULL,
  source_base numeric(20, 4) NOT NULL,
  reverses_allocation_id uuid,
  entry_id uuid,
  created_by text,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, id),
  FOREIGN KEY (org_id, invoice_id) REFERENCES finance.invoices(org_id, id),
  FOREIGN KEY (org_id, payment_id) REFERENCES finance.customer_payments(org_id, id),
  FOREIGN KEY (org_id, credit_note_id) REFERENCES finance.invoices(org_id, id),
  FOREIGN KEY (org_id, reverses_allocation_id) REFERENCES finance.receivable_allocations(org_id, id),
  FOREIGN KEY (org_id, entry_id) REFERENCES finance.journal_entries(org_id, id),
  CHECK ((payment_id IS NULL) <> (credit_note_id IS NULL)),
  CHECK ((amount < 0) = (reverses_allocation_id IS NOT NULL))
);
CREATE UNIQUE INDEX receivable_allocations_reverses_key ON finance.receivable_allocations (org_id, reverses_allocation_id) WHERE reverses_allocation_id IS NOT NULL;
CREATE INDEX receivable_allocations_invoice_idx ON finance.receivable_allocations (org_id, invoice_id, allocation_date) INCLUDE (amount);
CREATE INDEX receivable_allocations_payment_idx ON finance.receivable_allocations (org_id, payment_id, allocation_date) INCLUDE (amount) WHERE payment_id IS NOT NULL;

-- ---------------------------------------------------------------- immutability
CREATE FUNCTION finance.invoice_guard() RETURNS trigger LANGUAGE plpgsql SET search_path = '' AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    IF OLD.status <> 'draft' THEN
      RAISE EXCEPTION 'invoice % is issued: it cannot be deleted (void it instead)', OLD.number USING ERRCODE = '42501', HINT = 'receivables.invoice_immutable';
    END IF;
    RETURN OLD;
  END IF;
  -- once issued, only the status (following allocations) and the void columns change
  IF OLD.status <> 'draft' AND (
      (to_jsonb(NEW) - ARRAY['status', 'voided_on', 'void_entry_id', 'updated_at']) <> (to_jsonb(OLD) - ARRAY['status', 'voided_on', 'void_entry_id', 'updated_at'])
      OR OLD.status = 'void' OR NEW.status = 'draft') THEN
    RAISE EXCEPTION 'invoice % is issued: it cannot be changed', OLD.number USING ERRCODE = '42501', HINT = 'receivables.invoice_immutable';
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER invoices_guard BEFORE UPDATE OR DELETE ON finance.invoices FOR EACH ROW EXECUTE FUNCTION finance.invoice_guard();

CREATE FUNCTION finance.invoice_line_guard() RETURNS trigger LANGUAGE plpgsql SET search_path = '' AS $$
DECLARE
  v_status text;
BEGIN
  SELECT i.status INTO v_status FROM finance.invoices i
  WHERE i.org_id = coalesce(NEW.org_id, OLD.org_id) AND i.id = coalesce(NEW.invoice_id, OLD.invoice_id);
  -- not found: the draft itself is being deleted (cascade)
  IF v_status IS NOT NULL AND v_status <> 'draft' THEN
    RAISE EXCEPTION 'the lines of an issued invoice cannot be changed' USING ERRCODE = '42501', HINT = 'receivables.invoice_immutable';
  END IF;
  RETURN coalesce(NEW, OLD);
END
$$;
CREATE TRIGGER invoice_lines_guard BEFORE INSERT OR UPDATE OR DELETE ON finance.invoice_lines FOR EACH ROW EXECUTE FUNCTION finance.invoice_line_guard();

CREATE TRIGGER customer_payments_immutable BEFORE UPDATE OR DELETE ON finance.customer_payments FOR EACH ROW EXECUTE FUNCTION core.reject_change();
CREATE TRIGGER receivable_allocations_immutable BEFORE UPDATE OR DELETE ON finance.receivable_allocations FOR EACH ROW EXECUTE FUNCTION core.reject_change();
CREATE TRIGGER customer_payments_no_truncate BEFORE TRUNCATE ON finance.customer_payments FOR EACH STATEMENT EXECUTE FUNCTION finance.reject_truncate();
CREATE TRIGGER receivable_allocations_no_truncate BEFORE TRUNCATE ON finance.receivable_allocations FOR EACH STATEMENT EXECUTE FUNCTION finance.reject_truncate();
CREATE TRIGGER invoices_no_truncate BEFORE TRUNCATE ON finance.invoices FOR EACH STATEMENT EXECUTE FUNCTION finance.reject_truncate();

-- ---------------------------------------------------------------- privileges (explicit: Supabase grants ALL by default)
REVOKE ALL ON FUNCTION finance.invoice_guard(), finance.invoice_line_guard() FROM PUBLIC, anon, authenticated, service_role;
REVOKE ALL ON SEQUENCE finance.receivable_allocations_seq_seq FROM PUBLIC, anon, authenticated, service_role;
REVOKE ALL ON finance.receivables_settings, finance.customers, finance.invoices, finance.invoice_lines, finance.document_numbers,
  finance.customer_payments, finance.receivable_allocations FROM PUBLIC, anon, authenticated, service_role;
GRANT SELECT, INSERT, UPDATE ON finance.receivables_settings, finance.customers, finance.document_numbers TO authenticated, service_role;
GRANT SELECT, INSERT, UPDATE, DELETE ON finance.invoices, finance.invoice_lines TO authenticated, service_role;
GRANT SELECT, INSERT ON finance.customer_payments, finance.receivable_allocations TO authenticated, service_role;
-- analysts: no contact fields (personal data)
GRANT SELECT (org_id, id, name, default_currency, payment_terms_days, archived_at) ON finance.customers TO omnizen_analyst;
GRANT SELECT ON finance.invoices, finance.invoice_lines, finance.customer_payments, finance.receivable_allocations TO omnizen_analyst;

ALTER TABLE finance.receivables_settings ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE finance.customers ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE finance.invoices ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE finance.invoice_lines ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE finance.document_numbers ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE finance.customer_payments ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE finance.receivable_allocations ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;

-- members read; bookkeepers (owner, admin, accountant, a service) write; analysts read their organization
CREATE POLICY receivables_settings_read ON finance.receivables_settings FOR SELECT TO authenticated USING (org_id = public.auth_org_id());
CREATE POLICY receivables_settings_insert ON finance.receivables_settings FOR INSERT TO authenticated
  WITH CHECK (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'service'));
CREATE POLICY receivables_settings_update ON finance.receivables_settings FOR UPDATE TO authenticated
  USING (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'service')) WITH CHECK (org_id = public.auth_org_id());
CREATE POLICY receivables_settings_service ON finance.receivables_settings FOR ALL TO service_role USING (true) WITH CHECK (true);

CREATE POLICY customers_read ON finance.customers FOR SELECT TO authenticated, omnizen_analyst USING (org_id = public.auth_org_id());
CREATE POLICY customers_insert ON finance.customers FOR INSERT TO authenticated
  WITH CHECK (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'accountant', 'service'));
CREATE POLICY customers_update ON finance.customers FOR UPDATE TO authenticated
  USING (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'accountant', 'service')) WITH CHECK (org_id = public.auth_org_id());
CREATE POLICY customers_service ON finance.customers FOR ALL TO service_role USING (true) WITH CHECK (true);

CREATE POLICY invoices_read ON finance.invoices FOR SELECT TO authenticated, omnizen_analyst USING (org_id = public.auth_org_id());
CREATE POLICY invoices_insert ON finance.invoices FOR INSERT TO authenticated
  WITH CHECK (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'accountant', 'service'));
CREATE POLICY invoices_update ON finance.invoices FOR UPDATE TO authenticated
  USING (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'accountant', 'service')) WITH CHECK (org_id = public.auth_org_id());
CREATE POLICY invoices_delete ON finance.invoices FOR DELETE TO authenticated
  USING (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'accountant', 'service'));
CREATE POLICY invoices_service ON finance.invoices FOR ALL TO service_role USING (true) WITH CHECK (true);

CREATE POLICY invoice_lines_read ON finance.invoice_lines FOR SELECT TO authenticated, omnizen_analyst USING (org_id = public.auth_org_id());
CREATE POLICY invoice_lines_insert ON finance.invoice_lines FOR INSERT TO authenticated
  WITH CHECK (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'accountant', 'service'));
CREATE POLICY invoice_lines_update ON finance.invoice_lines FOR UPDATE TO authenticated
  USING (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'accountant', 'service')) WITH CHECK (org_id = public.auth_org_id());
CREATE POLICY invoice_lines_delete ON finance.invoice_lines FOR DELETE TO authenticated
  USING (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'accountant', 'service'));
CREATE POLICY invoice_lines_service ON finance.invoice_lines FOR ALL TO service_role USING (true) WITH CHECK (true);

CREATE POLICY document_numbers_read ON finance.document_numbers FOR SELECT TO authenticated USING (org_id = public.auth_org_id());
CREATE POLICY document_numbers_insert ON finance.document_numbers FOR INSERT TO authenticated
  WITH CHECK (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'accountant', 'service'));
CREATE POLICY document_numbers_update ON finance.document_numbers FOR UPDATE TO authenticated
  USING (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'accountant', 'service')) WITH CHECK (org_id = public.auth_org_id());
CREATE POLICY document_numbers_service ON finance.document_numbers FOR ALL TO service_role USING (true) WITH CHECK (true);

CREATE POLICY customer_payments_read ON finance.customer_payments FOR SELECT TO authenticated, omnizen_analyst USING (org_id = public.auth_org_id());
CREATE POLICY customer_payments_insert ON finance.customer_payments FOR INSERT TO authenticated
  WITH CHECK (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'accountant', 'service'));
CREATE POLICY customer_payments_service ON finance.customer_payments FOR ALL TO service_role USING (true) WITH CHECK (true);

CREATE POLICY receivable_allocations_read ON finance.receivable_allocations FOR SELECT TO authenticated, omnizen_analyst USING (org_id = public.auth_org_id());
CREATE POLICY receivable_allocations_insert ON finance.receivable_allocations FOR INSERT TO authenticated
  WITH CHECK (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'accountant', 'service'));
CREATE POLICY receivable_allocations_service ON finance.receivable_allocations FOR ALL TO service_role USING (true) WITH CHECK (true);

-- ---------------------------------------------------------------- aging (shared with payables)
-- The bucket number of a document `p_days` past due, for bucket edges `p_edges` (ascending, e.g. {30,60,90}):
-- 0 = current (not yet due), i = up to p_edges[i] days past due, array_length + 1 = beyond the last edge.
-- Pure and kind-agnostic: the AP aging uses it the same way over its own open items.
-- width_bucket(days - 1, edges) + 1: 1..30 → 1, 31..60 → 2 for {30,60,90}. A plain SQL expression (no SET clause, no
-- subquery) so the planner inlines it into the aging query instead of calling a function per open item.
CREATE FUNCTION finance.aging_bucket_index(p_days integer, p_edges integer[]) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN p_days <= 0 THEN 0 ELSE width_bucket(p_days - 1, p_edges) + 1 END
$$;
REVOKE ALL ON FUNCTION finance.aging_bucket_index(integer, integer[]) FROM PUBLIC, anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION finance.aging_bucket_index(integer, integer[]) TO authenticated, service_role, omnizen_analyst;

-- The AR open items as of a date, in the caller's organization: issued invoices not voided by then, less what was
-- allocated to them by then; and payments' unallocated remainders (customer credit, negative). Base amounts at the
-- document's own rate, rounded to the base currency's minor unit; allocations take exactly the difference of these
-- rounded values off the control account, so the open items' base sum equals the AR control account's balance.
-- SECURITY DEFINER with the organization fixed by auth_org_id() (NULL: no rows), like finance.account_totals: as
-- SECURITY INVOKER the tenant policies (a plpgsql membership probe) ran once per invoice, seconds at 100,000
-- open invoices. Every query below filters on org.
CREATE FUNCTION finance.ar_open_items(p_as_of date)
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
  alloc_pay AS (
    SELECT a.payment_id, sum(a.amount) AS amount FROM finance.receivable_allocations a
    WHERE a.org_id = org AND a.payment_id IS NOT NULL AND a.allocation_date <= p_as_of GROUP BY a.payment_id),
  inv AS (
    SELECT i.id, i.customer_id, i.number, i.invoice_date, i.due_date, i.currency, i.rate, i.total, i.total - coalesce(x.amount, 0) AS open_amount
    FROM finance.invoices i LEFT JOIN alloc_inv x ON x.invoice_id = i.id
    WHERE i.org_id = org AND i.kind = 'invoice' AND i.status <> 'draft' AND i.invoice_date <= p_as_of
      AND (i.voided_on IS NULL OR i.voided_on > p_as_of)),
  pay AS (
    SELECT p.id, p.customer_id, p.reference, p.payment_date, p.currency, p.rate, p.amount, p.amount - coalesce(x.amount, 0) AS open_amount
    FROM finance.customer_payments p LEFT JOIN alloc_pay x ON x.payment_id = p.id
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
REVOKE ALL ON FUNCTION finance.ar_open_items(date) FROM PUBLIC, anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION finance.ar_open_items(date) TO authenticated, service_role, omnizen_analyst;

-- ---------------------------------------------------------------- semantic views
CREATE VIEW semantic.v_ar_open WITH (security_invoker = true) AS
SELECT public.auth_org_id() AS org_id, o.document_kind, o.document_id, o.customer_id, o.customer_name, o.number,
  o.document_date, o.due_date, o.currency, o.total, o.open_amount, s.base_currency, o.open_base AS open_amount_base,
  greatest(current_date - o.due_date, 0) AS days_past_due,
  CASE finance.aging_bucket_index(current_date - o.due_date, ARRAY[30, 60, 90])
    WHEN 0 THEN 'current' WHEN 1 THEN '1-30' WHEN 2 THEN '31-60' WHEN 3 THEN '61-90' ELSE '>90' END AS bucket
FROM finance.ar_open_items(current_date) o
JOIN finance.settings s ON s.org_id = public.auth_org_id();
COMMENT ON VIEW semantic.v_ar_open IS 'Open receivables today: one row per issued invoice with an open amount, and one per payment with an unallocated remainder (customer credit, negative)';
COMMENT ON COLUMN semantic.v_ar_open.org_id IS 'Organization (the caller''s)';
COMMENT ON COLUMN semantic.v_ar_open.document_kind IS 'invoice, or payment (an unallocated payment remainder: customer credit)';
COMMENT ON COLUMN semantic.v_ar_open.document_id IS 'Invoice or payment id';
COMMENT ON COLUMN semantic.v_ar_open.customer_id IS 'Customer id';
COMMENT ON COLUMN semantic.v_ar_open.customer_name IS 'Customer name';
COMMENT ON COLUMN semantic.v_ar_open.number IS 'Invoice number (e.g. INV-2026-000001), or the payment reference';
COMMENT ON COLUMN semantic.v_ar_open.document_date IS 'Invoice date or payment date';
COMMENT ON COLUMN semantic.v_ar_open.due_date IS 'Due date (the payment date for customer credit)';
COMMENT ON COLUMN semantic.v_ar_open.currency IS 'Transaction currency of the document';
COMMENT ON COLUMN semantic.v_ar_open.total IS 'Document total in its currency (negative for a payment)';
COMMENT ON COLUMN semantic.v_ar_open.open_amount IS 'Amount still open in the document currency (negative for customer credit)';
COMMENT ON COLUMN semantic.v_ar_open.base_currency IS 'Base currency of the organization';
COMMENT ON COLUMN semantic.v_ar_open.open_amount_base IS 'Open amount in the base currency at the document''s rate';
COMMENT ON COLUMN semantic.v_ar_open.days_past_due IS 'Days past the due date today (0 when not yet due)';
COMMENT ON COLUMN semantic.v_ar_open.bucket IS 'Aging bucket: current, 1-30, 31-60, 61-90 or >90 days past due';

CREATE VIEW semantic.v_revenue_by_customer WITH (security_invoker = true) AS
WITH docs AS (
  SELECT i.org_id, i.customer_id, date_trunc('month', i.invoice_date)::date AS month,
    CASE WHEN i.kind = 'invoice' THEN i.base_subtotal ELSE 0 END AS invoiced,
    CASE WHEN i.kind = 'credit_note' THEN i.base_subtotal ELSE 0 END AS credited,
    0::numeric AS recognized
  FROM finance.invoices i
  WHERE i.org_id = public.auth_org_id() AND i.status NOT IN ('draft', 'void')
  UNION ALL
  -- recognized: revenue-account lines posted for the customer (invoices, credit notes, revenue recognition)
  SELECT l.org_id, l.counterparty_id::uuid, date_trunc('month', l.entry_date)::date, 0, 0, l.base_credit - l.base_debit
  FROM finance.journal_lines l JOIN finance.accounts a ON a.org_id = l.org_id AND a.id = l.account_id
  WHERE l.org_id = public.auth_org_id() AND a.type = 'revenue' AND l.counterparty_type = 'customer'
    AND l.counterparty_id ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$')
SELECT d.org_id, d.customer_id, c.name AS customer_name, d.month, s.base_currency,
  sum(d.invoiced) AS invoiced, sum(d.credited) AS credited, sum(d.recognized) AS recognized
FROM docs d
JOIN finance.customers c ON c.org_id = d.org_id AND c.id = d.customer_id
JOIN finance.settings s ON s.org_id = d.org_id
GROUP BY d.org_id, d.customer_id, c.name, d.month, s.base_currency;
COMMENT ON VIEW semantic.v_revenue_by_customer IS 'Revenue per customer per month in the base currency: invoiced and credited (net of tax, by document date) and recognized (revenue postings for the customer, including deferred revenue recognized later)';
COMMENT ON COLUMN semantic.v_revenue_by_customer.org_id IS 'Organization (the caller''s)';
COMMENT ON COLUMN semantic.v_revenue_by_customer.customer_id IS 'Customer id';
COMMENT ON COLUMN semantic.v_revenue_by_customer.customer_name IS 'Customer name';
COMMENT ON COLUMN semantic.v_revenue_by_customer.month IS 'First day of the month';
COMMENT ON COLUMN semantic.v_revenue_by_customer.base_currency IS 'Base currency of the organization';
COMMENT ON COLUMN semantic.v_revenue_by_customer.invoiced IS 'Net (tax excluded) amount of the invoices issued in the month, base currency (voided invoices excluded)';
COMMENT ON COLUMN semantic.v_revenue_by_customer.credited IS 'Net amount of the credit notes issued in the month, base currency';
COMMENT ON COLUMN semantic.v_revenue_by_customer.recognized IS 'Revenue recognized in the month (credits minus debits on revenue accounts for the customer), base currency';

CREATE VIEW semantic.v_cash_flow WITH (security_invoker = true) AS
WITH cash_entries AS (
  SELECT DISTINCT l.org_id, l.entry_id FROM finance.journal_lines l
  JOIN finance.accounts a ON a.org_id = l.org_id AND a.id = l.account_id
  WHERE l.org_id = public.auth_org_id() AND a.cash_flow_class = 'cash'),
flows AS (
  -- each non-cash line of an entry touching cash explains that much of the cash change (the entry balances)
  SELECT l.org_id, date_trunc('month', l.entry_date)::date AS month,
    CASE WHEN a.cash_flow_class IN ('operating', 'investing', 'financing') THEN a.cash_flow_class
      WHEN a.type = 'equity' THEN 'financing' ELSE 'operating' END AS activity,
    l.base_credit - l.base_debit AS amount
  FROM cash_entries ce
  JOIN finance.journal_lines l ON l.org_id = ce.org_id AND l.entry_id = ce.entry_id
  JOIN finance.accounts a ON a.org_id = l.org_id AND a.id = l.account_id
  WHERE a.cash_flow_class IS DISTINCT FROM 'cash')
SELECT f.org_id, f.month, f.activity, s.base_currency,
  sum(greatest(f.amount, 0)) AS cash_in, sum(greatest(-f.amount, 0)) AS cash_out, sum(f.amount) AS net_cash
FROM flows f JOIN finance.settings s ON s.org_id = f.org_id
GROUP BY f.org_id, f.month, f.activity, s.base_currency;
COMMENT ON VIEW semantic.v_cash_flow IS 'Cash in and out per month by activity, from the journal entries touching cash and bank accounts (accounts with cash_flow_class cash); the activity comes from the other account''s cash_flow_class (by type when unset)';
COMMENT ON COLUMN semantic.v_cash_flow.org_id IS 'Organization (the caller''s)';
COMMENT ON COLUMN semantic.v_cash_flow.month IS 'First day of the month';
COMMENT ON COLUMN semantic.v_cash_flow.activity IS 'operating, investing or financing';
COMMENT ON COLUMN semantic.v_cash_flow.base_currency IS 'Base currency of the organization';
COMMENT ON COLUMN semantic.v_cash_flow.cash_in IS 'Cash received in the month for this activity, base currency';
COMMENT ON COLUMN semantic.v_cash_flow.cash_out IS 'Cash paid in the month for this activity, base currency';
COMMENT ON COLUMN semantic.v_cash_flow.net_cash IS 'cash_in minus cash_out';

REVOKE ALL ON semantic.v_ar_open, semantic.v_revenue_by_customer, semantic.v_cash_flow FROM PUBLIC, anon, authenticated, service_role;
GRANT SELECT ON semantic.v_ar_open, semantic.v_revenue_by_customer, semantic.v_cash_flow TO authenticated, omnizen_analyst, service_role;

-- the views name the base currency: analysts read the settings of their organization (no account ids they could not see already)
GRANT SELECT ON finance.settings TO omnizen_analyst;
CREATE POLICY settings_analyst ON finance.settings FOR SELECT TO omnizen_analyst USING (org_id = public.auth_org_id());
