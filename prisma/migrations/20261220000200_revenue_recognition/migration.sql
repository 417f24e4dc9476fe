-- Revenue recognition (issue 15, receivables half): invoice lines with a service period are credited to deferred
-- revenue at issue; a daily run per organization moves the elapsed part (straight-line by days) to the line's
-- revenue account. One run per organization and day (the primary key is the idempotency); a run whose day falls in
-- a closed period posts into the first open period after it and records that date and why.

CREATE TABLE finance.revenue_recognition_runs (
  org_id uuid NOT NULL REFERENCES core.organizations(id) ON DELETE CASCADE,
  run_date date NOT NULL,
  -- the posting date: run_date, or the first day of the first open period after it
  posted_on date NOT NULL,
  note text CHECK (length(note) <= 500),
  entry_id uuid,
  line_count integer NOT NULL DEFAULT 0,
  created_by text,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, run_date),
  FOREIGN KEY (org_id, entry_id) REFERENCES finance.journal_entries(org_id, id)
);

CREATE TABLE finance.revenue_recognitions (
  org_id uuid NOT NULL,
  invoice_id uuid NOT NULL,
  line_no smallint NOT NULL,
  run_date date NOT NULL,
  -- recognized up to and including this day of the service period
  recognized_through date NOT NULL,
  posted_on date NOT NULL,
  amount numeric(20, 4) NOT NULL CHECK (amount > 0),
  base_amount numeric(20, 4) NOT NULL CHECK (base_amount >= 0),
  entry_id uuid NOT NULL,
  PRIMARY KEY (org_id, invoice_id, line_no, run_date),
  FOREIGN KEY (org_id, invoice_id, line_no) REFERENCES finance.invoice_lines(org_id, invoice_id, line_no),
  FOREIGN KEY (org_id, run_date) REFERENCES finance.revenue_recognition_runs(org_id, run_date),
  FOREIGN KEY (org_id, entry_id) REFERENCES finance.journal_entries(org_id, id)
);
-- the run finds the deferred lines still to recognize
CREATE INDEX invoice_lines_service_idx ON finance.invoice_lines (org_id, service_start) WHERE service_start IS NOT NULL;

CREATE TRIGGER revenue_recognition_runs_immutable BEFORE UPDATE OR DELETE ON finance.revenue_recognition_runs FOR EACH ROW EXECUTE FUNCTION core.reject_change();
CREATE TRIGGER revenue_recognitions_immutable BEFORE UPDATE OR DELETE ON finance.revenue_recognitions FOR EACH ROW EXECUTE FUNCTION core.reject_change();

REVOKE ALL ON finance.revenue_recognition_runs, finance.revenue_recognitions FROM PUBLIC, anon, authenticated, service_role;
GRANT SELECT, INSERT ON finance.revenue_recognition_runs, finance.revenue_recognitions TO authenticated, service_role;
GRANT SELECT ON finance.revenue_recognition_runs, finance.revenue_recognitions TO omnizen_analyst;

ALTER TABLE finance.revenue_recognition_runs ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE finance.revenue_recognitions ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;

CREATE POLICY revenue_recognition_runs_read ON finance.revenue_recognition_runs FOR SELECT TO authenticated, omnizen_analyst USING (org_id = public.auth_org_id());
CREATE POLICY revenue_recognition_runs_insert ON finance.revenue_recognition_runs FOR INSERT TO authenticated
  WITH CHECK (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'accountant', 'service'));
CREATE POLICY revenue_recognition_runs_service ON finance.revenue_recognition_runs FOR ALL TO service_role USING (true) WITH CHECK (true);

CREATE POLICY revenue_recognitions_read ON finance.revenue_recognitions FOR SELECT TO authenticated, omnizen_analyst USING (org_id = public.auth_org_id());
CREATE POLICY revenue_recognitions_insert ON finance.revenue_recognitions FOR INSERT TO authenticated
  WITH CHECK (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'accountant', 'service'));
CREATE POLICY revenue_recognitions_service ON finance.revenue_recognitions FOR ALL TO service_role USING (true) WITH CHECK (true);
