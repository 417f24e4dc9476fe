-- Payables, from an accountant's review:
--  1. One vendor's bill is entered once: a second live (not voided) bill of the same vendor with the same vendor bill
--     number (case and surrounding blanks ignored) is refused, so it cannot be posted and paid twice. The service
--     checks first (naming the bill there is, payables.duplicate_bill_number); this index is the backstop.
--  2. A posted bill with nothing allocated to it (every allocation reversed, or none) can be voided: the service posts
--     the reversal of its entry (finance.journal_entries.reverses_entry_id) and records it here, like an invoice's void.
--     From the void date on it leaves the AP aging (the AP account carries it no more).
--  3. A bill payment retried with its Idempotency-Key is recorded once.

-- ---------------------------------------------------------------- 1. one live bill per vendor and bill number
-- Bills entered twice before this migration stay as they are (the index could not be built over them): all but the
-- first of each such group are marked, and the index leaves the marked ones out. Voiding one of them is how an
-- accountant cleans up; a marked draft that is edited is checked again (the service clears the mark).
ALTER TABLE finance.bills ADD COLUMN legacy_duplicate_number boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN finance.bills.legacy_duplicate_number IS
  'true: a second live bill of the vendor with this bill number, entered before the number was unique per vendor (20270207700100); left out of bills_vendor_number_key';
-- a posted bill never changes (finance.guard_bill): the mark is set with the guard off for this one statement
ALTER TABLE finance.bills DISABLE TRIGGER bills_guard;
UPDATE finance.bills b SET legacy_duplicate_number = true
FROM (
  SELECT id, org_id, row_number() OVER (PARTITION BY org_id, vendor_id, lower(btrim(bill_number)) ORDER BY created_at, id) AS n
  FROM finance.bills WHERE kind = 'bill' AND bill_number IS NOT NULL AND status <> 'voided'
) d
WHERE d.org_id = b.org_id AND d.id = b.id AND d.n > 1;
ALTER TABLE finance.bills ENABLE TRIGGER bills_guard;

CREATE UNIQUE INDEX bills_vendor_number_key ON finance.bills (org_id, vendor_id, lower(btrim(bill_number)))
  WHERE kind = 'bill' AND bill_number IS NOT NULL AND status <> 'voided' AND NOT legacy_duplicate_number;

-- ---------------------------------------------------------------- 2. voiding a posted bill
ALTER TABLE finance.bills ADD COLUMN voided_on date, ADD COLUMN void_entry_id uuid,
  ADD FOREIGN KEY (org_id, void_entry_id) REFERENCES finance.journal_entries(org_id, id);
COMMENT ON COLUMN finance.bills.voided_on IS 'A posted bill voided: the date of the reversal of its entry; null otherwise';
COMMENT ON COLUMN finance.bills.void_entry_id IS 'A posted bill voided: the entry reversing its posting; null otherwise';
-- a posted bill carries its posting; a voided one keeps it (and its reversal) when it had been posted
ALTER TABLE finance.bills DROP CONSTRAINT bills_check2;
ALTER TABLE finance.bills ADD CONSTRAINT bills_posting_check
  CHECK ((journal_entry_id IS NOT NULL AND rate IS NOT NULL AND base_total IS NOT NULL AND ap_account_id IS NOT NULL)
    = (status = 'posted' OR (status = 'voided' AND void_entry_id IS NOT NULL)));
ALTER TABLE finance.bills ADD CONSTRAINT bills_void_check CHECK ((void_entry_id IS NULL) = (voided_on IS NULL) AND (void_entry_id IS NULL OR status = 'voided'));

-- A posted bill changes once more, to voided, and only so: nothing but the status, the void date and the void entry
-- change, that entry reverses the bill's own, and nothing is allocated to the bill (net of reversals). Whoever writes
-- it (the API, a direct UPDATE as authenticated), the bill and the ledger stay in step.
CREATE OR REPLACE FUNCTION finance.guard_bill() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND OLD.status = 'posted' AND NEW.status = 'voided' AND NEW.void_entry_id IS NOT NULL
     AND (to_jsonb(NEW) - ARRAY['status', 'voided_on', 'void_entry_id', 'updated_at']) = (to_jsonb(OLD) - ARRAY['status', 'voided_on', 'void_entry_id', 'updated_at']) THEN
    IF NOT EXISTS (SELECT 1 FROM finance.journal_entries e
                   WHERE e.org_id = NEW.org_id AND e.id = NEW.void_entry_id AND e.reverses_entry_id = OLD.journal_entry_id AND e.entry_date = NEW.voided_on) THEN
      RAISE EXCEPTION 'bill %: the void entry must be the reversal of the bill''s entry, dated the void date', OLD.id USING ERRCODE = '23514';
    END IF;
    IF coalesce((SELECT sum(a.amount) FROM finance.bill_allocations a WHERE a.org_id = OLD.org_id AND a.bill_id = OLD.id), 0) <> 0 THEN
      RAISE EXCEPTION 'bill % has payments allocated: it cannot be voided', OLD.id USING ERRCODE = '23514';
    END IF;
    NEW.updated_at := now();
    RETURN NEW;
  END IF;
  IF OLD.status IN ('posted', 'submitted', 'voided') AND TG_OP = 'DELETE' OR OLD.status IN ('posted', 'voided') THEN
    RAISE EXCEPTION 'bill % is %: it cannot be changed or deleted', OLD.id, OLD.status USING ERRCODE = '42501';
  END IF;
  IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
  NEW.updated_at := now();
  RETURN NEW;
END
$$;
REVOKE ALL ON FUNCTION finance.guard_bill() FROM PUBLIC;

-- The AP aging as of a date counts a voided bill until its void date, as the AP account does (the reversal is dated
-- then). Otherwise the definition of 20270205000950_ap_aging_member_own_claims; privileges stay as granted there.
DROP INDEX finance.bills_aging_idx;
CREATE INDEX bills_aging_idx ON finance.bills (org_id, bill_date) INCLUDE (id, kind, vendor_id, claimant_id, due_date, base_total, voided_on)
  WHERE journal_entry_id IS NOT NULL;
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
    WHERE b.org_id = (SELECT public.auth_org_id()) AND b.journal_entry_id IS NOT NULL AND b.bill_date <= p_as_of
      AND (b.voided_on IS NULL OR b.voided_on > p_as_of)
      AND (b.kind = 'bill' OR NOT (SELECT public.auth_has_role('member')) OR b.claimant_id = (SELECT public.auth_user_id()))
    UNION ALL
    SELECT CASE WHEN p.vendor_id IS NOT NULL THEN 'vendor' ELSE 'employee' END, coalesce(p.vendor_id::text, p.claimant_id), 'current',
      -(p.base_amount - coalesce(u.base, 0))
    FROM finance.bill_payments p LEFT JOIN used u ON u.payment_id = p.id
    WHERE p.org_id = (SELECT public.auth_org_id()) AND p.payment_date <= p_as_of
      AND (p.vendor_id IS NOT NULL OR NOT (SELECT public.auth_has_role('member')) OR p.claimant_id = (SELECT public.auth_user_id())))
  SELECT g.party_type, g.party_id, v.name, g.bucket, g.amount
  FROM (SELECT it.party_type, it.party_id, it.bucket, sum(it.base) AS amount FROM items it WHERE it.base <> 0 GROUP BY 1, 2, 3) g
  LEFT JOIN finance.vendors v ON g.party_type = 'vendor' AND v.org_id = (SELECT public.auth_org_id()) AND v.id::text = g.party_id
$$;

-- ---------------------------------------------------------------- 3. a retried bill payment is recorded once
-- POST /payables/payments takes an optional Idempotency-Key header (README "When a dependency fails": clients retry
-- writes with it), as receivables' payments do (20270207600200): the key is stored with the payment it recorded, with
-- the hash of the request (src/platform/http/idempotency-key.ts). The same key with the same request answers that
-- payment again and writes nothing; with another request it is a 409 (payables.idempotency_conflict). The service
-- serializes requests with one key (an advisory lock) and reads the key first; the unique index is the backstop.
-- Grants and RLS are unchanged: the columns are written by the payment's INSERT, and payments are never updated.
ALTER TABLE finance.bill_payments
  ADD COLUMN idempotency_key text CHECK (length(idempotency_key) BETWEEN 1 AND 200),
  ADD COLUMN request_hash text CHECK (request_hash ~ '^[0-9a-f]{64}$'),
  ADD CONSTRAINT bill_payments_idempotency_check CHECK ((idempotency_key IS NULL) = (request_hash IS NULL));
CREATE UNIQUE INDEX bill_payments_idempotency_key ON finance.bill_payments (org_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
COMMENT ON COLUMN finance.bill_payments.idempotency_key IS 'The Idempotency-Key the payment was recorded with (unique per organization); null: none';
COMMENT ON COLUMN finance.bill_payments.request_hash IS 'sha256 (hex) of the request recorded with idempotency_key: a retry with the key and another request is refused';
