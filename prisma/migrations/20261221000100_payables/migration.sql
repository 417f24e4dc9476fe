-- Payables (issue 15, payables half): vendors, bills and employee expense claims with approvals, bill
-- payments with allocations, AP aging and semantic.v_ap_open.
--
-- The AP sub-ledger only records what is open and what settled it; every amount reaches the books through
-- finance.post_journal_entry (the API's payables service builds the entries). Who writes what:
--  * vendors, settings, draft bills and their lines: `authenticated` under policies naming the roles
--    (bookkeepers; a member only their own expense claims);
--  * a posted bill never changes (trigger, for every role, owner included): its paid / partially paid state is
--    derived from its allocations;
--  * decisions, payments and allocations are append-only (trigger): un-allocating is a new reversing allocation.
-- Contact fields of a vendor (contact person, e-mail, phone, address) are personal data kept in the vendor row
-- only, never copied into journal lines (lines name the vendor by id).

-- ---------------------------------------------------------------- vendors
CREATE TABLE finance.vendors (
  org_id uuid NOT NULL REFERENCES core.organizations(id) ON DELETE CASCADE,
  id uuid NOT NULL DEFAULT gen_random_uuid(),
  name text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
  contact_person text CHECK (length(contact_person) <= 200),
  email text CHECK (length(email) <= 320),
  phone text CHECK (length(phone) <= 50),
  tax_id text CHECK (length(tax_id) <= 50),
  billing_address text CHECK (length(billing_address) <= 1000),
  default_currency text REFERENCES finance.currencies(code),
  payment_terms_days integer NOT NULL DEFAULT 30 CHECK (payment_terms_days BETWEEN 0 AND 365),
  archived_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, id)
);
-- cursor pagination by (name, id) and search by name / e-mail
CREATE INDEX vendors_name_idx ON finance.vendors (org_id, lower(name), id);
CREATE TRIGGER vendors_no_delete BEFORE DELETE ON finance.vendors FOR EACH ROW EXECUTE FUNCTION core.reject_change();

-- ---------------------------------------------------------------- settings: the AP control account and the approval rules (data)
CREATE TABLE finance.payables_settings (
  org_id uuid PRIMARY KEY REFERENCES core.organizations(id) ON DELETE CASCADE,
  ap_account_id uuid NOT NULL,
  -- [{ "above": "1000.00", "approvals": 1, "roles": ["owner", "admin"] }, ...]: a bill whose total in the base
  -- currency is above `above` needs `approvals` distinct approvers of `roles` (the highest matching rule wins)
  approval_rules jsonb NOT NULL CHECK (jsonb_typeof(approval_rules) = 'array'),
  updated_at timestamptz NOT NULL DEFAULT now(),
  FOREIGN KEY (org_id, ap_account_id) REFERENCES finance.accounts(org_id, id)
);

-- ---------------------------------------------------------------- bills and expense claims
CREATE TABLE finance.bills (
  org_id uuid NOT NULL REFERENCES core.organizations(id) ON DELETE CASCADE,
  id uuid NOT NULL DEFAULT gen_random_uuid(),
  -- bill: a vendor's bill; expense_claim: a member's claim, payable to that member
  kind text NOT NULL CHECK (kind IN ('bill', 'expense_claim')),
  vendor_id uuid,
  claimant_id text,
  bill_number text CHECK (length(bill_number) <= 100),
  bill_date date NOT NULL,
  due_date date NOT NULL,
  currency text NOT NULL REFERENCES finance.currencies(code),
  memo text NOT NULL DEFAULT '' CHECK (length(memo) <= 1000),
  subtotal numeric(20, 4) NOT NULL DEFAULT 0 CHECK (subtotal >= 0),
  tax_total numeric(20, 4) NOT NULL DEFAULT 0 CHECK (tax_total >= 0),
  total numeric(20, 4) NOT NULL DEFAULT 0 CHECK (total >= 0),
  -- stored states; `partially_paid` and `paid` are derived from the allocations of a posted bill
  status text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'submitted', 'rejected', 'posted')),
  submission_no integer NOT NULL DEFAULT 0,
  -- what the applicable approval rule asked for, fixed at submission
  approvals_required integer CHECK (approvals_required BETWEEN 0 AND 10),
  approver_roles text[] NOT NULL DEFAULT '{}',
  rejection_reason text CHECK (length(rejection_reason) <= 1000),
  -- at posting: the rate of the bill date, the base amount credited to AP, the entry
  rate numeric(24, 10),
  base_currency text REFERENCES finance.currencies(code),
  base_total numeric(20, 4),
  ap_account_id uuid,
  journal_entry_id uuid,
  posted_at timestamptz,
  created_by text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, id),
  FOREIGN KEY (org_id, vendor_id) REFERENCES finance.vendors(org_id, id),
  FOREIGN KEY (org_id, journal_entry_id) REFERENCES finance.journal_entries(org_id, id),
  FOREIGN KEY (org_id, ap_account_id) REFERENCES finance.accounts(org_id, id),
  CHECK ((kind = 'bill') = (vendor_id IS NOT NULL) AND (kind = 'expense_claim') = (claimant_id IS NOT NULL)),
  CHECK (due_date >= bill_date),
  CHECK ((status = 'posted') = (journal_entry_id IS NOT NULL AND rate IS NOT NULL AND base_total IS NOT NULL AND ap_account_id IS NOT NULL))
);
CREATE INDEX bills_list_idx ON finance.bills (org_id, kind, created_at DESC, id DESC);
CREATE INDEX bills_vendor_idx ON finance.bills (org_id, vendor_id) WHERE vendor_id IS NOT NULL;
CREATE INDEX bills_claimant_idx ON finance.bills (org_id, claimant_id) WHERE claimant_id IS NOT NULL;

CREATE TABLE finance.bill_lines (
  org_id uuid NOT NULL,
  bill_id uuid NOT NULL,
  line_no smallint NOT NULL CHECK (line_no BETWEEN 1 AND 200),
  -- an expense or asset account (a claim's category)
  account_id uuid NOT NULL,
  description text CHECK (length(description) <= 500),
  quantity numeric(20, 4) NOT NULL CHECK (quantity > 0),
  unit_price numeric(20, 4) NOT NULL CHECK (unit_price >= 0),
  tax_code_id uuid,
  net numeric(20, 4) NOT NULL CHECK (net >= 0),
  tax numeric(20, 4) NOT NULL CHECK (tax >= 0),
  gross numeric(20, 4) NOT NULL CHECK (gross >= 0),
  -- expense claims: the day of the expense and the receipt's reference
  expense_date date,
  receipt_ref text CHECK (length(receipt_ref) <= 200),
  PRIMARY KEY (org_id, bill_id, line_no),
  FOREIGN KEY (org_id, bill_id) REFERENCES finance.bills(org_id, id) ON DELETE CASCADE,
  FOREIGN KEY (org_id, account_id) REFERENCES finance.accounts(org_id, id),
  FOREIGN KEY (org_id, tax_code_id) REFERENCES finance.tax_codes(org_id, id),
  CHECK (gross = net + tax)
);

-- every approve, reject, comment and submission, in order (append-only)
CREATE TABLE finance.bill_decisions (
  org_id uuid NOT NULL,
  id uuid NOT NULL DEFAULT gen_random_uuid(),
  bill_id uuid NOT NULL,
  submission_no integer NOT NULL,
  decision text NOT NULL CHECK (decision IN ('submit', 'approve', 'reject', 'comment')),
  actor_id text NOT NULL,
  actor_role text NOT NULL,
  comment text CHECK (length(comment) <= 2000),
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, id),
  FOREIGN KEY (org_id, bill_id) REFERENCES finance.bills(org_id, id)
);
CREATE INDEX bill_decisions_bill_idx ON finance.bill_decisions (org_id, bill_id, created_at);
-- one approval per person per submission: two approvals by one person never count twice
CREATE UNIQUE INDEX bill_decisions_one_approval ON finance.bill_decisions (org_id, bill_id, submission_no, actor_id) WHERE decision = 'approve';

-- ---------------------------------------------------------------- payments and allocations
CREATE TABLE finance.bill_payments (
  org_id uuid NOT NULL REFERENCES core.organizations(id) ON DELETE CASCADE,
  id uuid NOT NULL DEFAULT gen_random_uuid(),
  vendor_id uuid,
  claimant_id text,
  payment_date date NOT NULL,
  currency text NOT NULL REFERENCES finance.currencies(code),
  amount numeric(20, 4) NOT NULL CHECK (amount > 0),
  rate numeric(24, 10) NOT NULL CHECK (rate > 0),
  base_amount numeric(20, 4) NOT NULL CHECK (base_amount >= 0),
  bank_account_id uuid NOT NULL,
  method text NOT NULL CHECK (method IN ('bank_transfer', 'card', 'cash', 'check', 'other')),
  reference text CHECK (length(reference) <= 200),
  journal_entry_id uuid NOT NULL,
  created_by text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, id),
  FOREIGN KEY (org_id, vendor_id) REFERENCES finance.vendors(org_id, id),
  FOREIGN KEY (org_id, bank_account_id) REFERENCES finance.accounts(org_id, id),
  FOREIGN KEY (org_id, journal_entry_id) REFERENCES finance.journal_entries(org_id, id),
  CHECK ((vendor_id IS NULL) <> (claimant_id IS NULL))
);
CREATE INDEX bill_payments_list_idx ON finance.bill_payments (org_id, payment_date DESC, id DESC);

-- amount > 0 settles a bill from a payment; < 0 reverses an earlier allocation (reverses_allocation_id)
CREATE TABLE finance.bill_allocations (
  org_id uuid NOT NULL,
  id uuid NOT NULL DEFAULT gen_random_uuid(),
  payment_id uuid NOT NULL,
  bill_id uuid NOT NULL,
  allocation_date date NOT NULL,
  amount numeric(20, 4) NOT NULL CHECK (amount <> 0),
  -- the bill's carried base amount it settles (at the bill's rate) and the payment's (at the payment's rate);
  -- the difference is the realized FX result, posted in the same entry
  bill_base_amount numeric(20, 4) NOT NULL,
  payment_base_amount numeric(20, 4) NOT NULL,
  reverses_allocation_id uuid,
  journal_entry_id uuid,
  created_by text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, id),
  UNIQUE (org_id, reverses_allocation_id),
  FOREIGN KEY (org_id, payment_id) REFERENCES finance.bill_payments(org_id, id),
  FOREIGN KEY (org_id, bill_id) REFERENCES finance.bills(org_id, id),
  FOREIGN KEY (org_id, reverses_allocation_id) REFERENCES finance.bill_allocations(org_id, id),
  FOREIGN KEY (org_id, journal_entry_id) REFERENCES finance.journal_entries(org_id, id),
  CHECK ((amount < 0) = (reverses_allocation_id IS NOT NULL))
);
CREATE INDEX bill_allocations_bill_idx ON finance.bill_allocations (org_id, bill_id, allocation_date);
CREATE INDEX bill_allocations_payment_idx ON finance.bill_allocations (org_id, payment_id);

-- ---------------------------------------------------------------- immutability and the open-amount backstop
-- A posted bill never changes; a draft's lines change only while it is a draft (or rejected).
CREATE FUNCTION finance.guard_bill() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF OLD.status IN ('posted', 'submitted') AND TG_OP = 'DELETE' OR OLD.status = 'posted' THEN
    RAISE EXCEPTION 'bill % is %: it cannot be changed or deleted', OLD.id, OLD.status USING ERRCODE = '42501';
  END IF;
  IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
  NEW.updated_at := now();
  RETURN NEW;
END
$$;
CREATE TRIGGER bills_guard BEFORE UPDATE OR DELETE ON finance.bills FOR EACH ROW EXECUTE FUNCTION finance.guard_bill();

CREATE FUNCTION finance.guard_bill_line() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  st text;
BEGIN
  SELECT b.status INTO st FROM finance.bills b
  WHERE b.org_id = coalesce(NEW.org_id, OLD.org_id) AND b.id = coalesce(NEW.bill_id, OLD.bill_id);
  IF st IS NOT NULL AND st NOT IN ('draft', 'rejected') THEN
    RAISE EXCEPTION 'bill % is %: its lines cannot change', coalesce(NEW.bill_id, OLD.bill_id), st USING ERRCODE = '42501';
  END IF;
  IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER bill_lines_guard BEFORE INSERT OR UPDATE OR DELETE ON finance.bill_lines FOR EACH ROW EXECUTE FUNCTION finance.guard_bill_line();

CREATE TRIGGER bill_decisions_append_only BEFORE UPDATE OR DELETE ON finance.bill_decisions FOR EACH ROW EXECUTE FUNCTION core.reject_change();
CREATE TRIGGER bill_payments_append_only BEFORE UPDATE OR DELETE ON finance.bill_payments FOR EACH ROW EXECUTE FUNCTION core.reject_change();
CREATE TRIGGER bill_allocations_append_only BEFORE UPDATE OR DELETE ON finance.bill_allocations FOR EACH ROW EXECUTE FUNCTION core.reject_change();

-- The service locks the bill and the payment before it allocates; this backstop refuses an allocation that
-- would take a bill's open amount below zero or a payment's allocations beyond the payment, whoever inserts it.
CREATE FUNCTION finance.check_allocation() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  b record;
  p record;
  bill_settled numeric;
  pay_used numeric;
BEGIN
  SELECT x.status, x.total INTO b FROM finance.bills x WHERE x.org_id = NEW.org_id AND x.id = NEW.bill_id;
  IF b.status IS DISTINCT FROM 'posted' THEN
    RAISE EXCEPTION 'bill % is not posted', NEW.bill_id USING ERRCODE = '23514';
  END IF;
  SELECT x.amount INTO p FROM finance.bill_payments x WHERE x.org_id = NEW.org_id AND x.id = NEW.payment_id;
  SELECT coalesce(sum(a.amount), 0) INTO bill_settled FROM finance.bill_allocations a WHERE a.org_id = NEW.org_id AND a.bill_id = NEW.bill_id;
  SELECT coalesce(sum(a.amount), 0) INTO pay_used FROM finance.bill_allocations a WHERE a.org_id = NEW.org_id AND a.payment_id = NEW.payment_id;
  IF bill_settled + NEW.amount > b.total OR bill_settled + NEW.amount < 0 THEN
    RAISE EXCEPTION 'allocation of % would take the open amount of bill % below zero', NEW.amount, NEW.bill_id USING ERRCODE = '23514';
  END IF;
  IF pay_used + NEW.amount > p.amount OR pay_used + NEW.amount < 0 THEN
    RAISE EXCEPTION 'allocation of % exceeds what is left of payment %', NEW.amount, NEW.payment_id USING ERRCODE = '23514';
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER bill_allocations_check BEFORE INSERT ON finance.bill_allocations FOR EACH ROW EXECUTE FUNCTION finance.check_allocation();

-- ---------------------------------------------------------------- aging bucket (shared by AR and AP)
-- The bucket of a document `p_days` past due, for ascending bucket edges (default 30, 60, 90):
-- 'current' (not yet due), '1-30', '31-60', '61-90', '>90'. The same rule as src/modules/payables/aging.ts.
CREATE FUNCTION finance.aging_bucket(p_days integer, p_edges integer[] DEFAULT '{30,60,90}') RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = '' AS $$
  SELECT CASE
    WHEN p_days <= 0 THEN 'current'
    ELSE coalesce(
      (SELECT (coalesce(p_edges[i - 1], 0) + 1)::text || '-' || p_edges[i]::text
       FROM generate_subscripts(p_edges, 1) i WHERE p_days <= p_edges[i] ORDER BY i LIMIT 1),
      '>' || p_edges[cardinality(p_edges)]::text)
  END
$$;

-- ---------------------------------------------------------------- row level security
ALTER TABLE finance.vendors ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE finance.payables_settings ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE finance.bills ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE finance.bill_lines ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE finance.bill_decisions ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE finance.bill_payments ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE finance.bill_allocations ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;

-- members read; bookkeepers (owner, admin, accountant) write; a member writes only their own expense claims
CREATE POLICY vendors_read ON finance.vendors FOR SELECT TO authenticated, omnizen_analyst USING (org_id = public.auth_org_id());
CREATE POLICY vendors_insert ON finance.vendors FOR INSERT TO authenticated
  WITH CHECK (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'accountant', 'service'));
CREATE POLICY vendors_update ON finance.vendors FOR UPDATE TO authenticated
  USING (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'accountant', 'service'))
  WITH CHECK (org_id = public.auth_org_id());
CREATE POLICY vendors_service ON finance.vendors FOR SELECT TO service_role USING (true);

CREATE POLICY payables_settings_read ON finance.payables_settings FOR SELECT TO authenticated USING (org_id = public.auth_org_id());
CREATE POLICY payables_settings_insert ON finance.payables_settings FOR INSERT TO authenticated
  WITH CHECK (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'service'));
CREATE POLICY payables_settings_update ON finance.payables_settings FOR UPDATE TO authenticated
  USING (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'service'))
  WITH CHECK (org_id = public.auth_org_id());
CREATE POLICY payables_settings_service ON finance.payables_settings FOR SELECT TO service_role USING (true);

CREATE POLICY bills_read ON finance.bills FOR SELECT TO authenticated, omnizen_analyst USING (org_id = public.auth_org_id());
CREATE POLICY bills_insert ON finance.bills FOR INSERT TO authenticated
  WITH CHECK (org_id = public.auth_org_id() AND (public.auth_has_role('owner', 'admin', 'accountant', 'service')
    OR (kind = 'expense_claim' AND claimant_id = public.auth_user_id() AND public.auth_has_role('member'))));
CREATE POLICY bills_update ON finance.bills FOR UPDATE TO authenticated
  USING (org_id = public.auth_org_id() AND (public.auth_has_role('owner', 'admin', 'accountant', 'service')
    OR (kind = 'expense_claim' AND claimant_id = public.auth_user_id() AND public.auth_has_role('member'))))
  WITH CHECK (org_id = public.auth_org_id());
CREATE POLICY bills_service ON finance.bills FOR SELECT TO service_role USING (true);

CREATE POLICY bill_lines_read ON finance.bill_lines FOR SELECT TO authenticated USING (org_id = public.auth_org_id());
CREATE POLICY bill_lines_insert ON finance.bill_lines FOR INSERT TO authenticated
  WITH CHECK (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'accountant', 'member', 'service'));
CREATE POLICY bill_lines_delete ON finance.bill_lines FOR DELETE TO authenticated
  USING (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'accountant', 'member', 'service'));
CREATE POLICY bill_lines_service ON finance.bill_lines FOR SELECT TO service_role USING (true);

CREATE POLICY bill_decisions_read ON finance.bill_decisions FOR SELECT TO authenticated USING (org_id = public.auth_org_id());
CREATE POLICY bill_decisions_insert ON finance.bill_decisions FOR INSERT TO authenticated
  WITH CHECK (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'accountant', 'member', 'service'));
CREATE POLICY bill_decisions_service ON finance.bill_decisions FOR SELECT TO service_role USING (true);

CREATE POLICY bill_payments_read ON finance.bill_payments FOR SELECT TO authenticated, omnizen_analyst USING (org_id = public.auth_org_id());
CREATE POLICY bill_payments_insert ON finance.bill_payments FOR INSERT TO authenticated
  WITH CHECK (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'accountant', 'service'));
CREATE POLICY bill_payments_service ON finance.bill_payments FOR SELECT TO service_role USING (true);

CREATE POLICY bill_allocations_read ON finance.bill_allocations FOR SELECT TO authenticated, omnizen_analyst USING (org_id = public.auth_org_id());
CREATE POLICY bill_allocations_insert ON finance.bill_allocations FOR INSERT TO authenticated
  WITH CHECK (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'accountant', 'service'));
CREATE POLICY bill_allocations_service ON finance.bill_allocations FOR SELECT TO service_role USING (true);

-- ---------------------------------------------------------------- semantic view
CREATE VIEW semantic.v_ap_open WITH (security_invoker = true) AS
WITH settled AS (
  SELECT a.org_id, a.bill_id, sum(a.amount) AS amount, sum(a.bill_base_amount) AS base_amount
  FROM finance.bill_allocations a WHERE a.org_id = public.auth_org_id()
  GROUP BY a.org_id, a.bill_id
)
SELECT b.org_id, b.id AS bill_id, b.kind AS document_kind,
  CASE WHEN b.kind = 'bill' THEN 'vendor' ELSE 'employee' END AS party_type,
  coalesce(b.vendor_id::text, b.claimant_id) AS party_id, v.name AS party_name,
  b.bill_number AS document_number, b.bill_date, b.due_date, b.currency, b.total,
  b.total - coalesce(s.amount, 0) AS open_amount,
  b.base_currency, b.base_total,
  b.base_total - coalesce(s.base_amount, 0) AS open_base_amount,
  greatest(current_date - b.due_date, 0) AS days_past_due,
  finance.aging_bucket(current_date - b.due_date) AS bucket
FROM finance.bills b
LEFT JOIN finance.vendors v ON v.org_id = b.org_id AND v.id = b.vendor_id
LEFT JOIN settled s ON s.org_id = b.org_id AND s.bill_id = b.id
WHERE b.org_id = public.auth_org_id() AND b.status = 'posted' AND b.total - coalesce(s.amount, 0) > 0;

COMMENT ON VIEW semantic.v_ap_open IS 'Open accounts-payable documents (posted vendor bills and approved expense claims with an open amount), one row each, as of today';
COMMENT ON COLUMN semantic.v_ap_open.org_id IS 'Organization the document belongs to';
COMMENT ON COLUMN semantic.v_ap_open.bill_id IS 'Id of the bill or expense claim';
COMMENT ON COLUMN semantic.v_ap_open.document_kind IS 'bill (a vendor''s bill) or expense_claim (a member''s claim)';
COMMENT ON COLUMN semantic.v_ap_open.party_type IS 'vendor for bills, employee for expense claims';
COMMENT ON COLUMN semantic.v_ap_open.party_id IS 'Vendor id (bills) or user id of the claimant (expense claims)';
COMMENT ON COLUMN semantic.v_ap_open.party_name IS 'Vendor name; null for expense claims';
COMMENT ON COLUMN semantic.v_ap_open.document_number IS 'The vendor''s bill number; null when none was given';
COMMENT ON COLUMN semantic.v_ap_open.bill_date IS 'Date of the bill (its posting date)';
COMMENT ON COLUMN semantic.v_ap_open.due_date IS 'Date the bill is due';
COMMENT ON COLUMN semantic.v_ap_open.currency IS 'Transaction currency of the document (ISO 4217)';
COMMENT ON COLUMN semantic.v_ap_open.total IS 'Total of the document including tax, in its currency';
COMMENT ON COLUMN semantic.v_ap_open.open_amount IS 'What is still to be paid, in the document currency';
COMMENT ON COLUMN semantic.v_ap_open.base_currency IS 'Base currency of the books';
COMMENT ON COLUMN semantic.v_ap_open.base_total IS 'Total in the base currency at the rate of the bill date (what was credited to accounts payable)';
COMMENT ON COLUMN semantic.v_ap_open.open_base_amount IS 'Open amount in the base currency at the rate of the bill date (its share of the accounts payable balance)';
COMMENT ON COLUMN semantic.v_ap_open.days_past_due IS 'Days since the due date; 0 when not yet due';
COMMENT ON COLUMN semantic.v_ap_open.bucket IS 'Aging bucket: current, 1-30, 31-60, 61-90 or >90 days past due';

-- ---------------------------------------------------------------- grants (explicit; defaults revoked first)
REVOKE ALL ON finance.vendors, finance.payables_settings, finance.bills, finance.bill_lines, finance.bill_decisions,
  finance.bill_payments, finance.bill_allocations, semantic.v_ap_open FROM PUBLIC, anon, authenticated, service_role;
GRANT SELECT, INSERT, UPDATE ON finance.vendors, finance.payables_settings, finance.bills TO authenticated;
GRANT SELECT, INSERT, DELETE ON finance.bill_lines TO authenticated;
GRANT SELECT, INSERT ON finance.bill_decisions, finance.bill_payments, finance.bill_allocations TO authenticated;
GRANT SELECT ON finance.vendors, finance.payables_settings, finance.bills, finance.bill_lines, finance.bill_decisions,
  finance.bill_payments, finance.bill_allocations TO service_role;
GRANT SELECT ON finance.vendors, finance.bills, finance.bill_payments, finance.bill_allocations TO omnizen_analyst;
GRANT SELECT ON semantic.v_ap_open TO authenticated, omnizen_analyst, service_role;
REVOKE ALL ON FUNCTION finance.guard_bill(), finance.guard_bill_line(), finance.check_allocation() FROM PUBLIC;
REVOKE ALL ON FUNCTION finance.aging_bucket(integer, integer[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION finance.aging_bucket(integer, integer[]) TO authenticated, service_role, omnizen_analyst;
