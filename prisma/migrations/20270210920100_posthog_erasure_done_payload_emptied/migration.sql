-- A PostHog erasure's job (topic analytics.posthog_erasure) carries the erased person's distinct ids: their id and
-- organization ids, their addresses and the app ids naming them. Its payload is now written sealed and
-- emptied ('{}') in the statement that records the job done (JobOptions.personalData, docs/privacy.md). The jobs done
-- before kept it in the clear until the retention purge of processed jobs (RETENTION_OUTBOX_DAYS, 14 days by default):
-- their payload is emptied now, as the relay empties it. A dead one (dead_at) keeps it for an operator's retry, and a
-- waiting one for its run: `npm run secrets:rotate` seals those (and empties a done one an instance of the earlier
-- version finished after this migration). The topic is named here as the code names it (POSTHOG_ERASURE_JOB): the only
-- topic whose payload is personal data.
--
-- Each emptied job is audited in its organization (principal 'system', ids only), as the rotation audits its changes.
-- Idempotent (an emptied payload is not matched again). No object is created: RLS and grants unchanged. Needs no
-- superuser: applied as the owner of the tables (Supabase's postgres, BYPASSRLS); nothing to do on an empty database.
WITH emptied AS (
  UPDATE core.outbox SET payload = '{}'::jsonb
  WHERE topic = 'analytics.posthog_erasure' AND processed_at IS NOT NULL AND dead_at IS NULL AND payload <> '{}'::jsonb
  RETURNING org_id, id)
INSERT INTO core.audit_logs (org_id, actor_id, principal_type, action, entity_type, entity_id)
SELECT e.org_id, 'migration:20270210920100', 'system', 'jobs.payload_emptied', 'outbox_job', e.id::text
FROM emptied e ORDER BY e.org_id, e.id;
