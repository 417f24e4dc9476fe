-- Opening balances, review of 20270211002900 (source opening_balance: entries bringing the balances of former books, dated
-- the first day of the first fiscal year, without revenue or expense lines, out of the cash flows):
--
-- 1. An opening-balance entry whose base amounts differ by rounding (foreign-currency lines) got its rounding line on
--    the rounding account of the settings, an expense: a result of the first year the cash-flow statement never showed
--    (the revenue/expense rule ran on the client's lines only). Its rounding now goes to the retained earnings account
--    of the settings (where the former years' results come in; equity, postable, in the base currency), else the entry
--    is refused (ledger.unbalanced: the base amounts must balance). Other entries round as before.
-- 2. A reversal is the mirror of its entry (each line's account and currency, amounts and base amounts swapped), as every
--    reversal the API posts is (JournalService.reverse: the reverse route, voids of invoices and bills, a revaluation's
--    autoReverse, a year's reopening): checked for every reversal in one set-based comparison (ledger.invalid_entry), with
--    each line's tax code and role, workspace and counterparty. An opening-balance entry "reversed" by revenue lines took
--    income into the P&L, hid cash, and counted as undone; a sale "reversed" without its tax codes stayed in the VAT
--    report. A reversal takes as many lines as its entry has (an entry may have 500: 499 and its rounding line).
-- 3. A reversal has its entry's source (ledger.opening_balance_date for an opening-balance entry, else
--    ledger.invalid_entry), and a reversal is not reversed (ledger.reversal_of_reversal, as the reverse route answers).
--    finance.check_no_overlap decides that opening-balance entries stand by their net (the opening-balance entries of
--    the range, reversals included, per account and currency), not by "has a reversal", which books written before
--    may hold with other lines, another source, or a reversal's reversal.
-- 4. A change of a fiscal year's (or period's) dates that uncovers an opening-balance entry still standing (its start
--    moved past the entry) is refused (23514, ledger.opening_balance_date).
--
-- check_entry costs an ordinary entry (neither a reversal nor source opening_balance) nothing more: no new statement on
-- its path. A reversal reads its entry once (as before, its existence and already-reversed checks, now with its source,
-- date, reverses_entry_id and line count in the same row) plus the comparison with its entry's lines (by primary key).
--
-- finance.check_entry and finance.check_no_overlap as in 20270211002900_opening_balance_rules with these rules; CREATE OR
-- REPLACE keeps owners, grants, attributes (check_entry: SECURITY INVOKER, no SET; check_no_overlap: SECURITY DEFINER,
-- search_path '') and triggers (BEFORE INSERT OR UPDATE OF start_date, end_date on finance.fiscal_years and
-- finance.fiscal_periods).

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
  v_date text;
  v_acc uuid;
  mu int;
  v_cur text;
  v_rate numeric;
  v_dr numeric; v_cr numeric; v_bdr numeric; v_bcr numeric;
  sum_bdr numeric := 0; sum_bcr numeric := 0; diff numeric;
  sum_dr numeric := 0; sum_cr numeric := 0; one_cur text; many_cur boolean := false;
  v_tax uuid; v_tax_role text;
  v_ws uuid;
  v_open_date date;
  v_open_source text;
  v_open_reversal boolean;
  v_round_acc uuid;
  v_round_code text;
  v_max_lines int := 499;
BEGIN
  r.source := coalesce(p ->> 'source', 'manual');
  IF r.source NOT IN ('manual', 'invoice', 'bill', 'payment', 'system', 'year_end', 'opening_balance') THEN
    RAISE EXCEPTION 'source must be one of manual, invoice, bill, payment, system, year_end, opening_balance' USING ERRCODE = '22023', HINT = 'ledger.invalid_entry';
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
  v_date := p ->> 'date';
  IF v_date IS NULL THEN
    RAISE EXCEPTION 'entry date is required' USING ERRCODE = '22023', HINT = 'ledger.invalid_entry';
  END IF;
  -- a date that is no calendar day (2026-02-30) is this entry's fault, with its code (an independent batch rejects
  -- this entry only). YYYY-MM-DD, what the API sends, is checked by plain expressions that cannot raise; any other
  -- spelling PostgreSQL reads is cast in a block of its own (a subtransaction only for those)
  IF v_date ~ '^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$' AND left(v_date, 4) <> '0000' THEN
    d := (left(v_date, 8) || '01')::date + (right(v_date, 2)::int - 1);
    IF to_char(d, 'YYYY-MM-DD') <> v_date THEN
      RAISE EXCEPTION 'date % is not a calendar date', v_date USING ERRCODE = '22008', HINT = 'ledger.invalid_entry';
    END IF;
  ELSE
    BEGIN
      d := v_date::date;
    EXCEPTION WHEN data_exception THEN
      RAISE EXCEPTION 'date "%" is not a date YYYY-MM-DD', v_date USING ERRCODE = '22007', HINT = 'ledger.invalid_entry';
    END;
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

  -- a reversal (what JournalService.reverse posts for every correction: the reverse route, an invoice's or a bill's void,
  -- a revaluation's autoReverse, a year's reopening) reverses an entry that is no reversal itself, once, with the
  -- entry's source, and mirrors its lines (checked once the lines are read, below). The entry reversed is read once:
  -- its date, its source and whether it is a reversal (20270211003200; only a reversal reads it)
  r.reverses_entry_id := nullif(p ->> 'reversesEntryId', '')::uuid;
  IF r.reverses_entry_id IS NOT NULL THEN
    -- and its size: a reversal has its entry's lines, which may be 500 (499 and a rounding line; a taxed line splits
    -- in two before the cap), so a reversal takes as many lines as its entry has, every entry posted staying reversible
    SELECT e.entry_date, e.source, e.reverses_entry_id IS NOT NULL,
      greatest(499, (SELECT count(*) FROM finance.journal_lines l WHERE l.org_id = org AND l.entry_id = e.id))
    INTO v_open_date, v_open_source, v_open_reversal, v_max_lines
    FROM finance.journal_entries e WHERE e.org_id = org AND e.id = r.reverses_entry_id;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'journal entry % does not exist', r.reverses_entry_id USING ERRCODE = 'P0002', HINT = 'ledger.unknown_entry';
    END IF;
    IF v_open_reversal THEN
      RAISE EXCEPTION 'journal entry % is a reversal: a reversal cannot be reversed; post a new entry instead', r.reverses_entry_id
        USING ERRCODE = 'P0001', HINT = 'ledger.reversal_of_reversal';
    END IF;
    IF EXISTS (SELECT 1 FROM finance.journal_entries e WHERE e.org_id = org AND e.reverses_entry_id = r.reverses_entry_id) THEN
      RAISE EXCEPTION 'journal entry % is already reversed', r.reverses_entry_id USING ERRCODE = '23505', HINT = 'ledger.already_reversed';
    END IF;
  END IF;

  -- an opening-balance entry (source opening_balance: the balances brought from former books) is the cash-flow
  -- statement's opening cash, none of its movements: posted only through the API (its verified transactions, as a
  -- year-end entry's archived accounts are), dated the first day of the first fiscal year (the earliest period's start:
  -- the posting functions' role reads the periods, not the years), and its reversal on the entry's own date. The lock,
  -- held shared until the posting commits, is the one a fiscal year's insert takes alone (finance.check_no_overlap)
  -- before it looks for opening-balance entries after its start: either waits for the other and reads it committed.
  IF r.source = 'opening_balance' THEN
    IF public.auth_claims_verified() IS NOT TRUE THEN
      RAISE EXCEPTION 'an opening-balance entry (source opening_balance) is posted through the API only' USING ERRCODE = '42501', HINT = 'ledger.invalid_entry';
    END IF;
    PERFORM pg_catalog.pg_advisory_xact_lock_shared(pg_catalog.hashtext('finance.opening_balance:' || org::text));
    IF r.reverses_entry_id IS NOT NULL THEN
      IF v_open_source IS DISTINCT FROM 'opening_balance' OR v_open_date <> d THEN
        RAISE EXCEPTION 'the reversal of an opening-balance entry is dated its entry''s date %, and only an opening-balance entry''s reversal has source opening_balance', v_open_date
          USING ERRCODE = 'P0001', HINT = 'ledger.opening_balance_date';
      END IF;
    ELSE
      SELECT min(fp.start_date) INTO v_open_date FROM finance.fiscal_periods fp WHERE fp.org_id = org;
      IF v_open_date IS DISTINCT FROM d THEN
        RAISE EXCEPTION 'an opening-balance entry (source opening_balance) is dated %, the first day of the first fiscal year, not %: date it %, or post it with another source', v_open_date, d, v_open_date
          USING ERRCODE = 'P0001', HINT = 'ledger.opening_balance_date';
      END IF;
    END IF;
  END IF;
  -- a reversal has its entry's source: a reversal of an opening-balance entry with another source (manual, dated any
  -- day) counted as its undoing, its lines in the cash flows
  IF r.reverses_entry_id IS NOT NULL AND v_open_source <> r.source THEN
    IF v_open_source = 'opening_balance' THEN
      RAISE EXCEPTION 'the reversal of an opening-balance entry has source opening_balance, not %, and is dated its entry''s date %', r.source, v_open_date
        USING ERRCODE = 'P0001', HINT = 'ledger.opening_balance_date';
    END IF;
    RAISE EXCEPTION 'the reversal of journal entry % has its source %, not %', r.reverses_entry_id, v_open_source, r.source USING ERRCODE = '22023', HINT = 'ledger.invalid_entry';
  END IF;

  r.account_ids := '{}'; r.account_codes := '{}'; r.currencies := '{}'; r.debits := '{}'; r.credits := '{}'; r.rates := '{}';
  r.base_debits := '{}'; r.base_credits := '{}'; r.descriptions := '{}'; r.workspace_ids := '{}'; r.counterparty_types := '{}';
  r.counterparty_ids := '{}'; r.roundings := '{}'; r.tax_code_ids := '{}'; r.tax_roles := '{}';
  -- the lines by position (plain expressions), not through a query's cursor; the callers checked that lines is an array
  ls := p -> 'lines';
  FOR i IN 0 .. jsonb_array_length(ls) - 1 LOOP
    l := ls -> i;
    n := n + 1;
    IF n > v_max_lines THEN
      RAISE EXCEPTION 'an entry has at most % lines (a reversal as many as its entry)', v_max_lines USING ERRCODE = '22023', HINT = 'ledger.invalid_entry';
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
    -- an archived account takes no posting, except a revenue or expense account in a year-end entry the API posts
    -- itself (source year_end: a close, or the reversal that reopens a year): archived once its year closed, it carries
    -- that year's result again when the year reopens, and the close moves it out again. An archived retained-earnings
    -- (equity) account stays refused. Clients cannot send source year_end through the API, and only the API's
    -- verified transactions pass auth_claims_verified() (false elsewhere). The account's type is read only here.
    -- (nested: the exception's condition holds a subquery, so the combined IF ran it through SPI for every line, and was
    -- planned anew each time: a custom plan folds the live account's false to a constant, so the plan cache never
    -- settled on a generic plan; migration 20270211000900)
    IF (acc ->> 'archived')::boolean THEN
      IF NOT (r.source = 'year_end' AND public.auth_claims_verified() IS TRUE
          AND EXISTS (SELECT 1 FROM finance.accounts a WHERE a.org_id = org AND a.id = v_acc AND a.type IN ('revenue', 'expense'))) THEN
        RAISE EXCEPTION 'line %: account % is archived', n, acc ->> 'code' USING ERRCODE = 'P0001', HINT = 'ledger.account_not_postable';
      END IF;
    END IF;
    -- an opening-balance entry brings balances, no result: the former years' results come in through retained earnings
    -- (a revenue or expense line would be income of the first year that the cash-flow statement, which leaves the entry
    -- out, never shows). Not its reversal, which mirrors it (checked below): one posted before this rule is still
    -- corrected so. Nested: the query runs only for such an entry's lines
    IF r.source = 'opening_balance' AND r.reverses_entry_id IS NULL THEN
      IF EXISTS (SELECT 1 FROM finance.accounts a WHERE a.org_id = org AND a.id = v_acc AND a.type IN ('revenue', 'expense')) THEN
        RAISE EXCEPTION 'line %: account % is a revenue or expense account: an opening-balance entry brings balances, the former years'' results through retained earnings', n, acc ->> 'code'
          USING ERRCODE = 'P0001', HINT = 'ledger.opening_balance_result_account';
      END IF;
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
    -- the lines' columns hold numeric(20, 4) amounts and numeric(24, 10) rates: more is this line's fault, refused here
    -- with its code rather than failing the write (which would fail every entry of an independent batch)
    IF greatest(v_dr, v_cr, v_bdr, v_bcr) >= 1e16 THEN
      RAISE EXCEPTION 'line %: amounts (and their base amounts) must be below 10000000000000000', n USING ERRCODE = '22003', HINT = 'ledger.invalid_amount';
    END IF;
    IF v_rate >= 1e14 THEN
      RAISE EXCEPTION 'line %: rate must be below 100000000000000', n USING ERRCODE = '22003', HINT = 'ledger.invalid_rate';
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
    -- a line's workspace is this entry's fault too: checked here with its code, not left to the lines' foreign key
    -- (whose 23503 at the batch's single write failed every entry of an independent batch). The row is held
    -- (FOR KEY SHARE, until the posting's transaction ends): a delete in flight is waited for, and once it commits the
    -- row is not found here; a delete starting later waits for the posting. Lines without a workspace read nothing.
    v_ws := nullif(l ->> 'workspaceId', '')::uuid;
    IF v_ws IS NOT NULL THEN
      PERFORM FROM core.workspaces w WHERE w.org_id = org AND w.id = v_ws FOR KEY SHARE;
      IF NOT FOUND THEN
        RAISE EXCEPTION 'line %: workspace % does not exist in this organization', n, l ->> 'workspaceId' USING ERRCODE = 'P0001', HINT = 'ledger.unknown_workspace';
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
    r.descriptions := r.descriptions || (l ->> 'description'); r.workspace_ids := r.workspace_ids || v_ws;
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
  -- in the base currency, a difference of at most one minor unit per line is rounding: it goes to the rounding account.
  -- An opening-balance entry's goes to the retained earnings account of the settings instead (20270211003200): the
  -- rounding account is an expense, a line the entry must not have (a result of the first year that the cash-flow
  -- statement, which leaves the entry out, never shows); the former years' results, and the cent their conversion
  -- leaves, come in through retained earnings. Read only for such an entry's difference: an equity account, postable,
  -- in the base currency; without one the entry's base amounts must balance
  diff := sum_bdr - sum_bcr;
  IF diff <> 0 THEN
    IF abs(diff) > n * power(10::numeric, -base_mu) THEN
      RAISE EXCEPTION 'entry does not balance in the base currency %: debits % and credits %', s.base_currency, sum_bdr, sum_bcr USING ERRCODE = 'P0001', HINT = 'ledger.unbalanced';
    END IF;
    IF r.source = 'opening_balance' THEN
      v_round_acc := s.retained_earnings_account_id;
      SELECT a.code INTO v_round_code FROM finance.accounts a WHERE a.org_id = org AND a.id = v_round_acc AND a.type = 'equity'
        AND NOT a.is_group AND a.archived_at IS NULL AND (a.currency IS NULL OR a.currency = s.base_currency);
      IF v_round_code IS NULL THEN
        RAISE EXCEPTION 'an opening-balance entry is off by % % from rounding in the base currency, which goes to the retained earnings account of the settings: none is configured, or it is not a postable equity account in %; the base amounts must balance (set the lines'' rates so that they do)',
          abs(diff), s.base_currency, s.base_currency USING ERRCODE = 'P0001', HINT = 'ledger.unbalanced';
      END IF;
    ELSE
      IF s.rounding_account_id IS NULL THEN
        RAISE EXCEPTION 'entry is off by % % from rounding and no rounding account is configured', diff, s.base_currency USING ERRCODE = 'P0001', HINT = 'ledger.rounding_account_missing';
      END IF;
      v_round_acc := s.rounding_account_id;
      v_round_code := coalesce(accounts -> v_round_acc::text ->> 'code', (SELECT a.code FROM finance.accounts a WHERE a.org_id = org AND a.id = v_round_acc));
    END IF;
    r.account_ids := r.account_ids || v_round_acc;
    r.account_codes := r.account_codes || v_round_code;
    r.currencies := r.currencies || s.base_currency; r.rates := r.rates || 1::numeric;
    r.debits := r.debits || greatest(-diff, 0); r.credits := r.credits || greatest(diff, 0);
    r.base_debits := r.base_debits || greatest(-diff, 0); r.base_credits := r.base_credits || greatest(diff, 0); r.roundings := r.roundings || true;
    r.descriptions := r.descriptions || 'rounding'::text; r.workspace_ids := r.workspace_ids || NULL::uuid;
    r.counterparty_types := r.counterparty_types || NULL::text; r.counterparty_ids := r.counterparty_ids || NULL::text;
    r.tax_code_ids := r.tax_code_ids || NULL::uuid; r.tax_roles := r.tax_roles || NULL::text;
    sum_bdr := sum_bdr + greatest(-diff, 0);
  END IF;
  -- a reversal mirrors its entry: line for line the same account and currency, debit and credit swapped, the base
  -- amounts too (the rate and description are not compared: the base amounts are given), and the same tax code and
  -- role, workspace and counterparty (NULLs group together): a "reversal" without its tax codes left the sale in the VAT
  -- report while taking the entry's one reversal. Every reversal the API posts is such a mirror
  -- (JournalService.reverse); one that is not was a correction the journal never showed as one: an opening-balance
  -- entry "reversed" by revenue lines, or by a cent. One set-based comparison, as a multiset (a line and its mirror
  -- cancel per group), only for a reversal: the entry's lines by their primary key, none for any other entry
  IF r.reverses_entry_id IS NOT NULL THEN
    IF EXISTS (SELECT 1 FROM (
          SELECT l.account_id, l.currency, l.debit AS dr, l.credit AS cr, l.base_debit AS bdr, l.base_credit AS bcr,
            l.tax_code_id, l.tax_role, l.workspace_id, l.counterparty_type, l.counterparty_id, 1 AS side
          FROM finance.journal_lines l WHERE l.org_id = org AND l.entry_id = r.reverses_entry_id
          UNION ALL
          SELECT x.account_id, x.currency, x.cr, x.dr, x.bcr, x.bdr, x.tax_code_id, x.tax_role, x.workspace_id, x.counterparty_type, x.counterparty_id, -1
          FROM unnest(r.account_ids, r.currencies, r.debits, r.credits, r.base_debits, r.base_credits, r.tax_code_ids, r.tax_roles, r.workspace_ids,
            r.counterparty_types, r.counterparty_ids)
            AS x(account_id, currency, dr, cr, bdr, bcr, tax_code_id, tax_role, workspace_id, counterparty_type, counterparty_id)) m
        GROUP BY m.account_id, m.currency, m.dr, m.cr, m.bdr, m.bcr, m.tax_code_id, m.tax_role, m.workspace_id, m.counterparty_type, m.counterparty_id
        HAVING sum(m.side) <> 0) THEN
      RAISE EXCEPTION 'a reversal mirrors the lines of journal entry %: each line''s account and currency, its debit and credit (and base amounts) swapped, its tax code and role, workspace and counterparty kept; post a correction as an entry of its own', r.reverses_entry_id
        USING ERRCODE = '22023', HINT = 'ledger.invalid_entry';
    END IF;
  END IF;
  IF sum_bdr >= 1e16 THEN
    RAISE EXCEPTION 'the entry''s total in the base currency must be below 10000000000000000' USING ERRCODE = '22003', HINT = 'ledger.invalid_amount';
  END IF;
  r.total_base := sum_bdr;
  r.memo := coalesce(p ->> 'memo', '');
  r.source_ref := p ->> 'sourceRef';
  RETURN r;
END
$$;

CREATE OR REPLACE FUNCTION finance.check_no_overlap() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
DECLARE
  y record;
BEGIN
  PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('finance.fiscal_years:' || NEW.org_id::text));
  IF TG_TABLE_NAME = 'fiscal_years' THEN
    SELECT o.name, o.start_date, o.end_date INTO y FROM finance.fiscal_years o WHERE o.org_id = NEW.org_id AND o.id <> NEW.id
      AND o.start_date <= NEW.end_date AND o.end_date >= NEW.start_date ORDER BY o.start_date LIMIT 1;
    IF FOUND THEN
      RAISE EXCEPTION 'fiscal year % to % overlaps fiscal year % (% to %)', NEW.start_date, NEW.end_date, y.name, y.start_date, y.end_date
        USING ERRCODE = '23514', HINT = 'ledger.fiscal_year_overlap';
    END IF;
    FOR y IN SELECT o.name, o.start_date, o.end_date, o.status FROM finance.fiscal_years o
             WHERE o.org_id = NEW.org_id AND o.id <> NEW.id AND o.start_date > NEW.start_date ORDER BY o.start_date FOR SHARE LOOP
      IF y.status = 'closed' THEN
        RAISE EXCEPTION 'fiscal year % to % would start before fiscal year % (% to %), which is closed: its entries would change the closed year''s figures; reopen that year (and any later closed one) first',
          NEW.start_date, NEW.end_date, y.name, y.start_date, y.end_date
          USING ERRCODE = '23514', HINT = 'ledger.fiscal_year_before_closed_year';
      END IF;
    END LOOP;
  ELSE
    IF EXISTS (SELECT 1 FROM finance.fiscal_periods p WHERE p.org_id = NEW.org_id AND p.id <> NEW.id
               AND p.start_date <= NEW.end_date AND p.end_date >= NEW.start_date) THEN
      RAISE EXCEPTION 'fiscal period % to % overlaps another period', NEW.start_date, NEW.end_date USING ERRCODE = '23514', HINT = 'ledger.fiscal_year_overlap';
    END IF;
  END IF;
  -- an opening-balance entry still standing dated after the year's (or a period's) start: the books would start before
  -- the entry's date, its balances then lying mid-books while the cash-flow statement still counts them as opening cash.
  -- A period too: check_entry reads the first day from the periods (the posting functions' role reads no years). After
  -- the later years' locks (a close in flight waits for postings: an opening-balance posting waiting here for this insert
  -- would close the circle); the lock is the one check_entry holds shared while it posts such an entry.
  -- Standing: the opening-balance entries (source opening_balance, their reversals included) dated in the range do not
  -- net to zero per account and currency, in amounts or base amounts (20270211003200). Whether an entry has a reversal
  -- said nothing of what the reversal undid: one with other lines, another source, or a reversal's reversal (all
  -- refused by check_entry now) still stands in books written before. The entry named is the earliest not reversed,
  -- else the earliest one. The entries by the partial index on source opening_balance, their lines by primary key
  PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('finance.opening_balance:' || NEW.org_id::text));
  SELECT o.id, o.entry_date INTO y FROM finance.journal_entries o WHERE o.org_id = NEW.org_id AND o.source = 'opening_balance'
    AND o.entry_date > NEW.start_date
    AND EXISTS (SELECT 1 FROM finance.journal_entries e JOIN finance.journal_lines l ON l.org_id = e.org_id AND l.entry_id = e.id
                WHERE e.org_id = NEW.org_id AND e.source = 'opening_balance' AND e.entry_date > NEW.start_date
                GROUP BY l.account_id, l.currency HAVING sum(l.debit - l.credit) <> 0 OR sum(l.base_debit - l.base_credit) <> 0)
  ORDER BY o.reverses_entry_id IS NOT NULL, EXISTS (SELECT 1 FROM finance.journal_entries r WHERE r.org_id = o.org_id AND r.reverses_entry_id = o.id),
    o.entry_date, o.id LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'fiscal % % to % would start the books before the opening-balance entry % dated %, the first day of the first fiscal year: its balances would lie mid-books and its cash still count as opening cash; reverse the opening-balance entries first (the reversal is dated %), create the year, then post them again dated its first day',
      CASE TG_TABLE_NAME WHEN 'fiscal_years' THEN 'year' ELSE 'period' END, NEW.start_date, NEW.end_date, y.id, y.entry_date, y.entry_date
      USING ERRCODE = '23514', HINT = 'ledger.fiscal_year_before_opening_balance';
  END IF;
  -- a change of dates that leaves an opening-balance entry still standing outside the year (or period) that covered it:
  -- its start moved past the entry (the first day of the first fiscal year), which then lay before the books, and the
  -- next opening-balance entry took the new first day (20270211003200). Only when the change uncovers days; no route
  -- changes dates, the API's transactions of owners, admins and accountants may
  IF TG_OP = 'UPDATE' AND (NEW.start_date > OLD.start_date OR NEW.end_date < OLD.end_date) THEN
    SELECT o.id, o.entry_date INTO y FROM finance.journal_entries o WHERE o.org_id = NEW.org_id AND o.source = 'opening_balance'
      AND o.entry_date BETWEEN OLD.start_date AND OLD.end_date AND o.entry_date NOT BETWEEN NEW.start_date AND NEW.end_date
      AND EXISTS (SELECT 1 FROM finance.journal_entries e JOIN finance.journal_lines l ON l.org_id = e.org_id AND l.entry_id = e.id
                  WHERE e.org_id = NEW.org_id AND e.source = 'opening_balance'
                    AND e.entry_date BETWEEN OLD.start_date AND OLD.end_date AND e.entry_date NOT BETWEEN NEW.start_date AND NEW.end_date
                  GROUP BY l.account_id, l.currency HAVING sum(l.debit - l.credit) <> 0 OR sum(l.base_debit - l.base_credit) <> 0)
    ORDER BY o.reverses_entry_id IS NOT NULL, EXISTS (SELECT 1 FROM finance.journal_entries r WHERE r.org_id = o.org_id AND r.reverses_entry_id = o.id),
      o.entry_date, o.id LIMIT 1;
    IF FOUND THEN
      RAISE EXCEPTION 'fiscal % % to % would no longer cover the opening-balance entry % dated %, the first day of the first fiscal year: it would lie before the books; reverse the opening-balance entries first (the reversal is dated %), change the dates, then post them again dated the new first day',
        CASE TG_TABLE_NAME WHEN 'fiscal_years' THEN 'year' ELSE 'period' END, NEW.start_date, NEW.end_date, y.id, y.entry_date, y.entry_date
        USING ERRCODE = '23514', HINT = 'ledger.opening_balance_date';
    END IF;
  END IF;
  RETURN NEW;
END
$$;
