-- Generated from prisma/migrations/20260501000100_ledger_entry_json_definer/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- finance.entry_json runs as its owner with the organization fixed once by auth_org_id() (NULL for a
-- caller who may not act in the claimed organization: NULL), like finance.account_totals. As SECURITY
-- INVOKER every row it touched (the entry, its reversal probe, each line and each line's account) had
-- the tenant policy re-evaluate auth_org_id(), a plpgsql function with a membership probe: posting
-- through the API, which answers with the posted entry, lost ~28% of its throughput to that.
-- Every query below filters on org explicitly.
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
          'counterpartyType', l.counterparty_type, 'counterpartyId', l.counterparty_id, 'isRounding', l.is_rounding) ORDER BY l.line_no)
        FROM finance.journal_lines l JOIN finance.accounts a ON a.org_id = org AND a.id = l.account_id
        WHERE l.org_id = org AND l.entry_id = e.id))
    FROM finance.journal_entries e
    WHERE e.org_id = org AND e.id = p_entry);
END
$$;
REVOKE ALL ON FUNCTION finance.entry_json(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION finance.entry_json(uuid) TO authenticated, service_role;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20260501000100_ledger_entry_json_definer', '5c43cc3d66fb969c95dca11229c724fa11119036dc776bbb2a832b633519aa62', 0)
  ON CONFLICT (name) DO NOTHING;
