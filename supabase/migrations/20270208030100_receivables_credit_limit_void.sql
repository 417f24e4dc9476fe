-- Generated from prisma/migrations/20270208030100_receivables_credit_limit_void/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- Receivables: the credit limit is checked at issue, and an invoice whose allocations net to zero can be voided.
--
--  1. Issuing an invoice reads what its customer owes now (the open base of its issued invoices less its customer
--     credit: finance.receivable_open_amounts summed for the customer, as the aging totals it) and refuses the issue
--     when that plus the invoice exceeds the customer's credit_limit (receivables.credit_limit_exceeded; an owner or
--     admin may override it). The index below answers that sum from the customer's open rows only, not from every
--     open row of the organization.
--  2. An invoice whose payment allocations were all reversed (net allocated 0) is voided as one never paid. The
--     guard of the invoices (finance.invoice_guard, otherwise as in 20261220000100_receivables) now refuses a void
--     while anything is allocated net, whoever writes it, and one dated before the last allocation or reversal of the
--     invoice: until then the invoice settled part of a payment, and voided earlier the aging would drop the invoice
--     while the payment's credit still counted it used (the aging and the AR balance apart). The guard runs as the
--     caller (not SECURITY DEFINER): the allocations it sums are the invoice's own organization's, which the caller's
--     policies let it read. No grant or policy changes.

CREATE INDEX receivable_open_amounts_customer_idx ON finance.receivable_open_amounts (org_id, customer_id) INCLUDE (open_base) WHERE open_base <> 0;

CREATE OR REPLACE FUNCTION finance.invoice_guard() RETURNS trigger LANGUAGE plpgsql SET search_path = '' AS $$
DECLARE
  v_allocated numeric;
  v_last date;
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
  -- a void: nothing allocated net of reversals, dated no earlier than the last allocation or reversal
  IF OLD.status <> 'draft' AND NEW.status = 'void' THEN
    SELECT coalesce(sum(a.amount), 0), max(a.allocation_date) INTO v_allocated, v_last
    FROM finance.receivable_allocations a WHERE a.org_id = OLD.org_id AND a.invoice_id = OLD.id;
    IF v_allocated <> 0 THEN
      RAISE EXCEPTION 'invoice % has payments or credit notes allocated: it cannot be voided', OLD.number USING ERRCODE = '23514';
    END IF;
    IF v_last IS NOT NULL AND NEW.voided_on < v_last THEN
      RAISE EXCEPTION 'invoice %: the void date % is before its last allocation or reversal, on %', OLD.number, NEW.voided_on, v_last USING ERRCODE = '23514';
    END IF;
  END IF;
  RETURN NEW;
END
$$;
REVOKE ALL ON FUNCTION finance.invoice_guard() FROM PUBLIC, anon, authenticated, service_role;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270208030100_receivables_credit_limit_void', '5b54dfedcb857e5438bfa2b43bfab267a1da615f134162b7315e93a462c87fa5', 0)
  ON CONFLICT (name) DO NOTHING;
