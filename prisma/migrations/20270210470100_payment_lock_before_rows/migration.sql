-- A direct writer of a payment's use (an allocation or a refund inserted under the API role's policies, not through the
-- services) and a service using the same payment could deadlock. The services take the payment's advisory lock
-- (finance.payment:<id>, finance.bill_payment:<id>) first, then the invoices' or bills' rows FOR UPDATE. The direct
-- writer's statement first inserted its rows, whose foreign key checks took FOR KEY SHARE on the invoice or bill (and the
-- open amounts triggers updated the document's and the payment's rows), and only then did the statement's checks take the
-- payment's lock: holding the invoice it waited for the payment, while the service, holding the payment, waited (FOR
-- UPDATE conflicts with FOR KEY SHARE) for the invoice. PostgreSQL ends such a cycle by cancelling one of the two
-- (40P01). Reordering the statement checks alone could not help (the rows' own locks come before any AFTER trigger), so
-- a BEFORE INSERT row trigger on each of the four tables now takes the payment's advisory lock before the row is written,
-- before any lock the row takes: the services' order for whoever writes. A service holds the lock already (advisory
-- locks are re-entrant: this waits for nothing there); a direct writer waits for a service in flight to commit before it
-- touches the invoice or bill. The statement checks' own payment locks are then already held; receivables' two
-- allocation checks are also rewritten to name the payments before the invoices (payables' do already), so each of them
-- reads in the services' order on its own.
--
-- A refund's currency and party were checked only by the services (which copy them from the payment): a refund
-- inserted directly could name another currency (or, in receivables, another customer) than its payment, and the aging
-- and the customer's statements would count it against a credit it does not take from. The same row triggers refuse
-- that (SQLSTATE 23514, the HINT naming the code the services answer a payment and a document apart with:
-- receivables.currency_mismatch, receivables.wrong_customer, payables.currency_mismatch; no service path reaches them,
-- the services write the payment's own values). bill_payment_refunds has no party column (the payment's vendor or
-- claimant is the refund's): its currency is all there is to check. A payment row is never updated, so what the trigger
-- reads of it stays true until commit.
--
-- The functions run as the caller (not SECURITY DEFINER): the payment they read is the inserted row's own
-- organization's, which the caller's policies let it read; a payment it cannot see is left to the foreign key check.
-- No grant or policy changes; the functions are executable by no one (trigger functions). The tables have no other
-- BEFORE INSERT trigger.

-- ---------------------------------------------------------------- the payment's lock before the row
-- TG_ARGV[0]: the lock's prefix, as the services spell it
CREATE FUNCTION finance.lock_row_payment() RETURNS trigger LANGUAGE plpgsql SET search_path = '' AS $$
BEGIN
  IF NEW.payment_id IS NOT NULL THEN
    PERFORM pg_advisory_xact_lock(hashtext(TG_ARGV[0] || NEW.payment_id::text));
  END IF;
  RETURN NEW;
END
$$;
REVOKE ALL ON FUNCTION finance.lock_row_payment() FROM PUBLIC, anon, authenticated, service_role;
CREATE TRIGGER receivable_allocations_lock_payment BEFORE INSERT ON finance.receivable_allocations
  FOR EACH ROW EXECUTE FUNCTION finance.lock_row_payment('finance.payment:');
CREATE TRIGGER bill_allocations_lock_payment BEFORE INSERT ON finance.bill_allocations
  FOR EACH ROW EXECUTE FUNCTION finance.lock_row_payment('finance.bill_payment:');

-- ---------------------------------------------------------------- refunds: the lock, and the payment's currency and party
CREATE FUNCTION finance.check_customer_refund_payment() RETURNS trigger LANGUAGE plpgsql SET search_path = '' AS $$
DECLARE
  p record;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('finance.payment:' || NEW.payment_id::text));
  SELECT x.currency, x.customer_id INTO p FROM finance.customer_payments x WHERE x.org_id = NEW.org_id AND x.id = NEW.payment_id;
  IF NOT FOUND THEN
    RETURN NEW;
  END IF;
  IF NEW.currency IS DISTINCT FROM p.currency THEN
    RAISE EXCEPTION 'the refund of payment % is in %, the payment in %: a refund is in its payment''s currency', NEW.payment_id, NEW.currency, p.currency
      USING ERRCODE = '23514', HINT = 'receivables.currency_mismatch', DETAIL = jsonb_build_object('paymentId', NEW.payment_id)::text;
  END IF;
  IF NEW.customer_id IS DISTINCT FROM p.customer_id THEN
    RAISE EXCEPTION 'the refund of payment % names customer %, the payment customer %: a refund goes to its payment''s customer', NEW.payment_id, NEW.customer_id, p.customer_id
      USING ERRCODE = '23514', HINT = 'receivables.wrong_customer', DETAIL = jsonb_build_object('paymentId', NEW.payment_id)::text;
  END IF;
  RETURN NEW;
END
$$;
REVOKE ALL ON FUNCTION finance.check_customer_refund_payment() FROM PUBLIC, anon, authenticated, service_role;
CREATE TRIGGER customer_refunds_lock_payment BEFORE INSERT ON finance.customer_refunds
  FOR EACH ROW EXECUTE FUNCTION finance.check_customer_refund_payment();

CREATE FUNCTION finance.check_bill_refund_payment() RETURNS trigger LANGUAGE plpgsql SET search_path = '' AS $$
DECLARE
  p record;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('finance.bill_payment:' || NEW.payment_id::text));
  SELECT x.currency INTO p FROM finance.bill_payments x WHERE x.org_id = NEW.org_id AND x.id = NEW.payment_id;
  IF FOUND AND NEW.currency IS DISTINCT FROM p.currency THEN
    RAISE EXCEPTION 'the refund of payment % is in %, the payment in %: a refund is in its payment''s currency', NEW.payment_id, NEW.currency, p.currency
      USING ERRCODE = '23514', HINT = 'payables.currency_mismatch', DETAIL = jsonb_build_object('paymentId', NEW.payment_id)::text;
  END IF;
  RETURN NEW;
END
$$;
REVOKE ALL ON FUNCTION finance.check_bill_refund_payment() FROM PUBLIC, anon, authenticated, service_role;
CREATE TRIGGER bill_payment_refunds_lock_payment BEFORE INSERT ON finance.bill_payment_refunds
  FOR EACH ROW EXECUTE FUNCTION finance.check_bill_refund_payment();

-- ---------------------------------------------------------------- receivables' allocation checks: payments first
-- CREATE OR REPLACE keeps each function's owner, its (absent) grants and its trigger; only the two lock blocks swap.
CREATE OR REPLACE FUNCTION finance.check_receivable_allocations() RETURNS trigger LANGUAGE plpgsql SET search_path = '' AS $$
DECLARE
  v_payment uuid;
  bad record;
BEGIN
  -- the services' order: each payment's advisory lock, then the invoices' rows (in id order)
  FOR v_payment IN SELECT DISTINCT a.payment_id FROM added a WHERE a.payment_id IS NOT NULL ORDER BY 1 LOOP
    PERFORM pg_advisory_xact_lock(hashtext('finance.payment:' || v_payment::text));
  END LOOP;
  PERFORM 1 FROM finance.invoices i
  WHERE (i.org_id, i.id) IN (SELECT a.org_id, a.invoice_id FROM added a)
  ORDER BY i.org_id, i.id FOR NO KEY UPDATE;

  SELECT i.id, i.total, s.settled INTO bad
  FROM finance.invoices i
  CROSS JOIN LATERAL (SELECT coalesce(sum(x.amount), 0) AS settled FROM finance.receivable_allocations x
    WHERE x.org_id = i.org_id AND x.invoice_id = i.id) s
  WHERE (i.org_id, i.id) IN (SELECT a.org_id, a.invoice_id FROM added a) AND (s.settled > i.total OR s.settled < 0)
  ORDER BY i.id LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'the allocations would take the open amount of invoice % % (its total is %, its settlements would add up to %)',
      bad.id, CASE WHEN bad.settled < 0 THEN 'above its total' ELSE 'below zero' END, bad.total, bad.settled
      USING ERRCODE = '23514', HINT = 'receivables.over_allocation', DETAIL = jsonb_build_object('invoiceId', bad.id)::text;
  END IF;

  SELECT p.id, p.amount, coalesce(s.allocated, 0) AS allocated, coalesce(r.refunded, 0) AS refunded INTO bad
  FROM finance.customer_payments p
  LEFT JOIN LATERAL (SELECT sum(x.amount) AS allocated FROM finance.receivable_allocations x
    WHERE x.org_id = p.org_id AND x.payment_id = p.id) s ON true
  LEFT JOIN LATERAL (SELECT sum(x.amount) AS refunded FROM finance.customer_refunds x
    WHERE x.org_id = p.org_id AND x.payment_id = p.id) r ON true
  WHERE (p.org_id, p.id) IN (SELECT a.org_id, a.payment_id FROM added a WHERE a.payment_id IS NOT NULL)
    AND (coalesce(s.allocated, 0) + coalesce(r.refunded, 0) > p.amount OR coalesce(s.allocated, 0) < 0)
  ORDER BY p.id LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'the allocations of payment % would add up to % (with % refunded), outside 0 to its amount %',
      bad.id, bad.allocated, bad.refunded, bad.amount
      USING ERRCODE = '23514', HINT = 'receivables.exceeds_payment', DETAIL = jsonb_build_object('paymentId', bad.id)::text;
  END IF;
  RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION finance.check_receivable_allocation_dates() RETURNS trigger LANGUAGE plpgsql SET search_path = '' AS $$
DECLARE
  v_payment uuid;
  bad record;
BEGIN
  -- the services' order: each payment's advisory lock, then the invoices' rows (in id order)
  FOR v_payment IN SELECT DISTINCT a.payment_id FROM added a WHERE a.payment_id IS NOT NULL AND a.reverses_allocation_id IS NULL ORDER BY 1 LOOP
    PERFORM pg_advisory_xact_lock(hashtext('finance.payment:' || v_payment::text));
  END LOOP;
  PERFORM 1 FROM finance.invoices i
  WHERE (i.org_id, i.id) IN (SELECT a.org_id, a.invoice_id FROM added a WHERE a.reverses_allocation_id IS NULL)
  ORDER BY i.org_id, i.id FOR NO KEY UPDATE;

  SELECT a.invoice_id, a.payment_id, a.allocation_date, r.allocation_date AS reversed_on, r.invoice_id = a.invoice_id AS of_invoice INTO bad
  FROM added a
  CROSS JOIN LATERAL (
    SELECT x.allocation_date, x.invoice_id FROM finance.receivable_allocations x
    WHERE x.org_id = a.org_id AND x.reverses_allocation_id IS NOT NULL AND x.allocation_date > a.allocation_date
      AND (x.invoice_id = a.invoice_id OR x.payment_id = a.payment_id)
    ORDER BY x.allocation_date DESC LIMIT 1) r
  WHERE a.reverses_allocation_id IS NULL
  ORDER BY a.invoice_id LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'the allocation to invoice % dated % is before %, the date of the last allocation reversal of its %',
      bad.invoice_id, bad.allocation_date, bad.reversed_on, CASE WHEN bad.of_invoice THEN 'invoice' ELSE 'payment ' || bad.payment_id END
      USING ERRCODE = '23514', HINT = 'validation_failed';
  END IF;
  RETURN NULL;
END
$$;
