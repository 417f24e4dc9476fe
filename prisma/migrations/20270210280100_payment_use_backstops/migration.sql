-- A payment's use (its allocations, net of their reversals, and its refunds) stays within 0 to its amount, whoever
-- writes the rows: the database checked it only when allocations were inserted (receivables), or counted no refunds
-- at all (payables). A refund inserted directly (the API role may insert refunds under its policies), or by a writer
-- that did not take the payment's lock, could pay back credit that its allocations had already used: a payment of
-- 100.00 allocated 60.00 and refunded 60.00 is a credit of -20.00 that the aging shows and nothing can undo.
--
-- finance.check_customer_refunds and finance.check_bill_payment_refunds are finance.check_receivable_allocations'
-- payment check for refunds: once per statement, after it, under each payment's advisory lock (the lock the services
-- and the allocation checks take: a service holds it already, any other writer waits for a concurrent one to commit and
-- then counts what it committed). The errors name the refund routes' codes (HINT), receivables.exceeds_credit and
-- payables.exceeds_credit, as the services' own checks answer.
--
-- payables' finance.check_allocation was a BEFORE INSERT trigger FOR EACH ROW: every row re-summed all allocations of
-- its bill and of its payment (a statement of 200 allocations of one payment read about 200 x 200 / 2 rows), and it took
-- no lock (two writers that bypassed the service could each see the other's rows uncommitted and together over-allocate).
-- It is now checked once per statement, after it, over the inserted rows (REFERENCING NEW TABLE), as receivables' is:
-- every bill posted, each bill settled within 0 to its total, each payment used (allocations and now refunds) within 0
-- to its amount. The same guarantee for the rows as a whole; the locks are the services' (each payment's advisory
-- lock, finance.bill_payment:<id>, then the bills' rows in id order, FOR NO KEY UPDATE: conflicting with the services'
-- FOR UPDATE but not with the inserted rows' foreign key checks). Allocations and refunds are append-only (no UPDATE or
-- DELETE, no TRUNCATE), so INSERT is all there is to check. The functions run as the caller, as before: the rows they
-- read are the inserted rows' own organization's, which the caller's policies let it read. No grant or policy changes;
-- the functions are executable by no one (trigger functions).

-- ---------------------------------------------------------------- receivables: refunds of customer credit
CREATE FUNCTION finance.check_customer_refunds() RETURNS trigger LANGUAGE plpgsql SET search_path = '' AS $$
DECLARE
  v_payment uuid;
  bad record;
BEGIN
  FOR v_payment IN SELECT DISTINCT a.payment_id FROM added a ORDER BY 1 LOOP
    PERFORM pg_advisory_xact_lock(hashtext('finance.payment:' || v_payment::text));
  END LOOP;
  SELECT p.id, p.amount, coalesce(s.allocated, 0) AS allocated, coalesce(r.refunded, 0) AS refunded INTO bad
  FROM finance.customer_payments p
  LEFT JOIN LATERAL (SELECT sum(x.amount) AS allocated FROM finance.receivable_allocations x
    WHERE x.org_id = p.org_id AND x.payment_id = p.id) s ON true
  LEFT JOIN LATERAL (SELECT sum(x.amount) AS refunded FROM finance.customer_refunds x
    WHERE x.org_id = p.org_id AND x.payment_id = p.id) r ON true
  WHERE (p.org_id, p.id) IN (SELECT a.org_id, a.payment_id FROM added a)
    AND coalesce(s.allocated, 0) + coalesce(r.refunded, 0) > p.amount
  ORDER BY p.id LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'the refunds of payment % would add up to % (with % allocated), more than its amount %',
      bad.id, bad.refunded, bad.allocated, bad.amount
      USING ERRCODE = '23514', HINT = 'receivables.exceeds_credit', DETAIL = jsonb_build_object('paymentId', bad.id)::text;
  END IF;
  RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION finance.check_customer_refunds() FROM PUBLIC, anon, authenticated, service_role;
-- before customer_refunds_check_dates (triggers of one event fire in name order)
CREATE TRIGGER customer_refunds_check AFTER INSERT ON finance.customer_refunds
  REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION finance.check_customer_refunds();

-- ---------------------------------------------------------------- payables: refunds of credit with the vendor
CREATE FUNCTION finance.check_bill_payment_refunds() RETURNS trigger LANGUAGE plpgsql SET search_path = '' AS $$
DECLARE
  v_payment uuid;
  bad record;
BEGIN
  FOR v_payment IN SELECT DISTINCT a.payment_id FROM added a ORDER BY 1 LOOP
    PERFORM pg_advisory_xact_lock(hashtext('finance.bill_payment:' || v_payment::text));
  END LOOP;
  SELECT p.id, p.amount, coalesce(s.allocated, 0) AS allocated, coalesce(r.refunded, 0) AS refunded INTO bad
  FROM finance.bill_payments p
  LEFT JOIN LATERAL (SELECT sum(x.amount) AS allocated FROM finance.bill_allocations x
    WHERE x.org_id = p.org_id AND x.payment_id = p.id) s ON true
  LEFT JOIN LATERAL (SELECT sum(x.amount) AS refunded FROM finance.bill_payment_refunds x
    WHERE x.org_id = p.org_id AND x.payment_id = p.id) r ON true
  WHERE (p.org_id, p.id) IN (SELECT a.org_id, a.payment_id FROM added a)
    AND coalesce(s.allocated, 0) + coalesce(r.refunded, 0) > p.amount
  ORDER BY p.id LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'the refunds of payment % would add up to % (with % allocated), more than its amount %',
      bad.id, bad.refunded, bad.allocated, bad.amount
      USING ERRCODE = '23514', HINT = 'payables.exceeds_credit', DETAIL = jsonb_build_object('paymentId', bad.id)::text;
  END IF;
  RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION finance.check_bill_payment_refunds() FROM PUBLIC, anon, authenticated, service_role;
-- before bill_payment_refunds_check_dates
CREATE TRIGGER bill_payment_refunds_check AFTER INSERT ON finance.bill_payment_refunds
  REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION finance.check_bill_payment_refunds();

-- ---------------------------------------------------------------- payables: allocations, once per statement
-- CREATE OR REPLACE keeps the function's owner and its (absent) grants; the row trigger is replaced by a statement one.
DROP TRIGGER bill_allocations_check ON finance.bill_allocations;
CREATE OR REPLACE FUNCTION finance.check_allocation() RETURNS trigger LANGUAGE plpgsql SET search_path = '' AS $$
DECLARE
  v_payment uuid;
  bad record;
BEGIN
  -- the services' order: the payment's advisory lock, then the bill's row
  FOR v_payment IN SELECT DISTINCT a.payment_id FROM added a ORDER BY 1 LOOP
    PERFORM pg_advisory_xact_lock(hashtext('finance.bill_payment:' || v_payment::text));
  END LOOP;
  PERFORM 1 FROM finance.bills b
  WHERE (b.org_id, b.id) IN (SELECT a.org_id, a.bill_id FROM added a)
  ORDER BY b.org_id, b.id FOR NO KEY UPDATE;

  SELECT a.bill_id INTO bad
  FROM added a LEFT JOIN finance.bills b ON b.org_id = a.org_id AND b.id = a.bill_id
  WHERE b.status IS DISTINCT FROM 'posted'
  ORDER BY a.bill_id LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'bill % is not posted', bad.bill_id USING ERRCODE = '23514', HINT = 'payables.not_open';
  END IF;

  SELECT b.id, b.total, s.settled INTO bad
  FROM finance.bills b
  CROSS JOIN LATERAL (SELECT coalesce(sum(x.amount), 0) AS settled FROM finance.bill_allocations x
    WHERE x.org_id = b.org_id AND x.bill_id = b.id) s
  WHERE (b.org_id, b.id) IN (SELECT a.org_id, a.bill_id FROM added a) AND (s.settled > b.total OR s.settled < 0)
  ORDER BY b.id LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'the allocations would take the open amount of bill % % (its total is %, its allocations would add up to %)',
      bad.id, CASE WHEN bad.settled < 0 THEN 'above its total' ELSE 'below zero' END, bad.total, bad.settled
      USING ERRCODE = '23514', HINT = 'payables.over_allocation', DETAIL = jsonb_build_object('billId', bad.id)::text;
  END IF;

  SELECT p.id, p.amount, coalesce(s.allocated, 0) AS allocated, coalesce(r.refunded, 0) AS refunded INTO bad
  FROM finance.bill_payments p
  LEFT JOIN LATERAL (SELECT sum(x.amount) AS allocated FROM finance.bill_allocations x
    WHERE x.org_id = p.org_id AND x.payment_id = p.id) s ON true
  LEFT JOIN LATERAL (SELECT sum(x.amount) AS refunded FROM finance.bill_payment_refunds x
    WHERE x.org_id = p.org_id AND x.payment_id = p.id) r ON true
  WHERE (p.org_id, p.id) IN (SELECT a.org_id, a.payment_id FROM added a)
    AND (coalesce(s.allocated, 0) + coalesce(r.refunded, 0) > p.amount OR coalesce(s.allocated, 0) < 0)
  ORDER BY p.id LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'the allocations of payment % would add up to % (with % refunded), outside 0 to its amount %',
      bad.id, bad.allocated, bad.refunded, bad.amount
      USING ERRCODE = '23514', HINT = 'payables.over_allocation', DETAIL = jsonb_build_object('paymentId', bad.id)::text;
  END IF;
  RETURN NULL;
END
$$;
-- before bill_allocations_check_dates (triggers of one event fire in name order)
CREATE TRIGGER bill_allocations_check AFTER INSERT ON finance.bill_allocations
  REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION finance.check_allocation();
