-- Voided invoices and bills that kept an old FX revaluation on their control account (correction of 20270208180100).
--
-- Before 20270208010100 the revaluation moved the AR and AP control accounts as one balance, and a void reversed only
-- the document's own posting (its base at its own rate): the adjustment an earlier revaluation had made for the
-- document stayed on the control account. The backfill (20270208180100) gave the document that adjustment as item
-- rows, but the aging counts nothing of a voided document: from its void on, the account kept the adjustment while the
-- aging said 0 (AR or AP <> aging). Today's void takes the adjustment off (JournalService.takeOffRevaluations); this
-- does the same for the documents voided the old way. Unless a later revaluation already took it back (a later old
-- one valued the account as a whole, and the backfill replayed that as a row), what the document's rows still add
-- up to is what is left over.
--
-- Found: an invoice (AR) or a bill or expense claim (AP) voided, with a row the backfill wrote dated before its void,
-- whose rows do not add up to 0. Per organization and date, one entry (source 'system') takes each one's leftover off
-- the control account (a base-only line in its currency at its own rate, the document's counterparty) against the
-- unrealized FX account the old revaluation used for it: the one its latest old revaluation entry (not a reversal)
-- with a change of the leftover's sign posted its gain or loss to (a gain taken back off the gain account, a loss off
-- the loss account, as a void does today), else the ledger settings' unrealized (or realized) gain or loss account.
-- Each document gets the opposite row (at its own rate), linked to the entry, so it carries nothing any more and
-- its rows add up to 0 (what today's void leaves); running this again finds nothing.
--
-- The date: the void's, so that the account equals the aging from the void on, as if the void had taken the adjustment
-- off itself (the periods after it are open, so their reports change to what they should have said); when the void's
-- period is closed, the first day of the first open period after it (a closed period's reports are not changed
-- behind the accountant's back; between the void and that day the difference stays, and the NOTICE below names it).
-- No open period on or after the void (no fiscal year yet): nothing posted, named by a NOTICE. An entry the posting
-- checks refuse (an archived account, say) is left out with a NOTICE, not failing the deployment.
--
-- The entry is written by the posting path's own functions (finance.check_entry, finance.write_entries: the account
-- and period balances, the posting's audit row ledger.fx_revaluation_posted, actor migration:20270209020100), and
-- audited again as ledger.fx_revaluation_voided_items_corrected (principal 'system') with the documents it corrects.
-- Needs no superuser: applied as the owner of the tables (Supabase's postgres, BYPASSRLS, a member of finance_posting
-- since 20260301000100, which may execute the two functions). Nothing to do on an empty database.

DO $$
DECLARE
  g record;
  s finance.settings;
  base_mu int;
  p jsonb;
  r finance.checked_entry;
  written uuid[];
BEGIN
  FOR g IN
    WITH controls AS (
      -- the subledgers' control accounts, as the backfill found them
      SELECT rs.org_id, 'receivables'::text AS subledger, rs.ar_account_id AS account_id FROM finance.receivables_settings rs
      UNION ALL
      SELECT st.org_id, 'payables', coalesce(ps.ap_account_id, a.id)
      FROM finance.settings st
      LEFT JOIN finance.payables_settings ps ON ps.org_id = st.org_id
      LEFT JOIN finance.accounts a ON ps.org_id IS NULL AND a.org_id = st.org_id AND a.code = '2100'
      WHERE coalesce(ps.ap_account_id, a.id) IS NOT NULL),
    docs AS (
      SELECT i.org_id, 'receivables'::text AS subledger, 1 AS sign, i.id AS document_id, i.currency, i.rate, i.voided_on,
        'Void of invoice ' || coalesce(i.number, i.id::text) AS label, 'customer'::text AS counterparty_type, i.customer_id::text AS counterparty_id
      FROM finance.invoices i WHERE i.kind = 'invoice' AND i.voided_on IS NOT NULL AND i.rate IS NOT NULL
      UNION ALL
      SELECT b.org_id, 'payables', -1, b.id, b.currency, b.rate, b.voided_on,
        CASE b.kind WHEN 'expense_claim' THEN 'Void of expense claim ' || b.id ELSE 'Void of bill ' || coalesce(b.bill_number, b.id::text) END,
        CASE WHEN b.vendor_id IS NOT NULL THEN 'vendor' ELSE 'employee' END, coalesce(b.vendor_id::text, b.claimant_id)
      FROM finance.bills b WHERE b.voided_on IS NOT NULL AND b.rate IS NOT NULL AND b.journal_entry_id IS NOT NULL),
    leftovers AS (
      SELECT d.*, c.account_id, v.carried, v.carried * d.sign AS change, st.base_currency,
        -- the first open day on or after the void
        coalesce(
          (SELECT d.voided_on FROM finance.fiscal_periods fp
           WHERE fp.org_id = d.org_id AND fp.start_date <= d.voided_on AND fp.end_date >= d.voided_on AND fp.status = 'open'),
          (SELECT min(fp.start_date) FROM finance.fiscal_periods fp
           WHERE fp.org_id = d.org_id AND fp.start_date > d.voided_on AND fp.status = 'open')) AS on_date
      FROM docs d
      JOIN controls c ON c.org_id = d.org_id AND c.subledger = d.subledger
      JOIN finance.settings st ON st.org_id = d.org_id
      CROSS JOIN LATERAL (
        SELECT sum(x.base_delta) AS carried,
          bool_or(x.created_by = 'migration:20270208180100' AND x.revaluation_date < d.voided_on) AS revalued_before_void
        FROM finance.fx_revaluation_items x
        WHERE x.org_id = d.org_id AND x.subledger = d.subledger AND x.document_id = d.document_id) v
      WHERE v.revalued_before_void AND v.carried <> 0),
    accounted AS (
      SELECT l.*,
        coalesce(used.account_id, CASE WHEN l.change > 0 THEN coalesce(st.fx_unrealized_gain_account_id, st.fx_gain_account_id)
          ELSE coalesce(st.fx_unrealized_loss_account_id, st.fx_loss_account_id) END) AS fx_account_id
      FROM leftovers l
      JOIN finance.settings st ON st.org_id = l.org_id
      -- the old revaluation's gain (it raised the control account's debit side: credited) or loss (debited) line
      LEFT JOIN LATERAL (
        SELECT fl.account_id FROM finance.fx_revaluation_items x
        JOIN finance.journal_entries e ON e.org_id = x.org_id AND e.id = x.entry_id AND e.reverses_entry_id IS NULL
        JOIN finance.journal_lines fl ON fl.org_id = e.org_id AND fl.entry_id = e.id AND fl.currency = l.base_currency AND NOT fl.is_rounding
          AND CASE WHEN l.change > 0 THEN fl.credit > 0 ELSE fl.debit > 0 END
        WHERE x.org_id = l.org_id AND x.document_id = l.document_id AND x.created_by = 'migration:20270208180100'
          AND sign(x.base_delta) = sign(l.carried)
        ORDER BY x.revaluation_date DESC, x.seq DESC, fl.line_no
        LIMIT 1) used ON true)
    SELECT a.org_id, a.on_date, jsonb_agg(jsonb_build_object(
        'subledger', a.subledger, 'documentId', a.document_id, 'label', a.label, 'accountId', a.account_id, 'currency', a.currency,
        'rate', a.rate, 'carried', a.carried, 'change', a.change, 'fxAccountId', a.fx_account_id, 'voidedOn', a.voided_on,
        'counterpartyType', a.counterparty_type, 'counterpartyId', a.counterparty_id) ORDER BY a.subledger, a.voided_on, a.document_id) AS items,
      bool_and(a.fx_account_id IS NOT NULL) AS accounted
    FROM accounted a
    GROUP BY a.org_id, a.on_date
    ORDER BY a.org_id, a.on_date
  LOOP
    IF g.on_date IS NULL OR NOT g.accounted THEN
      RAISE NOTICE 'organization %: voided documents keep FX revaluation adjustments on their control account (%); no open fiscal period on or after their void, or no unrealized FX account: post a correcting entry',
        g.org_id, g.items;
      CONTINUE;
    END IF;
    IF EXISTS (SELECT 1 FROM jsonb_array_elements(g.items) i WHERE (i ->> 'voidedOn')::date < g.on_date) THEN
      RAISE NOTICE 'organization %: voided in a closed period, FX revaluation adjustments taken off on %, the first open day after: until then the control account and the aging differ by them (%)',
        g.org_id, g.on_date, g.items;
    END IF;
    SELECT * INTO s FROM finance.settings st WHERE st.org_id = g.org_id;
    SELECT c.minor_units INTO base_mu FROM finance.currencies c WHERE c.code = s.base_currency;
    -- each document's control line (its leftover off: the opposite side), then each unrealized FX account's line (the
    -- changes it takes back: a gain debited, a loss credited)
    p := jsonb_build_object('date', g.on_date::text, 'source', 'system',
      'memo', 'FX revaluation of documents voided before the item rows taken off (migration 20270209020100)',
      'lines', (
        SELECT jsonb_agg(line ORDER BY k, n) FROM (
          SELECT 1 AS k, n, jsonb_build_object('accountId', i ->> 'accountId', 'currency', i ->> 'currency', 'rate', i ->> 'rate',
              CASE WHEN (i ->> 'change')::numeric > 0 THEN 'baseCredit' ELSE 'baseDebit' END, round(abs((i ->> 'change')::numeric), base_mu)::text,
              'counterpartyType', i ->> 'counterpartyType', 'counterpartyId', i ->> 'counterpartyId',
              'description', left((i ->> 'label') || ': FX revaluation taken off', 500)) AS line
          FROM jsonb_array_elements(g.items) WITH ORDINALITY AS x(i, n)
          UNION ALL
          SELECT 2, row_number() OVER (ORDER BY f.account_id), jsonb_build_object('accountId', f.account_id,
              CASE WHEN f.change > 0 THEN 'debit' ELSE 'credit' END, round(abs(f.change), base_mu)::text,
              'description', 'FX revaluation of voided documents taken off')
          FROM (SELECT i ->> 'fxAccountId' AS account_id, sum((i ->> 'change')::numeric) AS change
                FROM jsonb_array_elements(g.items) i GROUP BY 1) f
          WHERE f.change <> 0) l));
    BEGIN
      r := finance.check_entry(g.org_id, p, s, base_mu, '{}'::jsonb, '{}'::jsonb);
      r.idx := 0; r.id := gen_random_uuid(); r.request_hash := md5(p::text);
      written := finance.write_entries(g.org_id, s, base_mu, ARRAY[r], NULL, 'ledger.fx_revaluation_posted', NULL, 'migration:20270209020100');
      -- each document carries nothing from the entry's date on (at its own rate again)
      INSERT INTO finance.fx_revaluation_items (org_id, entry_id, revaluation_date, subledger, document_id, rate, base_delta, created_by)
      SELECT g.org_id, r.id, g.on_date, i ->> 'subledger', (i ->> 'documentId')::uuid, (i ->> 'rate')::numeric, -(i ->> 'carried')::numeric,
        'migration:20270209020100'
      FROM jsonb_array_elements(g.items) WITH ORDINALITY AS x(i, n) ORDER BY n;
      INSERT INTO core.audit_logs (org_id, actor_id, principal_type, action, entity_type, entity_id, before, after)
      VALUES (g.org_id, 'migration:20270209020100', 'system', 'ledger.fx_revaluation_voided_items_corrected', 'journal_entry', r.id::text, NULL,
        jsonb_build_object('date', g.on_date::text, 'documents', (
          SELECT jsonb_agg(jsonb_build_object('subledger', i ->> 'subledger', 'documentId', i ->> 'documentId', 'voidedOn', i ->> 'voidedOn',
            'accountId', i ->> 'accountId', 'currency', i ->> 'currency', 'fxAccountId', i ->> 'fxAccountId',
            'baseDelta', (-(i ->> 'carried')::numeric)::text) ORDER BY n)
          FROM jsonb_array_elements(g.items) WITH ORDINALITY AS x(i, n))));
    EXCEPTION WHEN OTHERS THEN
      RAISE NOTICE 'organization %: the correcting entry of voided documents keeping FX revaluation adjustments (%) was refused: % (%); post it by hand',
        g.org_id, g.items, SQLERRM, SQLSTATE;
    END;
  END LOOP;
END
$$;
