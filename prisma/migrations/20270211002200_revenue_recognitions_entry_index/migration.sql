-- A revenue recognition run of more lines than one journal entry holds posts several entries (400 posting lines each);
-- the run records the first, each recognition the entry it was posted in. Every one of them is the run's: the ledger's
-- generic reversal asks the receivables' entry owners (receivablesRepository.entryOwner) of every entry it is to
-- reverse, and they now look the entry up among the recognitions too. This index answers that lookup (and the
-- recognitions' foreign key to their entry) without reading the organization's recognitions. The migration role owns
-- the table (no superuser). RLS and grants are unchanged (an index only).
CREATE INDEX revenue_recognitions_entry_idx ON finance.revenue_recognitions (org_id, entry_id);
