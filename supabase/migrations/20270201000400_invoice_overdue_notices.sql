-- Generated from prisma/migrations/20270201000400_invoice_overdue_notices/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- invoice.overdue (issue 18's "invoices overdue (finance)" notice; its notification route is in 20261226000100): a
-- daily job notes each issued invoice that is past its due date with an amount still open, once, and emits the
-- event in the same transaction. The note is a row of its own, not a column of the invoice: an issued invoice is
-- immutable (finance.invoice_guard), and the note is the job's bookkeeping, not the document's.
CREATE TABLE finance.invoice_overdue_notices (
  org_id uuid NOT NULL,
  invoice_id uuid NOT NULL,
  -- the due date that had passed, and the day the job noted it
  due_date date NOT NULL,
  noted_on date NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, invoice_id),
  FOREIGN KEY (org_id, invoice_id) REFERENCES finance.invoices(org_id, id) ON DELETE CASCADE
);
CREATE TRIGGER invoice_overdue_notices_immutable BEFORE UPDATE OR DELETE ON finance.invoice_overdue_notices
  FOR EACH ROW EXECUTE FUNCTION core.reject_change();

-- the job's search over every organization: open invoices by due date
CREATE INDEX invoices_open_due_idx ON finance.invoices (due_date, org_id) WHERE kind = 'invoice' AND status IN ('issued', 'partially_paid');

REVOKE ALL ON finance.invoice_overdue_notices FROM PUBLIC, anon, authenticated, service_role;
GRANT SELECT, INSERT ON finance.invoice_overdue_notices TO authenticated;
GRANT SELECT ON finance.invoice_overdue_notices TO service_role;
ALTER TABLE finance.invoice_overdue_notices ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY invoice_overdue_notices_read ON finance.invoice_overdue_notices FOR SELECT TO authenticated
  USING (org_id = public.auth_org_id());
-- only the job (a service principal in the organization's transaction) notes an invoice
CREATE POLICY invoice_overdue_notices_insert ON finance.invoice_overdue_notices FOR INSERT TO authenticated
  WITH CHECK (org_id = public.auth_org_id() AND public.auth_has_role('service'));
CREATE POLICY invoice_overdue_notices_service ON finance.invoice_overdue_notices FOR SELECT TO service_role USING (true);

-- The route's body named the customer: the event carries the customer's id, as the other invoice events do (a
-- customer may be a person, and an event's copies — outbox, webhook messages, notices — outlive a party's erasure).
UPDATE core.notification_routes SET body = 'Invoice {{number}} ({{amountDue}} {{currency}} open) was due on {{dueDate}}.'
WHERE event_type = 'invoice.overdue';

COMMENT ON TABLE finance.invoice_overdue_notices IS 'Issued invoices the daily job found past due with an amount open (one invoice.overdue event each)';

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270201000400_invoice_overdue_notices', '1ee996a22e2ac695b736e92687509d935b94445b6939b0957221b2e87c906694', 0)
  ON CONFLICT (name) DO NOTHING;
