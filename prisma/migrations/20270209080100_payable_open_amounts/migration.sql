-- Payables: stored open amounts, as receivables keeps them (20270113000100, 20270208010100, 20270208190100).
--
-- finance.ap_aging worked out every bill's and payment's open base as of the date from all its allocations, refunds
-- and revaluation rows, and the FX revaluation's AP open-items read (fxOpenPayables) visited every foreign-currency
-- bill and payment with their settlements to find the open ones. Now:
--  * finance.payable_open_amounts keeps one row per posted bill or expense claim and per bill payment: its base value
--    (base_amount; a payment's negative, as the aging shows its credit), what is open of it once every settlement and
--    revaluation so far is counted (open_base; 0 once voided) and the date of the last of them (settled_through: the
--    latest allocation, its reversal, refund, void or revaluation row). Derived data only: AFTER triggers on the rows
--    that change it (a bill posted or voided, a payment, an allocation or its reversal, a refund, a revaluation row)
--    keep it in the same transaction (an UPDATE that adds, re-read after a row lock wait: concurrent writers of one
--    document never lose one another's amounts), and no API role can write it.
--  * finance.ap_aging(as_of, edges) reads the stored open_base of every document settled by then (or never settled)
--    and works out as of the date only the documents settled after it: as of today, one scan of the open rows. Same
--    answer as before (20270208010100): a bill's base less its allocations dated by then plus its revaluations dated
--    by then, nothing for a bill voided by then; a payment's credit likewise; a member sees vendors' documents and
--    their own claims and reimbursements only.
--  * finance.payable_open_amounts_refresh(org, document) (re)computes rows from the documents (the backfill below, a
--    trigger that finds no row); owner only.
-- The table holds no personal data (ids, dates, amounts; a claim's claimant is read from the claim, not kept here).

-- ---------------------------------------------------------------- the stored open amounts
CREATE TABLE finance.payable_open_amounts (
  org_id uuid NOT NULL,
  -- a bill's or expense claim's id, or a bill payment's
  document_id uuid NOT NULL,
  document_kind text NOT NULL CHECK (document_kind IN ('bill', 'expense_claim', 'payment')),
  -- the vendor of a bill or vendor payment; NULL for an expense claim or a reimbursement (the claimant is the party)
  vendor_id uuid,
  -- the bill or payment date: the document counts in an aging as of this date or later
  document_date date NOT NULL,
  -- what the days past due are counted from: a bill's due date, a payment's date (a payment's credit is 'current')
  aged_from date NOT NULL,
  -- the bill's base total; a payment's base value, negative (credit with the vendor or employee)
  base_amount numeric(20, 4) NOT NULL,
  -- base_amount less every settlement so far (allocations and their reversals; a payment's refunds), plus its
  -- revaluation rows; 0 once voided
  open_base numeric(20, 4) NOT NULL,
  -- the latest settlement or revaluation date; NULL: never settled. open_base is the open amount as of any date from
  -- here on; before it the aging works the amount out from the settlements
  settled_through date,
  voided_on date,
  PRIMARY KEY (org_id, document_id)
);
CREATE INDEX payable_open_amounts_open_idx ON finance.payable_open_amounts (org_id, document_date)
  INCLUDE (document_kind, vendor_id, aged_from, settled_through, open_base) WHERE open_base <> 0;
CREATE INDEX payable_open_amounts_settled_idx ON finance.payable_open_amounts (org_id, settled_through)
  INCLUDE (document_date, document_id) WHERE settled_through IS NOT NULL;

REVOKE ALL ON finance.payable_open_amounts FROM PUBLIC, anon, authenticated, service_role;
GRANT SELECT ON finance.payable_open_amounts TO authenticated, service_role, omnizen_analyst;
ALTER TABLE finance.payable_open_amounts ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY payable_open_amounts_read ON finance.payable_open_amounts FOR SELECT TO authenticated, omnizen_analyst
  USING (org_id = public.auth_org_id());
-- as the documents' (20270206000100): a member reads vendors' documents and their own claims and reimbursements only
CREATE POLICY payable_open_amounts_member_own_claims ON finance.payable_open_amounts AS RESTRICTIVE FOR SELECT TO authenticated
  USING (vendor_id IS NOT NULL OR NOT public.auth_has_role('member')
    OR finance.bill_readable(org_id, document_id) OR finance.bill_payment_readable(org_id, document_id));
CREATE POLICY payable_open_amounts_service ON finance.payable_open_amounts FOR SELECT TO service_role USING (true);
COMMENT ON TABLE finance.payable_open_amounts IS
  'Per posted bill or expense claim and bill payment: base value, open base after every settlement and revaluation so far, and the last such date (kept by triggers; read by finance.ap_aging)';

-- ---------------------------------------------------------------- (re)computing rows from the documents
-- Owner only (no grant; security_invoker): what the rows are, from the bills, payments, allocations, refunds and
-- revaluation rows as they are.
CREATE VIEW finance.payable_open_amounts_source WITH (security_invoker = true) AS
SELECT b.org_id, b.id AS document_id, b.kind AS document_kind, b.vendor_id, b.bill_date AS document_date, b.due_date AS aged_from,
  coalesce(b.base_total, 0) AS base_amount,
  CASE WHEN b.voided_on IS NULL THEN coalesce(b.base_total, 0) - coalesce(s.base, 0) + coalesce(v.base, 0) ELSE 0 END AS open_base,
  greatest(s.last, b.voided_on, v.last) AS settled_through, b.voided_on
FROM finance.bills b
LEFT JOIN LATERAL (
  SELECT sum(a.bill_base_amount) AS base, max(a.allocation_date) AS last FROM finance.bill_allocations a
  WHERE a.org_id = b.org_id AND a.bill_id = b.id) s ON true
LEFT JOIN LATERAL (
  SELECT sum(x.base_delta) AS base, max(x.revaluation_date) AS last FROM finance.fx_revaluation_items x
  WHERE x.org_id = b.org_id AND x.document_id = b.id AND x.subledger = 'payables') v ON true
WHERE b.journal_entry_id IS NOT NULL
UNION ALL
SELECT p.org_id, p.id, 'payment', p.vendor_id, p.payment_date, p.payment_date, -p.base_amount,
  -p.base_amount + coalesce(a.base, 0) + coalesce(r.base, 0) + coalesce(v.base, 0), greatest(a.last, r.last, v.last), NULL::date
FROM finance.bill_payments p
LEFT JOIN LATERAL (
  SELECT sum(x.payment_base_amount) AS base, max(x.allocation_date) AS last FROM finance.bill_allocations x
  WHERE x.org_id = p.org_id AND x.payment_id = p.id) a ON true
LEFT JOIN LATERAL (
  SELECT sum(x.payment_base_amount) AS base, max(x.refund_date) AS last FROM finance.bill_payment_refunds x
  WHERE x.org_id = p.org_id AND x.payment_id = p.id) r ON true
LEFT JOIN LATERAL (
  SELECT sum(x.base_delta) AS base, max(x.revaluation_date) AS last FROM finance.fx_revaluation_items x
  WHERE x.org_id = p.org_id AND x.document_id = p.id AND x.subledger = 'payables') v ON true;
REVOKE ALL ON finance.payable_open_amounts_source FROM PUBLIC, anon, authenticated, service_role;

-- Upserts the rows of document `p_document_id` of `p_org_id`, or (document NULL) of every document of `p_org_id` (of
-- every organization when that is NULL too). Not SECURITY DEFINER, owner only: the triggers below and the backfill.
CREATE FUNCTION finance.payable_open_amounts_refresh(p_org_id uuid, p_document_id uuid DEFAULT NULL) RETURNS void
LANGUAGE plpgsql SET search_path = '' AS $$
BEGIN
  INSERT INTO finance.payable_open_amounts AS t
    (org_id, document_id, document_kind, vendor_id, document_date, aged_from, base_amount, open_base, settled_through, voided_on)
  SELECT v.org_id, v.document_id, v.document_kind, v.vendor_id, v.document_date, v.aged_from, v.base_amount, v.open_base, v.settled_through, v.voided_on
  FROM finance.payable_open_amounts_source v
  WHERE (p_org_id IS NULL OR v.org_id = p_org_id) AND (p_document_id IS NULL OR v.document_id = p_document_id)
  ON CONFLICT (org_id, document_id) DO UPDATE SET document_kind = excluded.document_kind, vendor_id = excluded.vendor_id,
    document_date = excluded.document_date, aged_from = excluded.aged_from, base_amount = excluded.base_amount,
    open_base = excluded.open_base, settled_through = excluded.settled_through, voided_on = excluded.voided_on;
END
$$;
REVOKE ALL ON FUNCTION finance.payable_open_amounts_refresh(uuid, uuid) FROM PUBLIC, anon, authenticated, service_role;

-- ---------------------------------------------------------------- the triggers that keep them
-- SECURITY DEFINER (the table has no write grant): each writes only rows of the organization of the row that fired it,
-- which that row's own policies admitted; when a tenant is set for the transaction the row must be of it.

-- a bill or claim posted (inserted posted, or its journal entry set): its row from the bill alone (nothing settles an
-- unposted bill); voided: nothing open from the void date on (a bill's void is final)
CREATE FUNCTION finance.payable_open_amounts_bill() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
BEGIN
  IF NEW.org_id IS DISTINCT FROM coalesce(public.auth_org_id(), NEW.org_id) THEN
    RAISE EXCEPTION 'a payable of organization % written in a transaction of organization %', NEW.org_id, public.auth_org_id() USING ERRCODE = '42501';
  END IF;
  IF TG_OP = 'INSERT' OR OLD.journal_entry_id IS NULL THEN
    INSERT INTO finance.payable_open_amounts
      (org_id, document_id, document_kind, vendor_id, document_date, aged_from, base_amount, open_base, settled_through, voided_on)
    VALUES (NEW.org_id, NEW.id, NEW.kind, NEW.vendor_id, NEW.bill_date, NEW.due_date, coalesce(NEW.base_total, 0),
      CASE WHEN NEW.voided_on IS NULL THEN coalesce(NEW.base_total, 0) ELSE 0 END, NEW.voided_on, NEW.voided_on)
    ON CONFLICT (org_id, document_id) DO NOTHING;
  ELSE
    UPDATE finance.payable_open_amounts o
    SET open_base = 0, settled_through = greatest(o.settled_through, NEW.voided_on), voided_on = NEW.voided_on
    WHERE o.org_id = NEW.org_id AND o.document_id = NEW.id;
    IF NOT FOUND THEN
      PERFORM finance.payable_open_amounts_refresh(NEW.org_id, NEW.id);
    END IF;
  END IF;
  RETURN NULL;
END
$$;
CREATE TRIGGER bills_open_amounts_insert AFTER INSERT ON finance.bills FOR EACH ROW
  WHEN (NEW.journal_entry_id IS NOT NULL) EXECUTE FUNCTION finance.payable_open_amounts_bill();
CREATE TRIGGER bills_open_amounts_update AFTER UPDATE OF journal_entry_id, voided_on ON finance.bills FOR EACH ROW
  WHEN (NEW.journal_entry_id IS NOT NULL AND (OLD.journal_entry_id IS NULL OR (OLD.voided_on IS NULL AND NEW.voided_on IS NOT NULL)))
  EXECUTE FUNCTION finance.payable_open_amounts_bill();

-- a payment made: its row (no settlement can exist yet: allocations and refunds reference it)
CREATE FUNCTION finance.payable_open_amounts_payment() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
BEGIN
  IF NEW.org_id IS DISTINCT FROM coalesce(public.auth_org_id(), NEW.org_id) THEN
    RAISE EXCEPTION 'a payable of organization % written in a transaction of organization %', NEW.org_id, public.auth_org_id() USING ERRCODE = '42501';
  END IF;
  INSERT INTO finance.payable_open_amounts (org_id, document_id, document_kind, vendor_id, document_date, aged_from, base_amount, open_base)
  VALUES (NEW.org_id, NEW.id, 'payment', NEW.vendor_id, NEW.payment_date, NEW.payment_date, -NEW.base_amount, -NEW.base_amount)
  ON CONFLICT (org_id, document_id) DO NOTHING;
  RETURN NULL;
END
$$;
CREATE TRIGGER bill_payments_open_amounts AFTER INSERT ON finance.bill_payments FOR EACH ROW
  EXECUTE FUNCTION finance.payable_open_amounts_payment();

-- an allocation (or its reversal, negative): the bill's open base less its bill_base_amount, the payment's credit
-- (negative) less its payment_base_amount (adding it brings the credit towards zero)
CREATE FUNCTION finance.payable_open_amounts_allocation() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
BEGIN
  IF NEW.org_id IS DISTINCT FROM coalesce(public.auth_org_id(), NEW.org_id) THEN
    RAISE EXCEPTION 'a payable of organization % written in a transaction of organization %', NEW.org_id, public.auth_org_id() USING ERRCODE = '42501';
  END IF;
  UPDATE finance.payable_open_amounts o
  SET open_base = CASE WHEN o.voided_on IS NULL THEN o.open_base - NEW.bill_base_amount ELSE 0 END,
    settled_through = greatest(o.settled_through, NEW.allocation_date)
  WHERE o.org_id = NEW.org_id AND o.document_id = NEW.bill_id;
  IF NOT FOUND THEN
    PERFORM finance.payable_open_amounts_refresh(NEW.org_id, NEW.bill_id);
  END IF;
  UPDATE finance.payable_open_amounts o
  SET open_base = o.open_base + NEW.payment_base_amount, settled_through = greatest(o.settled_through, NEW.allocation_date)
  WHERE o.org_id = NEW.org_id AND o.document_id = NEW.payment_id;
  IF NOT FOUND THEN
    PERFORM finance.payable_open_amounts_refresh(NEW.org_id, NEW.payment_id);
  END IF;
  RETURN NULL;
END
$$;
CREATE TRIGGER bill_allocations_open_amounts AFTER INSERT ON finance.bill_allocations FOR EACH ROW
  EXECUTE FUNCTION finance.payable_open_amounts_allocation();

-- a refund of a payment's credit: the credit less the refund's payment_base_amount
CREATE FUNCTION finance.payable_open_amounts_refund() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
BEGIN
  IF NEW.org_id IS DISTINCT FROM coalesce(public.auth_org_id(), NEW.org_id) THEN
    RAISE EXCEPTION 'a payable of organization % written in a transaction of organization %', NEW.org_id, public.auth_org_id() USING ERRCODE = '42501';
  END IF;
  UPDATE finance.payable_open_amounts o
  SET open_base = o.open_base + NEW.payment_base_amount, settled_through = greatest(o.settled_through, NEW.refund_date)
  WHERE o.org_id = NEW.org_id AND o.document_id = NEW.payment_id;
  IF NOT FOUND THEN
    PERFORM finance.payable_open_amounts_refresh(NEW.org_id, NEW.payment_id);
  END IF;
  RETURN NULL;
END
$$;
CREATE TRIGGER bill_payment_refunds_open_amounts AFTER INSERT ON finance.bill_payment_refunds FOR EACH ROW
  EXECUTE FUNCTION finance.payable_open_amounts_refund();

-- a revaluation row of a payable: the document's open base moves by it, except a voided bill's (it keeps nothing open,
-- as 20270208190100 for receivables)
CREATE FUNCTION finance.payable_open_amounts_revaluation() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
BEGIN
  IF NEW.org_id IS DISTINCT FROM coalesce(public.auth_org_id(), NEW.org_id) THEN
    RAISE EXCEPTION 'a payable of organization % written in a transaction of organization %', NEW.org_id, public.auth_org_id() USING ERRCODE = '42501';
  END IF;
  UPDATE finance.payable_open_amounts o
  SET open_base = CASE WHEN o.voided_on IS NULL THEN o.open_base + NEW.base_delta ELSE 0 END,
    settled_through = greatest(o.settled_through, NEW.revaluation_date)
  WHERE o.org_id = NEW.org_id AND o.document_id = NEW.document_id;
  IF NOT FOUND THEN
    PERFORM finance.payable_open_amounts_refresh(NEW.org_id, NEW.document_id);
  END IF;
  RETURN NULL;
END
$$;
CREATE TRIGGER fx_revaluation_items_payable_open_amounts AFTER INSERT ON finance.fx_revaluation_items FOR EACH ROW
  WHEN (NEW.subledger = 'payables') EXECUTE FUNCTION finance.payable_open_amounts_revaluation();

REVOKE ALL ON FUNCTION finance.payable_open_amounts_bill(), finance.payable_open_amounts_payment(), finance.payable_open_amounts_allocation(),
  finance.payable_open_amounts_refund(), finance.payable_open_amounts_revaluation() FROM PUBLIC, anon, authenticated, service_role;

-- the backfill: every organization's documents as they are
SELECT finance.payable_open_amounts_refresh(NULL);

-- ---------------------------------------------------------------- the aging over the stored amounts
-- Same answer as 20270208010100 (per party and bucket): documents dated by `p_as_of`; those settled by then (or never)
-- with their stored open base, those settled (or revalued) later with their base less the settlements and plus the
-- revaluation rows dated by then (nothing for a bill voided by then), each looked up by document. A claim's or
-- reimbursement's claimant is read from the document (open ones only).
CREATE OR REPLACE FUNCTION finance.ap_aging(p_as_of date, p_edges integer[] DEFAULT '{30,60,90}')
RETURNS TABLE (party_type text, party_id text, party_name text, bucket text, amount numeric)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
  WITH late AS MATERIALIZED (
    SELECT o.document_id FROM finance.payable_open_amounts o
    WHERE o.org_id = (SELECT public.auth_org_id()) AND o.settled_through > p_as_of AND o.document_date <= p_as_of),
  late_items AS MATERIALIZED (
    SELECT o.document_id, o.document_kind, o.vendor_id, o.aged_from, CASE
      WHEN o.document_kind = 'payment' THEN o.base_amount
        + coalesce((SELECT sum(a.payment_base_amount) FROM finance.bill_allocations a
                    WHERE a.org_id = o.org_id AND a.payment_id = o.document_id AND a.allocation_date <= p_as_of), 0)
        + coalesce((SELECT sum(r.payment_base_amount) FROM finance.bill_payment_refunds r
                    WHERE r.org_id = o.org_id AND r.payment_id = o.document_id AND r.refund_date <= p_as_of), 0)
        + coalesce((SELECT sum(x.base_delta) FROM finance.fx_revaluation_items x
                    WHERE x.org_id = o.org_id AND x.document_id = o.document_id AND x.subledger = 'payables' AND x.revaluation_date <= p_as_of), 0)
      WHEN o.voided_on <= p_as_of THEN 0
      ELSE o.base_amount - coalesce((SELECT sum(a.bill_base_amount) FROM finance.bill_allocations a
                                     WHERE a.org_id = o.org_id AND a.bill_id = o.document_id AND a.allocation_date <= p_as_of), 0)
        + coalesce((SELECT sum(x.base_delta) FROM finance.fx_revaluation_items x
                    WHERE x.org_id = o.org_id AND x.document_id = o.document_id AND x.subledger = 'payables' AND x.revaluation_date <= p_as_of), 0) END AS base
    FROM late l CROSS JOIN LATERAL (
      SELECT o.* FROM finance.payable_open_amounts o
      WHERE o.org_id = (SELECT public.auth_org_id()) AND o.document_id = l.document_id LIMIT 1) o),
  items AS (
    SELECT o.document_id, o.document_kind, o.vendor_id, o.aged_from, o.open_base AS base
    FROM finance.payable_open_amounts o
    WHERE o.org_id = (SELECT public.auth_org_id()) AND o.open_base <> 0 AND o.document_date <= p_as_of
      AND (o.settled_through IS NULL OR o.settled_through <= p_as_of)
    UNION ALL
    SELECT li.document_id, li.document_kind, li.vendor_id, li.aged_from, li.base FROM late_items li WHERE li.base <> 0),
  parties AS (
    SELECT CASE WHEN it.vendor_id IS NOT NULL THEN 'vendor' ELSE 'employee' END AS party_type, coalesce(it.vendor_id::text, c.claimant_id) AS party_id,
      CASE WHEN it.document_kind = 'payment' THEN 'current' ELSE finance.aging_bucket(p_as_of - it.aged_from, p_edges) END AS bucket, it.base
    FROM items it LEFT JOIN LATERAL (
      SELECT b.claimant_id FROM finance.bills b
      WHERE it.vendor_id IS NULL AND it.document_kind <> 'payment' AND b.org_id = (SELECT public.auth_org_id()) AND b.id = it.document_id
      UNION ALL
      SELECT p.claimant_id FROM finance.bill_payments p
      WHERE it.vendor_id IS NULL AND it.document_kind = 'payment' AND p.org_id = (SELECT public.auth_org_id()) AND p.id = it.document_id) c ON true
    WHERE it.vendor_id IS NOT NULL OR NOT (SELECT public.auth_has_role('member')) OR c.claimant_id = (SELECT public.auth_user_id()))
  SELECT g.party_type, g.party_id, v.name, g.bucket, g.amount
  FROM (SELECT pt.party_type, pt.party_id, pt.bucket, sum(pt.base) AS amount FROM parties pt GROUP BY 1, 2, 3) g
  LEFT JOIN finance.vendors v ON g.party_type = 'vendor' AND v.org_id = (SELECT public.auth_org_id()) AND v.id::text = g.party_id
$$;
