-- A person's export and erasure (privacy/personal-data.catalog.ts: each table's person locators) look a person up by
-- their user id across every organization. These lookups had no index leading on the user column, so each read its
-- table whole: at volume (docs/privacy.md, Export) the export of one person read 1.5M analytics events, 500k bill
-- payments, 200k AI runs (twice: the runs, then their steps through them). Each index below leads on the locator's
-- column and is partial where the column may be NULL (those rows are nobody's). ai.runs.started_by, like the uuid
-- columns of public.integrations, .integration_secrets and .providers (which had an index already), is now compared as a
-- uuid by the catalog's locator (it cast the column to text, which no index serves).
-- Not CONCURRENTLY: refused inside the migration's transaction (and on a partitioned table). The tables belong to the
-- migration role (the analytics partitions too: its SECURITY DEFINER function makes them): no superuser. RLS and grants
-- are unchanged (indexes only).
-- Ordered so that each table is locked against writes (an index build's SHARE lock, held to the commit) for as
-- short a time as the migration allows: the busiest tables (runs, analytics events: 0.5 and 2.75 s of build on a
-- 1.5M-event copy) last, the bills index swap after them.

-- a person's expense claims: the index on them led on org_id (a person's claims of one organization), which a lookup
-- across organizations could only read whole. Led by the claimant now, it serves both (an organization's claims of a
-- claimant are an equality on both columns): replaced, not added to
CREATE INDEX bills_claimant_org_idx ON finance.bills (claimant_id, org_id) WHERE claimant_id IS NOT NULL;

-- the reimbursements of a person's expense claims (vendor payments, claimant_id NULL, add no entry)
CREATE INDEX bill_payments_claimant_idx ON finance.bill_payments (claimant_id, org_id) WHERE claimant_id IS NOT NULL;

-- the Stripe events of a person's subscriptions (reached through hub."Subscription"; those of their personal
-- organization through billing_event_org_idx)
CREATE INDEX billing_event_subscription_idx ON hub."BillingEvent" ("subscriptionId") WHERE "subscriptionId" IS NOT NULL;

-- the knowledge documents and versions a person added (their export: alsoExportedBy created_by)
CREATE INDEX knowledge_documents_created_by_idx ON ai.knowledge_documents (created_by) WHERE created_by IS NOT NULL;
CREATE INDEX knowledge_versions_created_by_idx ON ai.knowledge_versions (created_by) WHERE created_by IS NOT NULL;

-- the invitations to a person's proven addresses, in any organization (export, erasure, erasureRepository.lockRowsOf and
-- .organizationsOf: lower(email) = ANY(their addresses)); the other indexes on the address lead on org_id or fold it
CREATE INDEX invitations_email_idx ON core.invitations (lower(email));

-- the AI runs a person started (their export; the erasure's cancel and content clearing, within their organizations)
CREATE INDEX runs_started_by_idx ON ai.runs (started_by) WHERE started_by IS NOT NULL;

-- the analytics events sent under a person's user id (their export, their erasure's pseudonymization), in any
-- organization. The hottest-written table: one more index entry per event (partial: events of anonymous visitors, user_id
-- NULL, add none). Created on the partitioned parent: PostgreSQL builds it on each partition, and the partitions
-- core.analytics_create_partitions makes later get it too.
CREATE INDEX analytics_events_user_idx ON core.analytics_events (user_id) WHERE user_id IS NOT NULL;

-- the old index goes last, just before the commit: DROP INDEX locks finance.bills against every read (ACCESS
-- EXCLUSIVE) until the migration commits, so no index build runs while it is held (review r4: a read waited 3.9 s)
DROP INDEX finance.bills_claimant_idx;
ALTER INDEX finance.bills_claimant_org_idx RENAME TO bills_claimant_idx;
