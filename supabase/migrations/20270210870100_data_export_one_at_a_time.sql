-- Generated from prisma/migrations/20270210870100_data_export_one_at_a_time/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- "One export at a time" (POST /v1/me/data-export, POST /v1/orgs/{orgId}/data-export: 409 privacy.export_in_progress)
-- was a check, then an insert: requests at the same time each found no unfinished export and each queued one (an
-- export, a job and an audit entry each). A requester's unfinished exports (queued or running) of one kind and
-- organization are now unique: a second insert waits for the first's transaction and, once it commits, fails (23505,
-- which the service answers as 409 privacy.export_in_progress); the service's check still answers the sequential case
-- first. The key's columns are NOT NULL: a person's export (kind 'person', their personal organization) and an
-- organization's never meet through a NULL; org_id is in the key, as in every unique index of a tenant table.
--
-- Duplicates made before: of each requester's unfinished exports of a kind and organization, the running one (else
-- the first asked for) is kept; the others fail here, the reason in their error (what a failed export shows: it
-- failed; ask again once the kept one is done). Their jobs, if still to run, start nothing while the kept one is
-- unfinished (the index refuses a second running row: the job records the failure again).
--
-- The index needs no grants (it is the table's); RLS and grants unchanged. Needs no superuser: applied as the table's
-- owner (Supabase's postgres, BYPASSRLS), as 20270205000500's update of this table.

UPDATE core.data_exports d SET status = 'failed', error = 'another export of the same data was asked for at the same time; this one was not made'
FROM (
  SELECT org_id, id, row_number() OVER (PARTITION BY kind, org_id, user_id ORDER BY (status = 'running') DESC, created_at, id) AS n
  FROM core.data_exports WHERE status IN ('queued', 'running')
) dup
WHERE dup.n > 1 AND d.org_id = dup.org_id AND d.id = dup.id;

CREATE UNIQUE INDEX data_exports_one_unfinished ON core.data_exports (kind, org_id, user_id) WHERE status IN ('queued', 'running');

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270210870100_data_export_one_at_a_time', 'fcb63f36b53a5902591d83813fd1eb4505e5d794f8022a0701f44c2ae1bd8e64', 0)
  ON CONFLICT (name) DO NOTHING;
