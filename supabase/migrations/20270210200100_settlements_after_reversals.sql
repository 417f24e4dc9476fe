-- Generated from prisma/migrations/20270210200100_settlements_after_reversals/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- A settlement was checked against its document's and payment's own dates only: dated before a later allocation
-- reversal, it counted what the reversed allocation settled a second time in between. Invoice 100.00, payment A allocated
-- on 05-01 and reversed on 05-20, payment B allocated dated 05-05: from 05-05 to 05-19 the invoice was settled 200.00
-- and the aging showed -100.00 (likewise a payment's credit used twice: an allocation or refund of A dated before 05-20).
--
-- The services now refuse (400 validation_failed) what a void already may not do, dated before the last allocation
-- reversal of the document: an allocation (of a payment or a credit note) before one of its invoice or bill, an
-- allocation or a refund of a payment's credit before one of its payment's allocations. These triggers are the same
-- rule for whoever inserts the rows (the API role may insert allocations and refunds under its policies). Once per
-- statement, after it; a reversal row itself is never checked (it gives back, and is dated not before what it reverses).
-- Each takes the locks the services take first (the invoices' or bills' rows in id order, FOR NO KEY UPDATE as
-- finance.check_receivable_allocations does; each payment's advisory lock): a service holds them already, any other
-- writer waits for a reversal in flight to commit and then sees it. They run as the caller (not SECURITY DEFINER): the
-- rows they read are the inserted rows' own organization's, which the caller's policies let it read. No grant or
-- policy changes; the functions are executable by no one (trigger functions).

CREATE FUNCTION finance.check_receivable_allocation_dates() RETURNS trigger LANGUAGE plpgsql SET search_path = '' AS $$
DECLARE
  v_payment uuid;
  bad record;
BEGIN
  PERFORM 1 FROM finance.invoices i
  WHERE (i.org_id, i.id) IN (SELECT a.org_id, a.invoice_id FROM added a WHERE a.reverses_allocation_id IS NULL)
  ORDER BY i.org_id, i.id FOR NO KEY UPDATE;
  FOR v_payment IN SELECT DISTINCT a.payment_id FROM added a WHERE a.payment_id IS NOT NULL AND a.reverses_allocation_id IS NULL ORDER BY 1 LOOP
    PERFORM pg_advisory_xact_lock(hashtext('finance.payment:' || v_payment::text));
  END LOOP;

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
REVOKE ALL ON FUNCTION finance.check_receivable_allocation_dates() FROM PUBLIC, anon, authenticated, service_role;
-- after receivable_allocations_check (triggers of one event fire in name order)
CREATE TRIGGER receivable_allocations_check_dates AFTER INSERT ON finance.receivable_allocations
  REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION finance.check_receivable_allocation_dates();

CREATE FUNCTION finance.check_customer_refund_dates() RETURNS trigger LANGUAGE plpgsql SET search_path = '' AS $$
DECLARE
  v_payment uuid;
  bad record;
BEGIN
  FOR v_payment IN SELECT DISTINCT a.payment_id FROM added a ORDER BY 1 LOOP
    PERFORM pg_advisory_xact_lock(hashtext('finance.payment:' || v_payment::text));
  END LOOP;
  SELECT a.payment_id, a.refund_date, max(x.allocation_date) AS reversed_on INTO bad
  FROM added a JOIN finance.receivable_allocations x
    ON x.org_id = a.org_id AND x.payment_id = a.payment_id AND x.reverses_allocation_id IS NOT NULL AND x.allocation_date > a.refund_date
  GROUP BY a.payment_id, a.refund_date ORDER BY a.payment_id LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'the refund of payment % dated % is before %, the date of the last reversal of an allocation of the payment',
      bad.payment_id, bad.refund_date, bad.reversed_on USING ERRCODE = '23514', HINT = 'validation_failed';
  END IF;
  RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION finance.check_customer_refund_dates() FROM PUBLIC, anon, authenticated, service_role;
CREATE TRIGGER customer_refunds_check_dates AFTER INSERT ON finance.customer_refunds
  REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION finance.check_customer_refund_dates();

CREATE FUNCTION finance.check_bill_allocation_dates() RETURNS trigger LANGUAGE plpgsql SET search_path = '' AS $$
DECLARE
  v_payment uuid;
  bad record;
BEGIN
  -- the services' order: the payment's advisory lock, then the bill's row
  FOR v_payment IN SELECT DISTINCT a.payment_id FROM added a WHERE a.reverses_allocation_id IS NULL ORDER BY 1 LOOP
    PERFORM pg_advisory_xact_lock(hashtext('finance.bill_payment:' || v_payment::text));
  END LOOP;
  PERFORM 1 FROM finance.bills b
  WHERE (b.org_id, b.id) IN (SELECT a.org_id, a.bill_id FROM added a WHERE a.reverses_allocation_id IS NULL)
  ORDER BY b.org_id, b.id FOR NO KEY UPDATE;

  SELECT a.bill_id, a.payment_id, a.allocation_date, r.allocation_date AS reversed_on, r.bill_id = a.bill_id AS of_bill INTO bad
  FROM added a
  CROSS JOIN LATERAL (
    SELECT x.allocation_date, x.bill_id FROM finance.bill_allocations x
    WHERE x.org_id = a.org_id AND x.reverses_allocation_id IS NOT NULL AND x.allocation_date > a.allocation_date
      AND (x.bill_id = a.bill_id OR x.payment_id = a.payment_id)
    ORDER BY x.allocation_date DESC LIMIT 1) r
  WHERE a.reverses_allocation_id IS NULL
  ORDER BY a.bill_id LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'the allocation to bill % dated % is before %, the date of the last allocation reversal of its %',
      bad.bill_id, bad.allocation_date, bad.reversed_on, CASE WHEN bad.of_bill THEN 'bill' ELSE 'payment ' || bad.payment_id END
      USING ERRCODE = '23514', HINT = 'validation_failed';
  END IF;
  RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION finance.check_bill_allocation_dates() FROM PUBLIC, anon, authenticated, service_role;
CREATE TRIGGER bill_allocations_check_dates AFTER INSERT ON finance.bill_allocations
  REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION finance.check_bill_allocation_dates();

CREATE FUNCTION finance.check_bill_refund_dates() RETURNS trigger LANGUAGE plpgsql SET search_path = '' AS $$
DECLARE
  v_payment uuid;
  bad record;
BEGIN
  FOR v_payment IN SELECT DISTINCT a.payment_id FROM added a ORDER BY 1 LOOP
    PERFORM pg_advisory_xact_lock(hashtext('finance.bill_payment:' || v_payment::text));
  END LOOP;
  SELECT a.payment_id, a.refund_date, max(x.allocation_date) AS reversed_on INTO bad
  FROM added a JOIN finance.bill_allocations x
    ON x.org_id = a.org_id AND x.payment_id = a.payment_id AND x.reverses_allocation_id IS NOT NULL AND x.allocation_date > a.refund_date
  GROUP BY a.payment_id, a.refund_date ORDER BY a.payment_id LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'the refund of payment % dated % is before %, the date of the last reversal of an allocation of the payment',
      bad.payment_id, bad.refund_date, bad.reversed_on USING ERRCODE = '23514', HINT = 'validation_failed';
  END IF;
  RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION finance.check_bill_refund_dates() FROM PUBLIC, anon, authenticated, service_role;
CREATE TRIGGER bill_payment_refunds_check_dates AFTER INSERT ON finance.bill_payment_refunds
  REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION finance.check_bill_refund_dates();

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270210200100_settlements_after_reversals', '971477323266554af3751e151162e95a62f4e72773856dc16325150a05e34800', 0)
  ON CONFLICT (name) DO NOTHING;
