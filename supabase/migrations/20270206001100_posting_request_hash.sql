-- Generated from prisma/migrations/20270206001100_posting_request_hash/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- Retrying an identical entry with its idempotency key was refused once its tax code had changed: the key's hash was
-- taken over the payload the API builds from the request (taxed lines split into net and tax on the tax code's
-- accounts), so re-pointing the tax code's sales account made the same request a different payload (409
-- ledger.idempotency_conflict). The API now sends the hash of the client's request as sent (requestHash, computed by
-- JournalService over the request without its key): a replay compares it, and it is what a new entry stores. Entries
-- without requestHash (documents, reversals, the year-end close, a service calling the functions) are hashed over the
-- payload as before, and a key posted before this migration (its hash taken over the payload) is still replayed by the
-- same payload. Same key, different request: still 409.
--
-- A posting made with an API key (ledger:write; and receivables:write / payables:write, whose documents post through the
-- same functions) was refused with 42501 on core.audit_logs: the posting functions named the poster
-- coalesce(user, 'service:' || the service claim), and a key's claims carry neither, so the entry and its audit row
-- had no actor (NULL), which audit_insert_posting refuses (a key's row must name 'api_key:<the verified key>', as
-- AuditService writes for every other keyed change). The verified key now names the posting: created_by and the audit
-- actor are 'api_key:<key id>' (public.auth_api_key_id(): the key begin_key_request verified, NULL for everyone else).
-- No policy changes: a REST caller (claims not verified) is still refused by journal_entries_posting_caller
-- (20270205000900), and the key's scopes are checked by the API before the handler and its read-only transaction
-- (begin_key_request) keeps a key without a write scope from posting at all.
--
-- finance.post_journal_entry as in 20270115000100_ledger_posting_statements and finance.post_journal_entries as in
-- 20270202000300_ledger_entry_checks; only the hash lines and the v_created_by line differ. Owner, grants and SECURITY
-- DEFINER are kept.

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
  -- the API's entries carry the hash of the client's request (requestHash); others are hashed as they come
  v_hash := coalesce(p ->> 'requestHash', md5((p - 'idempotencyKey')::text));

  -- idempotent replay: answer before taking any lock (an entry posted before requestHash has the hash of its payload)
  IF v_key IS NOT NULL THEN
    SELECT e.id, e.request_hash INTO existing FROM finance.journal_entries e WHERE e.org_id = org AND e.idempotency_key = v_key;
    IF FOUND THEN
      IF existing.request_hash NOT IN (v_hash, md5((p - 'idempotencyKey' - 'requestHash')::text)) THEN
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
  v_created_by := coalesce(v_user, 'api_key:' || public.auth_api_key_id()::text, 'service:' || (core.request_claims() ->> 'service'));
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
  v_created_by := coalesce(v_user, 'api_key:' || public.auth_api_key_id()::text, 'service:' || (core.request_claims() ->> 'service'));

  -- the organization's posting lock, shared, before anything the entries post against is read (settings, accounts,
  -- periods), as one posting takes it: a change that drains the postings (a period's status, an account archived or
  -- made a group, another module's control accounts) has either committed before these reads or waits for this call
  PERFORM pg_advisory_xact_lock_shared(hashtext('finance.posting:' || org::text));
  SELECT * INTO s FROM finance.settings x WHERE x.org_id = org;
  has_books := FOUND;
  IF has_books THEN
    SELECT c.minor_units INTO base_mu FROM finance.currencies c WHERE c.code = s.base_currency;
    -- what the entries share, read once: their accounts, their periods, the idempotency keys already used
    accounts := finance.posting_accounts(org, p_entries, s.rounding_account_id);
    FOR dt IN SELECT DISTINCT x ->> 'date' FROM jsonb_array_elements(p_entries) x WHERE x ->> 'date' IS NOT NULL LOOP
      BEGIN
        v_d := dt::date;
      EXCEPTION WHEN OTHERS THEN
        CONTINUE; -- a malformed date fails that entry's check, as in a single posting
      END;
      dates := dates || v_d;
    END LOOP;
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
      v_hash := coalesce(e ->> 'requestHash', md5((e - 'idempotencyKey')::text));
      -- idempotent replay: of an entry already in the journal (posted before requestHash: the hash of its payload), or of
      -- an earlier entry of this batch
      prior := CASE WHEN v_key IS NOT NULL THEN coalesce(used -> v_key, seen -> v_key) END;
      IF prior IS NOT NULL THEN
        IF prior ->> 'hash' NOT IN (v_hash, md5((e - 'idempotencyKey' - 'requestHash')::text)) THEN
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

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270206001100_posting_request_hash', '277504e90a6bdaab45945ab0844f51a53bb37f4c2c15122d9b1d467b61b63177', 0)
  ON CONFLICT (name) DO NOTHING;
