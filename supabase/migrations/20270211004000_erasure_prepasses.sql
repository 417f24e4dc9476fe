-- Generated from prisma/migrations/20270211004000_erasure_prepasses/migration.sql by `npm run supabase:migrations`: edit that file, not this one.
-- The last statements record the migration for the project's runner (npm run db:migrate).
-- A person's erasure scans the analytics events of their organizations for their addresses (properties::text ~* ...).
-- In the erasure's one transaction that scan was one statement over every event of those organizations: 2 million
-- events took 17.5 s, past the statement timeout the erasure answered 503 and rolled back whole, every time, and a
-- tenant with ~4 million events (13 months of retention) could never erase anyone. The erasure now walks those events
-- first (ErasureService, erasureRepository.eraseAnalyticsBatch): in bounded batches, each its own transaction that
-- redacts what it finds, then its one transaction scans only the events that arrived since the walk began.
--
-- One row per person whose erasure has begun its walk, deleted by the erasure's transaction (the personal-data
-- catalog's row, by user_id): where the walk is (a retry resumes there), the organizations it walks, the pseudonym every
-- event of theirs gets (one per erasure, however many transactions write it: one erased person stays one user in the
-- distinct counts), since when events count as new to the erasure's transaction, and the ids their events were
-- forwarded to PostHog under (read by a batch before it cleared them: the erasure's PostHog deletion names them), and
-- the addresses it searches for (the erasure's transaction starts it over when the person has proven another since, has
-- joined an organization it does not walk, or it began more than an hour before). A row an erasure refused after its walk
-- leaves is deleted by the retention job after a week (RetentionJob).
-- Reached on the privileged path privacy.erasure only (service_role); nobody else has a privilege on it.
CREATE TABLE core.erasure_prepasses (
  user_id text PRIMARY KEY REFERENCES core."User"(id) ON DELETE CASCADE,
  pseudonym text NOT NULL CHECK (pseudonym ~ '^erased-[0-9a-f-]{36}$'),
  -- the database's clock (received_at's): events received since (less a margin) are the erasure's transaction's to scan
  started_at timestamptz NOT NULL DEFAULT now(),
  -- the app's clock less how far back an event may be dated: no event received since is dated before (partitions pruned)
  occurred_from timestamptz NOT NULL,
  org_ids uuid[] NOT NULL,
  -- the person's proven addresses it searches the events for (erasureRepository.provenEmails, when it began)
  emails text[] NOT NULL DEFAULT '{}',
  -- the walk's position: the last event done, in the order of the primary key (org_id, occurred_at, id)
  cursor_org uuid,
  cursor_at timestamptz,
  cursor_id uuid,
  done boolean NOT NULL DEFAULT false,
  posthog_ids jsonb NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(posthog_ids) = 'array')
);

COMMENT ON TABLE core.erasure_prepasses IS 'A person''s erasure in progress: its walk of the analytics events of their organizations (resumable), deleted when the erasure commits';

ALTER TABLE core.erasure_prepasses ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY erasure_prepasses_service ON core.erasure_prepasses FOR ALL TO service_role USING (true) WITH CHECK (true);

REVOKE ALL ON core.erasure_prepasses FROM PUBLIC, anon, authenticated, service_role, omnizen_analyst, finance_posting;
GRANT SELECT, INSERT, UPDATE, DELETE ON core.erasure_prepasses TO service_role;

CREATE SCHEMA IF NOT EXISTS omnizen_migrations;
CREATE TABLE IF NOT EXISTS omnizen_migrations.applied (
  name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms int NOT NULL);
INSERT INTO omnizen_migrations.applied (name, checksum, duration_ms) VALUES ('20270211004000_erasure_prepasses', '5794920521e26e5c6a29d54162a405e0dca80475522bc5c272c9b330373bea8d', 0)
  ON CONFLICT (name) DO NOTHING;
