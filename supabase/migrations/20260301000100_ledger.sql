-- Generated from prisma/migrations/20260301000100_ledger/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- Finance ledger (issue 4): currencies, settings, chart of accounts, FX rates, tax codes, fiscal
-- years and periods, journal entries and lines, running and per-period balances, the posting
-- function and semantic.v_gl_fact.
--
-- Who writes what:
--  * reference and configuration tables (accounts, rates, tax codes, periods, settings) are written by
--    `authenticated` under policies that name the roles (public.auth_has_role);
--  * journal entries, lines and balances are written ONLY by finance.post_journal_entry(jsonb), a
--    SECURITY DEFINER function owned by the NOLOGIN role finance_posting (no BYPASSRLS): its own policies
--    still apply (org_id = auth_org_id(), and the posting roles on the entry), and it validates every
--    rule before writing. No API role has INSERT/UPDATE/DELETE on those tables, and triggers reject
--    UPDATE/DELETE of posted rows for every role, owner included: corrections are reversal entries.

DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'finance_posting') THEN
    CREATE ROLE finance_posting NOLOGIN NOINHERIT NOBYPASSRLS;
  END IF;
END
$$;
-- The migration login hands the posting function to finance_posting below. On Supabase that login (`postgres`) is
-- not a superuser: it must be a member of the new owner (CREATEROLE may grant it on PostgreSQL 15; on 16+ the
-- role's creator holds ADMIN OPTION on it).
GRANT finance_posting TO CURRENT_USER;

CREATE SCHEMA IF NOT EXISTS finance;
GRANT USAGE ON SCHEMA finance TO authenticated, service_role, finance_posting, omnizen_analyst;
-- Not schema auth: it is Supabase's (owned by supabase_auth_admin), where the migration login can grant nothing.
GRANT USAGE ON SCHEMA core TO finance_posting;

-- ---------------------------------------------------------------- currencies (shared reference data)
CREATE TABLE finance.currencies (
  code text PRIMARY KEY CHECK (code ~ '^[A-Z]{3}$'),
  name text NOT NULL,
  minor_units smallint NOT NULL CHECK (minor_units BETWEEN 0 AND 4)
);
INSERT INTO finance.currencies (code, name, minor_units) VALUES
  ('AED', 'UAE Dirham', 2), ('AUD', 'Australian Dollar', 2), ('BHD', 'Bahraini Dinar', 3),
  ('BRL', 'Brazilian Real', 2), ('CAD', 'Canadian Dollar', 2), ('CHF', 'Swiss Franc', 2),
  ('CNY', 'Yuan Renminbi', 2), ('CZK', 'Czech Koruna', 2), ('DKK', 'Danish Krone', 2),
  ('EUR', 'Euro', 2), ('GBP', 'Pound Sterling', 2), ('HKD', 'Hong Kong Dollar', 2),
  ('INR', 'Indian Rupee', 2), ('JOD', 'Jordanian Dinar', 3), ('JPY', 'Yen', 0),
  ('KRW', 'Won', 0), ('KWD', 'Kuwaiti Dinar', 3), ('MXN', 'Mexican Peso', 2),
  ('NOK', 'Norwegian Krone', 2), ('NZD', 'New Zealand Dollar', 2), ('PLN', 'Zloty', 2),
  ('SAR', 'Saudi Riyal', 2), ('SEK', 'Swedish Krona', 2), ('SGD', 'Singapore Dollar', 2),
  ('TND', 'Tunisian Dinar', 3), ('USD', 'US Dollar', 2), ('ZAR', 'Rand', 2);

-- ---------------------------------------------------------------- chart of accounts
CREATE TABLE finance.accounts (
  org_id uuid NOT NULL REFERENCES core.organizations(id) ON DELETE CASCADE,
  id uuid NOT NULL DEFAULT gen_random_uuid(),
  code text NOT NULL CHECK (code ~ '^[A-Za-z0-9][A-Za-z0-9.-]{0,31}$'),
  name text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
  type text NOT NULL CHECK (type IN ('asset', 'liability', 'equity', 'revenue', 'expense')),
  parent_id uuid,
  -- a group account only sums its children: nothing posts to it
  is_group boolean NOT NULL DEFAULT false,
  -- when set, lines on this account must be in this currency
  currency text REFERENCES finance.currencies(code),
  archived_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, id),
  UNIQUE (org_id, code),
  FOREIGN KEY (org_id, parent_id) REFERENCES finance.accounts(org_id, id),
  CHECK (parent_id IS DISTINCT FROM id)
);
CREATE INDEX accounts_parent_idx ON finance.accounts (org_id, parent_id);

-- hierarchy rules: the parent is a group of the same type, no cycles; a group has no postings
CREATE FUNCTION finance.check_account() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  p finance.accounts;
  cur uuid := NEW.parent_id;
  depth int := 0;
BEGIN
  IF NEW.parent_id IS NOT NULL THEN
    SELECT * INTO p FROM finance.accounts a WHERE a.org_id = NEW.org_id AND a.id = NEW.parent_id;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'parent account % does not exist in this organization', NEW.parent_id USING ERRCODE = '23514';
    END IF;
    IF NOT p.is_group THEN
      RAISE EXCEPTION 'parent account % is not a group account', p.code USING ERRCODE = '23514';
    END IF;
    IF p.type <> NEW.type THEN
      RAISE EXCEPTION 'account % is of type % but its parent % is of type %', NEW.code, NEW.type, p.code, p.type USING ERRCODE = '23514';
    END IF;
    WHILE cur IS NOT NULL LOOP
      IF cur = NEW.id THEN
        RAISE EXCEPTION 'account % cannot be its own ancestor (cycle)', NEW.code USING ERRCODE = '23514';
      END IF;
      depth := depth + 1;
      IF depth > 32 THEN
        RAISE EXCEPTION 'account hierarchy is deeper than 32 levels' USING ERRCODE = '23514';
      END IF;
      SELECT a.parent_id INTO cur FROM finance.accounts a WHERE a.org_id = NEW.org_id AND a.id = cur;
    END LOOP;
  END IF;
  IF TG_OP = 'UPDATE' THEN
    IF NEW.type <> OLD.type AND EXISTS (SELECT 1 FROM finance.account_balances b WHERE b.org_id = NEW.org_id AND b.account_id = NEW.id) THEN
      RAISE EXCEPTION 'account % has postings: its type cannot change', NEW.code USING ERRCODE = '23514';
    END IF;
    IF NEW.is_group AND NOT OLD.is_group AND EXISTS (SELECT 1 FROM finance.account_balances b WHERE b.org_id = NEW.org_id AND b.account_id = NEW.id) THEN
      RAISE EXCEPTION 'account % has postings: it cannot become a group account', NEW.code USING ERRCODE = '23514';
    END IF;
    IF OLD.is_group AND NOT NEW.is_group AND EXISTS (SELECT 1 FROM finance.accounts c WHERE c.org_id = NEW.org_id AND c.parent_id = NEW.id) THEN
      RAISE EXCEPTION 'account % has child accounts: it must stay a group account', NEW.code USING ERRCODE = '23514';
    END IF;
    IF NEW.type <> OLD.type AND EXISTS (SELECT 1 FROM finance.accounts c WHERE c.org_id = NEW.org_id AND c.parent_id = NEW.id) THEN
      RAISE EXCEPTION 'account % has child accounts: its type cannot change', NEW.code USING ERRCODE = '23514';
    END IF;
  END IF;
  NEW.updated_at := now();
  RETURN NEW;
END
$$;

-- accounts are archived, never deleted (lines and balances refer to them)
CREATE TRIGGER accounts_no_delete BEFORE DELETE ON finance.accounts FOR EACH ROW EXECUTE FUNCTION core.reject_change();

-- ---------------------------------------------------------------- settings (one row per organization)
CREATE TABLE finance.settings (
  org_id uuid PRIMARY KEY REFERENCES core.organizations(id) ON DELETE CASCADE,
  base_currency text NOT NULL REFERENCES finance.currencies(code),
  rounding_account_id uuid,
  retained_earnings_account_id uuid,
  fx_gain_account_id uuid,
  fx_loss_account_id uuid,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  FOREIGN KEY (org_id, rounding_account_id) REFERENCES finance.accounts(org_id, id),
  FOREIGN KEY (org_id, retained_earnings_account_id) REFERENCES finance.accounts(org_id, id),
  FOREIGN KEY (org_id, fx_gain_account_id) REFERENCES finance.accounts(org_id, id),
  FOREIGN KEY (org_id, fx_loss_account_id) REFERENCES finance.accounts(org_id, id)
);

-- ---------------------------------------------------------------- FX rates: 1 unit of currency = rate units of the base currency
CREATE TABLE finance.fx_rates (
  org_id uuid NOT NULL REFERENCES core.organizations(id) ON DELETE CASCADE,
  currency text NOT NULL REFERENCES finance.currencies(code),
  rate_date date NOT NULL,
  rate numeric(24, 10) NOT NULL CHECK (rate > 0),
  source text NOT NULL DEFAULT 'manual' CHECK (source IN ('manual', 'import')),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, currency, rate_date)
);

-- ---------------------------------------------------------------- tax codes
CREATE TABLE finance.tax_codes (
  org_id uuid NOT NULL REFERENCES core.organizations(id) ON DELETE CASCADE,
  id uuid NOT NULL DEFAULT gen_random_uuid(),
  code text NOT NULL CHECK (code ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$'),
  name text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
  -- percent, e.g. 20.000 for 20 %
  rate numeric(9, 4) NOT NULL CHECK (rate >= 0 AND rate <= 100),
  inclusive boolean NOT NULL DEFAULT false,
  -- output tax on sales (a liability) and input tax on purchases (an asset)
  sales_account_id uuid NOT NULL,
  purchase_account_id uuid NOT NULL,
  archived_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, id),
  UNIQUE (org_id, code),
  FOREIGN KEY (org_id, sales_account_id) REFERENCES finance.accounts(org_id, id),
  FOREIGN KEY (org_id, purchase_account_id) REFERENCES finance.accounts(org_id, id)
);
CREATE TRIGGER tax_codes_no_delete BEFORE DELETE ON finance.tax_codes FOR EACH ROW EXECUTE FUNCTION core.reject_change();

-- ---------------------------------------------------------------- fiscal years and periods
CREATE TABLE finance.fiscal_years (
  org_id uuid NOT NULL REFERENCES core.organizations(id) ON DELETE CASCADE,
  id uuid NOT NULL DEFAULT gen_random_uuid(),
  name text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 100),
  start_date date NOT NULL,
  end_date date NOT NULL,
  status text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
  closing_entry_id uuid,
  closed_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, id),
  UNIQUE (org_id, start_date),
  CHECK (end_date > start_date)
);

CREATE TABLE finance.fiscal_periods (
  org_id uuid NOT NULL REFERENCES core.organizations(id) ON DELETE CASCADE,
  id uuid NOT NULL DEFAULT gen_random_uuid(),
  fiscal_year_id uuid NOT NULL,
  period_no smallint NOT NULL CHECK (period_no BETWEEN 1 AND 13),
  start_date date NOT NULL,
  end_date date NOT NULL,
  status text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
  closed_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, id),
  UNIQUE (org_id, start_date),
  UNIQUE (org_id, fiscal_year_id, period_no),
  FOREIGN KEY (org_id, fiscal_year_id) REFERENCES finance.fiscal_years(org_id, id),
  CHECK (end_date >= start_date)
);
CREATE INDEX fiscal_periods_end_idx ON finance.fiscal_periods (org_id, end_date);
CREATE TRIGGER fiscal_years_no_delete BEFORE DELETE ON finance.fiscal_years FOR EACH ROW EXECUTE FUNCTION core.reject_change();
CREATE TRIGGER fiscal_periods_no_delete BEFORE DELETE ON finance.fiscal_periods FOR EACH ROW EXECUTE FUNCTION core.reject_change();

-- periods and years never overlap within an organization
CREATE FUNCTION finance.check_no_overlap() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
BEGIN
  IF TG_TABLE_NAME = 'fiscal_years' THEN
    IF EXISTS (SELECT 1 FROM finance.fiscal_years y WHERE y.org_id = NEW.org_id AND y.id <> NEW.id
               AND y.start_date <= NEW.end_date AND y.end_date >= NEW.start_date) THEN
      RAISE EXCEPTION 'fiscal year % to % overlaps another fiscal year', NEW.start_date, NEW.end_date USING ERRCODE = '23514';
    END IF;
  ELSE
    IF EXISTS (SELECT 1 FROM finance.fiscal_periods p WHERE p.org_id = NEW.org_id AND p.id <> NEW.id
               AND p.start_date <= NEW.end_date AND p.end_date >= NEW.start_date) THEN
      RAISE EXCEPTION 'fiscal period % to % overlaps another period', NEW.start_date, NEW.end_date USING ERRCODE = '23514';
    END IF;
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER fiscal_years_no_overlap BEFORE INSERT OR UPDATE OF start_date, end_date ON finance.fiscal_years
  FOR EACH ROW EXECUTE FUNCTION finance.check_no_overlap();
CREATE TRIGGER fiscal_periods_no_overlap BEFORE INSERT OR UPDATE OF start_date, end_date ON finance.fiscal_periods
  FOR EACH ROW EXECUTE FUNCTION finance.check_no_overlap();

-- ---------------------------------------------------------------- journal entries and lines (append-only)
CREATE TABLE finance.journal_entries (
  org_id uuid NOT NULL REFERENCES core.organizations(id) ON DELETE CASCADE,
  id uuid NOT NULL DEFAULT gen_random_uuid(),
  -- global posting order (keyset pagination, general ledger order)
  seq bigint GENERATED ALWAYS AS IDENTITY,
  entry_date date NOT NULL,
  period_id uuid NOT NULL,
  memo text NOT NULL DEFAULT '' CHECK (length(memo) <= 1000),
  source text NOT NULL CHECK (source IN ('manual', 'invoice', 'bill', 'payment', 'system')),
  source_ref text CHECK (length(source_ref) <= 200),
  reverses_entry_id uuid,
  idempotency_key text CHECK (length(idempotency_key) BETWEEN 1 AND 200),
  request_hash text NOT NULL,
  base_currency text NOT NULL REFERENCES finance.currencies(code),
  total_base numeric(20, 4) NOT NULL,
  created_by text,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, id),
  UNIQUE (org_id, idempotency_key),
  -- an entry is reversed at most once
  UNIQUE (org_id, reverses_entry_id),
  FOREIGN KEY (org_id, period_id) REFERENCES finance.fiscal_periods(org_id, id),
  FOREIGN KEY (org_id, reverses_entry_id) REFERENCES finance.journal_entries(org_id, id)
);
CREATE INDEX journal_entries_date_idx ON finance.journal_entries (org_id, entry_date DESC, seq DESC);

CREATE TABLE finance.journal_lines (
  org_id uuid NOT NULL,
  entry_id uuid NOT NULL,
  line_no smallint NOT NULL CHECK (line_no BETWEEN 1 AND 500),
  seq bigint GENERATED ALWAYS AS IDENTITY,
  entry_date date NOT NULL,
  period_id uuid NOT NULL,
  account_id uuid NOT NULL,
  currency text NOT NULL REFERENCES finance.currencies(code),
  debit numeric(20, 4) NOT NULL DEFAULT 0 CHECK (debit >= 0),
  credit numeric(20, 4) NOT NULL DEFAULT 0 CHECK (credit >= 0),
  rate numeric(24, 10) NOT NULL CHECK (rate > 0),
  base_debit numeric(20, 4) NOT NULL DEFAULT 0 CHECK (base_debit >= 0),
  base_credit numeric(20, 4) NOT NULL DEFAULT 0 CHECK (base_credit >= 0),
  description text CHECK (length(description) <= 500),
  workspace_id uuid,
  counterparty_type text CHECK (counterparty_type IN ('customer', 'vendor', 'employee', 'other')),
  counterparty_id text CHECK (length(counterparty_id) <= 200),
  is_rounding boolean NOT NULL DEFAULT false,
  PRIMARY KEY (org_id, entry_id, line_no),
  FOREIGN KEY (org_id, entry_id) REFERENCES finance.journal_entries(org_id, id),
  FOREIGN KEY (org_id, account_id) REFERENCES finance.accounts(org_id, id),
  FOREIGN KEY (org_id, period_id) REFERENCES finance.fiscal_periods(org_id, id),
  FOREIGN KEY (org_id, workspace_id) REFERENCES core.workspaces(org_id, id),
  -- one side per line; a line with zero amount only adjusts the base value (FX revaluation, rounding)
  CHECK (NOT (debit > 0 AND credit > 0)),
  CHECK (NOT (base_debit > 0 AND base_credit > 0)),
  CHECK (debit + credit + base_debit + base_credit > 0)
);
-- general ledger: an account's lines in date order; partial-period sums
CREATE INDEX journal_lines_account_idx ON finance.journal_lines (org_id, account_id, entry_date, seq);
CREATE INDEX journal_lines_date_idx ON finance.journal_lines (org_id, entry_date);

CREATE TRIGGER journal_entries_immutable BEFORE UPDATE OR DELETE ON finance.journal_entries
  FOR EACH ROW EXECUTE FUNCTION core.reject_change();
CREATE TRIGGER journal_lines_immutable BEFORE UPDATE OR DELETE ON finance.journal_lines
  FOR EACH ROW EXECUTE FUNCTION core.reject_change();
CREATE FUNCTION finance.reject_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% is append-only: TRUNCATE is not allowed', TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME USING ERRCODE = '42501';
END
$$;
CREATE TRIGGER journal_entries_no_truncate BEFORE TRUNCATE ON finance.journal_entries
  FOR EACH STATEMENT EXECUTE FUNCTION finance.reject_truncate();
CREATE TRIGGER journal_lines_no_truncate BEFORE TRUNCATE ON finance.journal_lines
  FOR EACH STATEMENT EXECUTE FUNCTION finance.reject_truncate();

-- ---------------------------------------------------------------- balances, kept by the posting function
-- A running balance is split over a few slots (chosen by the posting backend) so that concurrent
-- postings to one hot account do not all queue on one row; the balance is the sum of its slots.
CREATE TABLE finance.account_balances (
  org_id uuid NOT NULL,
  account_id uuid NOT NULL,
  currency text NOT NULL REFERENCES finance.currencies(code),
  slot smallint NOT NULL CHECK (slot BETWEEN 0 AND 63),
  debit numeric(20, 4) NOT NULL DEFAULT 0,
  credit numeric(20, 4) NOT NULL DEFAULT 0,
  base_debit numeric(20, 4) NOT NULL DEFAULT 0,
  base_credit numeric(20, 4) NOT NULL DEFAULT 0,
  line_count bigint NOT NULL DEFAULT 0,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, account_id, currency, slot),
  FOREIGN KEY (org_id, account_id) REFERENCES finance.accounts(org_id, id)
);

CREATE TABLE finance.period_balances (
  org_id uuid NOT NULL,
  period_id uuid NOT NULL,
  account_id uuid NOT NULL,
  currency text NOT NULL REFERENCES finance.currencies(code),
  slot smallint NOT NULL CHECK (slot BETWEEN 0 AND 63),
  debit numeric(20, 4) NOT NULL DEFAULT 0,
  credit numeric(20, 4) NOT NULL DEFAULT 0,
  base_debit numeric(20, 4) NOT NULL DEFAULT 0,
  base_credit numeric(20, 4) NOT NULL DEFAULT 0,
  line_count bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (org_id, period_id, account_id, currency, slot),
  FOREIGN KEY (org_id, account_id) REFERENCES finance.accounts(org_id, id),
  FOREIGN KEY (org_id, period_id) REFERENCES finance.fiscal_periods(org_id, id)
);

CREATE TRIGGER account_balances_no_delete BEFORE DELETE ON finance.account_balances
  FOR EACH ROW EXECUTE FUNCTION core.reject_change();
CREATE TRIGGER period_balances_no_delete BEFORE DELETE ON finance.period_balances
  FOR EACH ROW EXECUTE FUNCTION core.reject_change();

-- ---------------------------------------------------------------- grants
-- no API role writes entries, lines or balances directly
GRANT SELECT ON finance.currencies TO authenticated, service_role, finance_posting, omnizen_analyst;
GRANT SELECT, INSERT, UPDATE ON finance.accounts, finance.settings, finance.fx_rates, finance.tax_codes,
  finance.fiscal_years, finance.fiscal_periods TO authenticated, service_role;
GRANT SELECT ON finance.journal_entries, finance.journal_lines, finance.account_balances, finance.period_balances
  TO authenticated, service_role;
REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON finance.journal_entries, finance.journal_lines,
  finance.account_balances, finance.period_balances FROM authenticated, service_role, anon, PUBLIC;
GRANT SELECT ON finance.accounts, finance.settings, finance.fx_rates, finance.fiscal_periods TO finance_posting;
-- row locks need an UPDATE privilege: the posting function key-share locks the period it posts into
GRANT UPDATE (status) ON finance.fiscal_periods TO finance_posting;
GRANT SELECT, INSERT ON finance.journal_entries, finance.journal_lines TO finance_posting;
GRANT SELECT, INSERT, UPDATE ON finance.account_balances, finance.period_balances TO finance_posting;

-- ---------------------------------------------------------------- row level security
ALTER TABLE finance.currencies ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE finance.accounts ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE finance.settings ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE finance.fx_rates ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE finance.tax_codes ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE finance.fiscal_years ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE finance.fiscal_periods ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE finance.journal_entries ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE finance.journal_lines ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE finance.account_balances ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE finance.period_balances ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;

CREATE POLICY currencies_read ON finance.currencies FOR SELECT TO authenticated, service_role, finance_posting, omnizen_analyst USING (true);

-- configuration: members read; bookkeepers (owner, admin, accountant) write; settings by admins
CREATE POLICY accounts_read ON finance.accounts FOR SELECT TO authenticated, finance_posting, omnizen_analyst
  USING (org_id = public.auth_org_id());
CREATE POLICY accounts_insert ON finance.accounts FOR INSERT TO authenticated
  WITH CHECK (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'accountant', 'service'));
CREATE POLICY accounts_update ON finance.accounts FOR UPDATE TO authenticated
  USING (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'accountant', 'service'))
  WITH CHECK (org_id = public.auth_org_id());
CREATE POLICY accounts_service ON finance.accounts FOR ALL TO service_role USING (true) WITH CHECK (true);

CREATE POLICY settings_read ON finance.settings FOR SELECT TO authenticated, finance_posting
  USING (org_id = public.auth_org_id());
CREATE POLICY settings_insert ON finance.settings FOR INSERT TO authenticated
  WITH CHECK (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'service'));
CREATE POLICY settings_update ON finance.settings FOR UPDATE TO authenticated
  USING (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'service'))
  WITH CHECK (org_id = public.auth_org_id());
CREATE POLICY settings_service ON finance.settings FOR ALL TO service_role USING (true) WITH CHECK (true);

CREATE POLICY fx_rates_read ON finance.fx_rates FOR SELECT TO authenticated, finance_posting
  USING (org_id = public.auth_org_id());
CREATE POLICY fx_rates_insert ON finance.fx_rates FOR INSERT TO authenticated
  WITH CHECK (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'accountant', 'service'));
CREATE POLICY fx_rates_update ON finance.fx_rates FOR UPDATE TO authenticated
  USING (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'accountant', 'service'))
  WITH CHECK (org_id = public.auth_org_id());
CREATE POLICY fx_rates_service ON finance.fx_rates FOR ALL TO service_role USING (true) WITH CHECK (true);

CREATE POLICY tax_codes_read ON finance.tax_codes FOR SELECT TO authenticated
  USING (org_id = public.auth_org_id());
CREATE POLICY tax_codes_insert ON finance.tax_codes FOR INSERT TO authenticated
  WITH CHECK (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'accountant', 'service'));
CREATE POLICY tax_codes_update ON finance.tax_codes FOR UPDATE TO authenticated
  USING (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'accountant', 'service'))
  WITH CHECK (org_id = public.auth_org_id());
CREATE POLICY tax_codes_service ON finance.tax_codes FOR ALL TO service_role USING (true) WITH CHECK (true);

-- fiscal calendar: bookkeepers create years; only owners and admins close or reopen (UPDATE)
CREATE POLICY fiscal_years_read ON finance.fiscal_years FOR SELECT TO authenticated, omnizen_analyst
  USING (org_id = public.auth_org_id());
CREATE POLICY fiscal_years_insert ON finance.fiscal_years FOR INSERT TO authenticated
  WITH CHECK (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'accountant', 'service'));
CREATE POLICY fiscal_years_update ON finance.fiscal_years FOR UPDATE TO authenticated
  USING (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'service'))
  WITH CHECK (org_id = public.auth_org_id());
CREATE POLICY fiscal_years_service ON finance.fiscal_years FOR ALL TO service_role USING (true) WITH CHECK (true);

CREATE POLICY fiscal_periods_read ON finance.fiscal_periods FOR SELECT TO authenticated, finance_posting, omnizen_analyst
  USING (org_id = public.auth_org_id());
CREATE POLICY fiscal_periods_insert ON finance.fiscal_periods FOR INSERT TO authenticated
  WITH CHECK (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'accountant', 'service'));
CREATE POLICY fiscal_periods_update ON finance.fiscal_periods FOR UPDATE TO authenticated
  USING (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'service'))
  WITH CHECK (org_id = public.auth_org_id());
-- lets the posting function lock a period row (FOR KEY SHARE); it can never change one
CREATE POLICY fiscal_periods_lock ON finance.fiscal_periods FOR UPDATE TO finance_posting
  USING (org_id = public.auth_org_id()) WITH CHECK (false);
CREATE POLICY fiscal_periods_service ON finance.fiscal_periods FOR ALL TO service_role USING (true) WITH CHECK (true);

-- postings: members read; the posting function (finance_posting) inserts for the posting roles only
CREATE POLICY journal_entries_read ON finance.journal_entries FOR SELECT TO authenticated, finance_posting, omnizen_analyst
  USING (org_id = public.auth_org_id());
CREATE POLICY journal_entries_post ON finance.journal_entries FOR INSERT TO finance_posting
  WITH CHECK (org_id = public.auth_org_id() AND public.auth_has_role('owner', 'admin', 'accountant', 'service'));
CREATE POLICY journal_entries_service ON finance.journal_entries FOR SELECT TO service_role USING (true);

CREATE POLICY journal_lines_read ON finance.journal_lines FOR SELECT TO authenticated, finance_posting, omnizen_analyst
  USING (org_id = public.auth_org_id());
CREATE POLICY journal_lines_post ON finance.journal_lines FOR INSERT TO finance_posting
  WITH CHECK (org_id = public.auth_org_id());
CREATE POLICY journal_lines_service ON finance.journal_lines FOR SELECT TO service_role USING (true);

CREATE POLICY account_balances_read ON finance.account_balances FOR SELECT TO authenticated, finance_posting, omnizen_analyst
  USING (org_id = public.auth_org_id());
CREATE POLICY account_balances_post ON finance.account_balances FOR INSERT TO finance_posting
  WITH CHECK (org_id = public.auth_org_id());
CREATE POLICY account_balances_update ON finance.account_balances FOR UPDATE TO finance_posting
  USING (org_id = public.auth_org_id()) WITH CHECK (org_id = public.auth_org_id());
CREATE POLICY account_balances_service ON finance.account_balances FOR SELECT TO service_role USING (true);

CREATE POLICY period_balances_read ON finance.period_balances FOR SELECT TO authenticated, finance_posting, omnizen_analyst
  USING (org_id = public.auth_org_id());
CREATE POLICY period_balances_post ON finance.period_balances FOR INSERT TO finance_posting
  WITH CHECK (org_id = public.auth_org_id());
CREATE POLICY period_balances_update ON finance.period_balances FOR UPDATE TO finance_posting
  USING (org_id = public.auth_org_id()) WITH CHECK (org_id = public.auth_org_id());
CREATE POLICY period_balances_service ON finance.period_balances FOR SELECT TO service_role USING (true);

CREATE TRIGGER accounts_check BEFORE INSERT OR UPDATE ON finance.accounts
  FOR EACH ROW EXECUTE FUNCTION finance.check_account();

-- ---------------------------------------------------------------- FX rate lookup
-- The rate effective on a date: the latest rate on or before it (1 for the base currency, NULL if none).
CREATE FUNCTION finance.effective_rate(p_currency text, p_date date) RETURNS numeric
LANGUAGE sql STABLE AS $$
  SELECT CASE
    WHEN p_currency = (SELECT s.base_currency FROM finance.settings s WHERE s.org_id = public.auth_org_id()) THEN 1::numeric
    ELSE (SELECT r.rate FROM finance.fx_rates r
          WHERE r.org_id = public.auth_org_id() AND r.currency = p_currency AND r.rate_date <= p_date
          ORDER BY r.rate_date DESC LIMIT 1)
  END
$$;

-- ---------------------------------------------------------------- posting
-- Posts one journal entry in one call. Payload (amounts are decimal strings):
--   { "date": "2026-01-31", "memo": "...", "source": "manual", "sourceRef": null, "idempotencyKey": "...",
--     "reversesEntryId": null,
--     "lines": [ { "accountId": uuid, "debit": "100.00" | "credit": "100.00", "currency": "USD",
--                  "rate": "1.1" (optional: the rate effective on the date is used),
--                  "baseDebit"/"baseCredit" (optional: explicit base amount, e.g. revaluation lines),
--                  "description", "workspaceId", "counterpartyType", "counterpartyId" } ] }
-- Returns the entry id, and replayed = true when the idempotency key was already used with the same payload.
CREATE FUNCTION finance.post_journal_entry(p jsonb, OUT entry_id uuid, OUT replayed boolean)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  org uuid := public.auth_org_id();
  s finance.settings;
  per finance.fiscal_periods;
  acc finance.accounts;
  l jsonb;
  n int := 0;
  d date;
  v_source text := coalesce(p ->> 'source', 'manual');
  v_key text := nullif(p ->> 'idempotencyKey', '');
  v_hash text := md5((p - 'idempotencyKey')::text);
  v_reverses uuid;
  existing record;
  base_mu int;
  mu int;
  v_cur text;
  v_rate numeric;
  v_dr numeric; v_cr numeric; v_bdr numeric; v_bcr numeric;
  a_acc uuid[] := '{}'; a_cur text[] := '{}'; a_dr numeric[] := '{}'; a_cr numeric[] := '{}'; a_rate numeric[] := '{}';
  a_bdr numeric[] := '{}'; a_bcr numeric[] := '{}'; a_desc text[] := '{}'; a_ws uuid[] := '{}';
  a_cpt text[] := '{}'; a_cpi text[] := '{}'; a_round boolean[] := '{}';
  sum_bdr numeric := 0; sum_bcr numeric := 0; diff numeric;
  currencies text[];
  v_slot smallint := (pg_backend_pid() % 8)::smallint;
BEGIN
  IF org IS NULL THEN
    RAISE EXCEPTION 'no organization: the caller may not act in the claimed organization' USING ERRCODE = '42501';
  END IF;
  IF NOT public.auth_has_role('owner', 'admin', 'accountant', 'service') THEN
    RAISE EXCEPTION 'posting journal entries needs the role owner, admin or accountant' USING ERRCODE = '42501';
  END IF;
  IF jsonb_typeof(p) IS DISTINCT FROM 'object' OR jsonb_typeof(p -> 'lines') IS DISTINCT FROM 'array' THEN
    RAISE EXCEPTION 'entry must be an object with an array of lines' USING ERRCODE = '22023';
  END IF;

  -- idempotent replay: answer before taking any lock
  IF v_key IS NOT NULL THEN
    SELECT e.id, e.request_hash INTO existing FROM finance.journal_entries e WHERE e.org_id = org AND e.idempotency_key = v_key;
    IF FOUND THEN
      IF existing.request_hash <> v_hash THEN
        RAISE EXCEPTION 'idempotency key "%" was already used for a different entry', v_key USING ERRCODE = '23505';
      END IF;
      entry_id := existing.id; replayed := true;
      RETURN;
    END IF;
  END IF;

  SELECT * INTO s FROM finance.settings x WHERE x.org_id = org;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'the books of this organization are not started (no base currency)' USING ERRCODE = 'P0001';
  END IF;
  SELECT c.minor_units INTO base_mu FROM finance.currencies c WHERE c.code = s.base_currency;

  IF v_source NOT IN ('manual', 'invoice', 'bill', 'payment', 'system') THEN
    RAISE EXCEPTION 'source must be one of manual, invoice, bill, payment, system' USING ERRCODE = '22023';
  END IF;
  d := (p ->> 'date')::date;
  IF d IS NULL THEN
    RAISE EXCEPTION 'entry date is required' USING ERRCODE = '22023';
  END IF;
  -- the period row is key-share locked: closing it (SELECT ... FOR UPDATE) waits for postings in flight
  SELECT * INTO per FROM finance.fiscal_periods fp
  WHERE fp.org_id = org AND fp.start_date <= d AND fp.end_date >= d FOR KEY SHARE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'no fiscal period covers %', d USING ERRCODE = 'P0001';
  END IF;
  IF per.status <> 'open' THEN
    RAISE EXCEPTION 'the fiscal period % to % is closed', per.start_date, per.end_date USING ERRCODE = 'P0001';
  END IF;

  v_reverses := nullif(p ->> 'reversesEntryId', '')::uuid;
  IF v_reverses IS NOT NULL THEN
    IF NOT EXISTS (SELECT 1 FROM finance.journal_entries e WHERE e.org_id = org AND e.id = v_reverses) THEN
      RAISE EXCEPTION 'journal entry % does not exist', v_reverses USING ERRCODE = 'P0002';
    END IF;
    IF EXISTS (SELECT 1 FROM finance.journal_entries e WHERE e.org_id = org AND e.reverses_entry_id = v_reverses) THEN
      RAISE EXCEPTION 'journal entry % is already reversed', v_reverses USING ERRCODE = '23505';
    END IF;
  END IF;

  FOR l IN SELECT value FROM jsonb_array_elements(p -> 'lines') LOOP
    n := n + 1;
    IF n > 499 THEN
      RAISE EXCEPTION 'an entry has at most 499 lines' USING ERRCODE = '22023';
    END IF;
    SELECT * INTO acc FROM finance.accounts a WHERE a.org_id = org AND a.id = (l ->> 'accountId')::uuid;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'line %: account % does not exist in this organization', n, l ->> 'accountId' USING ERRCODE = 'P0001';
    END IF;
    IF acc.is_group THEN
      RAISE EXCEPTION 'line %: account % is a group account; post to one of its children', n, acc.code USING ERRCODE = 'P0001';
    END IF;
    IF acc.archived_at IS NOT NULL THEN
      RAISE EXCEPTION 'line %: account % is archived', n, acc.code USING ERRCODE = 'P0001';
    END IF;
    v_cur := coalesce(nullif(l ->> 'currency', ''), s.base_currency);
    SELECT c.minor_units INTO mu FROM finance.currencies c WHERE c.code = v_cur;
    IF mu IS NULL THEN
      RAISE EXCEPTION 'line %: unknown currency %', n, v_cur USING ERRCODE = '22023';
    END IF;
    IF acc.currency IS NOT NULL AND acc.currency <> v_cur THEN
      RAISE EXCEPTION 'line %: account % only takes %, not %', n, acc.code, acc.currency, v_cur USING ERRCODE = 'P0001';
    END IF;
    v_dr := coalesce((l ->> 'debit')::numeric, 0);
    v_cr := coalesce((l ->> 'credit')::numeric, 0);
    IF v_dr < 0 OR v_cr < 0 OR (v_dr > 0 AND v_cr > 0) THEN
      RAISE EXCEPTION 'line %: give either a positive debit or a positive credit', n USING ERRCODE = '22023';
    END IF;
    IF v_dr <> round(v_dr, mu) OR v_cr <> round(v_cr, mu) THEN
      RAISE EXCEPTION 'line %: % amounts have at most % decimals', n, v_cur, mu USING ERRCODE = '22023';
    END IF;
    IF v_cur = s.base_currency THEN
      v_rate := 1;
      IF l ? 'rate' AND (l ->> 'rate')::numeric <> 1 THEN
        RAISE EXCEPTION 'line %: a line in the base currency % has rate 1', n, v_cur USING ERRCODE = '22023';
      END IF;
    ELSE
      v_rate := coalesce((l ->> 'rate')::numeric, finance.effective_rate(v_cur, d));
      IF v_rate IS NULL THEN
        RAISE EXCEPTION 'line %: no % rate on or before %', n, v_cur, d USING ERRCODE = 'P0001';
      END IF;
      IF v_rate <= 0 THEN
        RAISE EXCEPTION 'line %: rate must be positive', n USING ERRCODE = '22023';
      END IF;
    END IF;
    IF l ? 'baseDebit' OR l ? 'baseCredit' THEN
      v_bdr := coalesce((l ->> 'baseDebit')::numeric, 0);
      v_bcr := coalesce((l ->> 'baseCredit')::numeric, 0);
      IF v_bdr < 0 OR v_bcr < 0 OR (v_bdr > 0 AND v_bcr > 0) OR v_bdr <> round(v_bdr, base_mu) OR v_bcr <> round(v_bcr, base_mu)
         OR (v_dr > 0 AND v_bcr > 0) OR (v_cr > 0 AND v_bdr > 0) OR (v_cur = s.base_currency AND (v_bdr <> v_dr OR v_bcr <> v_cr)) THEN
        RAISE EXCEPTION 'line %: base amounts must be one non-negative side with at most % decimals, on the side of the line', n, base_mu USING ERRCODE = '22023';
      END IF;
    ELSE
      v_bdr := round(v_dr * v_rate, base_mu);
      v_bcr := round(v_cr * v_rate, base_mu);
    END IF;
    IF v_dr + v_cr + v_bdr + v_bcr = 0 THEN
      RAISE EXCEPTION 'line %: amount is zero', n USING ERRCODE = '22023';
    END IF;
    a_acc := a_acc || acc.id; a_cur := a_cur || v_cur; a_dr := a_dr || v_dr; a_cr := a_cr || v_cr; a_rate := a_rate || v_rate;
    a_bdr := a_bdr || v_bdr; a_bcr := a_bcr || v_bcr; a_round := a_round || false;
    a_desc := a_desc || (l ->> 'description'); a_ws := a_ws || nullif(l ->> 'workspaceId', '')::uuid;
    a_cpt := a_cpt || (l ->> 'counterpartyType'); a_cpi := a_cpi || (l ->> 'counterpartyId');
    sum_bdr := sum_bdr + v_bdr; sum_bcr := sum_bcr + v_bcr;
  END LOOP;
  IF n < 2 THEN
    RAISE EXCEPTION 'an entry needs at least two lines' USING ERRCODE = '22023';
  END IF;

  -- single-currency entries balance in that currency exactly
  SELECT array_agg(DISTINCT c) INTO currencies FROM unnest(a_cur) c;
  IF cardinality(currencies) = 1 AND (SELECT sum(x) FROM unnest(a_dr) x) <> (SELECT sum(x) FROM unnest(a_cr) x) THEN
    RAISE EXCEPTION 'entry does not balance in %: debits % and credits %', currencies[1],
      (SELECT sum(x) FROM unnest(a_dr) x), (SELECT sum(x) FROM unnest(a_cr) x) USING ERRCODE = 'P0001';
  END IF;
  -- in the base currency, a difference of at most one minor unit per line is rounding: it goes to the rounding account
  diff := sum_bdr - sum_bcr;
  IF diff <> 0 THEN
    IF abs(diff) > n * power(10::numeric, -base_mu) THEN
      RAISE EXCEPTION 'entry does not balance in the base currency %: debits % and credits %', s.base_currency, sum_bdr, sum_bcr USING ERRCODE = 'P0001';
    END IF;
    IF s.rounding_account_id IS NULL THEN
      RAISE EXCEPTION 'entry is off by % % from rounding and no rounding account is configured', diff, s.base_currency USING ERRCODE = 'P0001';
    END IF;
    n := n + 1;
    a_acc := a_acc || s.rounding_account_id; a_cur := a_cur || s.base_currency; a_rate := a_rate || 1::numeric;
    a_dr := a_dr || greatest(-diff, 0); a_cr := a_cr || greatest(diff, 0);
    a_bdr := a_bdr || greatest(-diff, 0); a_bcr := a_bcr || greatest(diff, 0); a_round := a_round || true;
    a_desc := a_desc || 'rounding'::text; a_ws := a_ws || NULL::uuid; a_cpt := a_cpt || NULL::text; a_cpi := a_cpi || NULL::text;
    sum_bdr := sum_bdr + greatest(-diff, 0); sum_bcr := sum_bcr + greatest(diff, 0);
  END IF;

  INSERT INTO finance.journal_entries (org_id, entry_date, period_id, memo, source, source_ref, reverses_entry_id,
    idempotency_key, request_hash, base_currency, total_base, created_by)
  VALUES (org, d, per.id, coalesce(p ->> 'memo', ''), v_source, p ->> 'sourceRef', v_reverses,
    v_key, v_hash, s.base_currency, sum_bdr, coalesce(auth.uid()::text, 'service:' || (auth.jwt() ->> 'service')))
  ON CONFLICT ON CONSTRAINT journal_entries_org_id_idempotency_key_key DO NOTHING
  RETURNING id INTO entry_id;
  IF entry_id IS NULL THEN
    -- a concurrent request with the same key committed first
    SELECT e.id, e.request_hash INTO existing FROM finance.journal_entries e WHERE e.org_id = org AND e.idempotency_key = v_key;
    IF existing.request_hash <> v_hash THEN
      RAISE EXCEPTION 'idempotency key "%" was already used for a different entry', v_key USING ERRCODE = '23505';
    END IF;
    entry_id := existing.id; replayed := true;
    RETURN;
  END IF;
  replayed := false;

  INSERT INTO finance.journal_lines (org_id, entry_id, line_no, entry_date, period_id, account_id, currency, debit, credit, rate,
    base_debit, base_credit, description, workspace_id, counterparty_type, counterparty_id, is_rounding)
  SELECT org, entry_id, i::smallint, d, per.id, a_acc[i], a_cur[i], a_dr[i], a_cr[i], a_rate[i], a_bdr[i], a_bcr[i],
    a_desc[i], a_ws[i], a_cpt[i], a_cpi[i], a_round[i]
  FROM generate_subscripts(a_acc, 1) i;

  -- running balances, then period totals: rows locked in one fixed order (account, currency) so
  -- concurrent postings cannot deadlock
  INSERT INTO finance.account_balances AS b (org_id, account_id, currency, slot, debit, credit, base_debit, base_credit, line_count)
  SELECT org, x.acc, x.cur, v_slot, sum(x.dr), sum(x.cr), sum(x.bdr), sum(x.bcr), count(*)
  FROM unnest(a_acc, a_cur, a_dr, a_cr, a_bdr, a_bcr) AS x(acc, cur, dr, cr, bdr, bcr)
  GROUP BY x.acc, x.cur ORDER BY x.acc, x.cur
  ON CONFLICT ON CONSTRAINT account_balances_pkey DO UPDATE SET
    debit = b.debit + excluded.debit, credit = b.credit + excluded.credit,
    base_debit = b.base_debit + excluded.base_debit, base_credit = b.base_credit + excluded.base_credit,
    line_count = b.line_count + excluded.line_count, updated_at = now();

  INSERT INTO finance.period_balances AS b (org_id, period_id, account_id, currency, slot, debit, credit, base_debit, base_credit, line_count)
  SELECT org, per.id, x.acc, x.cur, v_slot, sum(x.dr), sum(x.cr), sum(x.bdr), sum(x.bcr), count(*)
  FROM unnest(a_acc, a_cur, a_dr, a_cr, a_bdr, a_bcr) AS x(acc, cur, dr, cr, bdr, bcr)
  GROUP BY x.acc, x.cur ORDER BY x.acc, x.cur
  ON CONFLICT ON CONSTRAINT period_balances_pkey DO UPDATE SET
    debit = b.debit + excluded.debit, credit = b.credit + excluded.credit,
    base_debit = b.base_debit + excluded.base_debit, base_credit = b.base_credit + excluded.base_credit,
    line_count = b.line_count + excluded.line_count;
END
$$;
-- a new owner needs CREATE on the function's schema (superusers skip that check); only for the hand-over
GRANT CREATE ON SCHEMA finance TO finance_posting;
ALTER FUNCTION finance.post_journal_entry(jsonb) OWNER TO finance_posting;
REVOKE CREATE ON SCHEMA finance FROM finance_posting;
REVOKE ALL ON FUNCTION finance.post_journal_entry(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION finance.post_journal_entry(jsonb) TO authenticated, service_role;

-- ---------------------------------------------------------------- totals over a date range (statements)
-- Per (account, currency) sums over [p_from, p_to] (NULL = open-ended), from per-period totals for
-- the periods fully inside the range plus the lines of the at most two periods cut by its ends.
CREATE FUNCTION finance.account_totals(p_from date, p_to date, p_account uuid DEFAULT NULL)
RETURNS TABLE (account_id uuid, currency text, debit numeric, credit numeric, base_debit numeric, base_credit numeric)
LANGUAGE sql STABLE AS $$
  WITH periods AS (
    SELECT p.id, (p_from IS NULL OR p.start_date >= p_from) AND (p_to IS NULL OR p.end_date <= p_to) AS whole
    FROM finance.fiscal_periods p
    WHERE p.org_id = public.auth_org_id()
      AND (p_from IS NULL OR p.end_date >= p_from) AND (p_to IS NULL OR p.start_date <= p_to)
  ), parts AS (
    SELECT b.account_id, b.currency, b.debit, b.credit, b.base_debit, b.base_credit
    FROM finance.period_balances b JOIN periods x ON x.whole AND x.id = b.period_id
    WHERE b.org_id = public.auth_org_id() AND (p_account IS NULL OR b.account_id = p_account)
    UNION ALL
    SELECT l.account_id, l.currency, l.debit, l.credit, l.base_debit, l.base_credit
    FROM finance.journal_lines l JOIN periods x ON NOT x.whole AND x.id = l.period_id
    WHERE l.org_id = public.auth_org_id() AND (p_account IS NULL OR l.account_id = p_account)
      AND (p_from IS NULL OR l.entry_date >= p_from) AND (p_to IS NULL OR l.entry_date <= p_to)
  )
  SELECT t.account_id, t.currency, sum(t.debit), sum(t.credit), sum(t.base_debit), sum(t.base_credit)
  FROM parts t GROUP BY t.account_id, t.currency
$$;
GRANT EXECUTE ON FUNCTION finance.account_totals(date, date, uuid) TO authenticated, service_role;

-- ---------------------------------------------------------------- semantic view
CREATE VIEW semantic.v_gl_fact WITH (security_invoker = true) AS
SELECT l.org_id, l.entry_id, e.seq AS entry_seq, l.line_no, l.entry_date,
  p.fiscal_year_id, p.id AS period_id, p.period_no, p.start_date AS period_start, p.end_date AS period_end,
  l.account_id, a.code AS account_code, a.name AS account_name, a.type AS account_type, a.parent_id AS parent_account_id,
  l.currency, l.debit, l.credit, l.debit - l.credit AS amount, l.rate,
  e.base_currency, l.base_debit, l.base_credit, l.base_debit - l.base_credit AS base_amount,
  e.source, e.source_ref, e.memo, l.description, e.reverses_entry_id,
  l.workspace_id, l.counterparty_type, l.counterparty_id, e.created_at AS posted_at
FROM finance.journal_lines l
JOIN finance.journal_entries e ON e.org_id = l.org_id AND e.id = l.entry_id
JOIN finance.accounts a ON a.org_id = l.org_id AND a.id = l.account_id
JOIN finance.fiscal_periods p ON p.org_id = l.org_id AND p.id = l.period_id
WHERE l.org_id = public.auth_org_id();
GRANT SELECT ON semantic.v_gl_fact TO authenticated, omnizen_analyst, service_role;
GRANT SELECT ON finance.journal_lines, finance.journal_entries, finance.accounts, finance.fiscal_periods, finance.fiscal_years
  TO omnizen_analyst;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20260301000100_ledger', '6be2b2d4b32f37b3a9537a9d52d23606cc28cddc3dfa3cbcbe0ca9c7064c9bbe', 0)
  ON CONFLICT (name) DO NOTHING;
