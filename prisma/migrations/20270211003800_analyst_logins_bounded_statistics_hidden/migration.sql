-- Analysts' direct database logins (members of omnizen_analyst, mapped in core.analyst_logins):
--
-- 1. The planner's column statistics are shared by every tenant, and text equality is leakproof, so under RLS the
--    planner still uses them: an analyst's `EXPLAIN SELECT * FROM finance.journal_entries WHERE memo = 'guess'`
--    answered about 250 rows for a memo only another organization uses and 1 for a wrong guess. Every text-like
--    column (text, varchar, char, name, citext, json, jsonb, arrays of them) an analyst can read, directly or under
--    the semantic views (security_invoker: the same tables), now keeps no statistics. SET STATISTICS 0 alone stops
--    the next ANALYZE from collecting, but leaves the stored MCV list and histogram; deleting pg_statistic needs a
--    superuser, so each such column is altered to its own type, which drops its statistics (the table is not
--    rewritten and plain indexes are kept, but partial and expression indexes naming the column are rebuilt and CHECK
--    constraints checked again: about 1 µs a row of the ledger's tables, measured 3.3 s on a 536 MB database, every
--    table locked until commit; `lock_timeout` below makes it fail rather than queue behind a long analyst query with
--    the ledger waiting behind it — run it again then); its expression indexes (lower(name)) are made without their
--    statistics, and those index expressions get SET STATISTICS 0 too. Views and policies that name the column would refuse the
--    ALTER: views are replaced for the moment by an empty stand-in with the same columns, policies by `true`, both
--    put back in the same transaction. Kept (the array `kept` below; the catalog test allows exactly these): columns
--    whose values are a closed set fixed by a CHECK constraint (an account's type and cash flow class, a period's,
--    invoice's and bill's status and kind, a revaluation's subledger) and the shared currency catalog (no org_id).
--    Their possible values are public in the schema, so an estimate tells only how common each is over all tenants
--    together, and the plans that branch on them (open periods, issued invoices, posted bills, partial indexes on
--    them) keep their estimates. Also kept, knowingly: a journal line's counterparty (type and id): the entry list's
--    counterparty filter chooses between its index and a walk of the entries by that estimate (without it, a rare
--    counterparty read all 3,000 entries of test/ledger/journal-entry-filters); the price is that an analyst can tell
--    how often a guessed counterparty id occurs over all tenants together. Currency columns of tenant tables are not kept: which currencies another
--    organization books in is theirs. Numeric comparisons are not leakproof (their statistics are not used under
--    RLS); pg_stats and pg_stats_ext show an analyst nothing of a table under row-level security (they filter on
--    row_security_active).
-- 2. omnizen_analyst held SELECT on every finance table, though analysts are "read-only on schema semantic". The
--    semantic views are security_invoker, so their base tables must stay readable (accounts, fiscal_periods,
--    journal_entries, journal_lines, settings, currencies, customers' non-contact columns, invoices, vendors, bills,
--    bill_allocations, fx_revaluation_items); the others no view reads (the aging functions are SECURITY DEFINER)
--    are revoked, and their read policies no longer name the role.
--    Not covered (accepted): dates, timestamps, integers, uuids and booleans also compare with leakproof operators,
--    so their histograms (all tenants mixed) still shape an analyst's estimates — how busy a day was over every
--    organization together, and another organization's row count to whoever knows its id. Zeroing them would take
--    the estimates the ledger's own date-range and org_id plans depend on.
-- 3. core.create_analyst_login(): the one way operators make a login, bounded (CONNECTION LIMIT, per-role timeouts:
--    settings on the group omnizen_analyst are not inherited by its members) and audited.

-- fail rather than queue an exclusive lock of every finance table behind a long query (see 1.)
SET LOCAL lock_timeout = '10s';

-- ---------------------------------------------------------------- 2. grants no semantic view needs
REVOKE ALL ON finance.fiscal_years, finance.invoice_lines, finance.customer_payments, finance.customer_refunds,
  finance.receivable_allocations, finance.receivable_open_amounts, finance.revenue_recognition_runs,
  finance.revenue_recognitions, finance.bill_payments, finance.bill_payment_refunds, finance.payable_open_amounts
  FROM omnizen_analyst;
ALTER POLICY fiscal_years_read ON finance.fiscal_years TO authenticated;
ALTER POLICY invoice_lines_read ON finance.invoice_lines TO authenticated;
ALTER POLICY customer_payments_read ON finance.customer_payments TO authenticated;
ALTER POLICY customer_refunds_read ON finance.customer_refunds TO authenticated;
ALTER POLICY receivable_allocations_read ON finance.receivable_allocations TO authenticated;
ALTER POLICY receivable_open_amounts_read ON finance.receivable_open_amounts TO authenticated;
ALTER POLICY revenue_recognition_runs_read ON finance.revenue_recognition_runs TO authenticated;
ALTER POLICY revenue_recognitions_read ON finance.revenue_recognitions TO authenticated;
ALTER POLICY bill_payments_read ON finance.bill_payments TO authenticated;
ALTER POLICY bill_payment_refunds_read ON finance.bill_payment_refunds TO authenticated;
ALTER POLICY payable_open_amounts_read ON finance.payable_open_amounts TO authenticated;

-- ---------------------------------------------------------------- 1. no statistics an analyst's EXPLAIN could read
DO $$
DECLARE
  -- closed sets (CHECK constraints), see the header; test/platform/analyst-login.test.ts allows exactly these
  kept constant text[] := ARRAY['finance.accounts.type', 'finance.accounts.cash_flow_class', 'finance.fiscal_periods.status',
    'finance.invoices.kind', 'finance.invoices.status', 'finance.bills.kind', 'finance.bills.status',
    'finance.fx_revaluation_items.subledger', 'finance.currencies.code', 'finance.currencies.name',
    'finance.journal_lines.counterparty_id', 'finance.journal_lines.counterparty_type'];
  path text := current_setting('search_path');
  r record;
  stmt text;
BEGIN
  -- definitions read back below name every object with its schema
  PERFORM set_config('search_path', '', true);
  CREATE TEMP TABLE analyst_stat_columns ON COMMIT DROP AS
  SELECT c.oid AS relid, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod) AS typ,
         CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation THEN ' COLLATE ' || a.attcollation::regcollation::text ELSE '' END AS coll
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
  JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
  LEFT JOIN pg_catalog.pg_type e ON e.oid = t.typelem AND t.typcategory = 'A'
  WHERE c.relkind IN ('r', 'p') AND c.relnamespace::regnamespace::text IN ('core', 'hub', 'finance', 'ai', 'public', 'semantic')
    AND pg_catalog.has_column_privilege('omnizen_analyst', c.oid, a.attnum, 'SELECT')
    -- string types (text, varchar, char, name, citext) and JSON, or arrays of them
    AND (coalesce(e.typcategory, t.typcategory) = 'S' OR coalesce(e.typname, t.typname) IN ('json', 'jsonb'));
  DELETE FROM analyst_stat_columns s USING pg_catalog.pg_class c
  WHERE c.oid = s.relid AND format('%s.%s.%s', c.relnamespace::regnamespace, c.relname, s.attname) = ANY (kept);

  -- views naming such a column: an empty stand-in with the same columns for the moment
  CREATE TEMP TABLE analyst_stat_views ON COMMIT DROP AS
  SELECT DISTINCT rw.ev_class AS viewid FROM pg_catalog.pg_depend d
  JOIN pg_catalog.pg_rewrite rw ON rw.oid = d.objid
  JOIN analyst_stat_columns s ON s.relid = d.refobjid AND s.attnum = d.refobjsubid
  WHERE d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.refclassid = 'pg_catalog.pg_class'::regclass AND rw.ev_class <> d.refobjid;
  ALTER TABLE analyst_stat_views ADD COLUMN definition text, ADD COLUMN options text;
  UPDATE analyst_stat_views SET definition = pg_catalog.pg_get_viewdef(viewid),
    options = (SELECT coalesce(' WITH (' || array_to_string(c.reloptions, ', ') || ')', '') FROM pg_catalog.pg_class c WHERE c.oid = viewid);
  FOR r IN SELECT v.viewid, v.options, string_agg(format('NULL::%s%s AS %I', format_type(a.atttypid, a.atttypmod),
             CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation THEN ' COLLATE ' || a.attcollation::regcollation::text ELSE '' END,
             a.attname), ', ' ORDER BY a.attnum) AS cols
           FROM analyst_stat_views v JOIN pg_catalog.pg_attribute a ON a.attrelid = v.viewid AND a.attnum > 0 AND NOT a.attisdropped
           JOIN pg_catalog.pg_type t ON t.oid = a.atttypid GROUP BY v.viewid, v.options LOOP
    EXECUTE format('CREATE OR REPLACE VIEW %s%s AS SELECT %s WHERE false', r.viewid::regclass, r.options, r.cols);
  END LOOP;

  -- policies naming such a column: `true` for the moment
  CREATE TEMP TABLE analyst_stat_policies ON COMMIT DROP AS
  SELECT DISTINCT p.oid, p.polname, p.polrelid, pg_catalog.pg_get_expr(p.polqual, p.polrelid) AS qual,
         pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid) AS withcheck
  FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_policy p ON p.oid = d.objid
  JOIN analyst_stat_columns s ON s.relid = d.refobjid AND s.attnum = d.refobjsubid
  WHERE d.classid = 'pg_catalog.pg_policy'::regclass AND d.refclassid = 'pg_catalog.pg_class'::regclass;
  FOR r IN SELECT * FROM analyst_stat_policies LOOP
    EXECUTE format('ALTER POLICY %I ON %s%s%s', r.polname, r.polrelid::regclass,
      CASE WHEN r.qual IS NOT NULL THEN ' USING (true)' ELSE '' END, CASE WHEN r.withcheck IS NOT NULL THEN ' WITH CHECK (true)' ELSE '' END);
  END LOOP;

  -- per table, one statement: no statistics collected from now on, the stored ones dropped
  FOR stmt IN SELECT format('ALTER TABLE %s %s', s.relid::regclass,
                string_agg(format('ALTER COLUMN %I SET STATISTICS 0, ALTER COLUMN %I TYPE %s%s', s.attname, s.attname, s.typ, s.coll), ', ' ORDER BY s.attnum))
              FROM analyst_stat_columns s GROUP BY s.relid ORDER BY s.relid::regclass::text LOOP
    EXECUTE stmt;
  END LOOP;

  -- an expression index over such a column (lower(name)) keeps statistics of its own, used for `lower(name) = ...`:
  -- the ALTER above made the index anew (its statistics gone), this keeps ANALYZE from collecting them again
  FOR stmt IN SELECT format('ALTER INDEX %s %s', i.indexrelid::regclass,
                string_agg(format('ALTER COLUMN %s SET STATISTICS 0', k.n + 1), ', ' ORDER BY k.n))
              FROM pg_catalog.pg_index i CROSS JOIN LATERAL generate_series(0, i.indnkeyatts - 1) AS k(n)
              WHERE i.indkey[k.n] = 0 AND EXISTS (
                SELECT 1 FROM pg_catalog.pg_depend d JOIN analyst_stat_columns s ON s.relid = d.refobjid AND s.attnum = d.refobjsubid
                WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = i.indexrelid AND d.refclassid = 'pg_catalog.pg_class'::regclass)
              GROUP BY i.indexrelid ORDER BY i.indexrelid::regclass::text LOOP
    EXECUTE stmt;
  END LOOP;

  FOR r IN SELECT * FROM analyst_stat_policies LOOP
    EXECUTE format('ALTER POLICY %I ON %s%s%s', r.polname, r.polrelid::regclass,
      CASE WHEN r.qual IS NOT NULL THEN format(' USING (%s)', r.qual) ELSE '' END,
      CASE WHEN r.withcheck IS NOT NULL THEN format(' WITH CHECK (%s)', r.withcheck) ELSE '' END);
  END LOOP;
  FOR r IN SELECT * FROM analyst_stat_views LOOP
    EXECUTE format('CREATE OR REPLACE VIEW %s%s AS %s', r.viewid::regclass, r.options, r.definition);
  END LOOP;
  PERFORM set_config('search_path', path, true);
END
$$;

-- ---------------------------------------------------------------- 3. creating an analyst's login
-- Run by an operator as the migration role (Supabase's `postgres`: CREATEROLE, BYPASSRLS, not a superuser; on
-- PostgreSQL 16+ it created omnizen_analyst, so it holds the ADMIN OPTION that adding a member needs). SECURITY
-- INVOKER and executable by no API-facing role: making a login is the caller's own CREATEROLE, never something
-- PostgREST's /rpc, an analyst or a member could reach. The password may be a SCRAM verifier
-- ('SCRAM-SHA-256$...', what psql's \password sends), so the clear text is never in a statement log; NULL leaves
-- the login without one (set it with \password). CONNECTION LIMIT is the one bound an analyst cannot lift: the
-- timeouts are defaults an honest BI tool keeps, and the login can SET them (user-settable parameters).
CREATE FUNCTION core.create_analyst_login(p_login name, p_password text, p_org uuid, p_max_connections integer DEFAULT 3)
RETURNS void LANGUAGE plpgsql SET search_path = '' AS $$
BEGIN
  IF p_login IS NULL OR p_login !~ '^[a-z_][a-z0-9_]*$' THEN
    RAISE EXCEPTION 'an analyst login is lower-case letters, digits and underscores: %', p_login USING ERRCODE = '22023';
  END IF;
  IF p_max_connections IS NULL OR p_max_connections NOT BETWEEN 1 AND 100 THEN
    RAISE EXCEPTION 'max_connections must be between 1 and 100, not %', p_max_connections USING ERRCODE = '22023';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM core.organizations o WHERE o.id = p_org AND o.deleted_at IS NULL) THEN
    RAISE EXCEPTION 'no organization %', p_org USING ERRCODE = '23503';
  END IF;
  EXECUTE format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS NOREPLICATION INHERIT CONNECTION LIMIT %s PASSWORD %L IN ROLE omnizen_analyst',
    p_login, p_max_connections, p_password);
  EXECUTE format('ALTER ROLE %I SET statement_timeout = %L', p_login, '60s');
  EXECUTE format('ALTER ROLE %I SET idle_in_transaction_session_timeout = %L', p_login, '60s');
  EXECUTE format('ALTER ROLE %I SET idle_session_timeout = %L', p_login, '15min');
  EXECUTE format('ALTER ROLE %I SET lock_timeout = %L', p_login, '5s');
  INSERT INTO core.analyst_logins (login, org_id) VALUES (p_login, p_org);
  -- audited as the other SQL-side privileged writes (migrations): principal 'system', the operator's login as actor
  INSERT INTO core.audit_logs (org_id, actor_id, principal_type, action, entity_type, entity_id, after)
  VALUES (p_org, 'operator:' || session_user, 'system', 'analyst_login.created', 'analyst_login', p_login,
    jsonb_build_object('login', p_login, 'maxConnections', p_max_connections, 'statementTimeout', '60s',
      'idleInTransactionSessionTimeout', '60s', 'idleSessionTimeout', '15min', 'lockTimeout', '5s'));
END
$$;
REVOKE ALL ON FUNCTION core.create_analyst_login(name, text, uuid, integer) FROM PUBLIC, anon, authenticated, service_role, omnizen_analyst;
