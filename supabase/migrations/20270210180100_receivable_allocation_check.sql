-- Generated from prisma/migrations/20270210180100_receivable_allocation_check/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- Receivables had no database check on its allocations: the service alone kept an invoice's open amount from going
-- below zero. When the service took one invoice for two (the same id spelled in upper and lower case in one request),
-- it allocated an invoice of 100.00 twice, leaving it open -100.00, which nothing could refund or void.
--
-- finance.check_receivable_allocations, like payables' finance.check_allocation, refuses what would take an invoice's
-- settled amount (its allocations, from payments and credit notes, less their reversals) outside 0 to its total, or a
-- payment's use (its allocations and refunds) outside 0 to its amount, whoever inserts the rows. Once per statement,
-- after it (a statement of several rows is checked as a whole). It first takes the locks the services take (the
-- invoices' rows, in id order; each payment's advisory lock, finance.payment:<id>): a service holds them already and
-- waits for nothing more; any other writer waits for a concurrent one to commit, and then counts what it committed.
-- The invoices' lock is FOR NO KEY UPDATE: it conflicts with the services' FOR UPDATE, but not with the foreign key
-- checks of the inserted rows (FOR KEY SHARE), so two writers in flight cannot wait for each other on those.
-- The errors name the receivables codes (HINT), so the API answers them as the service's own checks would.
CREATE FUNCTION finance.check_receivable_allocations() RETURNS trigger LANGUAGE plpgsql SET search_path = '' AS $$
DECLARE
  v_payment uuid;
  bad record;
BEGIN
  PERFORM 1 FROM finance.invoices i
  WHERE (i.org_id, i.id) IN (SELECT a.org_id, a.invoice_id FROM added a)
  ORDER BY i.org_id, i.id FOR NO KEY UPDATE;
  FOR v_payment IN SELECT DISTINCT a.payment_id FROM added a WHERE a.payment_id IS NOT NULL ORDER BY 1 LOOP
    PERFORM pg_advisory_xact_lock(hashtext('finance.payment:' || v_payment::text));
  END LOOP;

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
REVOKE ALL ON FUNCTION finance.check_receivable_allocations() FROM PUBLIC, anon, authenticated, service_role;
CREATE TRIGGER receivable_allocations_check AFTER INSERT ON finance.receivable_allocations
  REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION finance.check_receivable_allocations();

-- payables' backstop answered its refusals as the generic 422 `invalid`: they now name the payables codes the
-- allocation routes document (HINT). What it checks is unchanged; CREATE OR REPLACE keeps the owner, the (absent)
-- grants and the trigger.
CREATE OR REPLACE FUNCTION finance.check_allocation() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  b record;
  p record;
  bill_settled numeric;
  pay_used numeric;
BEGIN
  SELECT x.status, x.total INTO b FROM finance.bills x WHERE x.org_id = NEW.org_id AND x.id = NEW.bill_id;
  IF b.status IS DISTINCT FROM 'posted' THEN
    RAISE EXCEPTION 'bill % is not posted', NEW.bill_id USING ERRCODE = '23514', HINT = 'payables.not_open';
  END IF;
  SELECT x.amount INTO p FROM finance.bill_payments x WHERE x.org_id = NEW.org_id AND x.id = NEW.payment_id;
  SELECT coalesce(sum(a.amount), 0) INTO bill_settled FROM finance.bill_allocations a WHERE a.org_id = NEW.org_id AND a.bill_id = NEW.bill_id;
  SELECT coalesce(sum(a.amount), 0) INTO pay_used FROM finance.bill_allocations a WHERE a.org_id = NEW.org_id AND a.payment_id = NEW.payment_id;
  IF bill_settled + NEW.amount > b.total OR bill_settled + NEW.amount < 0 THEN
    RAISE EXCEPTION 'allocation of % would take the open amount of bill % below zero', NEW.amount, NEW.bill_id USING ERRCODE = '23514', HINT = 'payables.over_allocation';
  END IF;
  IF pay_used + NEW.amount > p.amount OR pay_used + NEW.amount < 0 THEN
    RAISE EXCEPTION 'allocation of % exceeds what is left of payment %', NEW.amount, NEW.payment_id USING ERRCODE = '23514', HINT = 'payables.over_allocation';
  END IF;
  RETURN NEW;
END
$$;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270210180100_receivable_allocation_check', '17689e5ef5fb1fac1ee8e888f2927eec12db73b9ecd75686dadd2d85b081be01', 0)
  ON CONFLICT (name) DO NOTHING;
