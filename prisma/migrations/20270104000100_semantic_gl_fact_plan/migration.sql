-- semantic.v_gl_fact: an aggregation over 1,000,000 journal lines took ~21 s (past the semantic layer's 5 s statement
-- timeout); now about a sixth of the database CPU, measured before 20261231000100 made auth_org_id() cheap (bench:agents, semantic_query_1m). Same columns, same rows, same
-- policies underneath (security_invoker: RLS of the caller on every table); what changes is what the planner may do:
--  * the organization filter is `(SELECT public.auth_org_id())`: an InitPlan evaluated once per statement whose
--    value every scan compares against (a parameter), instead of the function in the view's WHERE (a view, not a
--    policy: 20261231000100_claims_verified_once keeps subqueries out of policies);
--  * entries and fiscal periods are LEFT JOINed on their primary key (org_id, id). Every line has both (NOT NULL
--    foreign keys, same organization, so the same policy shows them), so no row changes; but a query that reads no
--    column of theirs no longer joins them (PostgreSQL removes a LEFT JOIN to a unique key whose columns are
--    unused): the usual aggregation (account type, date, amounts) reads lines and accounts only, and a
--    date-bounded one can read the lines' covering index (org_id, entry_date) INCLUDE (account_id, ..., base_credit);
--  * accounts stay an inner join (their columns are the common dimension): the organization's equality then
--    reaches both sides as the same parameter and the hash join compares account ids only;
--  * the comparison of a table's policy (org_id = auth_org_id()) with that parameter does not depend on the row:
--    the planner checks it once (a one-time filter) and the scans compare org_id with the parameter only.

CREATE OR REPLACE VIEW semantic.v_gl_fact WITH (security_invoker = true) AS
SELECT l.org_id, l.entry_id, e.seq AS entry_seq, l.line_no, l.entry_date,
  p.fiscal_year_id, l.period_id, p.period_no, p.start_date AS period_start, p.end_date AS period_end,
  l.account_id, a.code AS account_code, a.name AS account_name, a.type AS account_type, a.parent_id AS parent_account_id,
  l.currency, l.debit, l.credit, l.debit - l.credit AS amount, l.rate,
  e.base_currency, l.base_debit, l.base_credit, l.base_debit - l.base_credit AS base_amount,
  e.source, e.source_ref, e.memo, l.description, e.reverses_entry_id,
  l.workspace_id, l.counterparty_type, l.counterparty_id, e.created_at AS posted_at
FROM finance.journal_lines l
JOIN finance.accounts a ON a.org_id = l.org_id AND a.id = l.account_id
LEFT JOIN finance.journal_entries e ON e.org_id = l.org_id AND e.id = l.entry_id
LEFT JOIN finance.fiscal_periods p ON p.org_id = l.org_id AND p.id = l.period_id
WHERE l.org_id = (SELECT public.auth_org_id());
