-- OmniZen on a Supabase project (issue 11): the migrations run as Supabase's `postgres`, which is not a superuser,
-- and Supabase's default privileges in `public` grant ALL on every new table, sequence and function to anon,
-- authenticated and service_role by name. This migration
--  1. lets the code that runs as finance_posting read the request's claims without rights in schema auth
--     (Supabase's, owned by supabase_auth_admin: the migration login can grant nothing there);
--  2. drops OmniZen's own default privileges (new objects get no grant until their migration gives one);
--  3. sets every privilege on every table, view, sequence and function of ours explicitly: everything any role but
--     the owner held is revoked (PUBLIC's EXECUTE and Supabase's default grants included), then exactly the grants
--     below are given. TRUNCATE, REFERENCES and TRIGGER go to no one; internal functions to no one.
-- test/platform/privileges.ts holds the same intent as an allow-list that the catalog tests compare with the
-- database, on plain PostgreSQL and on a Supabase-shaped one.

-- ---------------------------------------------------------------- 1. claims without schema auth
-- The request's claims, as auth.jwt() reads them (request.jwt.claims, set by the API's begin_request and by
-- PostgREST; the older whole-claims setting first). Any role may call it: it reads the caller's own settings.
CREATE FUNCTION core.request_claims() RETURNS jsonb
LANGUAGE sql STABLE AS $$
  SELECT coalesce(nullif(current_setting('request.jwt.claim', true), ''),
                  nullif(current_setting('request.jwt.claims', true), ''))::jsonb
$$;

-- auth.uid() as text, read the way auth.uid() reads it; no longer through auth.uid(), because it also runs as
-- finance_posting (inside the posting function and its audit policy), which has no USAGE on Supabase's auth.
CREATE OR REPLACE FUNCTION public.auth_user_id() RETURNS text
LANGUAGE sql STABLE AS $$
  SELECT coalesce(nullif(current_setting('request.jwt.claim.sub', true), ''),
                  (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub'))::uuid::text
$$;

ALTER POLICY audit_insert_posting ON core.audit_logs
  WITH CHECK (
    org_id = public.auth_org_id() AND entity_type = 'journal_entry'
    AND ((principal_type = 'user' AND actor_id = public.auth_user_id())
         OR (principal_type = 'service' AND core.request_claims() ->> 'role' = 'service_role')));

-- The posting function as in 20260601000100_ledger_posting_audit, reading the poster through
-- public.auth_user_id() and core.request_claims() instead of auth.uid() and auth.jwt().
CREATE OR REPLACE FUNCTION finance.post_journal_entry(p jsonb, p_audit jsonb DEFAULT NULL,
  OUT entry_id uuid, OUT replayed boolean, OUT entry jsonb)
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
  a_code text[] := '{}';
  v_action text := coalesce(p_audit ->> 'action', 'ledger.entry_posted');
  v_user text := public.auth_user_id();
  v_service text := core.request_claims() ->> 'service';
  v_created_by text;
  v_inserted int;
BEGIN
  IF org IS NULL THEN
    RAISE EXCEPTION 'no organization: the caller may not act in the claimed organization' USING ERRCODE = '42501';
  END IF;
  IF NOT public.auth_has_role('owner', 'admin', 'accountant', 'service') THEN
    RAISE EXCEPTION 'posting journal entries needs the role owner, admin or accountant' USING ERRCODE = '42501';
  END IF;
  IF v_action NOT IN ('ledger.entry_posted', 'ledger.entry_reversed', 'ledger.fx_revaluation_posted', 'ledger.year_end_entry_posted') THEN
    RAISE EXCEPTION 'audit action % is not a posting action', v_action USING ERRCODE = '22023';
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
      entry_id := existing.id; replayed := true; entry := finance.entry_json(existing.id);
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
    a_acc := a_acc || acc.id; a_code := a_code || acc.code; a_cur := a_cur || v_cur; a_dr := a_dr || v_dr; a_cr := a_cr || v_cr; a_rate := a_rate || v_rate;
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
    a_acc := a_acc || s.rounding_account_id;
    a_code := a_code || (SELECT a.code FROM finance.accounts a WHERE a.org_id = org AND a.id = s.rounding_account_id);
    a_cur := a_cur || s.base_currency; a_rate := a_rate || 1::numeric;
    a_dr := a_dr || greatest(-diff, 0); a_cr := a_cr || greatest(diff, 0);
    a_bdr := a_bdr || greatest(-diff, 0); a_bcr := a_bcr || greatest(diff, 0); a_round := a_round || true;
    a_desc := a_desc || 'rounding'::text; a_ws := a_ws || NULL::uuid; a_cpt := a_cpt || NULL::text; a_cpi := a_cpi || NULL::text;
    sum_bdr := sum_bdr + greatest(-diff, 0); sum_bcr := sum_bcr + greatest(diff, 0);
  END IF;

  -- the id is chosen here and the row count tells a conflict (RETURNING would check the read policy again)
  entry_id := gen_random_uuid();
  v_created_by := coalesce(v_user, 'service:' || v_service);
  INSERT INTO finance.journal_entries (org_id, id, entry_date, period_id, memo, source, source_ref, reverses_entry_id,
    idempotency_key, request_hash, base_currency, total_base, created_by)
  VALUES (org, entry_id, d, per.id, coalesce(p ->> 'memo', ''), v_source, p ->> 'sourceRef', v_reverses,
    v_key, v_hash, s.base_currency, sum_bdr, v_created_by)
  ON CONFLICT ON CONSTRAINT journal_entries_org_id_idempotency_key_key DO NOTHING;
  GET DIAGNOSTICS v_inserted = ROW_COUNT;
  IF v_inserted = 0 THEN
    -- a concurrent request with the same key committed first
    SELECT e.id, e.request_hash INTO existing FROM finance.journal_entries e WHERE e.org_id = org AND e.idempotency_key = v_key;
    IF existing.request_hash <> v_hash THEN
      RAISE EXCEPTION 'idempotency key "%" was already used for a different entry', v_key USING ERRCODE = '23505';
    END IF;
    entry_id := existing.id; replayed := true; entry := finance.entry_json(existing.id);
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

  -- the answer, from the values just written (cast to their columns' types, as reading them back would give)
  entry := jsonb_build_object(
    'id', entry_id, 'date', d::text, 'memo', coalesce(p ->> 'memo', ''), 'source', v_source, 'sourceRef', p ->> 'sourceRef',
    'reversesEntryId', v_reverses, 'reversedByEntryId', NULL, 'idempotencyKey', v_key, 'baseCurrency', s.base_currency,
    'totalBase', sum_bdr::numeric(20, 4)::text, 'createdBy', v_created_by,
    'createdAt', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    'lines', (SELECT jsonb_agg(jsonb_build_object(
        'lineNo', i, 'accountId', a_acc[i], 'accountCode', a_code[i], 'currency', a_cur[i],
        'debit', a_dr[i]::numeric(20, 4)::text, 'credit', a_cr[i]::numeric(20, 4)::text, 'rate', a_rate[i]::numeric(24, 10)::text,
        'baseDebit', a_bdr[i]::numeric(20, 4)::text, 'baseCredit', a_bcr[i]::numeric(20, 4)::text, 'description', a_desc[i],
        'workspaceId', a_ws[i], 'counterpartyType', a_cpt[i], 'counterpartyId', a_cpi[i], 'isRounding', a_round[i]) ORDER BY i)
      FROM generate_subscripts(a_acc, 1) i));

  -- the audit row: the entry's identity and totals (the journal is the immutable record of its lines)
  INSERT INTO core.audit_logs (org_id, actor_id, principal_type, action, entity_type, entity_id, before, after, request_id, ip)
  VALUES (org, v_created_by, CASE WHEN v_user IS NOT NULL THEN 'user' ELSE 'service' END,
    v_action, 'journal_entry', entry_id::text, NULL,
    (entry - 'lines' - 'reversedByEntryId' - 'createdBy' - 'createdAt') || jsonb_build_object('lineCount', cardinality(a_acc)),
    left(p_audit ->> 'requestId', 200), left(p_audit ->> 'ip', 100));
END
$$;

-- ---------------------------------------------------------------- 2. no implicit grants of our own
-- 20260101000100_core and 20260201000100_hub_billing gave every new table in core and hub SELECT, INSERT, UPDATE
-- and DELETE for authenticated and service_role. A table that forgets its grants now fails closed.
DO $$
DECLARE
  dp record;
BEGIN
  FOR dp IN
    SELECT d.defaclrole::regrole::text AS role, n.nspname AS schema,
           CASE d.defaclobjtype WHEN 'r' THEN 'TABLES' WHEN 'S' THEN 'SEQUENCES' WHEN 'f' THEN 'FUNCTIONS'
                                WHEN 'T' THEN 'TYPES' WHEN 'n' THEN 'SCHEMAS' END AS objects,
           (SELECT string_agg(DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END, ', ')
              FROM aclexplode(d.defaclacl) a WHERE a.grantee <> d.defaclrole) AS grantees
    FROM pg_default_acl d JOIN pg_namespace n ON n.oid = d.defaclnamespace
    WHERE n.nspname IN ('core', 'hub', 'finance', 'semantic') AND pg_has_role(current_user, d.defaclrole, 'USAGE')
  LOOP
    IF dp.grantees IS NOT NULL THEN
      EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE %s IN SCHEMA %I REVOKE ALL ON %s FROM %s',
                     dp.role, dp.schema, dp.objects, dp.grantees);
    END IF;
  END LOOP;
END
$$;

-- ---------------------------------------------------------------- 3. every privilege, explicitly
-- First revoke whatever any role but the owner holds on our objects: everything in core, hub, finance and semantic,
-- and OmniZen's own objects in public (a Supabase project's public schema may hold the project's other tables).
DO $$
DECLARE
  obj record;
  grantee text;
BEGIN
  FOR obj IN
    SELECT CASE WHEN c.relkind = 'S' THEN 'SEQUENCE' ELSE 'TABLE' END AS kind, c.oid::regclass::text AS name, c.relowner AS owner,
           coalesce(c.relacl, acldefault(CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::"char", c.relowner)) AS acl,
           (SELECT array_agg(g.grantee) FROM pg_attribute a, aclexplode(a.attacl) g WHERE a.attrelid = c.oid) AS column_grantees
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
      AND (n.nspname IN ('core', 'hub', 'finance', 'semantic')
           OR (n.nspname = 'public' AND c.relname IN ('integrations', 'integration_secrets', 'providers')))
      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
    UNION ALL
    SELECT 'ROUTINE', p.oid::regprocedure::text, p.proowner, coalesce(p.proacl, acldefault('f'::"char", p.proowner)), NULL
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE (n.nspname IN ('core', 'hub', 'finance', 'semantic')
           OR (n.nspname = 'public' AND p.proname IN ('auth_org_id', 'auth_user_id', 'auth_role', 'auth_has_role',
               'auth_workspace_id', 'begin_request', 'touch_updated_at', 'enforce_integration_owner', 'public_provider_profile')))
      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
  LOOP
    FOR grantee IN
      SELECT DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END
      FROM (SELECT (aclexplode(obj.acl)).grantee UNION ALL SELECT unnest(obj.column_grantees)) a
      WHERE a.grantee <> obj.owner
    LOOP
      EXECUTE format('REVOKE ALL ON %s %s FROM %s', obj.kind, obj.name, grantee);
    END LOOP;
  END LOOP;
END
$$;

-- schemas: USAGE only (CREATE stays with the owner)
REVOKE ALL ON SCHEMA core, hub, finance, semantic FROM PUBLIC;
GRANT USAGE ON SCHEMA core TO anon, authenticated, service_role, finance_posting;
GRANT USAGE ON SCHEMA hub TO authenticated, service_role;
GRANT USAGE ON SCHEMA finance TO authenticated, service_role, finance_posting, omnizen_analyst;
GRANT USAGE ON SCHEMA semantic TO authenticated, service_role, omnizen_analyst;

-- core: members act under the policies; service_role is the privileged paths (BYPASSRLS, but still needs grants)
GRANT SELECT, INSERT, UPDATE, DELETE ON core."User", core.organizations, core.memberships, core.workspaces,
  core.invitations, core.settings, core.feature_flags, core.outbox TO authenticated, service_role;
GRANT SELECT, UPDATE ON core.sessions TO authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON core.sessions, core.refresh_tokens, core.user_credentials, core.analyst_logins
  TO service_role;
GRANT SELECT, INSERT ON core.audit_logs TO authenticated, service_role;
GRANT INSERT ON core.audit_logs TO finance_posting;

-- hub: the catalog and subscriptions are read by members, written by the privileged billing paths
GRANT SELECT ON hub."App", hub.plans, hub.features, hub.plan_features, hub."Subscription", hub.subscription_billing,
  hub."BillingEvent" TO authenticated;
GRANT SELECT, INSERT, UPDATE ON hub.limit_locks TO authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON hub."App", hub.plans, hub.features, hub.plan_features, hub."Subscription",
  hub.subscription_billing, hub."BillingEvent", hub.limit_locks TO service_role;

-- finance: configuration written under policies; postings only through finance.post_journal_entry
GRANT SELECT ON finance.currencies TO authenticated, service_role, finance_posting, omnizen_analyst;
GRANT SELECT, INSERT, UPDATE ON finance.accounts, finance.settings, finance.fx_rates, finance.tax_codes,
  finance.fiscal_years, finance.fiscal_periods TO authenticated, service_role;
GRANT SELECT ON finance.journal_entries, finance.journal_lines, finance.account_balances, finance.period_balances
  TO authenticated, service_role;
GRANT SELECT ON finance.accounts, finance.settings, finance.fx_rates, finance.fiscal_periods TO finance_posting;
GRANT UPDATE (status) ON finance.fiscal_periods TO finance_posting; -- to key-share lock the period it posts into
GRANT SELECT, INSERT ON finance.journal_entries, finance.journal_lines TO finance_posting;
GRANT SELECT, INSERT, UPDATE ON finance.account_balances, finance.period_balances TO finance_posting;
GRANT SELECT ON finance.accounts, finance.fiscal_years, finance.fiscal_periods, finance.journal_entries,
  finance.journal_lines TO omnizen_analyst;

-- semantic
GRANT SELECT ON semantic.v_gl_fact TO authenticated, service_role, omnizen_analyst;

-- public: seed 004's tables, for signed-in users under their policies (anon reads providers only through
-- public.public_provider_profile); service_role is secrets:rotate and the public pages' busy times
GRANT SELECT, INSERT, UPDATE, DELETE ON public.integrations, public.integration_secrets, public.providers
  TO authenticated, service_role;

-- functions. The request helpers are called by the policies, so by every role a policy applies to (and by
-- begin_request after it has switched to anon or authenticated).
GRANT EXECUTE ON FUNCTION public.auth_org_id(), public.auth_user_id(), public.auth_role(), public.auth_has_role(text[]),
  public.auth_workspace_id(), core.request_claims()
  TO anon, authenticated, service_role, omnizen_analyst, finance_posting;
GRANT EXECUTE ON FUNCTION core.is_member(uuid) TO authenticated, omnizen_analyst;
GRANT EXECUTE ON FUNCTION core.shares_org_with(text) TO authenticated;
GRANT EXECUTE ON FUNCTION public.begin_request(text, text) TO omnizen_api;
GRANT EXECUTE ON FUNCTION core.create_organization(text, text) TO authenticated, service_role;
GRANT EXECUTE ON FUNCTION core.accept_invitation(uuid, text) TO authenticated;
GRANT EXECUTE ON FUNCTION core.personal_org_id(text) TO authenticated, service_role;
GRANT EXECUTE ON FUNCTION hub.seat_usage(), hub.personal_org_id(text) TO authenticated, service_role;
GRANT EXECUTE ON FUNCTION finance.post_journal_entry(jsonb, jsonb), finance.account_totals(date, date, uuid)
  TO authenticated, service_role;
GRANT EXECUTE ON FUNCTION finance.entry_json(uuid), finance.effective_rate(text, date)
  TO authenticated, service_role, finance_posting;
GRANT EXECUTE ON FUNCTION public.public_provider_profile(text) TO anon, authenticated, service_role;
-- No one is granted the trigger functions (a trigger runs its function without an EXECUTE check), nor
-- core.is_analyst_session() (called only inside SECURITY DEFINER helpers, as their owner).
