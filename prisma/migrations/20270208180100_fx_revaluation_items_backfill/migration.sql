-- The item rows of the FX revaluations posted before 20270208010100 (accountant review follow-up, h18).
--
-- Before 20270208010100 the FX revaluation moved each foreign-currency account (the AR and AP control accounts too)
-- to the rate of the date as one balance ("FX revaluation as of <date>", source 'system', audited as
-- ledger.fx_revaluation_posted; with autoReverse its reversal "Reversal of FX revaluation as of <date>" dated the next
-- period's first day), and the agings kept every document at its own rate. Since, the control accounts are revalued
-- per open item and each item's change is kept in finance.fx_revaluation_items, which the agings add and settlements
-- settle. The old entries have no such rows: on books that still hold an old adjustment the aging no longer equals the
-- control account, and the next revaluation worked out each item's change from its document rate, counting the old
-- adjustment a second time (and a payment's realized result counted it once more).
--
-- For each organization, each AR and AP control account (the receivables settings' AR account; the payables settings'
-- AP account, else the standard 2100 once payables posted, as the API finds them) and each foreign currency, the old
-- revaluation entries and their reversals are replayed in date order, as the per-item revaluation would have posted
-- them: a revaluation writes, per item open as of its date (or still carrying a revaluation), the item's base at the
-- entry's rate rounded per item minus what the item carried by then (its document-rate base less its settlements,
-- plus the rows written so far), at that rate, dated the entry's date and linked to it; a reversal writes the
-- opposite rows dated its own date, at the rate the item carried before. The rows of an entry add up to its line on
-- the account: what the per-item rounding leaves over (a cent or so) is put on the item with the largest base at the
-- rate. So the aging equals the control account from the first old revaluation on, an item revalued and not reversed
-- carries the revalued base (a later revaluation and a settlement start from it: nothing counted twice), and an
-- autoReverse'd one carries its document base again after the reversal's date.
--
-- Only subledgers without any item rows yet are replayed (their organization revalued only the old way): running this
-- again, or on books a per-item revaluation already touched, writes nothing (an old adjustment left unmatched there,
-- or a line no open item could take, is named by a NOTICE for the accountant). Each entry given rows is audited
-- (ledger.fx_revaluation_items_backfilled, principal 'system'). Needs no superuser: applied as the owner of the tables
-- (Supabase's postgres, BYPASSRLS); nothing to do on an empty database.

DO $$
DECLARE
  g record;
  ev record;
  n integer;
  total numeric;
BEGIN
  FOR g IN
    WITH controls AS (
      SELECT r.org_id, 'receivables'::text AS subledger, r.ar_account_id AS account_id, 1 AS sign FROM finance.receivables_settings r
      UNION ALL
      SELECT st.org_id, 'payables', coalesce(ps.ap_account_id, a.id), -1
      FROM finance.settings st
      LEFT JOIN finance.payables_settings ps ON ps.org_id = st.org_id
      LEFT JOIN finance.accounts a ON ps.org_id IS NULL AND a.org_id = st.org_id AND a.code = '2100'
        AND (EXISTS (SELECT 1 FROM finance.bills b WHERE b.org_id = st.org_id AND b.journal_entry_id IS NOT NULL)
          OR EXISTS (SELECT 1 FROM finance.bill_payments p WHERE p.org_id = st.org_id))
      WHERE coalesce(ps.ap_account_id, a.id) IS NOT NULL)
    SELECT DISTINCT c.org_id, c.subledger, c.account_id, c.sign, l.currency, cur.minor_units AS base_mu,
      EXISTS (SELECT 1 FROM finance.fx_revaluation_items x WHERE x.org_id = c.org_id AND x.subledger = c.subledger) AS itemized
    FROM controls c
    JOIN finance.settings st ON st.org_id = c.org_id
    JOIN finance.currencies cur ON cur.code = st.base_currency
    JOIN finance.journal_entries e ON e.org_id = c.org_id AND e.source = 'system' AND e.reverses_entry_id IS NULL AND e.memo LIKE 'FX revaluation as of %'
    JOIN finance.journal_lines l ON l.org_id = e.org_id AND l.entry_id = e.id AND l.account_id = c.account_id AND l.currency <> st.base_currency
    ORDER BY 1, 2, 5
  LOOP
    IF g.itemized THEN
      -- replayed already, or revalued per item since: an old adjustment without rows there was counted again by the
      -- per-item revaluation, which takes an accountant's correcting entry, not rows
      IF EXISTS (SELECT 1 FROM finance.journal_entries e
                 JOIN finance.journal_lines l ON l.org_id = e.org_id AND l.entry_id = e.id AND l.account_id = g.account_id AND l.currency = g.currency
                 WHERE e.org_id = g.org_id AND e.source = 'system' AND e.memo LIKE '%FX revaluation as of %' AND l.base_debit <> l.base_credit
                   AND NOT EXISTS (SELECT 1 FROM finance.fx_revaluation_items x WHERE x.org_id = e.org_id AND x.entry_id = e.id)) THEN
        RAISE NOTICE 'organization %: % account % (%) holds FX revaluation adjustments posted as one balance without item rows; the aging and the account may differ by them',
          g.org_id, g.subledger, g.account_id, g.currency;
      END IF;
      CONTINUE;
    END IF;
    FOR ev IN
      SELECT e.id, e.entry_date, e.seq, e.reverses_entry_id, max(l.rate) AS rate, sum(l.base_debit - l.base_credit) * g.sign AS target
      FROM finance.journal_entries e
      JOIN finance.journal_lines l ON l.org_id = e.org_id AND l.entry_id = e.id AND l.account_id = g.account_id AND l.currency = g.currency
      WHERE e.org_id = g.org_id AND e.source = 'system' AND (
        (e.reverses_entry_id IS NULL AND e.memo LIKE 'FX revaluation as of %')
        OR e.reverses_entry_id IN (SELECT o.id FROM finance.journal_entries o
          WHERE o.org_id = g.org_id AND o.source = 'system' AND o.reverses_entry_id IS NULL AND o.memo LIKE 'FX revaluation as of %'))
      GROUP BY e.id, e.entry_date, e.seq, e.reverses_entry_id
      ORDER BY e.entry_date, e.seq
    LOOP
      IF ev.reverses_entry_id IS NULL THEN
        -- the items of the currency as of the entry's date, as the per-item revaluation reads them (receivables.repository
        -- fxOpenItems, payables.repository fxOpenPayables): what is open in the currency, and the base it carried
        INSERT INTO finance.fx_revaluation_items (org_id, entry_id, revaluation_date, subledger, document_id, rate, base_delta, created_by)
        WITH docs AS (
          SELECT i.id AS document_id,
            CASE WHEN i.voided_on <= ev.entry_date THEN 0 ELSE i.total - coalesce((SELECT sum(a.amount) FROM finance.receivable_allocations a
              WHERE a.org_id = i.org_id AND a.invoice_id = i.id AND a.allocation_date <= ev.entry_date), 0) END AS open,
            CASE WHEN i.voided_on <= ev.entry_date THEN 0 ELSE coalesce(i.base_total, 0) - coalesce((SELECT sum(a.invoice_base) FROM finance.receivable_allocations a
              WHERE a.org_id = i.org_id AND a.invoice_id = i.id AND a.allocation_date <= ev.entry_date), 0) END AS base
          FROM finance.invoices i
          WHERE g.subledger = 'receivables' AND i.org_id = g.org_id AND i.kind = 'invoice' AND i.status <> 'draft'
            AND i.invoice_date <= ev.entry_date AND i.currency = g.currency
          UNION ALL
          SELECT p.id,
            -(p.amount - coalesce((SELECT sum(a.amount) FROM finance.receivable_allocations a
                WHERE a.org_id = p.org_id AND a.payment_id = p.id AND a.allocation_date <= ev.entry_date), 0)
              - coalesce((SELECT sum(r.amount) FROM finance.customer_refunds r WHERE r.org_id = p.org_id AND r.payment_id = p.id AND r.refund_date <= ev.entry_date), 0)),
            -round(p.amount * p.rate, g.base_mu) + coalesce((SELECT sum(a.source_base) FROM finance.receivable_allocations a
                WHERE a.org_id = p.org_id AND a.payment_id = p.id AND a.allocation_date <= ev.entry_date), 0)
              + coalesce((SELECT sum(r.source_base) FROM finance.customer_refunds r WHERE r.org_id = p.org_id AND r.payment_id = p.id AND r.refund_date <= ev.entry_date), 0)
          FROM finance.customer_payments p
          WHERE g.subledger = 'receivables' AND p.org_id = g.org_id AND p.payment_date <= ev.entry_date AND p.currency = g.currency
          UNION ALL
          SELECT b.id,
            CASE WHEN b.voided_on <= ev.entry_date THEN 0 ELSE b.total - coalesce((SELECT sum(a.amount) FROM finance.bill_allocations a
              WHERE a.org_id = b.org_id AND a.bill_id = b.id AND a.allocation_date <= ev.entry_date), 0) END,
            CASE WHEN b.voided_on <= ev.entry_date THEN 0 ELSE b.base_total - coalesce((SELECT sum(a.bill_base_amount) FROM finance.bill_allocations a
              WHERE a.org_id = b.org_id AND a.bill_id = b.id AND a.allocation_date <= ev.entry_date), 0) END
          FROM finance.bills b
          WHERE g.subledger = 'payables' AND b.org_id = g.org_id AND b.journal_entry_id IS NOT NULL AND b.bill_date <= ev.entry_date AND b.currency = g.currency
          UNION ALL
          SELECT p.id,
            -(p.amount - coalesce((SELECT sum(a.amount) FROM finance.bill_allocations a
                WHERE a.org_id = p.org_id AND a.payment_id = p.id AND a.allocation_date <= ev.entry_date), 0)
              - coalesce((SELECT sum(r.amount) FROM finance.bill_payment_refunds r WHERE r.org_id = p.org_id AND r.payment_id = p.id AND r.refund_date <= ev.entry_date), 0)),
            -(p.base_amount - coalesce((SELECT sum(a.payment_base_amount) FROM finance.bill_allocations a
                WHERE a.org_id = p.org_id AND a.payment_id = p.id AND a.allocation_date <= ev.entry_date), 0)
              - coalesce((SELECT sum(r.payment_base_amount) FROM finance.bill_payment_refunds r WHERE r.org_id = p.org_id AND r.payment_id = p.id AND r.refund_date <= ev.entry_date), 0))
          FROM finance.bill_payments p
          WHERE g.subledger = 'payables' AND p.org_id = g.org_id AND p.payment_date <= ev.entry_date AND p.currency = g.currency),
        valued AS (
          SELECT d.document_id, round(d.open * ev.rate, g.base_mu) AS target, d.base + coalesce(v.base, 0) AS carried
          FROM docs d LEFT JOIN LATERAL (
            SELECT sum(x.base_delta) AS base FROM finance.fx_revaluation_items x
            WHERE x.org_id = g.org_id AND x.document_id = d.document_id AND x.revaluation_date <= ev.entry_date) v ON true
          WHERE d.open <> 0 OR d.base + coalesce(v.base, 0) <> 0),
        deltas AS (
          SELECT v.document_id, v.target - v.carried AS delta, sum(v.target - v.carried) OVER () AS items_total,
            row_number() OVER (ORDER BY abs(v.target) DESC, v.document_id) AS rank
          FROM valued v),
        -- the entry's line less the items' rounded changes: on the largest item
        fitted AS (
          SELECT d.document_id, d.delta + CASE WHEN d.rank = 1 THEN ev.target - d.items_total ELSE 0 END AS delta FROM deltas d)
        SELECT g.org_id, ev.id, ev.entry_date, g.subledger, f.document_id, ev.rate, f.delta, 'migration:20270208180100'
        FROM fitted f WHERE f.delta <> 0
        ORDER BY f.document_id;
      ELSE
        -- a reversal: the opposite of its entry's rows, at the rate each item carried before them
        INSERT INTO finance.fx_revaluation_items (org_id, entry_id, revaluation_date, subledger, document_id, rate, base_delta, created_by)
        SELECT g.org_id, ev.id, ev.entry_date, g.subledger, x.document_id,
          coalesce((SELECT y.rate FROM finance.fx_revaluation_items y
                    WHERE y.org_id = x.org_id AND y.document_id = x.document_id AND (y.revaluation_date, y.seq) < (x.revaluation_date, x.seq)
                    ORDER BY y.revaluation_date DESC, y.seq DESC LIMIT 1), d.rate),
          -x.base_delta, 'migration:20270208180100'
        FROM finance.fx_revaluation_items x
        JOIN (SELECT i.id, i.currency, i.rate FROM finance.invoices i WHERE i.org_id = g.org_id
              UNION ALL SELECT p.id, p.currency, p.rate FROM finance.customer_payments p WHERE p.org_id = g.org_id
              UNION ALL SELECT b.id, b.currency, b.rate FROM finance.bills b WHERE b.org_id = g.org_id
              UNION ALL SELECT p.id, p.currency, p.rate FROM finance.bill_payments p WHERE p.org_id = g.org_id) d
          ON d.id = x.document_id AND d.currency = g.currency
        WHERE x.org_id = g.org_id AND x.entry_id = ev.reverses_entry_id AND x.subledger = g.subledger
        ORDER BY x.seq;
      END IF;
      GET DIAGNOSTICS n = ROW_COUNT;
      SELECT coalesce(sum(x.base_delta), 0) INTO total FROM finance.fx_revaluation_items x
      WHERE x.org_id = g.org_id AND x.entry_id = ev.id AND x.subledger = g.subledger
        AND x.created_by = 'migration:20270208180100';
      IF n = 0 AND ev.target <> 0 THEN
        RAISE NOTICE 'organization %: FX revaluation entry % (%) moved % account % by % but no open item could take it; the aging and the account differ by it',
          g.org_id, ev.id, ev.entry_date, g.currency, g.account_id, ev.target;
      END IF;
      IF n > 0 THEN
        INSERT INTO core.audit_logs (org_id, actor_id, principal_type, action, entity_type, entity_id, before, after)
        VALUES (g.org_id, 'migration:20270208180100', 'system', 'ledger.fx_revaluation_items_backfilled', 'journal_entry', ev.id::text, NULL,
          jsonb_build_object('subledger', g.subledger, 'accountId', g.account_id, 'currency', g.currency, 'date', ev.entry_date::text,
            'reversesEntryId', ev.reverses_entry_id, 'items', n, 'baseDelta', total::text));
      END IF;
    END LOOP;
  END LOOP;
END
$$;
