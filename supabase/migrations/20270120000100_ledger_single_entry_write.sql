-- Generated from prisma/migrations/20270120000100_ledger_single_entry_write/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- Cheaper single postings (issue 14): finance.write_entries writes one entry with a statement of its own.
--
-- A single posting (finance.post_journal_entry) calls finance.write_entries with one entry. Its one statement was
-- written for batches: the entries unnested and ordered by index, the lines joined back to the entries that were
-- inserted (a semi-join over an unnest), sorted by entry and line, the balances grouped and sorted twice. For one entry
-- most of that is fixed cost paid on every execution (executor start-up of ~30 plan nodes, sorts, subquery scans).
-- Measured serially (bench/posting-profile.ts with PROFILE_FUNCTIONS=1, three alternations of 2 × 600 postings in one
-- database): write_entries' own time 478-483 µs -> 405-410 µs a posting; the posting's transaction 1.27-1.30 ->
-- 1.18 ms of CPU; reference_ratio (the transaction ÷ a bare transfer, bench/reference-ledger.sql) 3.65-3.8 -> 3.38-3.55.
--
-- With one entry the statement writes the same rows in the same order from that entry's fields:
-- - the entry (ON CONFLICT on the idempotency key DO NOTHING, as before: an entry whose key another transaction
--   committed meanwhile is not written, and neither are its lines, balances or audit row: they all read `ins`);
-- - its lines in line order (unnest WITH ORDINALITY);
-- - the balances by account and currency grouped once, in (account, currency) order (the lock order that keeps
--   concurrent postings from deadlocking; one entry has one period, so the period balances' order is the same);
-- - the audit row.
-- Batches (more than one entry, or none) take the statement of migration 20270115000100, unchanged.
-- The two statements write the same rows (their balance upserts and audit rows are spelled out in each): a change to
-- one is a change to both. Single postings exercise the first, batches the second (test/ledger).
CREATE OR REPLACE FUNCTION finance.write_entries(org uuid, s finance.settings, base_mu int, p_entries finance.checked_entry[],
  p_audit jsonb, p_action text, p_user text, p_created_by text) RETURNS uuid[]
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  inserted uuid[];
  v_slot smallint := (pg_backend_pid() % 8)::smallint;
  one finance.checked_entry;
BEGIN
  IF cardinality(p_entries) = 1 THEN
    one := p_entries[1];
    WITH ins AS (
      INSERT INTO finance.journal_entries (org_id, id, entry_date, period_id, memo, source, source_ref, reverses_entry_id,
        idempotency_key, request_hash, base_currency, total_base, created_by)
      VALUES (org, one.id, one.entry_date, one.period_id, one.memo, one.source, one.source_ref, one.reverses_entry_id,
        one.idempotency_key, one.request_hash, s.base_currency, one.total_base, p_created_by)
      ON CONFLICT (org_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
      RETURNING id),
    l AS (
      SELECT l.* FROM ins CROSS JOIN LATERAL unnest(one.account_ids, one.currencies, one.debits, one.credits, one.rates, one.base_debits, one.base_credits,
        one.descriptions, one.workspace_ids, one.counterparty_types, one.counterparty_ids, one.roundings, one.tax_code_ids, one.tax_roles)
        WITH ORDINALITY AS l(acc, cur, dr, cr, rate, bdr, bcr, descr, ws, cpt, cpi, rnd, tax, tax_role, n)),
    lines AS (
      INSERT INTO finance.journal_lines (org_id, entry_id, line_no, entry_date, period_id, account_id, currency, debit, credit, rate,
        base_debit, base_credit, description, workspace_id, counterparty_type, counterparty_id, is_rounding, tax_code_id, tax_role)
      SELECT org, one.id, l.n::smallint, one.entry_date, one.period_id, l.acc, l.cur, l.dr, l.cr, l.rate, l.bdr, l.bcr,
        l.descr, l.ws, l.cpt, l.cpi, l.rnd, l.tax, l.tax_role
      FROM l),
    g AS (SELECT l.acc, l.cur, sum(l.dr) AS dr, sum(l.cr) AS cr, sum(l.bdr) AS bdr, sum(l.bcr) AS bcr, count(*) AS n FROM l GROUP BY l.acc, l.cur ORDER BY l.acc, l.cur),
    account_totals AS (
      INSERT INTO finance.account_balances AS b (org_id, account_id, currency, slot, debit, credit, base_debit, base_credit, line_count)
      SELECT org, g.acc, g.cur, v_slot, g.dr, g.cr, g.bdr, g.bcr, g.n FROM g
      ON CONFLICT ON CONSTRAINT account_balances_pkey DO UPDATE SET
        debit = b.debit + excluded.debit, credit = b.credit + excluded.credit,
        base_debit = b.base_debit + excluded.base_debit, base_credit = b.base_credit + excluded.base_credit,
        line_count = b.line_count + excluded.line_count, updated_at = now()),
    period_totals AS (
      INSERT INTO finance.period_balances AS b (org_id, period_id, account_id, currency, slot, debit, credit, base_debit, base_credit, line_count)
      SELECT org, one.period_id, g.acc, g.cur, v_slot, g.dr, g.cr, g.bdr, g.bcr, g.n FROM g
      ON CONFLICT ON CONSTRAINT period_balances_pkey DO UPDATE SET
        debit = b.debit + excluded.debit, credit = b.credit + excluded.credit,
        base_debit = b.base_debit + excluded.base_debit, base_credit = b.base_credit + excluded.base_credit,
        line_count = b.line_count + excluded.line_count),
    audit AS (
      INSERT INTO core.audit_logs (org_id, actor_id, principal_type, action, entity_type, entity_id, before, after, request_id, ip)
      SELECT org, p_created_by, CASE WHEN p_user IS NOT NULL THEN 'user' ELSE 'service' END,
        p_action, 'journal_entry', one.id::text, NULL,
        jsonb_build_object('id', one.id, 'date', one.entry_date::text, 'memo', one.memo, 'source', one.source, 'sourceRef', one.source_ref,
          'reversesEntryId', one.reverses_entry_id, 'idempotencyKey', one.idempotency_key, 'baseCurrency', s.base_currency,
          'totalBase', round(one.total_base, base_mu)::text, 'lineCount', cardinality(one.account_ids)),
        left(p_audit ->> 'requestId', 200), left(p_audit ->> 'ip', 100)
      FROM ins)
    SELECT coalesce(array_agg(ins.id), '{}') INTO inserted FROM ins;
    RETURN inserted;
  END IF;

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

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270120000100_ledger_single_entry_write', '7e9e1aea406daa3132d7a7e51e6f310ae82553104cc28e3c683b6bdb8a12825b', 0)
  ON CONFLICT (name) DO NOTHING;
