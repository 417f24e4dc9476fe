-- Generated from prisma/migrations/20270206001200_ledger_chart_error_codes/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- The chart's and the fiscal calendar's rules answered the generic 422 `invalid` (SQLSTATE 23514, told apart only by
-- the message): each now names its declared code in the HINT (src/modules/ledger/ledger.errors.ts), which
-- mapDatabaseError answers with its own status. SQLSTATE and messages are as before; the overlap message names the
-- fiscal year overlapped.
--
-- finance.check_account and finance.check_no_overlap as in 20260301000100_ledger except for the HINTs and that
-- message. CREATE OR REPLACE keeps owner, grants and triggers. Not a posting function.

CREATE OR REPLACE FUNCTION finance.check_account() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  p finance.accounts;
  cur uuid := NEW.parent_id;
  depth int := 0;
BEGIN
  IF NEW.parent_id IS NOT NULL THEN
    SELECT * INTO p FROM finance.accounts a WHERE a.org_id = NEW.org_id AND a.id = NEW.parent_id;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'parent account % does not exist in this organization', NEW.parent_id USING ERRCODE = '23514', HINT = 'account.not_found';
    END IF;
    IF NOT p.is_group THEN
      RAISE EXCEPTION 'parent account % is not a group account', p.code USING ERRCODE = '23514', HINT = 'ledger.parent_not_group';
    END IF;
    IF p.type <> NEW.type THEN
      RAISE EXCEPTION 'account % is of type % but its parent % is of type %', NEW.code, NEW.type, p.code, p.type
        USING ERRCODE = '23514', HINT = 'ledger.parent_type_mismatch';
    END IF;
    WHILE cur IS NOT NULL LOOP
      IF cur = NEW.id THEN
        RAISE EXCEPTION 'account % cannot be its own ancestor (cycle)', NEW.code USING ERRCODE = '23514', HINT = 'ledger.parent_cycle';
      END IF;
      depth := depth + 1;
      IF depth > 32 THEN
        RAISE EXCEPTION 'account hierarchy is deeper than 32 levels' USING ERRCODE = '23514', HINT = 'ledger.hierarchy_too_deep';
      END IF;
      SELECT a.parent_id INTO cur FROM finance.accounts a WHERE a.org_id = NEW.org_id AND a.id = cur;
    END LOOP;
  END IF;
  IF TG_OP = 'UPDATE' THEN
    IF NEW.type <> OLD.type AND EXISTS (SELECT 1 FROM finance.account_balances b WHERE b.org_id = NEW.org_id AND b.account_id = NEW.id) THEN
      RAISE EXCEPTION 'account % has postings: its type cannot change', NEW.code USING ERRCODE = '23514', HINT = 'ledger.account_has_postings';
    END IF;
    IF NEW.is_group AND NOT OLD.is_group AND EXISTS (SELECT 1 FROM finance.account_balances b WHERE b.org_id = NEW.org_id AND b.account_id = NEW.id) THEN
      RAISE EXCEPTION 'account % has postings: it cannot become a group account', NEW.code USING ERRCODE = '23514', HINT = 'ledger.account_has_postings';
    END IF;
    IF OLD.is_group AND NOT NEW.is_group AND EXISTS (SELECT 1 FROM finance.accounts c WHERE c.org_id = NEW.org_id AND c.parent_id = NEW.id) THEN
      RAISE EXCEPTION 'account % has child accounts: it must stay a group account', NEW.code USING ERRCODE = '23514', HINT = 'ledger.account_has_children';
    END IF;
    IF NEW.type <> OLD.type AND EXISTS (SELECT 1 FROM finance.accounts c WHERE c.org_id = NEW.org_id AND c.parent_id = NEW.id) THEN
      RAISE EXCEPTION 'account % has child accounts: its type cannot change', NEW.code USING ERRCODE = '23514', HINT = 'ledger.account_has_children';
    END IF;
  END IF;
  NEW.updated_at := now();
  RETURN NEW;
END
$$;

CREATE OR REPLACE FUNCTION finance.check_no_overlap() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  y record;
BEGIN
  IF TG_TABLE_NAME = 'fiscal_years' THEN
    SELECT o.name, o.start_date, o.end_date INTO y FROM finance.fiscal_years o WHERE o.org_id = NEW.org_id AND o.id <> NEW.id
      AND o.start_date <= NEW.end_date AND o.end_date >= NEW.start_date ORDER BY o.start_date LIMIT 1;
    IF FOUND THEN
      RAISE EXCEPTION 'fiscal year % to % overlaps fiscal year % (% to %)', NEW.start_date, NEW.end_date, y.name, y.start_date, y.end_date
        USING ERRCODE = '23514', HINT = 'ledger.fiscal_year_overlap';
    END IF;
  ELSE
    IF EXISTS (SELECT 1 FROM finance.fiscal_periods p WHERE p.org_id = NEW.org_id AND p.id <> NEW.id
               AND p.start_date <= NEW.end_date AND p.end_date >= NEW.start_date) THEN
      RAISE EXCEPTION 'fiscal period % to % overlaps another period', NEW.start_date, NEW.end_date USING ERRCODE = '23514', HINT = 'ledger.fiscal_year_overlap';
    END IF;
  END IF;
  RETURN NEW;
END
$$;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270206001200_ledger_chart_error_codes', 'e0a5e0669637ae132c362bf4568cbcc6a762335e8e11c35bd926fd54caa217bc', 0)
  ON CONFLICT (name) DO NOTHING;
