-- Generated from prisma/migrations/20260601000100_ledger_posting_audit/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- Posting writes its own audit row and answers with the entry it posted (issue 4).
--
-- finance.post_journal_entry(p, p_audit) now also
--  * inserts the audit row of the posting (actor from the request's claims; action, request id and ip
--    from p_audit) in the same call: every posting is audited whoever calls the function (the API, or a
--    service calling it with the service role key), and the API sends one statement fewer per posting;
--  * returns the posted entry as the API answers it (`entry`), built from the values it has just written
--    instead of reading the rows back (finance.entry_json stays for idempotent replays and reads).
-- p_audit: {"action": one of the posting actions (default ledger.entry_posted), "requestId": ..., "ip": ...}.
-- The audit row keeps the entry's identity and totals, not its lines: posted entries never change, so the
-- journal is their record.

DROP FUNCTION finance.post_journal_entry(jsonb);

-- finance_posting writes the posting's audit row, as the poster and in the poster's organization only
GRANT INSERT ON core.audit_logs TO finance_posting;
DO $$
BEGIN
  EXECUTE format('GRANT USAGE ON SEQUENCE %s TO finance_posting', pg_get_serial_sequence('core.audit_logs', 'id'));
END
$$;
CREATE POLICY audit_insert_posting ON core.audit_logs FOR INSERT TO finance_posting
  WITH CHECK (
    org_id = public.auth_org_id() AND entity_type = 'journal_entry'
    AND ((principal_type = 'user' AND actor_id = public.auth_user_id())
         OR (principal_type = 'service' AND auth.role() = 'service_role')));

CREATE FUNCTION finance.post_journal_entry(p jsonb, p_audit jsonb DEFAULT NULL,
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
  v_user text := auth.uid()::text;
  v_service text := auth.jwt() ->> 'service';
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

GRANT CREATE ON SCHEMA finance TO finance_posting; -- a new owner needs CREATE on the schema (not for superusers)
ALTER FUNCTION finance.post_journal_entry(jsonb, jsonb) OWNER TO finance_posting;
REVOKE CREATE ON SCHEMA finance FROM finance_posting;
REVOKE ALL ON FUNCTION finance.post_journal_entry(jsonb, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION finance.post_journal_entry(jsonb, jsonb) TO authenticated, service_role;
-- replays answer with the stored entry
GRANT EXECUTE ON FUNCTION finance.entry_json(uuid) TO finance_posting;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20260601000100_ledger_posting_audit', '2a81be4bfcd995b02e689bfaf276bbd13e4f5ebe7020b7667a3334d083ab7d7d', 0)
  ON CONFLICT (name) DO NOTHING;
