-- FX revaluation of open receivables and payables per open item (accountant review, h1).
--
-- The revaluation moved the AR and AP control accounts (unrealized gain or loss) while the agings kept every document
-- at its own rate: after a revaluation the aging (base) no longer equalled the control account, and a payment at a
-- later rate booked its realized result against the document's rate, counting the revalued part twice. Now the
-- revaluation of a control account is worked out per open item (an invoice or customer payment credit; a bill, claim
-- or vendor payment credit): each is valued at the rate of the date, and what it changes is kept here, one row per
-- item, with the rate the item is carried at from then on. The control account's line is the sum of its items' rows,
-- so the aging (which adds the rows dated by its date) equals the account at every date; a later allocation settles
-- what the item carries (its last revalued base), so the realized result is only what the rate moved since. An
-- autoReverse reversal writes the opposite rows dated the next period's first day, carried at the rate before.

CREATE TABLE finance.fx_revaluation_items (
  org_id uuid NOT NULL REFERENCES core.organizations(id) ON DELETE CASCADE,
  id uuid NOT NULL DEFAULT gen_random_uuid(),
  seq bigint GENERATED ALWAYS AS IDENTITY,
  -- the revaluation entry (or its reversal) that moved the control account by the sum of its rows
  entry_id uuid NOT NULL,
  revaluation_date date NOT NULL,
  subledger text NOT NULL CHECK (subledger IN ('receivables', 'payables')),
  -- an invoice or customer payment (receivables); a bill, expense claim or bill payment (payables)
  document_id uuid NOT NULL,
  -- the rate the item is carried at from this date on
  rate numeric(24, 10) NOT NULL CHECK (rate > 0),
  -- the change of the item's base value as its aging shows it (a payment credit is negative: a delta < 0 raises it)
  base_delta numeric(20, 4) NOT NULL CHECK (base_delta <> 0),
  created_by text,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, id),
  FOREIGN KEY (org_id, entry_id) REFERENCES finance.journal_entries(org_id, id)
);
CREATE INDEX fx_revaluation_items_document_idx ON finance.fx_revaluation_items (org_id, document_id, revaluation_date) INCLUDE (base_delta, rate, seq);
CREATE TRIGGER fx_revaluation_items_immutable BEFORE UPDATE OR DELETE ON finance.fx_revaluation_items FOR EACH ROW EXECUTE FUNCTION core.reject_change();
CREATE TRIGGER fx_revaluation_items_no_truncate BEFORE TRUNCATE ON finance.fx_revaluation_items FOR EACH STATEMENT EXECUTE FUNCTION finance.reject_truncate();

REVOKE ALL ON finance.fx_revaluation_items FROM PUBLIC, anon, authenticated, service_role;
REVOKE ALL ON SEQUENCE finance.fx_revaluation_items_seq_seq FROM PUBLIC, anon, authenticated, service_role;
GRANT SELECT, INSERT ON finance.fx_revaluation_items TO authenticated, service_role;
GRANT SELECT ON finance.fx_revaluation_items TO omnizen_analyst;
ALTER TABLE finance.fx_revaluation_items ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY fx_revaluation_items_read ON finance.fx_revaluation_items FOR SELECT TO authenticated, omnizen_analyst USING (org_id = public.auth_org_id());
-- written with the revaluation entry, by those who may revalue (the bookkeepers)
CREATE POLICY fx_revaluation_items_insert ON finance.fx_revaluation_items FOR INSERT TO authenticated
  WITH CHECK (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'accountant', 'service'));
CREATE POLICY fx_revaluation_items_service ON finance.fx_revaluation_items FOR ALL TO service_role USING (true) WITH CHECK (true);
-- as every table the API writes (20270205000900): not over Supabase's REST API, only in a verified transaction
CREATE POLICY rest_path_closed_insert ON finance.fx_revaluation_items AS RESTRICTIVE FOR INSERT TO authenticated
  WITH CHECK (public.auth_claims_verified());
COMMENT ON TABLE finance.fx_revaluation_items IS
  'Per open receivable or payable: the base change an FX revaluation (or its reversal) made, and the rate it is carried at since; the agings add them';

-- ---------------------------------------------------------------- receivables: the stored open amounts
-- The source the triggers are checked against: a document's open base also holds its revaluations.
CREATE OR REPLACE VIEW finance.receivable_open_amounts_source WITH (security_invoker = true) AS
SELECT i.org_id, i.id AS document_id, 'invoice'::text AS document_kind, i.customer_id, i.invoice_date AS document_date,
  i.due_date AS aged_from, coalesce(i.base_total, 0) AS base_amount,
  CASE WHEN i.voided_on IS NULL THEN coalesce(i.base_total, 0) - coalesce(s.base, 0) + coalesce(v.base, 0) ELSE 0 END AS open_base,
  greatest(s.last, i.voided_on, v.last) AS settled_through, i.voided_on
FROM finance.invoices i
LEFT JOIN LATERAL (
  SELECT sum(a.invoice_base) AS base, max(a.allocation_date) AS last FROM finance.receivable_allocations a
  WHERE a.org_id = i.org_id AND a.invoice_id = i.id) s ON true
LEFT JOIN LATERAL (
  SELECT sum(x.base_delta) AS base, max(x.revaluation_date) AS last FROM finance.fx_revaluation_items x
  WHERE x.org_id = i.org_id AND x.document_id = i.id) v ON true
WHERE i.kind = 'invoice' AND i.status <> 'draft'
UNION ALL
SELECT p.org_id, p.id, 'payment', p.customer_id, p.payment_date, p.payment_date, -round(p.amount * p.rate, c.minor_units),
  coalesce(a.base, 0) + coalesce(r.base, 0) - round(p.amount * p.rate, c.minor_units) + coalesce(v.base, 0), greatest(a.last, r.last, v.last), NULL::date
FROM finance.customer_payments p
JOIN finance.settings st ON st.org_id = p.org_id JOIN finance.currencies c ON c.code = st.base_currency
LEFT JOIN LATERAL (
  SELECT sum(x.source_base) AS base, max(x.allocation_date) AS last FROM finance.receivable_allocations x
  WHERE x.org_id = p.org_id AND x.payment_id = p.id) a ON true
LEFT JOIN LATERAL (
  SELECT sum(x.source_base) AS base, max(x.refund_date) AS last FROM finance.customer_refunds x
  WHERE x.org_id = p.org_id AND x.payment_id = p.id) r ON true
LEFT JOIN LATERAL (
  SELECT sum(x.base_delta) AS base, max(x.revaluation_date) AS last FROM finance.fx_revaluation_items x
  WHERE x.org_id = p.org_id AND x.document_id = p.id) v ON true;
REVOKE ALL ON finance.receivable_open_amounts_source FROM PUBLIC, anon, authenticated, service_role;

-- a revaluation row of a receivable: the document's open base moves by it; as of a date before it the aging works the
-- amount out from the rows dated by then (settled_through)
CREATE FUNCTION finance.receivable_open_amounts_revaluation() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
BEGIN
  IF NEW.org_id IS DISTINCT FROM coalesce(public.auth_org_id(), NEW.org_id) THEN
    RAISE EXCEPTION 'a receivable of organization % written in a transaction of organization %', NEW.org_id, public.auth_org_id() USING ERRCODE = '42501';
  END IF;
  UPDATE finance.receivable_open_amounts o
  SET open_base = o.open_base + NEW.base_delta, settled_through = greatest(o.settled_through, NEW.revaluation_date)
  WHERE o.org_id = NEW.org_id AND o.document_id = NEW.document_id;
  IF NOT FOUND THEN
    PERFORM finance.receivable_open_amounts_refresh(NEW.org_id, NEW.document_id);
  END IF;
  RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION finance.receivable_open_amounts_revaluation() FROM PUBLIC, anon, authenticated, service_role;
CREATE TRIGGER fx_revaluation_items_open_amounts AFTER INSERT ON finance.fx_revaluation_items FOR EACH ROW
  WHEN (NEW.subledger = 'receivables') EXECUTE FUNCTION finance.receivable_open_amounts_revaluation();

-- As 20270113000100, the documents settled (or revalued) after the date adding their revaluations dated by then.
CREATE OR REPLACE FUNCTION finance.ar_aging_index(p_as_of date, p_edges integer[] DEFAULT '{30,60,90}')
RETURNS TABLE (customer_id uuid, bucket_index integer, amount numeric)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' SET work_mem = '64MB' SET random_page_cost = 1.1 SET jit = off AS $$
  WITH late AS MATERIALIZED (
    SELECT o.document_id FROM finance.receivable_open_amounts o
    WHERE o.org_id = (SELECT public.auth_org_id()) AND o.settled_through > p_as_of AND o.document_date <= p_as_of),
  late_items AS MATERIALIZED (
    SELECT o.customer_id, o.aged_from, CASE
      WHEN o.document_kind = 'payment' THEN o.base_amount
        + coalesce((SELECT sum(a.source_base) FROM finance.receivable_allocations a
                    WHERE a.org_id = o.org_id AND a.payment_id = o.document_id AND a.allocation_date <= p_as_of), 0)
        + coalesce((SELECT sum(r.source_base) FROM finance.customer_refunds r
                    WHERE r.org_id = o.org_id AND r.payment_id = o.document_id AND r.refund_date <= p_as_of), 0)
        + coalesce((SELECT sum(x.base_delta) FROM finance.fx_revaluation_items x
                    WHERE x.org_id = o.org_id AND x.document_id = o.document_id AND x.revaluation_date <= p_as_of), 0)
      WHEN o.voided_on <= p_as_of THEN 0
      ELSE o.base_amount - coalesce((SELECT sum(a.invoice_base) FROM finance.receivable_allocations a
                                     WHERE a.org_id = o.org_id AND a.invoice_id = o.document_id AND a.allocation_date <= p_as_of), 0)
        + coalesce((SELECT sum(x.base_delta) FROM finance.fx_revaluation_items x
                    WHERE x.org_id = o.org_id AND x.document_id = o.document_id AND x.revaluation_date <= p_as_of), 0) END AS base
    FROM late l CROSS JOIN LATERAL (
      SELECT o.* FROM finance.receivable_open_amounts o
      WHERE o.org_id = (SELECT public.auth_org_id()) AND o.document_id = l.document_id LIMIT 1) o),
  items AS (
    SELECT o.customer_id, o.aged_from, o.open_base AS base
    FROM finance.receivable_open_amounts o
    WHERE o.org_id = (SELECT public.auth_org_id()) AND o.open_base <> 0 AND o.document_date <= p_as_of
      AND (o.settled_through IS NULL OR o.settled_through <= p_as_of)
    UNION ALL
    SELECT li.customer_id, li.aged_from, li.base FROM late_items li WHERE li.base <> 0)
  SELECT it.customer_id, CASE WHEN p_as_of - it.aged_from <= 0 THEN 0 ELSE width_bucket(p_as_of - it.aged_from - 1, p_edges) + 1 END, sum(it.base)
  FROM items it GROUP BY 1, 2
$$;

-- ---------------------------------------------------------------- payables: the aging
-- As 20270207700100, each bill's and payment's base with its revaluations dated by the date.
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
  revalued AS (
    SELECT x.document_id, sum(x.base_delta) AS base FROM finance.fx_revaluation_items x
    WHERE x.org_id = (SELECT public.auth_org_id()) AND x.subledger = 'payables' AND x.revaluation_date <= p_as_of GROUP BY x.document_id),
  items AS (
    SELECT CASE WHEN b.kind = 'bill' THEN 'vendor' ELSE 'employee' END AS party_type, coalesce(b.vendor_id::text, b.claimant_id) AS party_id,
      finance.aging_bucket(p_as_of - b.due_date, p_edges) AS bucket, b.base_total - coalesce(s.base, 0) + coalesce(v.base, 0) AS base
    FROM finance.bills b LEFT JOIN settled s ON s.bill_id = b.id LEFT JOIN revalued v ON v.document_id = b.id
    WHERE b.org_id = (SELECT public.auth_org_id()) AND b.journal_entry_id IS NOT NULL AND b.bill_date <= p_as_of
      AND (b.voided_on IS NULL OR b.voided_on > p_as_of)
      AND (b.kind = 'bill' OR NOT (SELECT public.auth_has_role('member')) OR b.claimant_id = (SELECT public.auth_user_id()))
    UNION ALL
    SELECT CASE WHEN p.vendor_id IS NOT NULL THEN 'vendor' ELSE 'employee' END, coalesce(p.vendor_id::text, p.claimant_id), 'current',
      -(p.base_amount - coalesce(u.base, 0)) + coalesce(v.base, 0)
    FROM finance.bill_payments p LEFT JOIN used u ON u.payment_id = p.id LEFT JOIN revalued v ON v.document_id = p.id
    WHERE p.org_id = (SELECT public.auth_org_id()) AND p.payment_date <= p_as_of
      AND (p.vendor_id IS NOT NULL OR NOT (SELECT public.auth_has_role('member')) OR p.claimant_id = (SELECT public.auth_user_id())))
  SELECT g.party_type, g.party_id, v.name, g.bucket, g.amount
  FROM (SELECT it.party_type, it.party_id, it.bucket, sum(it.base) AS amount FROM items it WHERE it.base <> 0 GROUP BY 1, 2, 3) g
  LEFT JOIN finance.vendors v ON g.party_type = 'vendor' AND v.org_id = (SELECT public.auth_org_id()) AND v.id::text = g.party_id
$$;
