-- Indexes a volume review found missing (a scratch database of 2,000 business organizations, 1–3 million rows per big
-- table, the real statements EXPLAINed). Not CONCURRENTLY: refused inside the migration's transaction. Every table
-- belongs to the migration role: no superuser. None is unique: Citus needs nothing more of them (test/platform/citus.test.ts).

-- Foreign keys acting on delete (CASCADE, SET NULL): each delete of a referenced row looks up the rows referencing it,
-- without an index a scan of the whole referencing table per deleted row (test/platform/foreign-key-indexes.test.ts).
-- The retention job's digest purge (erasureRepository.purgeEmailDeliveries) deletes a day's sent digests: 1,667 of
-- them scanned every e-mail delivery once each (1,070 s cold), the statement timeout cancelled it and the job's
-- transaction purged nothing, every day again (0.41 s with this index). Partial: only a digested mail names a digest.
CREATE INDEX email_deliveries_digest_id_idx ON core.email_deliveries (digest_id) WHERE digest_id IS NOT NULL;
-- A user row deleted (other apps of the database write core."User"), and the erasure's reads and deletes of the
-- person's rows (personal-data.catalog: user_id; erasureRepository.revokeSessions; clearInviterNames' invited_by).
-- Partial where the column is nullable: the lookup's equality implies NOT NULL, the index skips what it never finds.
CREATE INDEX email_deliveries_user_idx ON core.email_deliveries (user_id) WHERE user_id IS NOT NULL;
CREATE INDEX refresh_tokens_user_idx ON core.refresh_tokens (user_id);
CREATE INDEX app_token_redemptions_user_idx ON core.app_token_redemptions (user_id);
CREATE INDEX api_keys_created_by_idx ON core.api_keys (created_by) WHERE created_by IS NOT NULL;
CREATE INDEX invitations_invited_by_idx ON core.invitations (invited_by) WHERE invited_by IS NOT NULL;
CREATE INDEX invitations_accepted_by_idx ON core.invitations (accepted_by) WHERE accepted_by IS NOT NULL;
-- an organization's analyst logins go with it
CREATE INDEX analyst_logins_org_idx ON core.analyst_logins (org_id);
-- a deleted agent's triggers and a deleted collection's versions go with them (their primary keys lead with org_id
-- only: the lookup read every trigger or version of the organization)
CREATE INDEX agent_triggers_agent_idx ON ai.agent_triggers (org_id, agent_id);
CREATE INDEX knowledge_versions_collection_idx ON ai.knowledge_versions (org_id, collection_id);

-- The retention job's outbox purge (erasureRepository.purgeProcessedJobs: processed_at IS NOT NULL AND processed_at <
-- the cutoff) read the whole outbox; the pending jobs' index is partial on processed_at IS NULL.
CREATE INDEX outbox_processed_idx ON core.outbox (processed_at) WHERE processed_at IS NOT NULL;

-- An endpoint's message log filtered by status or by event type (webhookRepository.listMessages: newest first, a
-- (created_at, id) keyset), and the replay of its messages failed since a date (lockFailedSince: status 'failed',
-- created_at >=): webhook_messages_endpoint_idx (org_id, endpoint_id, created_at DESC, id) filtered the endpoint's
-- whole log for them.
CREATE INDEX webhook_messages_endpoint_status_idx ON core.webhook_messages (org_id, endpoint_id, status, created_at DESC, id DESC);
CREATE INDEX webhook_messages_endpoint_type_idx ON core.webhook_messages (org_id, endpoint_id, event_type, created_at DESC, id DESC);
-- An endpoint's failed attempts, newest first (webhookRepository.listAttempts with succeeded=false): few among many
-- successes, which webhook_attempts_endpoint_idx (org_id, endpoint_id, id DESC) walked through.
CREATE INDEX webhook_attempts_endpoint_failed_idx ON core.webhook_attempts (org_id, endpoint_id, id DESC) WHERE NOT succeeded;
