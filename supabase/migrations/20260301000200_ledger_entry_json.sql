-- Generated from prisma/migrations/20260301000200_ledger_entry_json/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- A posted entry with its lines as the API returns it, so that posting and reading back the entry
-- is one statement: SELECT p.*, finance.entry_json(p.entry_id) FROM finance.post_journal_entry($1) p.
-- VOLATILE on purpose: it must see the rows the posting function wrote earlier in the same statement.
-- SECURITY INVOKER: the caller's row level security applies.
CREATE FUNCTION finance.entry_json(p_entry uuid) RETURNS jsonb
LANGUAGE sql VOLATILE AS $$
  SELECT jsonb_build_object(
    'id', e.id, 'date', e.entry_date::text, 'memo', e.memo, 'source', e.source, 'sourceRef', e.source_ref,
    'reversesEntryId', e.reverses_entry_id,
    'reversedByEntryId', (SELECT r.id FROM finance.journal_entries r WHERE r.org_id = e.org_id AND r.reverses_entry_id = e.id),
    'idempotencyKey', e.idempotency_key, 'baseCurrency', e.base_currency, 'totalBase', e.total_base::text,
    'createdBy', e.created_by, 'createdAt', to_char(e.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    'lines', (SELECT jsonb_agg(jsonb_build_object(
        'lineNo', l.line_no, 'accountId', l.account_id, 'accountCode', a.code, 'currency', l.currency,
        'debit', l.debit::text, 'credit', l.credit::text, 'rate', l.rate::text, 'baseDebit', l.base_debit::text,
        'baseCredit', l.base_credit::text, 'description', l.description, 'workspaceId', l.workspace_id,
        'counterpartyType', l.counterparty_type, 'counterpartyId', l.counterparty_id, 'isRounding', l.is_rounding) ORDER BY l.line_no)
      FROM finance.journal_lines l JOIN finance.accounts a ON a.org_id = l.org_id AND a.id = l.account_id
      WHERE l.org_id = e.org_id AND l.entry_id = e.id))
  FROM finance.journal_entries e
  WHERE e.org_id = public.auth_org_id() AND e.id = p_entry
$$;
GRANT EXECUTE ON FUNCTION finance.entry_json(uuid) TO authenticated, service_role;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20260301000200_ledger_entry_json', '07274104504c1e74384f36a3b2359d0ef4d93491a065be69f2dc942f0faea9b4', 0)
  ON CONFLICT (name) DO NOTHING;
