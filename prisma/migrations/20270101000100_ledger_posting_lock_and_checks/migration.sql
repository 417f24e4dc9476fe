-- Cheaper postings, same guarantees (issue 14), continued from 20261204000200 and 20261211000100.
--
-- Measured serially on a scratch database (bench/README.md, issue 14), statement by statement: of a 2-line
-- posting's database CPU, begin_request and the membership checks, then the period's row lock (the transaction's
-- first write: a WAL record, and COMMIT now has to flush), the entry's INSERT (its CHECK constraints rebuilt
-- for every INSERT statement, its foreign key to the organization checked by a query that key-share locks the
-- organization's row), the lines, the audit row.
--
-- 1. A period's status and the postings in flight: a posting no longer locks its period's row FOR KEY SHARE.
--    That lock did not do what it was meant to: closing a period is an UPDATE of non-key columns (status,
--    closed_at), which takes FOR NO KEY UPDATE, and FOR KEY SHARE does not conflict with it; so a close did not
--    wait for postings in flight, and a posting could commit into a period closed meanwhile. Under concurrency
--    every posting of an organization locked the same row (a new MultiXact and a WAL record per posting).
--    Now a posting (single or batch) takes a transaction-scoped advisory lock of its organization SHARED
--    (lock manager only: no row write, no WAL, no MultiXact) before it reads its period, and a trigger on
--    finance.fiscal_periods takes the same lock EXCLUSIVELY when a period's status or dates change: closing
--    or reopening waits until the postings in flight have committed, and a posting that starts meanwhile waits
--    for the close and then reads the closed status (READ COMMITTED: the period is read by a later statement,
--    with a later snapshot). Tested in test/ledger/period-close-concurrency.test.ts.
-- 2. journal_entries.org_id's foreign key to core.organizations: the posting functions, the only writers of
--    journal entries (no API role may insert, update or delete them; triggers refuse UPDATE and DELETE), verify
--    the organization first (public.auth_org_id(): a live organization the caller may act in) and post only to
--    its accounts, and an organization with accounts can never be deleted (finance.accounts cascades from it and
--    accounts_no_delete refuses every DELETE). Kept: audit_logs' (every module writes audit rows).
-- 3. The journal entries' CHECK constraints (source, lengths of memo, source reference, idempotency key), the
--    lines' last ones (length of description and counterparty id, counterparty type) and the balances' slot
--    range: finance.check_entry refuses the same with ledger.invalid_entry before anything is written (the
--    source it already checked), and finance.write_entries computes the slot (backend pid % 8). PostgreSQL
--    rebuilds a table's CHECK expressions from the catalog for every INSERT statement; journal_lines and the
--    balances now have none.

CREATE OR REPLACE FUNCTION finance.check_entry(org uuid, p jsonb, s finance.settings, base_mu int, accounts jsonb, periods jsonb)
RETURNS finance.checked_entry
LANGUAGE plpgsql VOLATILE SET search_path = '' AS $$
DECLARE
  r finance.checked_entry;
  per jsonb;
  acc jsonb;
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
  FOR l IN SELECT value FROM jsonb_array_elements(p -> 'lines') LOOP
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
    IF v_tax IS NOT NULL AND (v_tax_role IS NULL OR v_tax_role NOT IN ('output_base', 'output_tax', 'input_base', 'input_tax')
        OR NOT EXISTS (SELECT 1 FROM finance.tax_codes t WHERE t.org_id = org AND t.id = v_tax)) THEN
      RAISE EXCEPTION 'line %: tax code % does not exist in this organization, or taxRole is not output_base, output_tax, input_base or input_tax', n, l ->> 'taxCodeId'
        USING ERRCODE = 'P0001', HINT = 'ledger.unknown_tax_code';
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
BEGIN
  IF org IS NULL THEN
    RAISE EXCEPTION 'no organization: the caller may not act in the claimed organization' USING ERRCODE = '42501';
  END IF;
  IF NOT public.auth_has_role('owner', 'admin', 'accountant', 'service') THEN
    RAISE EXCEPTION 'posting journal entries needs the role owner, admin or accountant' USING ERRCODE = '42501';
  END IF;
  -- the organization verified, for the posting role's policies (finance.posting_org(), migration 20261204000200)
  PERFORM set_config('finance.posting_org', org::text, true);
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
  PERFORM pg_advisory_xact_lock_shared(hashtext('finance.posting:' || org::text));
  SELECT * INTO s FROM finance.settings x WHERE x.org_id = org;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'the books of this organization are not started (no base currency)' USING ERRCODE = 'P0001', HINT = 'ledger.books_not_started';
  END IF;
  SELECT c.minor_units INTO base_mu FROM finance.currencies c WHERE c.code = s.base_currency;

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

CREATE OR REPLACE FUNCTION finance.post_journal_entries(p_entries jsonb, p_audit jsonb DEFAULT NULL, p_independent boolean DEFAULT false)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  org uuid := public.auth_org_id();
  s finance.settings;
  has_books boolean;
  base_mu int;
  accounts jsonb;
  periods jsonb := '{}';
  used jsonb;            -- idempotency keys of the batch already in the journal: key -> { id, hash }
  repeated text[];       -- idempotency keys that occur more than once in the batch
  seen jsonb := '{}';    -- those of them checked so far in this call: key -> { id, hash }
  reversed uuid[] := '{}';
  e jsonb;
  i int := -1;
  r finance.checked_entry;
  checked finance.checked_entry[] := '{}';
  results jsonb[] := '{}';
  written uuid[];
  dates date[] := '{}';
  dt text;
  v_d date;
  v_key text; v_hash text; prior jsonb;
  v_state text; v_msg text; v_hint text;
  v_action text := coalesce(p_audit ->> 'action', 'ledger.entry_posted');
  v_user text := public.auth_user_id();
  v_created_by text;
BEGIN
  IF org IS NULL THEN
    RAISE EXCEPTION 'no organization: the caller may not act in the claimed organization' USING ERRCODE = '42501';
  END IF;
  IF NOT public.auth_has_role('owner', 'admin', 'accountant', 'service') THEN
    RAISE EXCEPTION 'posting journal entries needs the role owner, admin or accountant' USING ERRCODE = '42501';
  END IF;
  PERFORM set_config('finance.posting_org', org::text, true);
  IF jsonb_typeof(p_entries) IS DISTINCT FROM 'array' OR jsonb_array_length(p_entries) NOT BETWEEN 1 AND 1000 THEN
    RAISE EXCEPTION 'entries must be an array of 1 to 1000 entries' USING ERRCODE = '22023', HINT = 'ledger.invalid_entry';
  END IF;
  IF v_action NOT IN ('ledger.entry_posted', 'ledger.entry_reversed', 'ledger.fx_revaluation_posted', 'ledger.year_end_entry_posted') THEN
    RAISE EXCEPTION 'audit action % is not a posting action', v_action USING ERRCODE = '22023';
  END IF;
  v_created_by := coalesce(v_user, 'service:' || (core.request_claims() ->> 'service'));

  SELECT * INTO s FROM finance.settings x WHERE x.org_id = org;
  has_books := FOUND;
  IF has_books THEN
    SELECT c.minor_units INTO base_mu FROM finance.currencies c WHERE c.code = s.base_currency;
    -- what the entries share, read once: their accounts, their periods (after taking the organization's posting
    -- lock shared, as one posting does: closing a period waits for this call), the idempotency keys already used
    accounts := finance.posting_accounts(org, p_entries, s.rounding_account_id);
    FOR dt IN SELECT DISTINCT x ->> 'date' FROM jsonb_array_elements(p_entries) x WHERE x ->> 'date' IS NOT NULL LOOP
      BEGIN
        v_d := dt::date;
      EXCEPTION WHEN OTHERS THEN
        CONTINUE; -- a malformed date fails that entry's check, as in a single posting
      END;
      dates := dates || v_d;
    END LOOP;
    PERFORM pg_advisory_xact_lock_shared(hashtext('finance.posting:' || org::text));
    SELECT coalesce(jsonb_object_agg(to_char(d, 'YYYY-MM-DD'),
             (SELECT jsonb_build_object('id', fp.id, 'start', fp.start_date, 'end', fp.end_date, 'status', fp.status)
              FROM finance.fiscal_periods fp WHERE fp.org_id = org AND d BETWEEN fp.start_date AND fp.end_date)), '{}'::jsonb)
    INTO periods FROM unnest(dates) d;
  END IF;
  SELECT coalesce(jsonb_object_agg(je.idempotency_key, jsonb_build_object('id', je.id, 'hash', je.request_hash)), '{}'::jsonb) INTO used
  FROM finance.journal_entries je
  WHERE je.org_id = org AND je.idempotency_key = ANY (ARRAY(
    SELECT x ->> 'idempotencyKey' FROM jsonb_array_elements(p_entries) x WHERE nullif(x ->> 'idempotencyKey', '') IS NOT NULL));
  repeated := ARRAY(SELECT x ->> 'idempotencyKey' FROM jsonb_array_elements(p_entries) x
                    WHERE nullif(x ->> 'idempotencyKey', '') IS NOT NULL GROUP BY 1 HAVING count(*) > 1);

  FOR e IN SELECT value FROM jsonb_array_elements(p_entries) LOOP
    i := i + 1;
    BEGIN
      IF jsonb_typeof(e) IS DISTINCT FROM 'object' OR jsonb_typeof(e -> 'lines') IS DISTINCT FROM 'array' THEN
        RAISE EXCEPTION 'entry must be an object with an array of lines' USING ERRCODE = '22023', HINT = 'ledger.invalid_entry';
      END IF;
      v_key := nullif(e ->> 'idempotencyKey', '');
      v_hash := md5((e - 'idempotencyKey')::text);
      -- idempotent replay: of an entry already in the journal, or of an earlier entry of this batch
      prior := CASE WHEN v_key IS NOT NULL THEN coalesce(used -> v_key, seen -> v_key) END;
      IF prior IS NOT NULL THEN
        IF prior ->> 'hash' <> v_hash THEN
          RAISE EXCEPTION 'idempotency key "%" was already used for a different entry', v_key USING ERRCODE = '23505', HINT = 'ledger.idempotency_conflict';
        END IF;
        results := results || jsonb_build_object('index', i, 'status', 'replayed', 'id', prior ->> 'id');
        CONTINUE;
      END IF;
      IF NOT has_books THEN
        RAISE EXCEPTION 'the books of this organization are not started (no base currency)' USING ERRCODE = 'P0001', HINT = 'ledger.books_not_started';
      END IF;
      r := finance.check_entry(org, e, s, base_mu, accounts, periods);
      IF r.reverses_entry_id IS NOT NULL THEN
        IF r.reverses_entry_id = ANY (reversed) THEN
          RAISE EXCEPTION 'journal entry % is already reversed', r.reverses_entry_id USING ERRCODE = '23505', HINT = 'ledger.already_reversed';
        END IF;
        reversed := reversed || r.reverses_entry_id;
      END IF;
      r.idx := i; r.id := gen_random_uuid(); r.idempotency_key := v_key; r.request_hash := v_hash;
      checked := checked || r;
      IF v_key = ANY (repeated) THEN
        seen := seen || jsonb_build_object(v_key, jsonb_build_object('id', r.id, 'hash', v_hash));
      END IF;
      results := results || jsonb_build_object('index', i, 'status', 'posted', 'id', r.id);
    EXCEPTION WHEN OTHERS THEN
      GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT, v_hint = PG_EXCEPTION_HINT;
      IF NOT p_independent OR coalesce(v_hint, '') NOT LIKE 'ledger.%' THEN
        RAISE EXCEPTION 'entries[%]: %', i, v_msg USING ERRCODE = v_state, HINT = coalesce(v_hint, ''), DETAIL = jsonb_build_object('index', i)::text;
      END IF;
      results := results || jsonb_build_object('index', i, 'status', 'rejected', 'error', jsonb_build_object('code', v_hint, 'message', v_msg));
    END;
  END LOOP;

  IF cardinality(checked) > 0 THEN
    written := finance.write_entries(org, s, base_mu, checked, p_audit, v_action, v_user, v_created_by);
    -- entries whose idempotency key another transaction committed meanwhile: that entry, or a conflict
    IF cardinality(written) < cardinality(checked) THEN
      FOR r IN SELECT x.* FROM unnest(checked) x WHERE NOT x.id = ANY (written) ORDER BY x.idx LOOP
        SELECT jsonb_build_object('id', je.id, 'hash', je.request_hash) INTO prior
        FROM finance.journal_entries je WHERE je.org_id = org AND je.idempotency_key = r.idempotency_key;
        IF prior ->> 'hash' = r.request_hash THEN
          results[r.idx + 1] := jsonb_build_object('index', r.idx, 'status', 'replayed', 'id', prior ->> 'id');
        ELSIF NOT p_independent THEN
          RAISE EXCEPTION 'entries[%]: idempotency key "%" was already used for a different entry', r.idx, r.idempotency_key
            USING ERRCODE = '23505', HINT = 'ledger.idempotency_conflict', DETAIL = jsonb_build_object('index', r.idx)::text;
        ELSE
          results[r.idx + 1] := jsonb_build_object('index', r.idx, 'status', 'rejected', 'error', jsonb_build_object('code', 'ledger.idempotency_conflict',
            'message', format('idempotency key "%s" was already used for a different entry', r.idempotency_key)));
        END IF;
      END LOOP;
    END IF;
  END IF;
  RETURN to_jsonb(results);
END
$$;

-- ---------------------------------------------------------------- closing and reopening wait for postings in flight
CREATE FUNCTION finance.drain_postings() RETURNS trigger
LANGUAGE plpgsql SET search_path = '' AS $$
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('finance.posting:' || NEW.org_id::text));
  RETURN NEW;
END
$$;
REVOKE ALL ON FUNCTION finance.drain_postings() FROM PUBLIC;
CREATE TRIGGER fiscal_periods_postings_drained BEFORE UPDATE ON finance.fiscal_periods
  FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.start_date IS DISTINCT FROM NEW.start_date
                     OR OLD.end_date IS DISTINCT FROM NEW.end_date)
  EXECUTE FUNCTION finance.drain_postings();
-- the posting role no longer locks period rows
DROP POLICY fiscal_periods_lock ON finance.fiscal_periods;
REVOKE UPDATE (status) ON finance.fiscal_periods FROM finance_posting;

-- ---------------------------------------------------------------- constraints the posting functions guarantee
ALTER TABLE finance.journal_entries
  DROP CONSTRAINT journal_entries_org_id_fkey,
  DROP CONSTRAINT journal_entries_idempotency_key_check,
  DROP CONSTRAINT journal_entries_memo_check,
  DROP CONSTRAINT journal_entries_source_check,
  DROP CONSTRAINT journal_entries_source_ref_check;
ALTER TABLE finance.journal_lines
  DROP CONSTRAINT journal_lines_description_check,
  DROP CONSTRAINT journal_lines_counterparty_type_check,
  DROP CONSTRAINT journal_lines_counterparty_id_check;
ALTER TABLE finance.account_balances DROP CONSTRAINT account_balances_slot_check;
ALTER TABLE finance.period_balances DROP CONSTRAINT period_balances_slot_check;
