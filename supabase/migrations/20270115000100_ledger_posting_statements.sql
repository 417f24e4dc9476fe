-- Generated from prisma/migrations/20270115000100_ledger_posting_statements/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- Cheaper postings, same guarantees (issue 14), fourth pass: fewer statements per posting.
--
-- Measured serially (bench/posting-profile.ts and a copy of the posting function that returns early at each step,
-- alternated in one backend): after the earlier passes a 2-line posting's database CPU goes mostly to the number of
-- statements it runs, not to their work. Each SQL statement a PL/pgSQL function runs (PERFORM, SELECT INTO, an IF
-- whose condition holds a subquery, a FOR over a query) goes through SPI: a cached-plan check, a snapshot, executor
-- start-up and shutdown; a plain expression (x := f(...)) is evaluated directly. So:
--
-- 1. finance.write_entries writes the entries, their lines, both balances and the audit rows in ONE statement
--    (data-modifying CTEs) instead of five. Same rows, same order (entries and audit rows by index, balances by
--    account and currency: the lock order that keeps concurrent postings from deadlocking), same conflict handling:
--    an entry whose idempotency key another transaction committed meanwhile is not inserted, and neither are its
--    lines, balances or audit row (every other part reads the entries the INSERT returned).
-- 2. finance.check_entry walks the lines by position (plain expressions) instead of a cursor over
--    jsonb_array_elements, and checks a line's tax code only when it has one (the combined IF ran its subquery
--    through the executor for every line).
-- 3. finance.post_journal_entry sets its setting and takes the posting lock as plain expressions, not PERFORM, and
--    reads the settings with their base currency's minor units in one query.
-- 4. public.begin_request: its settings as plain expressions; the organization and the role decided by one
--    function, which for a user's claims through the API's login reads the membership once (the organization's
--    membership check and the role were two function calls and three membership reads); auth_workspace_id()
--    only when the claims name a workspace (it answers NULL otherwise).
-- 5. check_entry and write_entries no longer SET search_path: they are not SECURITY DEFINER, only finance_posting
--    may call them, and their only callers (the posting functions, SECURITY DEFINER with search_path '') run them
--    with search_path ''; every name in them is schema-qualified. A SET clause costs a settings save and restore
--    per call.
-- Every check, error code, lock, policy and audit row is unchanged; their tests stay (test/ledger, test/audit).

-- ---------------------------------------------------------------- organization and role, decided once
-- Same answers as public.auth_org_id_checked() and public.auth_role_checked() (migration 20261231000100), which
-- stay for every other caller. For a user's claims through the API's login (not an API key, not service_role) both
-- come from one membership row: the organization if the user is a member of a live organization, and the role of
-- that membership.
CREATE FUNCTION public.auth_org_role_checked(OUT org_id uuid, OUT role text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  claims jsonb := auth.jwt();
  claimed text := claims ->> 'org_id';
BEGIN
  IF session_user = 'omnizen_api' AND claimed IS NOT NULL
     AND claimed ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
     AND NOT claims ? 'api_key_id' AND (claims ->> 'role') IS DISTINCT FROM 'service_role'
     AND auth.role() IS DISTINCT FROM 'service_role' THEN
    SELECT m.org_id, m.role INTO org_id, role
    FROM core.memberships m JOIN core.organizations o ON o.id = m.org_id AND o.deleted_at IS NULL
    WHERE m.org_id = claimed::uuid AND m.user_id = auth.uid()::text;
    RETURN;
  END IF;
  org_id := public.auth_org_id_checked();
  role := public.auth_role_checked();
END
$$;
REVOKE ALL ON FUNCTION public.auth_org_role_checked() FROM PUBLIC, anon, authenticated, service_role;
-- begin_request runs it after switching to the request's role
GRANT EXECUTE ON FUNCTION public.auth_org_role_checked() TO anon, authenticated;

CREATE OR REPLACE FUNCTION public.begin_request(p_claims text, p_role text, OUT org_id uuid, OUT role text, OUT workspace_id uuid)
LANGUAGE plpgsql AS $$
DECLARE
  claims jsonb;
  decided record;
  _ text;
BEGIN
  IF p_role NOT IN ('authenticated', 'anon') THEN
    RAISE EXCEPTION 'begin_request: role % is not allowed', p_role USING ERRCODE = '42501';
  END IF;
  -- nothing verified yet for these claims (a second begin_request in one transaction starts over)
  _ := set_config('omnizen.verified_claims', '', true);
  _ := set_config('request.jwt.claims', p_claims, true);
  _ := set_config('role', p_role, true);
  claims := p_claims::jsonb;
  -- An access token of a revoked session (logout, revocation, refresh-token reuse) stops working
  -- at once, not when it expires. Runs as the caller: RLS shows a user only their own sessions.
  -- Two IFs, not one AND: the query must never run for anon, which has no rights on core.sessions
  -- (a cached plan would check those rights even when the first operand is false).
  IF claims ? 'session_id' THEN
    IF EXISTS (
      SELECT 1 FROM core.sessions s
      WHERE s.id = (claims ->> 'session_id')::uuid AND (s.revoked_at IS NOT NULL OR s.expires_at <= now())
    ) THEN
      RAISE EXCEPTION 'the session of this access token has ended; log in again' USING ERRCODE = '28000';
    END IF;
  END IF;
  decided := public.auth_org_role_checked();
  org_id := decided.org_id;
  role := decided.role;
  _ := set_config('omnizen.verified_org', coalesce(org_id::text, ''), true);
  _ := set_config('omnizen.verified_role', coalesce(role, ''), true);
  _ := set_config('omnizen.verified_claims', p_claims, true);
  -- auth_workspace_id() answers NULL for claims without a workspace
  IF auth.jwt() ? 'workspace_id' THEN
    workspace_id := public.auth_workspace_id();
  END IF;
END
$$;

-- ---------------------------------------------------------------- the rules of one entry
CREATE OR REPLACE FUNCTION finance.check_entry(org uuid, p jsonb, s finance.settings, base_mu int, accounts jsonb, periods jsonb)
RETURNS finance.checked_entry
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  r finance.checked_entry;
  per jsonb;
  acc jsonb;
  ls jsonb;
  l jsonb;
  n int := 0;
  d date;
  v_acc uuid;
  mu int;
  v_cur text;
  v_rate numeric;
  v_dr numeric; v_cr numeric; v_bdr numeric; v_bcr numeric;
  sum_bdr numeric := 0; sum_bcr numeric := 0; diff numeric;
  sum_dr numeric := 0; sum_cr numeric := 0; one_cur text; many_cur boolean := false;
  v_tax uuid; v_tax_role text;
BEGIN
  r.source := coalesce(p ->> 'source', 'manual');
  IF r.source NOT IN ('manual', 'invoice', 'bill', 'payment', 'system', 'year_end') THEN
    RAISE EXCEPTION 'source must be one of manual, invoice, bill, payment, system, year_end' USING ERRCODE = '22023', HINT = 'ledger.invalid_entry';
  END IF;
  -- what the entry's CHECK constraints said until migration 20270101000100 (the writers insert only checked entries)
  IF length(p ->> 'memo') > 1000 THEN
    RAISE EXCEPTION 'memo has at most 1000 characters' USING ERRCODE = '22023', HINT = 'ledger.invalid_entry';
  END IF;
  IF length(p ->> 'sourceRef') > 200 THEN
    RAISE EXCEPTION 'sourceRef has at most 200 characters' USING ERRCODE = '22023', HINT = 'ledger.invalid_entry';
  END IF;
  IF length(p ->> 'idempotencyKey') > 200 THEN
    RAISE EXCEPTION 'idempotencyKey has at most 200 characters' USING ERRCODE = '22023', HINT = 'ledger.invalid_entry';
  END IF;
  d := (p ->> 'date')::date;
  IF d IS NULL THEN
    RAISE EXCEPTION 'entry date is required' USING ERRCODE = '22023', HINT = 'ledger.invalid_entry';
  END IF;
  per := periods -> to_char(d, 'YYYY-MM-DD');
  IF per IS NULL THEN
    SELECT jsonb_build_object('id', fp.id, 'start', fp.start_date, 'end', fp.end_date, 'status', fp.status) INTO per
    FROM finance.fiscal_periods fp WHERE fp.org_id = org AND fp.start_date <= d AND fp.end_date >= d;
  END IF;
  IF per IS NULL OR per = 'null'::jsonb THEN
    RAISE EXCEPTION 'no fiscal period covers %', d USING ERRCODE = 'P0001', HINT = 'ledger.no_fiscal_year';
  END IF;
  IF per ->> 'status' <> 'open' THEN
    RAISE EXCEPTION 'the fiscal period % to % is closed', per ->> 'start', per ->> 'end' USING ERRCODE = 'P0001', HINT = 'ledger.period_closed';
  END IF;
  r.entry_date := d;
  r.period_id := (per ->> 'id')::uuid;

  r.reverses_entry_id := nullif(p ->> 'reversesEntryId', '')::uuid;
  IF r.reverses_entry_id IS NOT NULL THEN
    IF NOT EXISTS (SELECT 1 FROM finance.journal_entries e WHERE e.org_id = org AND e.id = r.reverses_entry_id) THEN
      RAISE EXCEPTION 'journal entry % does not exist', r.reverses_entry_id USING ERRCODE = 'P0002', HINT = 'ledger.unknown_entry';
    END IF;
    IF EXISTS (SELECT 1 FROM finance.journal_entries e WHERE e.org_id = org AND e.reverses_entry_id = r.reverses_entry_id) THEN
      RAISE EXCEPTION 'journal entry % is already reversed', r.reverses_entry_id USING ERRCODE = '23505', HINT = 'ledger.already_reversed';
    END IF;
  END IF;

  r.account_ids := '{}'; r.account_codes := '{}'; r.currencies := '{}'; r.debits := '{}'; r.credits := '{}'; r.rates := '{}';
  r.base_debits := '{}'; r.base_credits := '{}'; r.descriptions := '{}'; r.workspace_ids := '{}'; r.counterparty_types := '{}';
  r.counterparty_ids := '{}'; r.roundings := '{}'; r.tax_code_ids := '{}'; r.tax_roles := '{}';
  -- the lines by position (plain expressions), not through a query's cursor; the callers checked that lines is an array
  ls := p -> 'lines';
  FOR i IN 0 .. jsonb_array_length(ls) - 1 LOOP
    l := ls -> i;
    n := n + 1;
    IF n > 499 THEN
      RAISE EXCEPTION 'an entry has at most 499 lines' USING ERRCODE = '22023', HINT = 'ledger.invalid_entry';
    END IF;
    v_acc := (l ->> 'accountId')::uuid;
    acc := accounts -> v_acc::text;
    IF acc IS NULL THEN
      SELECT jsonb_build_object('code', a.code, 'isGroup', a.is_group, 'archived', a.archived_at IS NOT NULL, 'currency', a.currency) INTO acc
      FROM finance.accounts a WHERE a.org_id = org AND a.id = v_acc;
    END IF;
    IF acc IS NULL THEN
      RAISE EXCEPTION 'line %: account % does not exist in this organization', n, l ->> 'accountId' USING ERRCODE = 'P0001', HINT = 'ledger.unknown_account';
    END IF;
    IF (acc ->> 'isGroup')::boolean THEN
      RAISE EXCEPTION 'line %: account % is a group account; post to one of its children', n, acc ->> 'code' USING ERRCODE = 'P0001', HINT = 'ledger.account_not_postable';
    END IF;
    IF (acc ->> 'archived')::boolean THEN
      RAISE EXCEPTION 'line %: account % is archived', n, acc ->> 'code' USING ERRCODE = 'P0001', HINT = 'ledger.account_not_postable';
    END IF;
    v_cur := coalesce(nullif(l ->> 'currency', ''), s.base_currency);
    IF v_cur = s.base_currency THEN
      mu := base_mu;
    ELSE
      mu := NULL;
      SELECT c.minor_units INTO mu FROM finance.currencies c WHERE c.code = v_cur;
    END IF;
    IF mu IS NULL THEN
      RAISE EXCEPTION 'line %: unknown currency %', n, v_cur USING ERRCODE = '22023', HINT = 'ledger.unknown_currency';
    END IF;
    IF acc ->> 'currency' IS NOT NULL AND acc ->> 'currency' <> v_cur THEN
      RAISE EXCEPTION 'line %: account % only takes %, not %', n, acc ->> 'code', acc ->> 'currency', v_cur USING ERRCODE = 'P0001', HINT = 'ledger.currency_not_allowed';
    END IF;
    v_dr := coalesce((l ->> 'debit')::numeric, 0);
    v_cr := coalesce((l ->> 'credit')::numeric, 0);
    IF v_dr < 0 OR v_cr < 0 OR (v_dr > 0 AND v_cr > 0) THEN
      RAISE EXCEPTION 'line %: give either a positive debit or a positive credit', n USING ERRCODE = '22023', HINT = 'ledger.invalid_amount';
    END IF;
    IF v_dr <> round(v_dr, mu) OR v_cr <> round(v_cr, mu) THEN
      RAISE EXCEPTION 'line %: % amounts have at most % decimals', n, v_cur, mu USING ERRCODE = '22023', HINT = 'ledger.invalid_amount';
    END IF;
    IF v_cur = s.base_currency THEN
      v_rate := 1;
      IF l ? 'rate' AND (l ->> 'rate')::numeric <> 1 THEN
        RAISE EXCEPTION 'line %: a line in the base currency % has rate 1', n, v_cur USING ERRCODE = '22023', HINT = 'ledger.invalid_rate';
      END IF;
    ELSE
      v_rate := coalesce((l ->> 'rate')::numeric, finance.effective_rate(v_cur, d));
      IF v_rate IS NULL THEN
        RAISE EXCEPTION 'line %: no % rate on or before %', n, v_cur, d USING ERRCODE = 'P0001', HINT = 'ledger.rate_missing';
      END IF;
      IF v_rate <= 0 THEN
        RAISE EXCEPTION 'line %: rate must be positive', n USING ERRCODE = '22023', HINT = 'ledger.invalid_rate';
      END IF;
    END IF;
    IF l ? 'baseDebit' OR l ? 'baseCredit' THEN
      v_bdr := coalesce((l ->> 'baseDebit')::numeric, 0);
      v_bcr := coalesce((l ->> 'baseCredit')::numeric, 0);
      IF v_bdr < 0 OR v_bcr < 0 OR (v_bdr > 0 AND v_bcr > 0) OR v_bdr <> round(v_bdr, base_mu) OR v_bcr <> round(v_bcr, base_mu)
         OR (v_dr > 0 AND v_bcr > 0) OR (v_cr > 0 AND v_bdr > 0) OR (v_cur = s.base_currency AND (v_bdr <> v_dr OR v_bcr <> v_cr)) THEN
        RAISE EXCEPTION 'line %: base amounts must be one non-negative side with at most % decimals, on the side of the line', n, base_mu USING ERRCODE = '22023', HINT = 'ledger.invalid_amount';
      END IF;
    ELSE
      v_bdr := round(v_dr * v_rate, base_mu);
      v_bcr := round(v_cr * v_rate, base_mu);
    END IF;
    -- a line of a taxed sale (output) or purchase (input) names its tax code and whether it is the taxable base or the tax
    v_tax := nullif(l ->> 'taxCodeId', '')::uuid;
    v_tax_role := CASE WHEN v_tax IS NOT NULL THEN l ->> 'taxRole' END;
    -- (nested: an IF whose condition holds a subquery runs it through the executor even when v_tax is NULL)
    IF v_tax IS NOT NULL THEN
      IF v_tax_role IS NULL OR v_tax_role NOT IN ('output_base', 'output_tax', 'input_base', 'input_tax')
          OR NOT EXISTS (SELECT 1 FROM finance.tax_codes t WHERE t.org_id = org AND t.id = v_tax) THEN
        RAISE EXCEPTION 'line %: tax code % does not exist in this organization, or taxRole is not output_base, output_tax, input_base or input_tax', n, l ->> 'taxCodeId'
          USING ERRCODE = 'P0001', HINT = 'ledger.unknown_tax_code';
      END IF;
    END IF;
    -- what the lines' remaining CHECK constraints said until migration 20270101000100
    IF length(l ->> 'description') > 500 THEN
      RAISE EXCEPTION 'line %: description has at most 500 characters', n USING ERRCODE = '22023', HINT = 'ledger.invalid_entry';
    END IF;
    IF (l ->> 'counterpartyType') NOT IN ('customer', 'vendor', 'employee', 'other') THEN
      RAISE EXCEPTION 'line %: counterpartyType must be one of customer, vendor, employee, other', n USING ERRCODE = '22023', HINT = 'ledger.invalid_entry';
    END IF;
    IF length(l ->> 'counterpartyId') > 200 THEN
      RAISE EXCEPTION 'line %: counterpartyId has at most 200 characters', n USING ERRCODE = '22023', HINT = 'ledger.invalid_entry';
    END IF;
    IF v_dr + v_cr + v_bdr + v_bcr = 0 THEN
      RAISE EXCEPTION 'line %: amount is zero', n USING ERRCODE = '22023', HINT = 'ledger.invalid_amount';
    END IF;
    r.account_ids := r.account_ids || v_acc; r.account_codes := r.account_codes || (acc ->> 'code'); r.currencies := r.currencies || v_cur;
    r.debits := r.debits || v_dr; r.credits := r.credits || v_cr; r.rates := r.rates || v_rate;
    r.base_debits := r.base_debits || v_bdr; r.base_credits := r.base_credits || v_bcr; r.roundings := r.roundings || false;
    r.descriptions := r.descriptions || (l ->> 'description'); r.workspace_ids := r.workspace_ids || nullif(l ->> 'workspaceId', '')::uuid;
    r.counterparty_types := r.counterparty_types || (l ->> 'counterpartyType'); r.counterparty_ids := r.counterparty_ids || (l ->> 'counterpartyId');
    r.tax_code_ids := r.tax_code_ids || v_tax; r.tax_roles := r.tax_roles || v_tax_role;
    sum_bdr := sum_bdr + v_bdr; sum_bcr := sum_bcr + v_bcr;
    sum_dr := sum_dr + v_dr; sum_cr := sum_cr + v_cr;
    many_cur := many_cur OR (one_cur IS NOT NULL AND one_cur <> v_cur); one_cur := v_cur;
  END LOOP;
  IF n < 2 THEN
    RAISE EXCEPTION 'an entry needs at least two lines' USING ERRCODE = '22023', HINT = 'ledger.invalid_entry';
  END IF;

  -- single-currency entries balance in that currency exactly
  IF NOT many_cur AND sum_dr <> sum_cr THEN
    RAISE EXCEPTION 'entry does not balance in %: debits % and credits %', one_cur, sum_dr, sum_cr USING ERRCODE = 'P0001', HINT = 'ledger.unbalanced';
  END IF;
  -- in the base currency, a difference of at most one minor unit per line is rounding: it goes to the rounding account
  diff := sum_bdr - sum_bcr;
  IF diff <> 0 THEN
    IF abs(diff) > n * power(10::numeric, -base_mu) THEN
      RAISE EXCEPTION 'entry does not balance in the base currency %: debits % and credits %', s.base_currency, sum_bdr, sum_bcr USING ERRCODE = 'P0001', HINT = 'ledger.unbalanced';
    END IF;
    IF s.rounding_account_id IS NULL THEN
      RAISE EXCEPTION 'entry is off by % % from rounding and no rounding account is configured', diff, s.base_currency USING ERRCODE = 'P0001', HINT = 'ledger.rounding_account_missing';
    END IF;
    r.account_ids := r.account_ids || s.rounding_account_id;
    r.account_codes := r.account_codes || coalesce(accounts -> s.rounding_account_id::text ->> 'code',
      (SELECT a.code FROM finance.accounts a WHERE a.org_id = org AND a.id = s.rounding_account_id));
    r.currencies := r.currencies || s.base_currency; r.rates := r.rates || 1::numeric;
    r.debits := r.debits || greatest(-diff, 0); r.credits := r.credits || greatest(diff, 0);
    r.base_debits := r.base_debits || greatest(-diff, 0); r.base_credits := r.base_credits || greatest(diff, 0); r.roundings := r.roundings || true;
    r.descriptions := r.descriptions || 'rounding'::text; r.workspace_ids := r.workspace_ids || NULL::uuid;
    r.counterparty_types := r.counterparty_types || NULL::text; r.counterparty_ids := r.counterparty_ids || NULL::text;
    r.tax_code_ids := r.tax_code_ids || NULL::uuid; r.tax_roles := r.tax_roles || NULL::text;
    sum_bdr := sum_bdr + greatest(-diff, 0);
  END IF;
  r.total_base := sum_bdr;
  r.memo := coalesce(p ->> 'memo', '');
  r.source_ref := p ->> 'sourceRef';
  RETURN r;
END
$$;

-- ---------------------------------------------------------------- the writes, one statement
CREATE OR REPLACE FUNCTION finance.write_entries(org uuid, s finance.settings, base_mu int, p_entries finance.checked_entry[],
  p_audit jsonb, p_action text, p_user text, p_created_by text) RETURNS uuid[]
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  inserted uuid[];
  v_slot smallint := (pg_backend_pid() % 8)::smallint;
BEGIN
  WITH ins AS (
    INSERT INTO finance.journal_entries (org_id, id, entry_date, period_id, memo, source, source_ref, reverses_entry_id,
      idempotency_key, request_hash, base_currency, total_base, created_by)
    SELECT org, x.id, x.entry_date, x.period_id, x.memo, x.source, x.source_ref, x.reverses_entry_id,
      x.idempotency_key, x.request_hash, s.base_currency, x.total_base, p_created_by
    FROM unnest(p_entries) x ORDER BY x.idx
    ON CONFLICT (org_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING id),
  -- the entries written (not those whose idempotency key another transaction committed meanwhile)
  e AS (SELECT x.* FROM unnest(p_entries) x WHERE x.id IN (SELECT ins.id FROM ins)),
  l AS (
    SELECT e.idx, e.id, e.entry_date, e.period_id, l.*
    FROM e CROSS JOIN LATERAL unnest(e.account_ids, e.currencies, e.debits, e.credits, e.rates, e.base_debits, e.base_credits,
      e.descriptions, e.workspace_ids, e.counterparty_types, e.counterparty_ids, e.roundings, e.tax_code_ids, e.tax_roles)
      WITH ORDINALITY AS l(acc, cur, dr, cr, rate, bdr, bcr, descr, ws, cpt, cpi, rnd, tax, tax_role, n)),
  lines AS (
    INSERT INTO finance.journal_lines (org_id, entry_id, line_no, entry_date, period_id, account_id, currency, debit, credit, rate,
      base_debit, base_credit, description, workspace_id, counterparty_type, counterparty_id, is_rounding, tax_code_id, tax_role)
    SELECT org, l.id, l.n::smallint, l.entry_date, l.period_id, l.acc, l.cur, l.dr, l.cr, l.rate, l.bdr, l.bcr,
      l.descr, l.ws, l.cpt, l.cpi, l.rnd, l.tax, l.tax_role
    FROM l ORDER BY l.idx, l.n),
  account_totals AS (
    INSERT INTO finance.account_balances AS b (org_id, account_id, currency, slot, debit, credit, base_debit, base_credit, line_count)
    SELECT org, l.acc, l.cur, v_slot, sum(l.dr), sum(l.cr), sum(l.bdr), sum(l.bcr), count(*)
    FROM l GROUP BY l.acc, l.cur ORDER BY l.acc, l.cur
    ON CONFLICT ON CONSTRAINT account_balances_pkey DO UPDATE SET
      debit = b.debit + excluded.debit, credit = b.credit + excluded.credit,
      base_debit = b.base_debit + excluded.base_debit, base_credit = b.base_credit + excluded.base_credit,
      line_count = b.line_count + excluded.line_count, updated_at = now()),
  period_totals AS (
    INSERT INTO finance.period_balances AS b (org_id, period_id, account_id, currency, slot, debit, credit, base_debit, base_credit, line_count)
    SELECT org, l.period_id, l.acc, l.cur, v_slot, sum(l.dr), sum(l.cr), sum(l.bdr), sum(l.bcr), count(*)
    FROM l GROUP BY l.period_id, l.acc, l.cur ORDER BY l.acc, l.cur, l.period_id
    ON CONFLICT ON CONSTRAINT period_balances_pkey DO UPDATE SET
      debit = b.debit + excluded.debit, credit = b.credit + excluded.credit,
      base_debit = b.base_debit + excluded.base_debit, base_credit = b.base_credit + excluded.base_credit,
      line_count = b.line_count + excluded.line_count),
  audit AS (
    INSERT INTO core.audit_logs (org_id, actor_id, principal_type, action, entity_type, entity_id, before, after, request_id, ip)
    SELECT org, p_created_by, CASE WHEN p_user IS NOT NULL THEN 'user' ELSE 'service' END,
      p_action, 'journal_entry', e.id::text, NULL,
      jsonb_build_object('id', e.id, 'date', e.entry_date::text, 'memo', e.memo, 'source', e.source, 'sourceRef', e.source_ref,
        'reversesEntryId', e.reverses_entry_id, 'idempotencyKey', e.idempotency_key, 'baseCurrency', s.base_currency,
        'totalBase', round(e.total_base, base_mu)::text, 'lineCount', cardinality(e.account_ids)),
      left(p_audit ->> 'requestId', 200), left(p_audit ->> 'ip', 100)
    FROM e ORDER BY e.idx)
  SELECT coalesce(array_agg(ins.id), '{}') INTO inserted FROM ins;
  RETURN inserted;
END
$$;

-- ---------------------------------------------------------------- the single posting
CREATE OR REPLACE FUNCTION finance.post_journal_entry(p jsonb, p_audit jsonb DEFAULT NULL,
  OUT entry_id uuid, OUT replayed boolean, OUT entry jsonb)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  org uuid := public.auth_org_id();
  s finance.settings;
  base_mu int;
  r finance.checked_entry;
  v_key text;
  v_hash text;
  existing record;
  v_action text := coalesce(p_audit ->> 'action', 'ledger.entry_posted');
  v_user text := public.auth_user_id();
  v_created_by text;
  books record;
  _ text;
BEGIN
  IF org IS NULL THEN
    RAISE EXCEPTION 'no organization: the caller may not act in the claimed organization' USING ERRCODE = '42501';
  END IF;
  IF NOT public.auth_has_role('owner', 'admin', 'accountant', 'service') THEN
    RAISE EXCEPTION 'posting journal entries needs the role owner, admin or accountant' USING ERRCODE = '42501';
  END IF;
  -- the organization verified, for the posting role's policies (finance.posting_org(), migration 20261204000200)
  _ := set_config('finance.posting_org', org::text, true);
  IF v_action NOT IN ('ledger.entry_posted', 'ledger.entry_reversed', 'ledger.fx_revaluation_posted', 'ledger.year_end_entry_posted') THEN
    RAISE EXCEPTION 'audit action % is not a posting action', v_action USING ERRCODE = '22023';
  END IF;
  IF jsonb_typeof(p) IS DISTINCT FROM 'object' OR jsonb_typeof(p -> 'lines') IS DISTINCT FROM 'array' THEN
    RAISE EXCEPTION 'entry must be an object with an array of lines' USING ERRCODE = '22023', HINT = 'ledger.invalid_entry';
  END IF;
  v_key := nullif(p ->> 'idempotencyKey', '');
  v_hash := md5((p - 'idempotencyKey')::text);

  -- idempotent replay: answer before taking any lock
  IF v_key IS NOT NULL THEN
    SELECT e.id, e.request_hash INTO existing FROM finance.journal_entries e WHERE e.org_id = org AND e.idempotency_key = v_key;
    IF FOUND THEN
      IF existing.request_hash <> v_hash THEN
        RAISE EXCEPTION 'idempotency key "%" was already used for a different entry', v_key USING ERRCODE = '23505', HINT = 'ledger.idempotency_conflict';
      END IF;
      entry_id := existing.id; replayed := true; entry := finance.entry_json(existing.id);
      RETURN;
    END IF;
  END IF;

  -- postings of the organization in flight hold this lock shared; a change of a period's status or dates takes it
  -- exclusively (trigger fiscal_periods_postings_drained): closing waits for them, and what this posting reads
  -- next (its period, in a later statement, so a later snapshot) is what the close committed
  _ := pg_advisory_xact_lock_shared(hashtext('finance.posting:' || org::text));
  -- the settings and their base currency's minor units in one read
  SELECT x AS settings, c.minor_units INTO books
  FROM finance.settings x LEFT JOIN finance.currencies c ON c.code = x.base_currency WHERE x.org_id = org;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'the books of this organization are not started (no base currency)' USING ERRCODE = 'P0001', HINT = 'ledger.books_not_started';
  END IF;
  s := books.settings;
  base_mu := books.minor_units;

  -- one entry's few accounts and its period are read by finance.check_entry itself (no map to build)
  r := finance.check_entry(org, p, s, base_mu, '{}'::jsonb, '{}'::jsonb);
  r.idx := 0; r.id := gen_random_uuid(); r.idempotency_key := v_key; r.request_hash := v_hash;
  v_created_by := coalesce(v_user, 'service:' || (core.request_claims() ->> 'service'));
  IF cardinality(finance.write_entries(org, s, base_mu, ARRAY[r], p_audit, v_action, v_user, v_created_by)) = 0 THEN
    -- a concurrent request with the same key committed first
    SELECT e.id, e.request_hash INTO existing FROM finance.journal_entries e WHERE e.org_id = org AND e.idempotency_key = v_key;
    IF existing.request_hash <> v_hash THEN
      RAISE EXCEPTION 'idempotency key "%" was already used for a different entry', v_key USING ERRCODE = '23505', HINT = 'ledger.idempotency_conflict';
    END IF;
    entry_id := existing.id; replayed := true; entry := finance.entry_json(existing.id);
    RETURN;
  END IF;
  entry_id := r.id; replayed := false;

  -- the answer, from the values just written (cast to their columns' types, as reading them back would give)
  entry := jsonb_build_object(
    'id', r.id, 'date', r.entry_date::text, 'memo', r.memo, 'source', r.source, 'sourceRef', r.source_ref,
    'reversesEntryId', r.reverses_entry_id, 'reversedByEntryId', NULL, 'idempotencyKey', v_key, 'baseCurrency', s.base_currency,
    'totalBase', r.total_base::numeric(20, 4)::text, 'createdBy', v_created_by,
    'createdAt', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    'lines', (SELECT jsonb_agg(jsonb_build_object(
        'lineNo', i, 'accountId', r.account_ids[i], 'accountCode', r.account_codes[i], 'currency', r.currencies[i],
        'debit', r.debits[i]::numeric(20, 4)::text, 'credit', r.credits[i]::numeric(20, 4)::text, 'rate', r.rates[i]::numeric(24, 10)::text,
        'baseDebit', r.base_debits[i]::numeric(20, 4)::text, 'baseCredit', r.base_credits[i]::numeric(20, 4)::text, 'description', r.descriptions[i],
        'workspaceId', r.workspace_ids[i], 'counterpartyType', r.counterparty_types[i], 'counterpartyId', r.counterparty_ids[i], 'isRounding', r.roundings[i],
        'taxCodeId', r.tax_code_ids[i], 'taxRole', r.tax_roles[i]) ORDER BY i)
      FROM generate_subscripts(r.account_ids, 1) i));
END
$$;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270115000100_ledger_posting_statements', '76947bf03103ea13d241df12aaf57b4fd240a5f6fe754153911ed80f7e998628', 0)
  ON CONFLICT (name) DO NOTHING;
