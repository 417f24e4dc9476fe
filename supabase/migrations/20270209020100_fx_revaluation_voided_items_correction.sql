-- Generated from prisma/migrations/20270209020100_fx_revaluation_voided_items_correction/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- Voided invoices and bills that kept an old FX revaluation on their control account (correction of 20270208180100).
--
-- Before 20270208010100 the revaluation moved the AR and AP control accounts as one balance, and a void reversed only
-- the document's own posting (its base at its own rate): the adjustment an earlier revaluation had made for the
-- document stayed on the control account, and a later old revaluation (valuing the account as a whole) or its reversal
-- moved it again. The backfill (20270208180100) replayed all of them as the document's item rows, but the aging counts
-- nothing of a voided document: from its void on, the account differed from the aging by what the document's rows add
-- up to, day by day. Today's void takes the adjustment off (JournalService.takeOffRevaluations); this does the same for
-- the documents voided the old way, on the days the account moved.
--
-- Found: an invoice (AR) or a bill or expense claim (AP) voided, with a row the backfill wrote dated before its void.
-- Taken off: what its rows dated up to the void add up to, on the void's day, and what each later row (a later old
-- revaluation, an autoReverse reversal, a per-item revaluation since) changed, on that row's own day: so the account
-- equals the aging from the void on (a day whose rows add up to 0 takes nothing). Each is a base-only line in the
-- document's currency at its own rate, the document's counterparty, on the control account of the row's entry (the one
-- the document's own posting used, else the settings' one; named by a NOTICE when the settings name another one today),
-- against the unrealized FX account that entry moved for it (the line after the control line, as revaluations post
-- their pairs, else its base line of that side; a gain taken back off the gain account, a loss off the loss account,
-- as a void does today), else the ledger settings' unrealized (or realized) gain or loss account. Each document gets the
-- opposite row (at its own rate) per day, linked to the entry, so it carries nothing from there on and its rows add up
-- to 0 (what today's void leaves); running this again finds nothing.
--
-- The date: the first open day on or after the day due and after the end of the last closed period (periods close in
-- any order: a closed period's reports, and those before it, are not changed behind the accountant's back; between the
-- day due and that day the difference stays, and a NOTICE names it). No such day (no fiscal year yet): nothing posted,
-- a NOTICE and an audit row (ledger.fx_revaluation_voided_items_uncorrected) name the documents. Per organization and
-- date, one entry (source 'system'), in even parts of at most 240 documents' lines each when there are more (within the
-- posting's 499 lines; memo "... (part i of n)"). An entry the posting checks refuse (an archived account, say:
-- finance.check_entry's refusals, a ledger.* hint) is left out the same way; any other error fails the deployment.
--
-- Per organization, the revaluation's lock (JournalService.revalue) and the posting lock shared (as a posting: no period
-- opens or closes meanwhile) are taken first, then the dates are decided. The entry is written by the posting path's own
-- functions (finance.check_entry, finance.write_entries: the account and period balances, the posting's audit row
-- ledger.fx_revaluation_posted, actor migration:20270209020100, principal 'service' as for any posting without a user),
-- and audited again as ledger.fx_revaluation_voided_items_corrected (the same actor and principal) with the documents it
-- corrects. Needs no superuser: applied as the owner of the tables (Supabase's postgres, BYPASSRLS, a member of
-- finance_posting since 20260301000100, which may execute the two functions). Nothing to do on an empty database.

DO $$
DECLARE
  o record;
  g record;
  s finance.settings;
  base_mu int;
  p jsonb;
  r finance.checked_entry;
  written uuid[];
  refused boolean;
  err_state text;
  err_message text;
  err_hint text;
BEGIN
  FOR o IN
    SELECT DISTINCT x.org_id FROM finance.fx_revaluation_items x
    WHERE x.created_by = 'migration:20270208180100'
      AND (EXISTS (SELECT 1 FROM finance.invoices i WHERE x.subledger = 'receivables' AND i.org_id = x.org_id AND i.id = x.document_id
                     AND i.kind = 'invoice' AND i.voided_on > x.revaluation_date)
        OR EXISTS (SELECT 1 FROM finance.bills b WHERE x.subledger = 'payables' AND b.org_id = x.org_id AND b.id = x.document_id
                     AND b.voided_on > x.revaluation_date))
    ORDER BY x.org_id
  LOOP
    -- as a revaluation: one at a time per organization (JournalService.revalue's lock), and no period opens or closes
    -- while the dates are decided and the entries posted (a posting's shared lock; a period's status change takes it)
    PERFORM pg_advisory_xact_lock(hashtext('finance.revaluation:' || o.org_id::text));
    PERFORM pg_advisory_xact_lock_shared(hashtext('finance.posting:' || o.org_id::text));
    SELECT * INTO s FROM finance.settings st WHERE st.org_id = o.org_id;
    SELECT c.minor_units INTO base_mu FROM finance.currencies c WHERE c.code = s.base_currency;
    FOR g IN
      WITH controls AS (
        -- the subledgers' control accounts in the settings today
        SELECT 'receivables'::text AS subledger, rs.ar_account_id AS account_id FROM finance.receivables_settings rs WHERE rs.org_id = o.org_id
        UNION ALL
        SELECT 'payables', coalesce(ps.ap_account_id, a.id)
        FROM finance.settings st
        LEFT JOIN finance.payables_settings ps ON ps.org_id = st.org_id
        LEFT JOIN finance.accounts a ON ps.org_id IS NULL AND a.org_id = st.org_id AND a.code = '2100'
        WHERE st.org_id = o.org_id),
      docs AS (
        SELECT 'receivables'::text AS subledger, 1 AS sign, i.id AS document_id, i.currency, i.rate, i.voided_on, i.entry_id AS posting_id,
          'Void of invoice ' || coalesce(i.number, i.id::text) AS label, 'customer'::text AS counterparty_type, i.customer_id::text AS counterparty_id
        FROM finance.invoices i WHERE i.org_id = o.org_id AND i.kind = 'invoice' AND i.voided_on IS NOT NULL AND i.rate IS NOT NULL
        UNION ALL
        SELECT 'payables', -1, b.id, b.currency, b.rate, b.voided_on, b.journal_entry_id,
          CASE b.kind WHEN 'expense_claim' THEN 'Void of expense claim ' || b.id ELSE 'Void of bill ' || coalesce(b.bill_number, b.id::text) END,
          CASE WHEN b.vendor_id IS NOT NULL THEN 'vendor' ELSE 'employee' END, coalesce(b.vendor_id::text, b.claimant_id)
        FROM finance.bills b WHERE b.org_id = o.org_id AND b.voided_on IS NOT NULL AND b.rate IS NOT NULL AND b.journal_entry_id IS NOT NULL),
      found AS (
        -- revalued by an old revaluation before its void (the backfill gave it a row dated before the void); its control
        -- account: the one its own posting debited (an invoice) or credited (a bill), which its void reversed
        SELECT d.*, c.account_id AS settings_account_id,
          (SELECT l.account_id FROM finance.journal_lines l JOIN finance.accounts a ON a.org_id = l.org_id AND a.id = l.account_id
           WHERE l.org_id = o.org_id AND l.entry_id = d.posting_id AND l.currency = d.currency AND l.counterparty_type IS NOT NULL
             AND a.type = CASE d.subledger WHEN 'receivables' THEN 'asset' ELSE 'liability' END
           ORDER BY l.line_no LIMIT 1) AS posted_account_id
        FROM docs d
        LEFT JOIN controls c ON c.subledger = d.subledger
        WHERE EXISTS (SELECT 1 FROM finance.fx_revaluation_items x WHERE x.org_id = o.org_id AND x.subledger = d.subledger AND x.document_id = d.document_id
                        AND x.created_by = 'migration:20270208180100' AND x.revaluation_date < d.voided_on)),
      last_closed AS (
        SELECT max(fp.end_date) AS end_date FROM finance.fiscal_periods fp WHERE fp.org_id = o.org_id AND fp.status = 'closed'),
      item_rows AS (
        -- each row of the document: what it changed of the control account, and where; the rows up to the void are taken
        -- off on the void's day, a later row (a later revaluation, a reversal) on its own day
        SELECT f.*, x.base_delta, x.base_delta * f.sign AS change, greatest(x.revaluation_date, f.voided_on) AS due_on, ctl.account_id, ctl.line_no, x.entry_id
        FROM found f
        JOIN finance.fx_revaluation_items x ON x.org_id = o.org_id AND x.subledger = f.subledger AND x.document_id = f.document_id
        -- the control line of the entry the row belongs to (the account as it was then), else the document's own
        LEFT JOIN LATERAL (
          SELECT l.account_id, l.line_no FROM finance.journal_lines l
          WHERE l.org_id = o.org_id AND l.entry_id = x.entry_id AND l.currency = f.currency AND NOT l.is_rounding
            AND l.account_id IN (f.posted_account_id, f.settings_account_id)
          ORDER BY l.account_id = f.posted_account_id DESC, l.line_no LIMIT 1) ctl0 ON true
        CROSS JOIN LATERAL (SELECT coalesce(ctl0.account_id, f.posted_account_id, f.settings_account_id) AS account_id, ctl0.line_no) ctl),
      dated AS (
        -- the first open day on or after the row's day and after the last closed period (a closed period's reports are
        -- not changed, whichever order the periods closed in)
        SELECT ir.*, coalesce(
            (SELECT z.day FROM finance.fiscal_periods fp
             WHERE fp.org_id = o.org_id AND fp.start_date <= z.day AND fp.end_date >= z.day AND fp.status = 'open'),
            (SELECT min(fp.start_date) FROM finance.fiscal_periods fp
             WHERE fp.org_id = o.org_id AND fp.start_date > z.day AND fp.status = 'open')) AS on_date
        FROM item_rows ir CROSS JOIN last_closed lc
        CROSS JOIN LATERAL (SELECT greatest(ir.due_on, lc.end_date + 1) AS day) z),
      accounted AS (
        -- the unrealized FX account the row's entry moved against the control line (the next line, as revaluations post
        -- their pairs; else its base line of that side): a gain (the control account's debit side raised, credited)
        -- taken back off the gain account, a loss off the loss account; else the settings' unrealized (or realized) one
        SELECT d.*, coalesce(fx.account_id, CASE WHEN d.change > 0 THEN coalesce(s.fx_unrealized_gain_account_id, s.fx_gain_account_id)
            ELSE coalesce(s.fx_unrealized_loss_account_id, s.fx_loss_account_id) END) AS fx_account_id
        FROM dated d
        LEFT JOIN LATERAL (
          SELECT fl.account_id FROM finance.journal_lines fl
          WHERE fl.org_id = o.org_id AND fl.entry_id = d.entry_id AND fl.currency = s.base_currency AND NOT fl.is_rounding
            AND CASE WHEN d.change > 0 THEN fl.credit > 0 ELSE fl.debit > 0 END
          ORDER BY fl.line_no = d.line_no + 1 DESC, fl.line_no LIMIT 1) fx ON true),
      due AS (
        -- what each document still carries per day it is taken off: nothing when its rows of that day add up to 0 (with
        -- no day to take it off, each day due is named on its own: rows adding up to 0 over several days are named too)
        SELECT a.*, CASE WHEN a.on_date IS NULL THEN a.due_on END AS unposted_on,
          sum(a.base_delta) OVER (PARTITION BY a.subledger, a.document_id, a.on_date, CASE WHEN a.on_date IS NULL THEN a.due_on END) AS day_total
        FROM accounted a),
      units AS (
        SELECT u.subledger, u.document_id, u.label, u.account_id, u.settings_account_id, u.currency, u.rate, u.voided_on, u.counterparty_type, u.counterparty_id,
          u.on_date, u.fx_account_id, min(u.due_on) AS due_on, sum(u.base_delta) AS carried, sum(u.change) AS change
        FROM due u WHERE u.day_total <> 0
        GROUP BY u.subledger, u.document_id, u.label, u.account_id, u.settings_account_id, u.currency, u.rate, u.voided_on, u.counterparty_type, u.counterparty_id,
          u.on_date, u.unposted_on, u.fx_account_id
        HAVING sum(u.base_delta) <> 0),
      -- at most 240 documents' lines (and as many FX lines) per entry, within check_entry's 499 lines: as few parts as
      -- that takes, as even as can be (as the year-end close splits its lines)
      numbered AS (
        SELECT u.*, row_number() OVER (PARTITION BY u.on_date ORDER BY u.subledger, u.voided_on, u.document_id, u.due_on, u.account_id, u.fx_account_id) AS n,
          count(*) OVER (PARTITION BY u.on_date) AS total
        FROM units u),
      chunked AS (
        SELECT x.*, (x.n - 1) / ceil(x.total::numeric / ceil(x.total / 240.0))::bigint AS chunk, ceil(x.total / 240.0)::int AS chunks
        FROM numbered x)
      SELECT c.on_date, c.chunk, max(c.chunks) AS chunks, jsonb_agg(jsonb_build_object(
          'subledger', c.subledger, 'documentId', c.document_id, 'label', c.label, 'accountId', c.account_id, 'currency', c.currency,
          'rate', c.rate, 'carried', c.carried, 'change', c.change, 'fxAccountId', c.fx_account_id, 'voidedOn', c.voided_on, 'dueOn', c.due_on,
          'settingsAccountId', c.settings_account_id, 'counterpartyType', c.counterparty_type, 'counterpartyId', c.counterparty_id)
          ORDER BY c.subledger, c.voided_on, c.document_id, c.due_on, c.account_id, c.fx_account_id) AS items,
        bool_and(c.fx_account_id IS NOT NULL AND c.account_id IS NOT NULL) AS accounted
      FROM chunked c
      GROUP BY c.on_date, c.chunk
      ORDER BY c.on_date NULLS LAST, c.chunk
    LOOP
      IF g.on_date IS NULL OR NOT g.accounted THEN
        RAISE NOTICE 'organization %: voided documents keep FX revaluation adjustments on their control account (%); no open fiscal period on or after their void and after the last closed period, or no unrealized FX account: post a correcting entry',
          o.org_id, g.items;
        INSERT INTO core.audit_logs (org_id, actor_id, principal_type, action, entity_type, entity_id, before, after)
        VALUES (o.org_id, 'migration:20270209020100', 'service', 'ledger.fx_revaluation_voided_items_uncorrected', 'organization', o.org_id::text, NULL,
          jsonb_build_object('reason', CASE WHEN g.on_date IS NULL THEN 'no_open_period' ELSE 'accounts_missing' END, 'documents', (
            SELECT jsonb_agg(jsonb_build_object('subledger', i ->> 'subledger', 'documentId', i ->> 'documentId', 'voidedOn', i ->> 'voidedOn',
              'dueOn', i ->> 'dueOn', 'accountId', i ->> 'accountId', 'currency', i ->> 'currency', 'baseDelta', (-(i ->> 'carried')::numeric)::text) ORDER BY n)
            FROM jsonb_array_elements(g.items) WITH ORDINALITY AS x(i, n))));
        CONTINUE;
      END IF;
      IF EXISTS (SELECT 1 FROM jsonb_array_elements(g.items) i WHERE (i ->> 'dueOn')::date < g.on_date) THEN
        RAISE NOTICE 'organization %: FX revaluation adjustments of voided documents due in a closed period (or before a later closed one) taken off on %, the first open day after: until then the control account and the aging differ by them (%)',
          o.org_id, g.on_date, g.items;
      END IF;
      IF EXISTS (SELECT 1 FROM jsonb_array_elements(g.items) i WHERE (i ->> 'accountId') IS DISTINCT FROM (i ->> 'settingsAccountId')) THEN
        RAISE NOTICE 'organization %: FX revaluation adjustments of voided documents taken off the control account their revaluation moved, not the one in the settings today (%)',
          o.org_id, g.items;
      END IF;
      -- each document's control line (its leftover off: the opposite side), then each unrealized FX account's line (the
      -- changes it takes back: a gain debited, a loss credited)
      p := jsonb_build_object('date', g.on_date::text, 'source', 'system',
        'memo', 'FX revaluation of documents voided before the item rows taken off (migration 20270209020100)'
          || CASE WHEN g.chunks > 1 THEN format(' (part %s of %s)', g.chunk + 1, g.chunks) ELSE '' END,
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
      -- an entry the posting checks refuse (an archived account, say: SQLSTATEs 22003, 22007, 22008, 22023, P0001, P0002
      -- and 23505 with a ledger.* hint, finance.check_entry) is left out, named and audited; any other error fails
      refused := false;
      BEGIN
        r := finance.check_entry(o.org_id, p, s, base_mu, '{}'::jsonb, '{}'::jsonb);
      EXCEPTION WHEN SQLSTATE '22003' OR SQLSTATE '22007' OR SQLSTATE '22008' OR SQLSTATE '22023' OR SQLSTATE 'P0001' OR SQLSTATE 'P0002'
          OR SQLSTATE '23505' THEN
        GET STACKED DIAGNOSTICS err_state = RETURNED_SQLSTATE, err_message = MESSAGE_TEXT, err_hint = PG_EXCEPTION_HINT;
        IF coalesce(err_hint, '') NOT LIKE 'ledger.%' THEN
          RAISE;
        END IF;
        refused := true;
      END;
      IF refused THEN
        RAISE NOTICE 'organization %: the correcting entry of voided documents keeping FX revaluation adjustments (%) was refused: % (%, %); post it by hand',
          o.org_id, g.items, err_message, err_state, err_hint;
        INSERT INTO core.audit_logs (org_id, actor_id, principal_type, action, entity_type, entity_id, before, after)
        VALUES (o.org_id, 'migration:20270209020100', 'service', 'ledger.fx_revaluation_voided_items_uncorrected', 'organization', o.org_id::text, NULL,
          jsonb_build_object('reason', 'refused', 'code', err_hint, 'message', left(err_message, 1000), 'date', g.on_date::text, 'documents', (
            SELECT jsonb_agg(jsonb_build_object('subledger', i ->> 'subledger', 'documentId', i ->> 'documentId', 'voidedOn', i ->> 'voidedOn',
              'dueOn', i ->> 'dueOn', 'accountId', i ->> 'accountId', 'currency', i ->> 'currency', 'fxAccountId', i ->> 'fxAccountId',
              'baseDelta', (-(i ->> 'carried')::numeric)::text) ORDER BY n)
            FROM jsonb_array_elements(g.items) WITH ORDINALITY AS x(i, n))));
        CONTINUE;
      END IF;
      r.idx := 0; r.id := gen_random_uuid(); r.request_hash := md5(p::text);
      written := finance.write_entries(o.org_id, s, base_mu, ARRAY[r], NULL, 'ledger.fx_revaluation_posted', NULL, 'migration:20270209020100');
      -- each document carries nothing from the entry's date on (at its own rate again)
      INSERT INTO finance.fx_revaluation_items (org_id, entry_id, revaluation_date, subledger, document_id, rate, base_delta, created_by)
      SELECT o.org_id, r.id, g.on_date, i ->> 'subledger', (i ->> 'documentId')::uuid, (i ->> 'rate')::numeric, -(i ->> 'carried')::numeric,
        'migration:20270209020100'
      FROM jsonb_array_elements(g.items) WITH ORDINALITY AS x(i, n) ORDER BY n;
      -- principal 'service', as finance.write_entries records the posting (a posting without a user) just above
      INSERT INTO core.audit_logs (org_id, actor_id, principal_type, action, entity_type, entity_id, before, after)
      VALUES (o.org_id, 'migration:20270209020100', 'service', 'ledger.fx_revaluation_voided_items_corrected', 'journal_entry', r.id::text, NULL,
        jsonb_build_object('date', g.on_date::text, 'documents', (
          SELECT jsonb_agg(jsonb_build_object('subledger', i ->> 'subledger', 'documentId', i ->> 'documentId', 'voidedOn', i ->> 'voidedOn',
            'dueOn', i ->> 'dueOn', 'accountId', i ->> 'accountId', 'currency', i ->> 'currency', 'fxAccountId', i ->> 'fxAccountId',
            'baseDelta', (-(i ->> 'carried')::numeric)::text) ORDER BY n)
          FROM jsonb_array_elements(g.items) WITH ORDINALITY AS x(i, n))));
    END LOOP;
  END LOOP;
END
$$;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270209020100_fx_revaluation_voided_items_correction', '274f994a78bb9dc5f8982ae82916359374c2ffef14eee6f74cc6295801026efa', 0)
  ON CONFLICT (name) DO NOTHING;
