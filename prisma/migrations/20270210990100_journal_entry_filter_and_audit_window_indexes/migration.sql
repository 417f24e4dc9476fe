-- Indexes for two lists a volume review found slow. Measured on a scratch database (2.1 million journal lines and
-- 2 million audit rows; one organization with 400,000 entries and 1 million audit rows), the statements EXPLAINed as
-- the API's role in a tenant transaction. Not CONCURRENTLY: refused inside the migration's transaction. The tables
-- belong to the migration role: no superuser. Neither is unique: Citus needs nothing more of them.

-- The journal-entry list filtered by counterparty id (ledgerRepository.listEntryIds) hashed every counterparty line
-- of the organization, then walked its entries newest first: 8.4–11.7 s. It now reads the counterparty's lines in date
-- order and stops at the page: 0.4–3.5 ms. Partial: only a receivable's, payable's or similar line names a
-- counterparty; a line without one pays nothing (200,000 line inserts: no measurable CPU; with a counterparty
-- +3–4 µs of database CPU per line). The account filter reads journal_lines_account_idx the same way (no new index):
-- a rarely used account 283 ms -> 2–22 ms. No index for the memo filter: under row-level security PostgreSQL uses an
-- index only for a leakproof operator, LIKE/ILIKE are not leakproof and only a superuser may declare a function so,
-- so a pg_trgm index (a trusted extension on PostgreSQL 15 and on Supabase) would never serve the API's role.
CREATE INDEX journal_lines_counterparty_idx ON finance.journal_lines (org_id, counterparty_id, entry_date)
  WHERE counterparty_id IS NOT NULL;

-- The audit log list with a from/to window (auditRepository.list, newest id first) walked the organization's rows
-- from the newest back to the window: a day a year back read 330,000 later rows (359 ms; 3.6 s in the review). With
-- this index the planner reads the window's rows instead: 1.3 ms. Every audited mutation pays one more index entry
-- (+2 µs of database CPU per audit row, 200,000 inserts measured).
CREATE INDEX audit_logs_org_occurred_idx ON core.audit_logs (org_id, occurred_at, id);
