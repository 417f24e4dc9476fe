-- Generated from prisma/migrations/20261211000100_ledger_batch_set_based/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- Batch posting, set-based (issue 14). finance.post_journal_entries called finance.post_entry once per entry:
-- about nine statements each (idempotency probe, settings, currency, period, one account per line, the entry,
-- its lines, its audit row), so an entry of a 1,000-entry batch cost PostgreSQL ~0.3 ms, mostly executor
-- start-up. Now the rules of one entry live in one function, finance.check_entry, used by the single posting
-- and by the batch alike; it only checks and computes (the lines, the base amounts, the rounding line). What it
-- reads is fetched once per call where a batch shares it: the settings, every account the batch names (one
-- query), every fiscal period its dates fall in (one query, key-share locked as before), the idempotency keys
-- already used (one query). The batch then writes all its entries, all their lines, the balances and all the
-- audit rows in five statements.
--
-- Same rules, same codes, same messages: a rejected entry is reported as 'entries[i]: <message>' with its
-- ledger code (all or nothing: the call fails; independent: the others post). Same locks: the periods are
-- key-share locked before any entry is checked, the balances updated in (account, currency) order once per
-- call. Idempotency: a key already used answers the earlier entry (same payload) or ledger.idempotency_conflict,
-- also when the earlier entry is in the same batch or committed concurrently (ON CONFLICT on the key's index).
-- An entry reversed twice in one batch: the second is ledger.already_reversed, as before.

-- one entry, checked: what finance.check_entry answers and the writers insert
CREATE TYPE finance.checked_entry AS (
  idx int,                 -- its index in the batch (0 for a single posting)
  id uuid,
  entry_date date,
  period_id uuid,
  memo text,
  source text,
  source_ref text,
  reverses_entry_id uuid,
  idempotency_key text,
  request_hash text,
  total_base numeric,
  account_ids uuid[],
  account_codes text[],
  currencies text[],
  debits numeric[],
  credits numeric[],
  rates numeric[],
  base_debits numeric[],
  base_credits numeric[],
  descriptions text[],
  workspace_ids uuid[],
  counterparty_types text[],
  counterparty_ids text[],
  roundings boolean[],
  tax_code_ids uuid[],
  tax_roles text[]
);
REVOKE ALL ON TYPE finance.checked_entry FROM PUBLIC;
GRANT USAGE ON TYPE finance.checked_entry TO finance_posting;

-- The accounts named by the lines of `p_entries` (an array of entry payloads), plus `p_extra` (the rounding
-- account), as { "<id>": { code, isGroup, archived, currency } }. Ids that are not UUIDs in canonical form are
-- left out (finance.check_entry looks those up one by one, and a malformed one fails its cast there, as before).
CREATE FUNCTION finance.posting_accounts(org uuid, p_entries jsonb, p_extra uuid) RETURNS jsonb
LANGUAGE sql STABLE SET search_path = '' AS $$
  SELECT coalesce(jsonb_object_agg(a.id::text, jsonb_build_object(
           'code', a.code, 'isGroup', a.is_group, 'archived', a.archived_at IS NOT NULL, 'currency', a.currency)), '{}'::jsonb)
  FROM finance.accounts a
  WHERE a.org_id = org AND a.id = ANY (ARRAY(
    SELECT (l ->> 'accountId')::uuid
    FROM jsonb_array_elements(CASE WHEN jsonb_typeof(p_entries) = 'array' THEN p_entries ELSE '[]'::jsonb END) e
    CROSS JOIN LATERAL jsonb_array_elements(CASE WHEN jsonb_typeof(e -> 'lines') = 'array' THEN e -> 'lines' ELSE '[]'::jsonb END) l
    WHERE (l ->> 'accountId') ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
    UNION ALL SELECT p_extra WHERE p_extra IS NOT NULL))
$$;

-- The rules of one entry (formerly inline in finance.post_entry), in the same order with the same codes
-- (HINT) and messages. Reads what `accounts` and `periods` (date 'YYYY-MM-DD' -> period, or null for none)
-- do not hold; locks a period it has to read itself (FOR KEY SHARE: closing it waits for postings in flight).
-- Writes nothing.
CREATE FUNCTION finance.check_entry(org uuid, p jsonb, s finance.settings, base_mu int, accounts jsonb, periods jsonb)
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
  d := (p ->> 'date')::date;
  IF d IS NULL THEN
    RAISE EXCEPTION 'entry date is required' USING ERRCODE = '22023', HINT = 'ledger.invalid_entry';
  END IF;
  per := periods -> to_char(d, 'YYYY-MM-DD');
  IF per IS NULL THEN
    SELECT jsonb_build_object('id', fp.id, 'start', fp.start_date, 'end', fp.end_date, 'status', fp.status) INTO per
    FROM finance.fiscal_periods fp WHERE fp.org_id = org AND fp.start_date <= d AND fp.end_date >= d FOR KEY SHARE;
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

-- Writes checked entries: the entries (an idempotency key committed meanwhile by another transaction skips its
-- entry: ON CONFLICT on the key's index), their lines, the running and per-period balances (rows locked in one
-- fixed order, (account, currency), so concurrent postings cannot deadlock) and one audit row per entry: its
-- identity and totals (the journal is the immutable record of its lines). Answers the ids written.
CREATE FUNCTION finance.write_entries(org uuid, s finance.settings, base_mu int, p_entries finance.checked_entry[],
  p_audit jsonb, p_action text, p_user text, p_created_by text) RETURNS uuid[]
LANGUAGE plpgsql VOLATILE SET search_path = '' AS $$
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
    RETURNING id)
  SELECT coalesce(array_agg(id), '{}') INTO inserted FROM ins;
  IF cardinality(inserted) < cardinality(p_entries) THEN
    p_entries := ARRAY(SELECT x FROM unnest(p_entries) x WHERE x.id = ANY (inserted));
    IF cardinality(p_entries) = 0 THEN RETURN inserted; END IF;
  END IF;

  INSERT INTO finance.journal_lines (org_id, entry_id, line_no, entry_date, period_id, account_id, currency, debit, credit, rate,
    base_debit, base_credit, description, workspace_id, counterparty_type, counterparty_id, is_rounding, tax_code_id, tax_role)
  SELECT org, x.id, l.n::smallint, x.entry_date, x.period_id, l.acc, l.cur, l.dr, l.cr, l.rate, l.bdr, l.bcr,
    l.descr, l.ws, l.cpt, l.cpi, l.rnd, l.tax, l.tax_role
  FROM unnest(p_entries) x
  CROSS JOIN LATERAL unnest(x.account_ids, x.currencies, x.debits, x.credits, x.rates, x.base_debits, x.base_credits,
    x.descriptions, x.workspace_ids, x.counterparty_types, x.counterparty_ids, x.roundings, x.tax_code_ids, x.tax_roles)
    WITH ORDINALITY AS l(acc, cur, dr, cr, rate, bdr, bcr, descr, ws, cpt, cpi, rnd, tax, tax_role, n);

  INSERT INTO finance.account_balances AS b (org_id, account_id, currency, slot, debit, credit, base_debit, base_credit, line_count)
  SELECT org, l.acc, l.cur, v_slot, sum(l.dr), sum(l.cr), sum(l.bdr), sum(l.bcr), count(*)
  FROM unnest(p_entries) x
  CROSS JOIN LATERAL unnest(x.account_ids, x.currencies, x.debits, x.credits, x.base_debits, x.base_credits) AS l(acc, cur, dr, cr, bdr, bcr)
  GROUP BY l.acc, l.cur ORDER BY l.acc, l.cur
  ON CONFLICT ON CONSTRAINT account_balances_pkey DO UPDATE SET
    debit = b.debit + excluded.debit, credit = b.credit + excluded.credit,
    base_debit = b.base_debit + excluded.base_debit, base_credit = b.base_credit + excluded.base_credit,
    line_count = b.line_count + excluded.line_count, updated_at = now();

  INSERT INTO finance.period_balances AS b (org_id, period_id, account_id, currency, slot, debit, credit, base_debit, base_credit, line_count)
  SELECT org, x.period_id, l.acc, l.cur, v_slot, sum(l.dr), sum(l.cr), sum(l.bdr), sum(l.bcr), count(*)
  FROM unnest(p_entries) x
  CROSS JOIN LATERAL unnest(x.account_ids, x.currencies, x.debits, x.credits, x.base_debits, x.base_credits) AS l(acc, cur, dr, cr, bdr, bcr)
  GROUP BY x.period_id, l.acc, l.cur ORDER BY l.acc, l.cur, x.period_id
  ON CONFLICT ON CONSTRAINT period_balances_pkey DO UPDATE SET
    debit = b.debit + excluded.debit, credit = b.credit + excluded.credit,
    base_debit = b.base_debit + excluded.base_debit, base_credit = b.base_credit + excluded.base_credit,
    line_count = b.line_count + excluded.line_count;

  INSERT INTO core.audit_logs (org_id, actor_id, principal_type, action, entity_type, entity_id, before, after, request_id, ip)
  SELECT org, p_created_by, CASE WHEN p_user IS NOT NULL THEN 'user' ELSE 'service' END,
    p_action, 'journal_entry', x.id::text, NULL,
    jsonb_build_object('id', x.id, 'date', x.entry_date::text, 'memo', x.memo, 'source', x.source, 'sourceRef', x.source_ref,
      'reversesEntryId', x.reverses_entry_id, 'idempotencyKey', x.idempotency_key, 'baseCurrency', s.base_currency,
      'totalBase', round(x.total_base, base_mu)::text, 'lineCount', cardinality(x.account_ids)),
    left(p_audit ->> 'requestId', 200), left(p_audit ->> 'ip', 100)
  FROM unnest(p_entries) x ORDER BY x.idx;
  RETURN inserted;
END
$$;

-- ---------------------------------------------------------------- the single posting
DROP FUNCTION finance.post_journal_entry(jsonb, jsonb);
DROP FUNCTION finance.post_entry(jsonb, jsonb, boolean);

CREATE FUNCTION finance.post_journal_entry(p jsonb, p_audit jsonb DEFAULT NULL,
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

-- ---------------------------------------------------------------- batch posting
-- Up to 1,000 entries (each the payload of finance.post_journal_entry, with its own idempotency key) in one
-- call, checked by the single posting's finance.check_entry, written together by finance.write_entries.
--  * all or nothing (p_independent false): the first rejected entry aborts the call; its error keeps its
--    SQLSTATE and code (HINT) and names the entry: 'entries[3]: ...', DETAIL {"index": 3};
--  * independent: an entry rejected by a ledger rule (a declared code in the HINT) is reported and the others
--    post; any other error (permission, malformed value...) aborts the call.
-- Answers [{ "index", "status": "posted" | "replayed" | "rejected", "id"?, "error"?: { "code", "message" } }].
DROP FUNCTION finance.post_journal_entries(jsonb, jsonb, boolean);
CREATE FUNCTION finance.post_journal_entries(p_entries jsonb, p_audit jsonb DEFAULT NULL, p_independent boolean DEFAULT false)
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
    -- what the entries share, read once: their accounts, their periods (key-share locked, as one posting locks
    -- its period: closing one waits for this call), the idempotency keys already used
    accounts := finance.posting_accounts(org, p_entries, s.rounding_account_id);
    FOR dt IN SELECT DISTINCT x ->> 'date' FROM jsonb_array_elements(p_entries) x WHERE x ->> 'date' IS NOT NULL LOOP
      BEGIN
        v_d := dt::date;
      EXCEPTION WHEN OTHERS THEN
        CONTINUE; -- a malformed date fails that entry's check, as in a single posting
      END;
      dates := dates || v_d;
    END LOOP;
    PERFORM 1 FROM finance.fiscal_periods fp
    WHERE fp.org_id = org AND EXISTS (SELECT 1 FROM unnest(dates) d WHERE d BETWEEN fp.start_date AND fp.end_date)
    ORDER BY fp.start_date FOR KEY SHARE;
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

-- ---------------------------------------------------------------- ownership and privileges
-- The posting functions run as finance_posting (SECURITY DEFINER); the helpers run as their caller, which is
-- finance_posting inside them, and no API role may call a helper directly (write_entries skips the checks).
GRANT CREATE ON SCHEMA finance TO finance_posting; -- a new owner needs CREATE on the schema (not for superusers)
ALTER FUNCTION finance.posting_accounts(uuid, jsonb, uuid) OWNER TO finance_posting;
ALTER FUNCTION finance.check_entry(uuid, jsonb, finance.settings, int, jsonb, jsonb) OWNER TO finance_posting;
ALTER FUNCTION finance.write_entries(uuid, finance.settings, int, finance.checked_entry[], jsonb, text, text, text) OWNER TO finance_posting;
ALTER FUNCTION finance.post_journal_entry(jsonb, jsonb) OWNER TO finance_posting;
ALTER FUNCTION finance.post_journal_entries(jsonb, jsonb, boolean) OWNER TO finance_posting;
REVOKE CREATE ON SCHEMA finance FROM finance_posting;
REVOKE ALL ON FUNCTION finance.posting_accounts(uuid, jsonb, uuid) FROM PUBLIC, anon, authenticated, service_role;
REVOKE ALL ON FUNCTION finance.check_entry(uuid, jsonb, finance.settings, int, jsonb, jsonb) FROM PUBLIC, anon, authenticated, service_role;
REVOKE ALL ON FUNCTION finance.write_entries(uuid, finance.settings, int, finance.checked_entry[], jsonb, text, text, text) FROM PUBLIC, anon, authenticated, service_role;
REVOKE ALL ON FUNCTION finance.post_journal_entry(jsonb, jsonb) FROM PUBLIC, anon, authenticated, service_role;
REVOKE ALL ON FUNCTION finance.post_journal_entries(jsonb, jsonb, boolean) FROM PUBLIC, anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION finance.post_journal_entry(jsonb, jsonb) TO authenticated, service_role;
GRANT EXECUTE ON FUNCTION finance.post_journal_entries(jsonb, jsonb, boolean) TO authenticated, service_role;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20261211000100_ledger_batch_set_based', '938f19988ab4ccbad75a74d6d2807d3c047b426314213d89e33255774388dda8', 0)
  ON CONFLICT (name) DO NOTHING;
