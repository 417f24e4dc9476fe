-- AR aging from stored open amounts (issue 15: p99 ≤ 200 ms for 100,000 open invoices over 5,000 customers).
--
-- finance.ar_aging_index worked out every document's open amount as of the date from all its settlements: a scan
-- of the invoices hash-joined with every allocation (and every payment with its allocations and refunds) summed per
-- document, ~250 ms of CPU for the benchmark's organization, most of it the per-document sums. Now:
--  * finance.receivable_open_amounts keeps one row per issued invoice and per customer payment: its base value
--    (base_amount; a payment's negative), what is open of it once all its settlements so far are counted
--    (open_base), and the date of the last of them (settled_through: the latest allocation, refund or void date).
--    It is derived data only: AFTER triggers on the rows that change it (an invoice issued or voided, a payment, an
--    allocation, a refund) keep it in the same transaction, and no API role can write it. Allocations and refunds
--    move open_base by their own base (an UPDATE that adds, re-read after a row lock wait, so concurrent
--    writers of one document never lose one another's amounts); issue writes the invoice's row from the invoice
--    alone, void leaves nothing open from its date.
--  * finance.ar_aging_index(as_of, edges) reads the stored open_base of every document settled by then (or never
--    settled) and works out as of the date only the documents settled after it. As of today that is none: one scan of
--    the open rows grouped per customer and bucket. The buckets still add up to the AR control balance at the
--    date: each part is the same sum as before (a document's base less its settlements dated by then, nothing for an
--    invoice voided by then), only read from where it is stored when no settlement is later than the date.
--  * finance.receivable_open_amounts_refresh(org, document): (re)computes rows from the documents and settlements:
--    the backfill below, issue and void, a trigger that finds no row (documents written with triggers off), and a
--    bulk load (the benchmark) calls it as the owner. No API role may execute it.

-- ---------------------------------------------------------------- the stored open amounts
CREATE TABLE finance.receivable_open_amounts (
  org_id uuid NOT NULL,
  -- an invoice's id (kind 'invoice', never a credit note) or a customer payment's
  document_id uuid NOT NULL,
  document_kind text NOT NULL CHECK (document_kind IN ('invoice', 'payment')),
  customer_id uuid NOT NULL,
  -- the invoice or payment date: the document counts in an aging as of this date or later
  document_date date NOT NULL,
  -- what the days past due are counted from: an invoice's due date, a payment's date
  aged_from date NOT NULL,
  -- the invoice's base total; a payment's base value, negative (customer credit)
  base_amount numeric(20, 4) NOT NULL,
  -- base_amount less the base every settlement so far took off it (allocations; a payment's refunds); 0 once voided
  open_base numeric(20, 4) NOT NULL,
  -- the latest settlement date (allocation, refund, void); NULL: never settled. open_base is the open amount as of
  -- any date from here on; before it the aging works the amount out from the settlements
  settled_through date,
  voided_on date,
  PRIMARY KEY (org_id, document_id)
);
-- the open rows with what the aging reads (index-only while the pages are all-visible)
CREATE INDEX receivable_open_amounts_open_idx ON finance.receivable_open_amounts (org_id, document_date)
  INCLUDE (customer_id, aged_from, settled_through, open_base) WHERE open_base <> 0;
-- the documents settled after a date (the aging's slow path)
CREATE INDEX receivable_open_amounts_settled_idx ON finance.receivable_open_amounts (org_id, settled_through)
  INCLUDE (document_date, document_id) WHERE settled_through IS NOT NULL;

REVOKE ALL ON finance.receivable_open_amounts FROM PUBLIC, anon, authenticated, service_role;
GRANT SELECT ON finance.receivable_open_amounts TO authenticated, service_role, omnizen_analyst;
ALTER TABLE finance.receivable_open_amounts ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY receivable_open_amounts_read ON finance.receivable_open_amounts FOR SELECT TO authenticated, omnizen_analyst
  USING (org_id = public.auth_org_id());
CREATE POLICY receivable_open_amounts_service ON finance.receivable_open_amounts FOR SELECT TO service_role USING (true);
COMMENT ON TABLE finance.receivable_open_amounts IS
  'Per issued invoice and customer payment: base value, open base after every settlement so far, and the last settlement date (kept by triggers; read by finance.ar_aging_index)';

-- ---------------------------------------------------------------- (re)computing rows from the documents
-- What the rows are, computed from the invoices, payments, allocations and refunds as they are. Owner only (no grant;
-- security_invoker): finance.receivable_open_amounts_refresh reads it, filtered to one organization or document.
CREATE VIEW finance.receivable_open_amounts_source WITH (security_invoker = true) AS
SELECT i.org_id, i.id AS document_id, 'invoice'::text AS document_kind, i.customer_id, i.invoice_date AS document_date,
  i.due_date AS aged_from, coalesce(i.base_total, 0) AS base_amount,
  CASE WHEN i.voided_on IS NULL THEN coalesce(i.base_total, 0) - coalesce(s.base, 0) ELSE 0 END AS open_base,
  greatest(s.last, i.voided_on) AS settled_through, i.voided_on
FROM finance.invoices i
LEFT JOIN LATERAL (
  SELECT sum(a.invoice_base) AS base, max(a.allocation_date) AS last FROM finance.receivable_allocations a
  WHERE a.org_id = i.org_id AND a.invoice_id = i.id) s ON true
WHERE i.kind = 'invoice' AND i.status <> 'draft'
UNION ALL
SELECT p.org_id, p.id, 'payment', p.customer_id, p.payment_date, p.payment_date, -round(p.amount * p.rate, c.minor_units),
  coalesce(a.base, 0) + coalesce(r.base, 0) - round(p.amount * p.rate, c.minor_units), greatest(a.last, r.last), NULL::date
FROM finance.customer_payments p
JOIN finance.settings st ON st.org_id = p.org_id JOIN finance.currencies c ON c.code = st.base_currency
LEFT JOIN LATERAL (
  SELECT sum(x.source_base) AS base, max(x.allocation_date) AS last FROM finance.receivable_allocations x
  WHERE x.org_id = p.org_id AND x.payment_id = p.id) a ON true
LEFT JOIN LATERAL (
  SELECT sum(x.source_base) AS base, max(x.refund_date) AS last FROM finance.customer_refunds x
  WHERE x.org_id = p.org_id AND x.payment_id = p.id) r ON true;
REVOKE ALL ON finance.receivable_open_amounts_source FROM PUBLIC, anon, authenticated, service_role;

-- Upserts the rows of document `p_document_id` of `p_org_id`, or (document NULL) of every document of `p_org_id`
-- (of every organization when that is NULL too). Not SECURITY DEFINER and executable by the owner only: the
-- triggers below (SECURITY DEFINER, running as the owner) and the owner's bulk loads (the benchmark) call it.
CREATE FUNCTION finance.receivable_open_amounts_refresh(p_org_id uuid, p_document_id uuid DEFAULT NULL) RETURNS void
LANGUAGE plpgsql SET search_path = '' AS $$
BEGIN
  IF p_document_id IS NOT NULL THEN
    INSERT INTO finance.receivable_open_amounts AS t
      (org_id, document_id, document_kind, customer_id, document_date, aged_from, base_amount, open_base, settled_through, voided_on)
    SELECT v.org_id, v.document_id, v.document_kind, v.customer_id, v.document_date, v.aged_from, v.base_amount, v.open_base, v.settled_through, v.voided_on
    FROM finance.receivable_open_amounts_source v WHERE v.org_id = p_org_id AND v.document_id = p_document_id
    ON CONFLICT (org_id, document_id) DO UPDATE SET customer_id = excluded.customer_id, document_date = excluded.document_date,
      aged_from = excluded.aged_from, base_amount = excluded.base_amount, open_base = excluded.open_base,
      settled_through = excluded.settled_through, voided_on = excluded.voided_on;
  ELSE
    INSERT INTO finance.receivable_open_amounts AS t
      (org_id, document_id, document_kind, customer_id, document_date, aged_from, base_amount, open_base, settled_through, voided_on)
    SELECT v.org_id, v.document_id, v.document_kind, v.customer_id, v.document_date, v.aged_from, v.base_amount, v.open_base, v.settled_through, v.voided_on
    FROM finance.receivable_open_amounts_source v WHERE p_org_id IS NULL OR v.org_id = p_org_id
    ON CONFLICT (org_id, document_id) DO UPDATE SET customer_id = excluded.customer_id, document_date = excluded.document_date,
      aged_from = excluded.aged_from, base_amount = excluded.base_amount, open_base = excluded.open_base,
      settled_through = excluded.settled_through, voided_on = excluded.voided_on;
  END IF;
END
$$;
REVOKE ALL ON FUNCTION finance.receivable_open_amounts_refresh(uuid, uuid) FROM PUBLIC, anon, authenticated, service_role;

-- ---------------------------------------------------------------- the triggers that keep them
-- SECURITY DEFINER (the table has no write grant): each writes only rows of the organization of the row that fired
-- it, which that row's own policies admitted; when a tenant is set for the transaction the row must be of it
-- (checked inline: a helper function with its own SET clause cost more than the insert it guards).

-- an invoice issued (inserted issued, or draft → issued): its row from the invoice alone (a draft takes no
-- settlement: allocations and credit notes are refused on it); voided: nothing open from the void date on. Neither
-- reads another table, so a bulk insert of issued invoices costs one row each (a lookup planned while the table was
-- still empty would be a scan per row). The invoice's row lock, taken by the UPDATE that fired this, serializes
-- it with the allocations of the invoice.
CREATE FUNCTION finance.receivable_open_amounts_invoice() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
BEGIN
  IF NEW.org_id IS DISTINCT FROM coalesce(public.auth_org_id(), NEW.org_id) THEN
    RAISE EXCEPTION 'a receivable of organization % written in a transaction of organization %', NEW.org_id, public.auth_org_id() USING ERRCODE = '42501';
  END IF;
  IF TG_OP = 'INSERT' OR OLD.status = 'draft' THEN
    INSERT INTO finance.receivable_open_amounts
      (org_id, document_id, document_kind, customer_id, document_date, aged_from, base_amount, open_base, settled_through, voided_on)
    VALUES (NEW.org_id, NEW.id, 'invoice', NEW.customer_id, NEW.invoice_date, NEW.due_date, coalesce(NEW.base_total, 0),
      CASE WHEN NEW.voided_on IS NULL THEN coalesce(NEW.base_total, 0) ELSE 0 END, NEW.voided_on, NEW.voided_on)
    ON CONFLICT (org_id, document_id) DO NOTHING;
  ELSE
    -- only a void changes voided_on of an issued invoice (finance.invoice_guard: a void invoice changes no more)
    UPDATE finance.receivable_open_amounts o
    SET open_base = 0, settled_through = greatest(o.settled_through, NEW.voided_on), voided_on = NEW.voided_on
    WHERE o.org_id = NEW.org_id AND o.document_id = NEW.id;
    IF NOT FOUND THEN
      PERFORM finance.receivable_open_amounts_refresh(NEW.org_id, NEW.id);
    END IF;
  END IF;
  RETURN NULL;
END
$$;
CREATE TRIGGER invoices_open_amounts_insert AFTER INSERT ON finance.invoices FOR EACH ROW
  WHEN (NEW.kind = 'invoice' AND NEW.status <> 'draft') EXECUTE FUNCTION finance.receivable_open_amounts_invoice();
CREATE TRIGGER invoices_open_amounts_update AFTER UPDATE OF status, voided_on ON finance.invoices FOR EACH ROW
  WHEN (NEW.kind = 'invoice' AND NEW.status <> 'draft' AND (OLD.status = 'draft' OR (OLD.voided_on IS NULL AND NEW.voided_on IS NOT NULL)))
  EXECUTE FUNCTION finance.receivable_open_amounts_invoice();

-- a payment received: its row (no settlement can exist yet: allocations and refunds reference it)
CREATE FUNCTION finance.receivable_open_amounts_payment() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  v_base numeric;
BEGIN
  IF NEW.org_id IS DISTINCT FROM coalesce(public.auth_org_id(), NEW.org_id) THEN
    RAISE EXCEPTION 'a receivable of organization % written in a transaction of organization %', NEW.org_id, public.auth_org_id() USING ERRCODE = '42501';
  END IF;
  SELECT -round(NEW.amount * NEW.rate, c.minor_units) INTO v_base
  FROM finance.settings st JOIN finance.currencies c ON c.code = st.base_currency WHERE st.org_id = NEW.org_id;
  -- no books (no base currency): no row, as the source view and the aging have none
  IF v_base IS NOT NULL THEN
    INSERT INTO finance.receivable_open_amounts (org_id, document_id, document_kind, customer_id, document_date, aged_from, base_amount, open_base)
    VALUES (NEW.org_id, NEW.id, 'payment', NEW.customer_id, NEW.payment_date, NEW.payment_date, v_base, v_base)
    ON CONFLICT (org_id, document_id) DO NOTHING;
  END IF;
  RETURN NULL;
END
$$;
CREATE TRIGGER customer_payments_open_amounts AFTER INSERT ON finance.customer_payments FOR EACH ROW
  EXECUTE FUNCTION finance.receivable_open_amounts_payment();

-- an allocation (or its reversal, negative): the invoice's open base less its invoice_base, the payment's credit less
-- its source_base (the payment's open base is negative: adding source_base brings it towards zero)
CREATE FUNCTION finance.receivable_open_amounts_allocation() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
BEGIN
  IF NEW.org_id IS DISTINCT FROM coalesce(public.auth_org_id(), NEW.org_id) THEN
    RAISE EXCEPTION 'a receivable of organization % written in a transaction of organization %', NEW.org_id, public.auth_org_id() USING ERRCODE = '42501';
  END IF;
  UPDATE finance.receivable_open_amounts o
  SET open_base = o.open_base - NEW.invoice_base, settled_through = greatest(o.settled_through, NEW.allocation_date)
  WHERE o.org_id = NEW.org_id AND o.document_id = NEW.invoice_id;
  IF NOT FOUND THEN
    PERFORM finance.receivable_open_amounts_refresh(NEW.org_id, NEW.invoice_id);
  END IF;
  IF NEW.payment_id IS NOT NULL THEN
    UPDATE finance.receivable_open_amounts o
    SET open_base = o.open_base + NEW.source_base, settled_through = greatest(o.settled_through, NEW.allocation_date)
    WHERE o.org_id = NEW.org_id AND o.document_id = NEW.payment_id;
    IF NOT FOUND THEN
      PERFORM finance.receivable_open_amounts_refresh(NEW.org_id, NEW.payment_id);
    END IF;
  END IF;
  RETURN NULL;
END
$$;
CREATE TRIGGER receivable_allocations_open_amounts AFTER INSERT ON finance.receivable_allocations FOR EACH ROW
  EXECUTE FUNCTION finance.receivable_open_amounts_allocation();

-- a refund of customer credit: the payment's credit less the refund's source_base
CREATE FUNCTION finance.receivable_open_amounts_refund() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
BEGIN
  IF NEW.org_id IS DISTINCT FROM coalesce(public.auth_org_id(), NEW.org_id) THEN
    RAISE EXCEPTION 'a receivable of organization % written in a transaction of organization %', NEW.org_id, public.auth_org_id() USING ERRCODE = '42501';
  END IF;
  UPDATE finance.receivable_open_amounts o
  SET open_base = o.open_base + NEW.source_base, settled_through = greatest(o.settled_through, NEW.refund_date)
  WHERE o.org_id = NEW.org_id AND o.document_id = NEW.payment_id;
  IF NOT FOUND THEN
    PERFORM finance.receivable_open_amounts_refresh(NEW.org_id, NEW.payment_id);
  END IF;
  RETURN NULL;
END
$$;
CREATE TRIGGER customer_refunds_open_amounts AFTER INSERT ON finance.customer_refunds FOR EACH ROW
  EXECUTE FUNCTION finance.receivable_open_amounts_refund();

REVOKE ALL ON FUNCTION finance.receivable_open_amounts_invoice(), finance.receivable_open_amounts_payment(),
  finance.receivable_open_amounts_allocation(), finance.receivable_open_amounts_refund() FROM PUBLIC, anon, authenticated, service_role;

-- the backfill: every organization's documents as they are
SELECT finance.receivable_open_amounts_refresh(NULL);

-- ---------------------------------------------------------------- the as-of pass over the stored amounts
-- Same answer as before (per customer and bucket position; see 20270111000100): documents dated by `p_as_of`;
-- those settled by then (or never) with their stored open base, those settled later with their base less the
-- settlements dated by then (nothing for an invoice voided by then), each looked up by document.
CREATE OR REPLACE FUNCTION finance.ar_aging_index(p_as_of date, p_edges integer[] DEFAULT '{30,60,90}')
RETURNS TABLE (customer_id uuid, bucket_index integer, amount numeric)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' SET work_mem = '64MB' SET random_page_cost = 1.1 SET jit = off AS $$
  -- the documents dated by then and settled after (index-only), then each one's amount as of then, worked out once
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
      WHEN o.voided_on <= p_as_of THEN 0
      ELSE o.base_amount - coalesce((SELECT sum(a.invoice_base) FROM finance.receivable_allocations a
                                     WHERE a.org_id = o.org_id AND a.invoice_id = o.document_id AND a.allocation_date <= p_as_of), 0) END AS base
    -- LIMIT 1: looked up by key per late document (a few), never a join that reads every row
    FROM late l CROSS JOIN LATERAL (
      SELECT o.* FROM finance.receivable_open_amounts o
      WHERE o.org_id = (SELECT public.auth_org_id()) AND o.document_id = l.document_id LIMIT 1) o),
  items AS (
    -- settled by then, or never: the stored open amount
    SELECT o.customer_id, o.aged_from, o.open_base AS base
    FROM finance.receivable_open_amounts o
    WHERE o.org_id = (SELECT public.auth_org_id()) AND o.open_base <> 0 AND o.document_date <= p_as_of
      AND (o.settled_through IS NULL OR o.settled_through <= p_as_of)
    UNION ALL
    SELECT li.customer_id, li.aged_from, li.base FROM late_items li WHERE li.base <> 0)
  -- the position of finance.aging_bucket's label: width_bucket(days - 1, edges) edges lie below days
  SELECT it.customer_id, CASE WHEN p_as_of - it.aged_from <= 0 THEN 0 ELSE width_bucket(p_as_of - it.aged_from - 1, p_edges) + 1 END, sum(it.base)
  FROM items it GROUP BY 1, 2
$$;
