-- Cheaper postings, same guarantees (issue 14). Where a 2-line posting's database CPU went (bench/README.md):
-- public.auth_org_id() (a membership probe) ~22 times per posting, once per row of every policy the posting
-- role meets; 22 foreign-key checks, 13 index insertions.
--
-- 1. Membership once per posting. The posting functions (owned by finance_posting, SECURITY DEFINER) verify
--    the organization (auth_org_id()) and the posting role once, then record the organization for the
--    transaction (set_config('finance.posting_org', ..., true)). The posting role's policies compare with
--    that record (finance.posting_org(), an inlined read of a setting) instead of probing membership per row.
--    Only code running as finance_posting meets these policies, and the only such code is the posting
--    functions, which set the record from the verified organization before touching any table: a value the
--    caller sets beforehand is overwritten. Policies for authenticated, service_role and omnizen_analyst are
--    unchanged. Citus: the policies still call a function, no subquery.
-- 2. Foreign keys the posting function already guarantees, on tables only it writes (no API role has INSERT,
--    UPDATE or DELETE on them; triggers refuse UPDATE and DELETE to every role): a line's entry (inserted just
--    before, same transaction), account and period (read and checked: exists in the organization, postable,
--    open), currency (read from finance.currencies); an entry's period and base currency (read); the
--    balances' account, period and currency (the lines' own). Kept: every reference to core.organizations,
--    the line's workspace (not checked by the function), the reversed entry, the tax code, the settings'.
-- 3. Unique keys that are NULL for most entries become partial indexes (an entry without an idempotency key
--    or that reverses nothing no longer writes an index entry): same uniqueness for every non-NULL key.

CREATE FUNCTION finance.posting_org() RETURNS uuid
LANGUAGE sql STABLE AS $$ SELECT nullif(current_setting('finance.posting_org', true), '')::uuid $$;
REVOKE ALL ON FUNCTION finance.posting_org() FROM PUBLIC, anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION finance.posting_org() TO finance_posting;

-- ---------------------------------------------------------------- the posting role's policies
ALTER POLICY accounts_read ON finance.accounts TO authenticated, omnizen_analyst;
CREATE POLICY accounts_posting ON finance.accounts FOR SELECT TO finance_posting USING (org_id = finance.posting_org());
ALTER POLICY settings_read ON finance.settings TO authenticated;
CREATE POLICY settings_posting ON finance.settings FOR SELECT TO finance_posting USING (org_id = finance.posting_org());
ALTER POLICY fx_rates_read ON finance.fx_rates TO authenticated;
CREATE POLICY fx_rates_posting ON finance.fx_rates FOR SELECT TO finance_posting USING (org_id = finance.posting_org());
ALTER POLICY tax_codes_posting ON finance.tax_codes USING (org_id = finance.posting_org());
ALTER POLICY fiscal_periods_read ON finance.fiscal_periods TO authenticated, omnizen_analyst;
CREATE POLICY fiscal_periods_posting ON finance.fiscal_periods FOR SELECT TO finance_posting USING (org_id = finance.posting_org());
ALTER POLICY fiscal_periods_lock ON finance.fiscal_periods USING (org_id = finance.posting_org()) WITH CHECK (false);

ALTER POLICY journal_entries_read ON finance.journal_entries TO authenticated, omnizen_analyst;
CREATE POLICY journal_entries_posting ON finance.journal_entries FOR SELECT TO finance_posting USING (org_id = finance.posting_org());
-- the posting role was checked by the function before it recorded the organization
ALTER POLICY journal_entries_post ON finance.journal_entries WITH CHECK (org_id = finance.posting_org());
ALTER POLICY journal_lines_read ON finance.journal_lines TO authenticated, omnizen_analyst;
CREATE POLICY journal_lines_posting ON finance.journal_lines FOR SELECT TO finance_posting USING (org_id = finance.posting_org());
ALTER POLICY journal_lines_post ON finance.journal_lines WITH CHECK (org_id = finance.posting_org());

ALTER POLICY account_balances_read ON finance.account_balances TO authenticated, omnizen_analyst;
CREATE POLICY account_balances_posting ON finance.account_balances FOR SELECT TO finance_posting USING (org_id = finance.posting_org());
ALTER POLICY account_balances_post ON finance.account_balances WITH CHECK (org_id = finance.posting_org());
ALTER POLICY account_balances_update ON finance.account_balances USING (org_id = finance.posting_org()) WITH CHECK (org_id = finance.posting_org());
ALTER POLICY period_balances_read ON finance.period_balances TO authenticated, omnizen_analyst;
CREATE POLICY period_balances_posting ON finance.period_balances FOR SELECT TO finance_posting USING (org_id = finance.posting_org());
ALTER POLICY period_balances_post ON finance.period_balances WITH CHECK (org_id = finance.posting_org());
ALTER POLICY period_balances_update ON finance.period_balances USING (org_id = finance.posting_org()) WITH CHECK (org_id = finance.posting_org());

-- the posting's audit row: in the verified organization, as the poster (claims) only
ALTER POLICY audit_insert_posting ON core.audit_logs
  WITH CHECK (
    org_id = finance.posting_org() AND entity_type = 'journal_entry'
    AND ((principal_type = 'user' AND actor_id = public.auth_user_id())
         OR (principal_type = 'service' AND auth.role() = 'service_role')));

-- ---------------------------------------------------------------- foreign keys the posting function guarantees
ALTER TABLE finance.journal_lines
  DROP CONSTRAINT journal_lines_org_id_entry_id_fkey,
  DROP CONSTRAINT journal_lines_org_id_account_id_fkey,
  DROP CONSTRAINT journal_lines_org_id_period_id_fkey,
  DROP CONSTRAINT journal_lines_currency_fkey;
ALTER TABLE finance.journal_entries
  DROP CONSTRAINT journal_entries_org_id_period_id_fkey,
  DROP CONSTRAINT journal_entries_base_currency_fkey;
ALTER TABLE finance.account_balances
  DROP CONSTRAINT account_balances_org_id_account_id_fkey,
  DROP CONSTRAINT account_balances_currency_fkey;
ALTER TABLE finance.period_balances
  DROP CONSTRAINT period_balances_org_id_account_id_fkey,
  DROP CONSTRAINT period_balances_org_id_period_id_fkey,
  DROP CONSTRAINT period_balances_currency_fkey;

-- ---------------------------------------------------------------- unique keys that are mostly NULL
ALTER TABLE finance.journal_entries DROP CONSTRAINT journal_entries_org_id_idempotency_key_key;
CREATE UNIQUE INDEX journal_entries_idempotency_key_idx ON finance.journal_entries (org_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
ALTER TABLE finance.journal_entries DROP CONSTRAINT journal_entries_org_id_reverses_entry_id_key;
-- an entry is reversed at most once
CREATE UNIQUE INDEX journal_entries_reverses_idx ON finance.journal_entries (org_id, reverses_entry_id) WHERE reverses_entry_id IS NOT NULL;

-- ---------------------------------------------------------------- CHECK constraints the posting function guarantees
-- PostgreSQL parses a table's CHECK expressions again for every INSERT statement (a profile of batch posting:
-- ~12% of its CPU in ExecConstraints, mostly parsing). The posting function is the only writer of journal lines
-- and refuses, with a ledger code, what these checks would: negative amounts or rates, both sides on one line,
-- a zero line, more than 499 lines (+1 rounding line), an unknown tax role, a tax code without a role. Kept: the
-- checks on text the function passes through as given (description, counterparty type and id).
ALTER TABLE finance.journal_lines
  DROP CONSTRAINT journal_lines_base_credit_check,
  DROP CONSTRAINT journal_lines_base_debit_check,
  DROP CONSTRAINT journal_lines_check,
  DROP CONSTRAINT journal_lines_check1,
  DROP CONSTRAINT journal_lines_check2,
  DROP CONSTRAINT journal_lines_credit_check,
  DROP CONSTRAINT journal_lines_debit_check,
  DROP CONSTRAINT journal_lines_line_no_check,
  DROP CONSTRAINT journal_lines_rate_check,
  DROP CONSTRAINT journal_lines_tax_code_role_check,
  DROP CONSTRAINT journal_lines_tax_role_check;
