-- The ledger as accountants use it (issue 14).
--
--  * Closing entries are marked: source 'year_end' (the year-end close and the reversal that reopens a year),
--    so statements can leave them out of a year's profit and loss. Closing entries posted before this
--    migration (source 'system', idempotency key 'year-end:<year>[:n]', and their reversals) are marked too:
--    the one change ever made to posted rows, done here by the owner with the immutability trigger off.
--  * Every rejection of the posting function carries its error code in the HINT (e.g. 'ledger.unbalanced'),
--    which the API maps to the code's declared status in one place (src/platform/errors/database-errors.ts).
--  * Lines of a taxed sale or purchase name their tax code and role (output/input, base/tax): the VAT report.
--  * Accounts carry their cash-flow classification; settings carry separate unrealized FX gain/loss accounts.
--  * finance.post_journal_entries posts up to 1,000 entries in one call, all or nothing or independently.

-- ---------------------------------------------------------------- closing entries
ALTER TABLE finance.journal_entries DROP CONSTRAINT journal_entries_source_check;
ALTER TABLE finance.journal_entries ADD CONSTRAINT journal_entries_source_check
  CHECK (source IN ('manual', 'invoice', 'bill', 'payment', 'system', 'year_end'));
ALTER TABLE finance.journal_entries DISABLE TRIGGER journal_entries_immutable;
UPDATE finance.journal_entries SET source = 'year_end'
WHERE source = 'system' AND (idempotency_key ~ '^year-end:[0-9a-f-]{36}(:[0-9]+)?$'
  OR reverses_entry_id IN (SELECT e.id FROM finance.journal_entries e WHERE e.idempotency_key ~ '^year-end:[0-9a-f-]{36}(:[0-9]+)?$'));
ALTER TABLE finance.journal_entries ENABLE TRIGGER journal_entries_immutable;
CREATE INDEX journal_entries_year_end_idx ON finance.journal_entries (org_id, entry_date) WHERE source = 'year_end';

-- ---------------------------------------------------------------- tax codes on lines
ALTER TABLE finance.journal_lines
  ADD COLUMN tax_code_id uuid,
  -- output_*: a sale's (the tax is owed), input_*: a purchase's (the tax is deductible); a reversal keeps the role
  ADD COLUMN tax_role text CHECK (tax_role IN ('output_base', 'output_tax', 'input_base', 'input_tax')),
  ADD CONSTRAINT journal_lines_tax_code_fkey FOREIGN KEY (org_id, tax_code_id) REFERENCES finance.tax_codes(org_id, id),
  ADD CONSTRAINT journal_lines_tax_code_role_check CHECK ((tax_code_id IS NULL) = (tax_role IS NULL));
-- the VAT report reads the taxed lines of a range
CREATE INDEX journal_lines_tax_idx ON finance.journal_lines (org_id, tax_code_id, entry_date) WHERE tax_code_id IS NOT NULL;
GRANT SELECT ON finance.tax_codes TO finance_posting;
CREATE POLICY tax_codes_posting ON finance.tax_codes FOR SELECT TO finance_posting USING (org_id = public.auth_org_id());

-- ---------------------------------------------------------------- cash-flow classification
-- cash: the cash and cash-equivalent accounts whose change the statement explains; operating, investing,
-- financing: the section an asset, liability or equity account's change goes to; NULL: by type
-- (asset and liability → operating, equity → financing; revenue and expense are in net income).
ALTER TABLE finance.accounts ADD COLUMN cash_flow_class text CHECK (cash_flow_class IN ('cash', 'operating', 'investing', 'financing'));
-- the standard chart's accounts (bank, equipment, loans, share capital), for books started before
UPDATE finance.accounts SET cash_flow_class = CASE code WHEN '1100' THEN 'cash' WHEN '1500' THEN 'investing' ELSE 'financing' END
WHERE (code, name) IN (('1100', 'Cash at bank'), ('1500', 'Equipment'), ('2300', 'Loans'), ('3100', 'Share capital'));

-- ---------------------------------------------------------------- unrealized FX accounts
ALTER TABLE finance.settings
  ADD COLUMN fx_unrealized_gain_account_id uuid,
  ADD COLUMN fx_unrealized_loss_account_id uuid,
  ADD CONSTRAINT settings_fx_unrealized_gain_fkey FOREIGN KEY (org_id, fx_unrealized_gain_account_id) REFERENCES finance.accounts(org_id, id),
  ADD CONSTRAINT settings_fx_unrealized_loss_fkey FOREIGN KEY (org_id, fx_unrealized_loss_account_id) REFERENCES finance.accounts(org_id, id);

-- ---------------------------------------------------------------- the entry as the API answers it: now with the lines' tax codes
CREATE OR REPLACE FUNCTION finance.entry_json(p_entry uuid) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  org uuid := public.auth_org_id();
BEGIN
  IF org IS NULL THEN
    RETURN NULL;
  END IF;
  RETURN (
    SELECT jsonb_build_object(
      'id', e.id, 'date', e.entry_date::text, 'memo', e.memo, 'source', e.source, 'sourceRef', e.source_ref,
      'reversesEntryId', e.reverses_entry_id,
      'reversedByEntryId', (SELECT r.id FROM finance.journal_entries r WHERE r.org_id = org AND r.reverses_entry_id = e.id),
      'idempotencyKey', e.idempotency_key, 'baseCurrency', e.base_currency, 'totalBase', e.total_base::text,
      'createdBy', e.created_by, 'createdAt', to_char(e.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
      'lines', (SELECT jsonb_agg(jsonb_build_object(
          'lineNo', l.line_no, 'accountId', l.account_id, 'accountCode', a.code, 'currency', l.currency,
          'debit', l.debit::text, 'credit', l.credit::text, 'rate', l.rate::text, 'baseDebit', l.base_debit::text,
          'baseCredit', l.base_credit::text, 'description', l.description, 'workspaceId', l.workspace_id,
          'counterpartyType', l.counterparty_type, 'counterpartyId', l.counterparty_id, 'isRounding', l.is_rounding,
          'taxCodeId', l.tax_code_id, 'taxRole', l.tax_role) ORDER BY l.line_no)
        FROM finance.journal_lines l JOIN finance.accounts a ON a.org_id = org AND a.id = l.account_id
        WHERE l.org_id = org AND l.entry_id = e.id))
    FROM finance.journal_entries e
    WHERE e.org_id = org AND e.id = p_entry);
END
$$;
REVOKE ALL ON FUNCTION finance.entry_json(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION finance.entry_json(uuid) TO authenticated, service_role, finance_posting;

-- ---------------------------------------------------------------- posting
-- finance.post_entry is the posting, as before plus: error codes in the HINT, source 'year_end', taxCodeId and
-- taxRole on lines, the audit row's totalBase with the base currency's minor units (as the API answers it).
-- p_batch (only finance.post_journal_entries passes true): no answer is built and the balances are left to the
-- batch, which adds up all its entries' lines and updates the balances once, in (account, currency) order: two
-- batches locking balance rows entry by entry in their own orders would deadlock. No API role may execute it
-- (skipping the balances is the batch's business alone); finance.post_journal_entry(p, p_audit) is the public
-- single posting, unchanged in signature and answer.
DROP FUNCTION finance.post_journal_entry(jsonb, jsonb);

CREATE FUNCTION finance.post_entry(p jsonb, p_audit jsonb, p_batch boolean,
  OUT entry_id uuid, OUT replayed boolean, OUT entry jsonb)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  -- a batch has verified the organization and the role once for all its entries (finance.post_journal_entries)
  org uuid := CASE WHEN p_batch THEN nullif(current_setting('finance.posting_org', true), '')::uuid ELSE public.auth_org_id() END;
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
  -- sums in the transaction currency while every line so far has one currency (NULL once a second one appears)
  sum_dr numeric := 0; sum_cr numeric := 0; one_cur text; many_cur boolean := false;
  v_slot smallint := (pg_backend_pid() % 8)::smallint;
  a_code text[] := '{}';
  v_action text := coalesce(p_audit ->> 'action', 'ledger.entry_posted');
  v_user text := auth.uid()::text;
  v_service text := auth.jwt() ->> 'service';
  v_created_by text;
  v_inserted int;
  a_tax uuid[] := '{}'; a_tax_role text[] := '{}';
  v_tax uuid; v_tax_role text;
BEGIN
  IF org IS NULL THEN
    RAISE EXCEPTION 'no organization: the caller may not act in the claimed organization' USING ERRCODE = '42501';
  END IF;
  IF NOT p_batch THEN
    IF NOT public.auth_has_role('owner', 'admin', 'accountant', 'service') THEN
      RAISE EXCEPTION 'posting journal entries needs the role owner, admin or accountant' USING ERRCODE = '42501';
    END IF;
    -- the organization verified, for the posting role's policies (finance.posting_org(), migration 20261204000200)
    PERFORM set_config('finance.posting_org', org::text, true);
  END IF;
  IF v_action NOT IN ('ledger.entry_posted', 'ledger.entry_reversed', 'ledger.fx_revaluation_posted', 'ledger.year_end_entry_posted') THEN
    RAISE EXCEPTION 'audit action % is not a posting action', v_action USING ERRCODE = '22023';
  END IF;
  IF jsonb_typeof(p) IS DISTINCT FROM 'object' OR jsonb_typeof(p -> 'lines') IS DISTINCT FROM 'array' THEN
    RAISE EXCEPTION 'entry must be an object with an array of lines' USING ERRCODE = '22023', HINT = 'ledger.invalid_entry';
  END IF;

  -- idempotent replay: answer before taking any lock
  IF v_key IS NOT NULL THEN
    SELECT e.id, e.request_hash INTO existing FROM finance.journal_entries e WHERE e.org_id = org AND e.idempotency_key = v_key;
    IF FOUND THEN
      IF existing.request_hash <> v_hash THEN
        RAISE EXCEPTION 'idempotency key "%" was already used for a different entry', v_key USING ERRCODE = '23505', HINT = 'ledger.idempotency_conflict';
      END IF;
      entry_id := existing.id; replayed := true; entry := CASE WHEN NOT p_batch THEN finance.entry_json(existing.id) END;
      RETURN;
    END IF;
  END IF;

  SELECT * INTO s FROM finance.settings x WHERE x.org_id = org;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'the books of this organization are not started (no base currency)' USING ERRCODE = 'P0001', HINT = 'ledger.books_not_started';
  END IF;
  SELECT c.minor_units INTO base_mu FROM finance.currencies c WHERE c.code = s.base_currency;

  IF v_source NOT IN ('manual', 'invoice', 'bill', 'payment', 'system', 'year_end') THEN
    RAISE EXCEPTION 'source must be one of manual, invoice, bill, payment, system, year_end' USING ERRCODE = '22023', HINT = 'ledger.invalid_entry';
  END IF;
  d := (p ->> 'date')::date;
  IF d IS NULL THEN
    RAISE EXCEPTION 'entry date is required' USING ERRCODE = '22023', HINT = 'ledger.invalid_entry';
  END IF;
  -- the period row is key-share locked: closing it (SELECT ... FOR UPDATE) waits for postings in flight
  SELECT * INTO per FROM finance.fiscal_periods fp
  WHERE fp.org_id = org AND fp.start_date <= d AND fp.end_date >= d FOR KEY SHARE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'no fiscal period covers %', d USING ERRCODE = 'P0001', HINT = 'ledger.no_fiscal_year';
  END IF;
  IF per.status <> 'open' THEN
    RAISE EXCEPTION 'the fiscal period % to % is closed', per.start_date, per.end_date USING ERRCODE = 'P0001', HINT = 'ledger.period_closed';
  END IF;

  v_reverses := nullif(p ->> 'reversesEntryId', '')::uuid;
  IF v_reverses IS NOT NULL THEN
    IF NOT EXISTS (SELECT 1 FROM finance.journal_entries e WHERE e.org_id = org AND e.id = v_reverses) THEN
      RAISE EXCEPTION 'journal entry % does not exist', v_reverses USING ERRCODE = 'P0002', HINT = 'ledger.unknown_entry';
    END IF;
    IF EXISTS (SELECT 1 FROM finance.journal_entries e WHERE e.org_id = org AND e.reverses_entry_id = v_reverses) THEN
      RAISE EXCEPTION 'journal entry % is already reversed', v_reverses USING ERRCODE = '23505', HINT = 'ledger.already_reversed';
    END IF;
  END IF;

  FOR l IN SELECT value FROM jsonb_array_elements(p -> 'lines') LOOP
    n := n + 1;
    IF n > 499 THEN
      RAISE EXCEPTION 'an entry has at most 499 lines' USING ERRCODE = '22023', HINT = 'ledger.invalid_entry';
    END IF;
    SELECT * INTO acc FROM finance.accounts a WHERE a.org_id = org AND a.id = (l ->> 'accountId')::uuid;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'line %: account % does not exist in this organization', n, l ->> 'accountId' USING ERRCODE = 'P0001', HINT = 'ledger.unknown_account';
    END IF;
    IF acc.is_group THEN
      RAISE EXCEPTION 'line %: account % is a group account; post to one of its children', n, acc.code USING ERRCODE = 'P0001', HINT = 'ledger.account_not_postable';
    END IF;
    IF acc.archived_at IS NOT NULL THEN
      RAISE EXCEPTION 'line %: account % is archived', n, acc.code USING ERRCODE = 'P0001', HINT = 'ledger.account_not_postable';
    END IF;
    v_cur := coalesce(nullif(l ->> 'currency', ''), s.base_currency);
    -- the base currency's minor units are known: one statement fewer per line
    IF v_cur = s.base_currency THEN
      mu := base_mu;
    ELSE
      SELECT c.minor_units INTO mu FROM finance.currencies c WHERE c.code = v_cur;
    END IF;
    IF mu IS NULL THEN
      RAISE EXCEPTION 'line %: unknown currency %', n, v_cur USING ERRCODE = '22023', HINT = 'ledger.unknown_currency';
    END IF;
    IF acc.currency IS NOT NULL AND acc.currency <> v_cur THEN
      RAISE EXCEPTION 'line %: account % only takes %, not %', n, acc.code, acc.currency, v_cur USING ERRCODE = 'P0001', HINT = 'ledger.currency_not_allowed';
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
    a_acc := a_acc || acc.id; a_code := a_code || acc.code; a_cur := a_cur || v_cur; a_dr := a_dr || v_dr; a_cr := a_cr || v_cr; a_rate := a_rate || v_rate;
    a_bdr := a_bdr || v_bdr; a_bcr := a_bcr || v_bcr; a_round := a_round || false;
    a_desc := a_desc || (l ->> 'description'); a_ws := a_ws || nullif(l ->> 'workspaceId', '')::uuid;
    a_cpt := a_cpt || (l ->> 'counterpartyType'); a_cpi := a_cpi || (l ->> 'counterpartyId');
    a_tax := a_tax || v_tax; a_tax_role := a_tax_role || v_tax_role;
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
    n := n + 1;
    a_acc := a_acc || s.rounding_account_id;
    a_code := a_code || (SELECT a.code FROM finance.accounts a WHERE a.org_id = org AND a.id = s.rounding_account_id);
    a_cur := a_cur || s.base_currency; a_rate := a_rate || 1::numeric;
    a_dr := a_dr || greatest(-diff, 0); a_cr := a_cr || greatest(diff, 0);
    a_bdr := a_bdr || greatest(-diff, 0); a_bcr := a_bcr || greatest(diff, 0); a_round := a_round || true;
    a_desc := a_desc || 'rounding'::text; a_ws := a_ws || NULL::uuid; a_cpt := a_cpt || NULL::text; a_cpi := a_cpi || NULL::text;
    a_tax := a_tax || NULL::uuid; a_tax_role := a_tax_role || NULL::text;
    sum_bdr := sum_bdr + greatest(-diff, 0); sum_bcr := sum_bcr + greatest(diff, 0);
  END IF;

  -- the id is chosen here and the row count tells a conflict (RETURNING would check the read policy again)
  entry_id := gen_random_uuid();
  v_created_by := coalesce(v_user, 'service:' || v_service);
  INSERT INTO finance.journal_entries (org_id, id, entry_date, period_id, memo, source, source_ref, reverses_entry_id,
    idempotency_key, request_hash, base_currency, total_base, created_by)
  VALUES (org, entry_id, d, per.id, coalesce(p ->> 'memo', ''), v_source, p ->> 'sourceRef', v_reverses,
    v_key, v_hash, s.base_currency, sum_bdr, v_created_by)
  ON CONFLICT (org_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING;
  GET DIAGNOSTICS v_inserted = ROW_COUNT;
  IF v_inserted = 0 THEN
    -- a concurrent request with the same key committed first
    SELECT e.id, e.request_hash INTO existing FROM finance.journal_entries e WHERE e.org_id = org AND e.idempotency_key = v_key;
    IF existing.request_hash <> v_hash THEN
      RAISE EXCEPTION 'idempotency key "%" was already used for a different entry', v_key USING ERRCODE = '23505', HINT = 'ledger.idempotency_conflict';
    END IF;
    entry_id := existing.id; replayed := true; entry := CASE WHEN NOT p_batch THEN finance.entry_json(existing.id) END;
    RETURN;
  END IF;
  replayed := false;

  INSERT INTO finance.journal_lines (org_id, entry_id, line_no, entry_date, period_id, account_id, currency, debit, credit, rate,
    base_debit, base_credit, description, workspace_id, counterparty_type, counterparty_id, is_rounding, tax_code_id, tax_role)
  SELECT org, entry_id, i::smallint, d, per.id, a_acc[i], a_cur[i], a_dr[i], a_cr[i], a_rate[i], a_bdr[i], a_bcr[i],
    a_desc[i], a_ws[i], a_cpt[i], a_cpi[i], a_round[i], a_tax[i], a_tax_role[i]
  FROM generate_subscripts(a_acc, 1) i;

  -- running balances, then period totals: rows locked in one fixed order (account, currency) so
  -- concurrent postings cannot deadlock (a batch does this once for all its entries)
  IF NOT p_batch THEN
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
  END IF;

  -- the answer, from the values just written (cast to their columns' types, as reading them back would give);
  -- a batch needs only the id
  entry := CASE WHEN NOT p_batch THEN jsonb_build_object(
    'id', entry_id, 'date', d::text, 'memo', coalesce(p ->> 'memo', ''), 'source', v_source, 'sourceRef', p ->> 'sourceRef',
    'reversesEntryId', v_reverses, 'reversedByEntryId', NULL, 'idempotencyKey', v_key, 'baseCurrency', s.base_currency,
    'totalBase', sum_bdr::numeric(20, 4)::text, 'createdBy', v_created_by,
    'createdAt', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    'lines', (SELECT jsonb_agg(jsonb_build_object(
        'lineNo', i, 'accountId', a_acc[i], 'accountCode', a_code[i], 'currency', a_cur[i],
        'debit', a_dr[i]::numeric(20, 4)::text, 'credit', a_cr[i]::numeric(20, 4)::text, 'rate', a_rate[i]::numeric(24, 10)::text,
        'baseDebit', a_bdr[i]::numeric(20, 4)::text, 'baseCredit', a_bcr[i]::numeric(20, 4)::text, 'description', a_desc[i],
        'workspaceId', a_ws[i], 'counterpartyType', a_cpt[i], 'counterpartyId', a_cpi[i], 'isRounding', a_round[i],
        'taxCodeId', a_tax[i], 'taxRole', a_tax_role[i]) ORDER BY i)
      FROM generate_subscripts(a_acc, 1) i)) END;

  -- the audit row: the entry's identity and totals (the journal is the immutable record of its lines)
  INSERT INTO core.audit_logs (org_id, actor_id, principal_type, action, entity_type, entity_id, before, after, request_id, ip)
  VALUES (org, v_created_by, CASE WHEN v_user IS NOT NULL THEN 'user' ELSE 'service' END,
    v_action, 'journal_entry', entry_id::text, NULL,
    jsonb_build_object('id', entry_id, 'date', d::text, 'memo', coalesce(p ->> 'memo', ''), 'source', v_source, 'sourceRef', p ->> 'sourceRef',
      'reversesEntryId', v_reverses, 'idempotencyKey', v_key, 'baseCurrency', s.base_currency,
      'totalBase', round(sum_bdr, base_mu)::text, 'lineCount', cardinality(a_acc)),
    left(p_audit ->> 'requestId', 200), left(p_audit ->> 'ip', 100));
END
$$;

ALTER FUNCTION finance.post_entry(jsonb, jsonb, boolean) OWNER TO finance_posting;
REVOKE ALL ON FUNCTION finance.post_entry(jsonb, jsonb, boolean) FROM PUBLIC, anon, authenticated, service_role;

CREATE FUNCTION finance.post_journal_entry(p jsonb, p_audit jsonb DEFAULT NULL,
  OUT entry_id uuid, OUT replayed boolean, OUT entry jsonb)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = '' AS $$
BEGIN
  SELECT x.entry_id, x.replayed, x.entry INTO entry_id, replayed, entry FROM finance.post_entry(p, p_audit, false) x;
END
$$;
ALTER FUNCTION finance.post_journal_entry(jsonb, jsonb) OWNER TO finance_posting;
REVOKE ALL ON FUNCTION finance.post_journal_entry(jsonb, jsonb) FROM PUBLIC, anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION finance.post_journal_entry(jsonb, jsonb) TO authenticated, service_role;

-- ---------------------------------------------------------------- batch posting
-- Up to 1,000 entries (each the payload of finance.post_journal_entry, with its own idempotency key) in one
-- call: the same function posts each, so every rule, lock and audit row is the single posting's; the balances
-- of all posted entries are then updated at once, in (account, currency) order.
--  * all or nothing (p_independent false): the first rejected entry aborts the call; its error keeps its
--    SQLSTATE and code (HINT) and names the entry: 'entries[3]: ...', DETAIL {"index": 3};
--  * independent: each entry in its own subtransaction; an entry rejected by a ledger rule (a declared code
--    in the HINT) is reported and the others post; any other error (permission, deadlock...) aborts the call.
-- Answers [{ "index", "status": "posted" | "replayed" | "rejected", "id"?, "error"?: { "code", "message" } }].
CREATE FUNCTION finance.post_journal_entries(p_entries jsonb, p_audit jsonb DEFAULT NULL, p_independent boolean DEFAULT false)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  org uuid := public.auth_org_id();
  e jsonb;
  i int := 0;
  r record;
  results jsonb[] := '{}';
  posted uuid[] := '{}';
  v_state text; v_msg text; v_hint text;
  v_slot smallint := (pg_backend_pid() % 8)::smallint;
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
  IF NOT p_independent THEN
    BEGIN
      FOR e IN SELECT value FROM jsonb_array_elements(p_entries) LOOP
        SELECT x.entry_id, x.replayed INTO r FROM finance.post_entry(e, p_audit, true) x;
        results := results || jsonb_build_object('index', i, 'status', CASE WHEN r.replayed THEN 'replayed' ELSE 'posted' END, 'id', r.entry_id);
        IF NOT r.replayed THEN posted := posted || r.entry_id; END IF;
        i := i + 1;
      END LOOP;
    EXCEPTION WHEN OTHERS THEN
      GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT, v_hint = PG_EXCEPTION_HINT;
      RAISE EXCEPTION 'entries[%]: %', i, v_msg USING ERRCODE = v_state, HINT = coalesce(v_hint, ''), DETAIL = jsonb_build_object('index', i)::text;
    END;
  ELSE
    FOR e IN SELECT value FROM jsonb_array_elements(p_entries) LOOP
      BEGIN
        SELECT x.entry_id, x.replayed INTO r FROM finance.post_entry(e, p_audit, true) x;
        results := results || jsonb_build_object('index', i, 'status', CASE WHEN r.replayed THEN 'replayed' ELSE 'posted' END, 'id', r.entry_id);
        IF NOT r.replayed THEN posted := posted || r.entry_id; END IF;
      EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT, v_hint = PG_EXCEPTION_HINT;
        IF coalesce(v_hint, '') NOT LIKE 'ledger.%' THEN
          RAISE EXCEPTION 'entries[%]: %', i, v_msg USING ERRCODE = v_state, HINT = coalesce(v_hint, ''), DETAIL = jsonb_build_object('index', i)::text;
        END IF;
        results := results || jsonb_build_object('index', i, 'status', 'rejected', 'error', jsonb_build_object('code', v_hint, 'message', v_msg));
      END;
      i := i + 1;
    END LOOP;
  END IF;

  -- the balances of every entry posted, from their lines, in one fixed order (account, currency)
  IF cardinality(posted) > 0 THEN
    INSERT INTO finance.account_balances AS b (org_id, account_id, currency, slot, debit, credit, base_debit, base_credit, line_count)
    SELECT org, l.account_id, l.currency, v_slot, sum(l.debit), sum(l.credit), sum(l.base_debit), sum(l.base_credit), count(*)
    FROM finance.journal_lines l WHERE l.org_id = org AND l.entry_id = ANY (posted)
    GROUP BY l.account_id, l.currency ORDER BY l.account_id, l.currency
    ON CONFLICT ON CONSTRAINT account_balances_pkey DO UPDATE SET
      debit = b.debit + excluded.debit, credit = b.credit + excluded.credit,
      base_debit = b.base_debit + excluded.base_debit, base_credit = b.base_credit + excluded.base_credit,
      line_count = b.line_count + excluded.line_count, updated_at = now();
    INSERT INTO finance.period_balances AS b (org_id, period_id, account_id, currency, slot, debit, credit, base_debit, base_credit, line_count)
    SELECT org, l.period_id, l.account_id, l.currency, v_slot, sum(l.debit), sum(l.credit), sum(l.base_debit), sum(l.base_credit), count(*)
    FROM finance.journal_lines l WHERE l.org_id = org AND l.entry_id = ANY (posted)
    GROUP BY l.period_id, l.account_id, l.currency ORDER BY l.account_id, l.currency, l.period_id
    ON CONFLICT ON CONSTRAINT period_balances_pkey DO UPDATE SET
      debit = b.debit + excluded.debit, credit = b.credit + excluded.credit,
      base_debit = b.base_debit + excluded.base_debit, base_credit = b.base_credit + excluded.base_credit,
      line_count = b.line_count + excluded.line_count;
  END IF;
  RETURN to_jsonb(results);
END
$$;
ALTER FUNCTION finance.post_journal_entries(jsonb, jsonb, boolean) OWNER TO finance_posting;
REVOKE ALL ON FUNCTION finance.post_journal_entries(jsonb, jsonb, boolean) FROM PUBLIC, anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION finance.post_journal_entries(jsonb, jsonb, boolean) TO authenticated, service_role;
