-- The journal-entry list filtered by account or counterparty (ledgerRepository.listEntryIds, review r7): its order and
-- keyset cursor are (entry_date DESC, the entry's seq DESC), but the lines' indexes it walks ended in entry_date and the
-- LINE's seq (journal_lines_account_idx) or in entry_date alone (journal_lines_counterparty_idx, 20270210990100): inside
-- one date the index could not continue the cursor, so every page of an account or counterparty with tens of thousands
-- of entries on one date (a batch import) read and sorted that whole date (189-390 ms a page, 17-41 ms before
-- 20270210990100). The lines now carry their entry's seq (entry_seq) and the indexes end in (entry_date, entry_seq):
-- a page reads its rows and stops.
--
-- entry_seq is written by finance.write_entries, the one function that inserts lines (every posting: single and batch,
-- closing entries, revaluations, reversals, receivables and payables postings all post through it), from the entry's
-- row the same statement inserted (RETURNING seq), as entry_date is from the entry's own field. No trigger: a per-line
-- trigger costs every posting CPU (issue 14); test/ledger/journal-entry-filters-one-date.test.ts checks that every function
-- inserting lines is write_entries and that its lines agree with their entries.
--
-- Backfill: one UPDATE (the migration is one transaction: batches would neither release the lock nor the space
-- earlier). The rows are immutable (journal_lines_immutable): the trigger is off for this one statement. The column is
-- bookkeeping metadata (no amount, date or account changes): the backfill is not audited. The two indexes the column
-- changes are dropped first so the UPDATE maintains two indexes fewer. Measured on a scratch database with 1 million
-- lines (500,000 entries, 4 organizations; a shared machine, load average ~14): the UPDATE 63 s, SET NOT NULL 0.7 s,
-- the two indexes 4.2 s and 1.3 s, the whole migration ~70 s, during which ADD COLUMN's ACCESS EXCLUSIVE lock holds
-- every posting and every read of the lines. Dropping all the table's other indexes before the UPDATE and building
-- them again after it took as long (57 s): not done. A page of 50 inside a date of 30,000 of an account's entries:
-- 393-647 ms -> 0.5-1.7 ms (account and counterparty filters). RLS, policies and grants are unchanged (table-wide
-- SELECT, INSERT cover the column).
ALTER TABLE finance.journal_lines ADD COLUMN entry_seq bigint;
COMMENT ON COLUMN finance.journal_lines.entry_seq IS 'the seq of the line''s journal entry (keyset order of the journal-entry list and the general ledger)';
DROP INDEX finance.journal_lines_counterparty_idx;
DROP INDEX finance.journal_lines_account_idx;
ALTER TABLE finance.journal_lines DISABLE TRIGGER journal_lines_immutable;
UPDATE finance.journal_lines l SET entry_seq = e.seq
FROM finance.journal_entries e WHERE e.org_id = l.org_id AND e.id = l.entry_id;
ALTER TABLE finance.journal_lines ENABLE TRIGGER journal_lines_immutable;
ALTER TABLE finance.journal_lines ALTER COLUMN entry_seq SET NOT NULL;

-- One index of an account's lines for the general ledger AND the journal list's account filter (review h1b): (org_id,
-- account_id, entry_date, entry_seq, line_no) replaces journal_lines_account_idx (org_id, account_id, entry_date, seq),
-- dropped above before the backfill (one index fewer for the UPDATE to maintain). The general ledger
-- (ledgerRepository.generalLedger) now orders an account's lines by (entry_date, entry_seq, line_no), the lines of an
-- entry together and the entries in posting order within a date, with a keyset cursor on those three; the journal
-- list's account filter walks the prefix (entry_date, entry_seq) backwards. The line's own seq (journal_lines.seq) is
-- in no index any more: nothing reads lines by it (a general-ledger cursor of the old (date, line seq) form answers
-- 400 pagination.cursor, start again: ReportsService.generalLedger). A second index beside the old one would have
-- cost every posted line one more index entry (issue 14: posting CPU): 12-18 us a line measured (200,000 lines
-- inserted in one statement into a copy of the table's columns, 3.9-5.4 s with one such index, 7.5-8.5 s with two; a
-- shared machine, load average ~8 on 2 CPUs). bench/posting-profile.ts (serial, 3 x 500 two-line postings) could not
-- tell it on that machine: the posting transaction's CPU 1.6-2.46 ms with this migration, 2.06-2.36 ms at the
-- migrations before it, 1.4-1.86 ms with the two indexes. Every other reader of an account's lines
-- (balances over a date range, the cash-flow split, base-only sums by account) uses the (org_id, account_id,
-- entry_date) prefix, which is unchanged.
CREATE INDEX journal_lines_account_idx ON finance.journal_lines (org_id, account_id, entry_date, entry_seq, line_no);
-- The counterparty filter's index, replaced (partial as before: only a receivable's, payable's or similar line names one).
CREATE INDEX journal_lines_counterparty_idx ON finance.journal_lines (org_id, counterparty_id, entry_date, entry_seq)
  WHERE counterparty_id IS NOT NULL;

-- finance.write_entries as in 20270120000100, the entry's seq returned by the entries' insert and written on its lines
-- (both statements: one entry, and a batch).
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
      RETURNING id, seq),
    l AS (
      SELECT ins.seq AS entry_seq, l.* FROM ins CROSS JOIN LATERAL unnest(one.account_ids, one.currencies, one.debits, one.credits, one.rates, one.base_debits, one.base_credits,
        one.descriptions, one.workspace_ids, one.counterparty_types, one.counterparty_ids, one.roundings, one.tax_code_ids, one.tax_roles)
        WITH ORDINALITY AS l(acc, cur, dr, cr, rate, bdr, bcr, descr, ws, cpt, cpi, rnd, tax, tax_role, n)),
    lines AS (
      INSERT INTO finance.journal_lines (org_id, entry_id, line_no, entry_date, entry_seq, period_id, account_id, currency, debit, credit, rate,
        base_debit, base_credit, description, workspace_id, counterparty_type, counterparty_id, is_rounding, tax_code_id, tax_role)
      SELECT org, one.id, l.n::smallint, one.entry_date, l.entry_seq, one.period_id, l.acc, l.cur, l.dr, l.cr, l.rate, l.bdr, l.bcr,
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
    RETURNING id, seq),
  -- the entries written (not those whose idempotency key another transaction committed meanwhile)
  e AS (SELECT x.* FROM unnest(p_entries) x WHERE x.id IN (SELECT ins.id FROM ins)),
  l AS (
    SELECT e.idx, e.id, e.entry_date, ins.seq AS entry_seq, e.period_id, l.*
    FROM e JOIN ins ON ins.id = e.id CROSS JOIN LATERAL unnest(e.account_ids, e.currencies, e.debits, e.credits, e.rates, e.base_debits, e.base_credits,
      e.descriptions, e.workspace_ids, e.counterparty_types, e.counterparty_ids, e.roundings, e.tax_code_ids, e.tax_roles)
      WITH ORDINALITY AS l(acc, cur, dr, cr, rate, bdr, bcr, descr, ws, cpt, cpi, rnd, tax, tax_role, n)),
  lines AS (
    INSERT INTO finance.journal_lines (org_id, entry_id, line_no, entry_date, entry_seq, period_id, account_id, currency, debit, credit, rate,
      base_debit, base_credit, description, workspace_id, counterparty_type, counterparty_id, is_rounding, tax_code_id, tax_role)
    SELECT org, l.id, l.n::smallint, l.entry_date, l.entry_seq, l.period_id, l.acc, l.cur, l.dr, l.cr, l.rate, l.bdr, l.bcr,
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
